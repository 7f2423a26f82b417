"""Batch-norm recalibration of a child network.

The running BN statistics stored in a supernet were accumulated over many different children;
they are not valid for any one child.  Following the "post-statistics of batch normalization" of
Universally Slimmable Networks (arXiv:1903.05134), BigNAS (arXiv:2003.11142) and AttentiveNAS'
evaluation (``test_attentive_nas.py``: ``reset_running_stats_for_calibration`` + 64 forward
batches of training images) re-estimate them for each child before evaluation: reset the running
statistics, then run the child in BN-training mode over a few batches with a *cumulative*
average (``momentum=None``), without gradient.  Everything else stays in eval mode.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo.errors import ZooError

from .model import iter_bn

DEFAULT_BATCHES = 64      # AttentiveNAS/AlphaNet eval configs: post_bn_calibration_batch_num
DEFAULT_BATCH_SIZE = 256  # their eval batch_size


class CalibrationError(ZooError, ValueError):
    """Calibration cannot run: no data, no weights, no BN layers, bad arguments."""


def reset_bn_statistics(model: nn.Module) -> int:
    """Zero the running means, set variances to one and counters to zero; return #BN layers."""
    n = 0
    for bn in iter_bn(model):
        bn.reset_running_stats()
        n += 1
    return n


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable[Any], *, num_batches: int) -> int:
    """Reset BN statistics and re-estimate them as the cumulative average over ``num_batches``
    batches (images, or ``(images, labels)`` pairs).  Returns the number of batches used; the
    model is left in eval mode with its BN momenta restored."""
    if num_batches < 1:
        raise CalibrationError(f"num_batches must be >= 1, got {num_batches}")
    bns = list(iter_bn(model))
    if not bns:
        raise CalibrationError(f"{type(model).__name__} has no BatchNorm layers to calibrate")
    momenta = [bn.momentum for bn in bns]
    device = next(model.parameters()).device
    model.eval()
    reset_bn_statistics(model)
    for bn in bns:
        bn.momentum = None  # cumulative moving average: every batch weighs the same
        bn.train()
    used = 0
    try:
        for batch in batches:
            if used >= num_batches:
                break
            images = batch[0] if isinstance(batch, (tuple, list)) else batch
            model(images.to(device))
            used += 1
    finally:
        for bn, m in zip(bns, momenta):
            bn.momentum = m
        model.eval()
    if used == 0:
        raise CalibrationError("no calibration batches: the data is empty")
    return used


def image_folder_loader(model: nn.Module, data: str | Path, *, batch_size: int = DEFAULT_BATCH_SIZE,
                        seed: int = 0, num_workers: int = 0) -> torch.utils.data.DataLoader:
    """A seeded, shuffled loader over an image folder (``class/*.jpg`` or flat), with the
    model's own evaluation transform (``timm.data.resolve_data_config`` from its
    ``pretrained_cfg`` + ``create_transform``).  The same seed gives the same batches."""
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


def load_child(name: str, *, weights: str | Path | None = None,
               supernet_checkpoint: str | Path | None = None) -> nn.Module:
    """The child ``name`` with weights: a zoo weights reference (tag, folder, ``hf-hub:``), or an
    original AttentiveNAS/AlphaNet supernet checkpoint to slice.  ``name.tag`` alone loads the
    tag's (locally converted) weights."""
    import zoo
    from zoo.build import split_name

    if weights is not None and supernet_checkpoint is not None:
        raise CalibrationError("give either weights or supernet_checkpoint, not both")
    if supernet_checkpoint is not None:
        from zoo.checkpoint import load_original_checkpoint

        model_name = split_name(name)[0]
        sd = zoo.convert_checkpoint(model_name, load_original_checkpoint(supernet_checkpoint))
        model = zoo.create(model_name)
        model.load_state_dict(sd, strict=True)
        return model.eval()
    if weights is None and split_name(name)[1] is None:
        raise CalibrationError(f"{name}: no weights to calibrate; give weights (a tag, a folder, "
                         "hf-hub:org/repo) or a supernet checkpoint, or name a tag (NAME.TAG)")
    return zoo.create(name, pretrained=True, weights=weights)


def calibrate(name: str, data: str | Path, *, weights: str | Path | None = None,
              supernet_checkpoint: str | Path | None = None, model: nn.Module | None = None,
              num_batches: int = DEFAULT_BATCHES, batch_size: int = DEFAULT_BATCH_SIZE,
              seed: int = 0, num_workers: int = 0, out: str | Path | None = None,
              device: str | torch.device | None = None) -> nn.Module:
    """Recalibrate the BN statistics of child ``name`` on images from ``data``; with ``out``,
    write it as a standalone folder (:func:`zoo.save_pretrained`) that
    ``zoo.create(name, weights=out)`` loads.  Deterministic for a fixed ``seed``.

    The weights come from ``model`` (already built), ``weights`` or ``supernet_checkpoint``
    (see :func:`load_child`).
    """
    import zoo
    from zoo.build import split_name

    if model is None:
        model = load_child(name, weights=weights, supernet_checkpoint=supernet_checkpoint)
    if device is not None:
        model = model.to(device)
    torch.manual_seed(seed)
    loader = image_folder_loader(model, data, batch_size=batch_size, seed=seed,
                                 num_workers=num_workers)
    recalibrate_bn(model, loader, num_batches=num_batches)
    if out is not None:
        zoo.save_pretrained(model.cpu() if device is not None else model, out,
                            tag=split_name(name)[1])
    return model
