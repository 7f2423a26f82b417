"""``zoo calibrate``: re-estimate a model's statistics on an image folder with its family's
``calibrate`` hook (BigNAS children: BatchNorm post-statistics), and write the result as a
standalone weights folder."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.argtypes import non_negative_int, positive_int
from zoo.catalog import get_spec, split_name
from zoo.errors import CalibrationError
from zoo.families import get_family

if TYPE_CHECKING:
    import torch
    from torch import nn

DEFAULT_BATCHES = 64      # AttentiveNAS/AlphaNet eval configs: post_bn_calibration_batch_num
DEFAULT_BATCH_SIZE = 256  # their eval batch_size


def image_folder_loader(model: nn.Module, data: str | Path, *, batch_size: int = DEFAULT_BATCH_SIZE,
                        seed: int = 0, num_workers: int = 0) -> torch.utils.data.DataLoader[Any]:
    """A seeded, shuffled loader over an image folder (``class/*.jpg`` or flat), with the
    model's own evaluation transform (``timm.data.resolve_data_config`` from its
    ``pretrained_cfg`` + ``create_transform``).  The same seed gives the same batches."""
    import torch
    from timm.data import ImageDataset, create_transform, resolve_data_config

    root = Path(data)
    if not root.is_dir():
        raise CalibrationError(f"calibration data folder {root} does not exist")
    transform = create_transform(**resolve_data_config(model=model), is_training=False)
    try:
        dataset = ImageDataset(str(root), transform=transform)
    except Exception as e:  # timm raises RuntimeError/ValueError on an empty or unreadable tree
        raise CalibrationError(f"no images found under {root}: {e}") from None
    if len(dataset) == 0:
        raise CalibrationError(f"no images found under {root}")
    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True,
                                       generator=generator, num_workers=num_workers,
                                       drop_last=False)


def load_model(name: str, *, weights: str | Path | None = None,
               checkpoint: str | Path | None = None) -> nn.Module:
    """The model ``name`` with weights: a zoo weights reference (tag, folder, ``hf-hub:``), or an
    original checkpoint converted by its family (a BigNAS supernet checkpoint is sliced to the
    child).  ``name.tag`` alone loads the tag's (locally converted) weights."""
    from zoo.build import build_model, convert_checkpoint, create
    from zoo.loading import load_into
    from zoo.weights.checkpoint import load_original_checkpoint

    if weights is not None and checkpoint is not None:
        raise CalibrationError("give either weights or an original checkpoint, not both")
    if checkpoint is not None:
        spec = get_spec(name)
        model = build_model(spec, meta=True)
        load_into(model, convert_checkpoint(spec, load_original_checkpoint(checkpoint)),
                  str(checkpoint))
        return model.eval()
    if weights is None and split_name(name)[1] is None:
        raise CalibrationError(f"{name}: no weights to calibrate; give weights (a tag, a folder, "
                               "hf-hub:org/repo) or a supernet checkpoint, or name a tag (NAME.TAG)")
    return create(name, pretrained=True, weights=weights)


def calibrate(name: str, data: str | Path, *, weights: str | Path | None = None,
              supernet_checkpoint: str | Path | None = None, model: nn.Module | None = None,
              num_batches: int = DEFAULT_BATCHES, batch_size: int = DEFAULT_BATCH_SIZE,
              seed: int = 0, num_workers: int = 0, out: str | Path | None = None,
              device: str | torch.device | None = None) -> nn.Module:
    """Recalibrate model ``name`` on images from ``data`` with its family's calibrate hook; with
    ``out``, write it as a standalone folder (:func:`zoo.save_pretrained`) that
    ``zoo.create(name, weights=out)`` loads.  Deterministic for a fixed ``seed``.

    The weights come from ``model`` (already built), ``weights`` or ``supernet_checkpoint``
    (an original checkpoint; see :func:`load_model`).
    """
    import torch

    from zoo.weights import save_pretrained

    family = get_family(get_spec(name).family)
    if not family.supports_calibration:
        raise CalibrationError(f"{split_name(name)[0]}: the {family.name} family has nothing to "
                               "calibrate")
    if model is None:
        model = load_model(name, weights=weights, checkpoint=supernet_checkpoint)
    if device is not None:
        model = model.to(device)
    torch.manual_seed(seed)
    loader = image_folder_loader(model, data, batch_size=batch_size, seed=seed,
                                 num_workers=num_workers)
    family.calibrate(model, loader, num_batches)
    if out is not None:
        save_pretrained(model.cpu() if device is not None else model, out,
                        tag=split_name(name)[1])
    return model


def cmd_calibrate(args: argparse.Namespace) -> int:
    from zoo.weights import converted_path

    out = args.out
    if out is None:
        if split_name(args.child)[1] is None:
            raise CalibrationError("give --out DIR, or name a weights tag (NAME.TAG) to replace "
                                   "its locally converted weights by the calibrated ones")
        out = converted_path(args.child).parent
    calibrate(args.child, args.data, weights=args.weights,
              supernet_checkpoint=args.supernet_checkpoint, num_batches=args.batches,
              batch_size=args.batch_size, seed=args.seed, num_workers=args.workers,
              out=out, device=args.device)
    print(f"{args.child}: statistics recalibrated on up to {args.batches} batch(es) of "
          f"{args.batch_size} images from {args.data}; wrote {out}")
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "calibrate", help="re-estimate the BN statistics of a supernet child on an image folder "
        "and write it as a standalone weights folder",
        description="Reset and re-estimate the batch-norm statistics of CHILD (a model whose "
        "family calibrates, e.g. a bignas child; optionally NAME.TAG to start from that tag's "
        "converted weights) on images from --data (an image folder, e.g. part of ImageNet "
        "train), then write the calibrated model with zoo.save_pretrained to --out (or over the "
        "tag's converted weights).  Deterministic for a fixed --seed.")
    p.add_argument("child", metavar="CHILD")
    p.add_argument("--data", required=True, help="image folder (class subfolders or flat)")
    p.add_argument("--out", help="output folder (model.safetensors, config.json); default for "
                   "NAME.TAG: that tag's local weights (after `zoo convert NAME.TAG`), so "
                   "zoo.create(NAME.TAG, pretrained=True) loads the calibrated child")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--weights", help="a weights tag, a save_pretrained folder or hf-hub:org/repo")
    src.add_argument("--supernet-checkpoint", metavar="PTH",
                     help="an original checkpoint (e.g. an AttentiveNAS/AlphaNet supernet) that "
                     "the family converts (slices) to this model")
    p.add_argument("--batches", type=positive_int, default=DEFAULT_BATCHES,
                   help=f"number of batches (default {DEFAULT_BATCHES}, as AttentiveNAS)")
    p.add_argument("--batch-size", type=positive_int, default=DEFAULT_BATCH_SIZE,
                   help=f"default {DEFAULT_BATCH_SIZE}, as AttentiveNAS")
    p.add_argument("--seed", type=non_negative_int, default=0, help="shuffling seed")
    p.add_argument("--workers", type=non_negative_int, default=0, help="data loader workers")
    p.add_argument("--device", default=None, help="e.g. cuda (default: cpu)")
    p.set_defaults(func=cmd_calibrate)
