"""``zoo eval``: top-1/top-5 accuracy on an image folder.

Evaluation uses the model's own preprocessing (timm's ``resolve_data_config`` +
``create_transform`` on the model's ``pretrained_cfg``).  Under ``torchrun`` it shards the
dataset over ranks with ``DistributedSampler`` minus its padding (every image is counted
exactly once), reduces the counts with ``torch.distributed`` (gloo on CPU, nccl on GPU), and
only rank 0 prints and writes.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from zoo.argtypes import existing_file, non_negative_int, positive_int
from zoo.catalog import get_spec, register_specs
from zoo.errors import ZooError
from zoo.version import __version__
from zoo.yamlio import atomic_write_text

if TYPE_CHECKING:
    import torch

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


class DataError(ZooError, ValueError):
    """An evaluation dataset that cannot be read as an image folder."""


@dataclass
class Sample:
    path: Path
    target: int


def find_samples(root: Path, label_map: dict[str, int] | None = None, *,
                 skip_bad: bool = False) -> tuple[list[Sample], list[str]]:
    """ImageFolder layout: one sub-folder per class (sorted names = class indices, unless a
    label map gives each folder its index).  Empty class folders are errors (warnings with
    ``skip_bad``)."""
    if not root.is_dir():
        raise DataError(f"no such data folder: {root}")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{root} has no class sub-folders (expected an ImageFolder layout: "
                        "<root>/<class>/<image>)")
    if label_map is not None:
        unknown = [c for c in classes if c not in label_map]
        if unknown:
            raise DataError(f"class folders missing from the label map: {unknown[:10]}")
        index = {c: label_map[c] for c in classes}
    else:
        index = {c: i for i, c in enumerate(classes)}
    samples = []
    for c in classes:
        files = sorted(p for p in (root / c).rglob("*") if p.suffix.lower() in IMG_EXTENSIONS)
        if not files:
            msg = f"class folder {root / c} holds no images"
            if not skip_bad:
                raise DataError(msg + " (remove it, or pass --skip-bad to skip it)")
            warnings.warn(msg + "; skipped", stacklevel=2)
        samples += [Sample(f, index[c]) for f in files]
    if not samples:
        raise DataError(f"no images under {root}")
    return samples, classes


def load_label_map(path: str | Path | None, label_set: str, num_classes: int,
                   root: Path) -> dict[str, int] | None:
    """A label map file (JSON ``{folder: index}`` or lines ``folder index``); for ImageNet-1k
    models whose class folders are WordNet synsets (``n01440764``...), timm's synset order is
    used automatically, so a subset of the classes still gets the right indices.  Otherwise
    sorted folder names are the class indices."""
    if path is not None:
        return _read_label_map(Path(path))
    import re

    folders = [p.name for p in root.iterdir() if p.is_dir()] if root.is_dir() else []
    if label_set == "imagenet-1k" and num_classes == 1000 and folders:
        if all(re.fullmatch(r"n\d{8}", f) for f in folders):
            from timm.data import ImageNetInfo

            info = ImageNetInfo()
            return {info.index_to_label_name(i): i for i in range(1000)}
        warnings.warn(f"the class folders of {root} are not ImageNet-1k synset ids (n01440764, "
                      "...): their sorted names are taken as class indices 0..N-1; pass "
                      "--label-map if they name the classes otherwise", stacklevel=2)
    return None


def _read_label_map(path: Path) -> dict[str, int]:
    """A label map file: JSON ``{folder: index}``, or lines ``folder index``."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read the label map {path}: {getattr(e, 'strerror', None) or e}") from None
    try:
        if text.lstrip().startswith("{"):
            doc = json.loads(text)
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
            return {str(k): int(v) for k, v in doc.items()}
        out = {}
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    folder, idx = line.split()
                    out[folder] = int(idx)
                except ValueError:
                    raise ValueError(f"line {n}: {line.strip()[:80]!r}") from None
        return out
    except (ValueError, TypeError) as e:
        raise DataError(f"{path} is not a label map (JSON {{folder: index}} or lines 'folder "
                        f"index'): {e}") from None


def resolve_root(data: str | Path, split: str | None) -> Path:
    """The ImageFolder to read: ``data/split`` for an explicit split (which must exist);
    without one, ``data/val`` when present, else ``data`` itself."""
    root = Path(data)
    if not root.is_dir():
        raise DataError(f"no such data folder: {root}")
    if split is None:
        return root / "val" if (root / "val").is_dir() else root
    if not (root / split).is_dir():
        raise DataError(f"no split folder {split!r} under {root} (pass the folder that holds the "
                        "class sub-folders as --data, without --split)")
    return root / split


def shard_indices(num_samples: int, rank: int, world: int) -> list[int]:
    """This rank's dataset indices: ``DistributedSampler``'s unshuffled split with its padding
    dropped, so that over all ranks every index occurs exactly once."""
    from torch.utils.data import DistributedSampler

    sampler: DistributedSampler[int] = DistributedSampler(
        range(num_samples), num_replicas=world, rank=rank,  # type: ignore[arg-type]  # sized
        shuffle=False, drop_last=False)
    own = len(range(rank, num_samples, world))  # the padding (repeats of the first indices) follows
    return list(sampler)[:own]


class _Unreadable(NamedTuple):
    path: str
    reason: str


class _Dataset:
    def __init__(self, samples: list[Sample], transform, skip_bad: bool) -> None:
        self.samples, self.transform, self.skip_bad = samples, transform, skip_bad

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        from PIL import Image, UnidentifiedImageError

        s = self.samples[i]
        try:
            with Image.open(s.path) as img:
                x = self.transform(img.convert("RGB"))
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError,
                ValueError) as e:
            if self.skip_bad:
                return _Unreadable(str(s.path), str(e))
            raise DataError(f"cannot read image {s.path}: {e} (fix or remove it, or pass "
                            "--skip-bad to skip unreadable images)") from None
        return x, s.target


def _collate(batch: list[Any]) -> tuple[Any, Any, list[_Unreadable]]:
    """Stack the readable images; pass the unreadable ones (``--skip-bad``) on to be reported."""
    import torch

    bad = [b for b in batch if isinstance(b, _Unreadable)]
    good = [b for b in batch if not isinstance(b, _Unreadable)]
    if not good:
        return None, None, bad
    xs, ys = zip(*good)
    return torch.stack(xs), torch.tensor(ys), bad


def _all_reduce(t: torch.Tensor, device: str, op: Any = None) -> torch.Tensor:
    """Sum (or ``op``) a CPU tensor over ranks; nccl only reduces tensors on the GPU."""
    import torch.distributed as dist

    op = dist.ReduceOp.SUM if op is None else op
    on = device if dist.get_backend() == "nccl" else "cpu"
    t_on = t.to(on)
    dist.all_reduce(t_on, op=op)
    return t_on.cpu()


@dataclass
class EvalResult:
    model: str
    data: str
    num_samples: int = 0
    top1: float = 0.0
    top5: float = 0.0
    correct1: int = 0
    correct5: int = 0
    skipped: int = 0
    images_per_sec: float = 0.0
    partial: bool = False
    world_size: int = 1
    batch_size: int = 0
    data_config: dict[str, Any] = field(default_factory=dict)
    date: str = ""
    zoo_version: str = ""
    torch_version: str = ""
    device: str = "cpu"


def _dist_env() -> tuple[int, int, int]:
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
            int(os.environ.get("LOCAL_RANK", 0)))


def evaluate(name: str, data: str | Path, *, split: str | None = None, weights: str | None = None,
             batch_size: int = 64, workers: int = 2, limit: int | None = None,
             label_map: str | Path | None = None, skip_bad: bool = False,
             device: str | None = None, progress: bool = True,
             _interrupt_after: int | None = None) -> EvalResult:
    """Top-1/top-5 of a zoo model on an ImageFolder, single process or under torchrun.

    ``split`` picks ``data/split`` (default: ``data/val`` when present, else ``data``).  With
    ``skip_bad``, unreadable images and empty class folders are skipped with a warning."""
    import torch
    import torch.distributed as dist
    from timm.data import create_transform, resolve_data_config

    from zoo.build import create

    rank, world, local_rank = _dist_env()
    from zoo.device import resolve_device

    if device is None:
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    device = str(resolve_device(device))
    initialized_here = False
    if world > 1 and not dist.is_initialized():
        if device.startswith("cuda"):
            torch.cuda.set_device(torch.device(device))  # one GPU per rank for nccl
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
        initialized_here = True
    try:
        root = resolve_root(data, split)
        model_name = name.partition(".")[0]
        pretrained = "." in name and weights is None
        if not pretrained and weights is None:
            warnings.warn(f"{name}: no weights tag and no --weights: evaluating randomly "
                          f"initialized weights (expect chance accuracy); use {name}.TAG (see "
                          "`zoo list --pretrained`) or --weights", stacklevel=2)
        model = create(name, pretrained=pretrained, weights=weights)
        model = model.to(device).eval()
        spec = get_spec(model_name)
        num_classes = int(getattr(model, "num_classes"))
        cfg = resolve_data_config(model=model)
        samples, _ = find_samples(
            root, load_label_map(label_map, spec.data.label_set, num_classes, root),
            skip_bad=skip_bad)
        out_of_range = sorted({s.target for s in samples if s.target >= num_classes})
        if out_of_range:
            raise DataError(f"class indices {out_of_range[:10]} are beyond the model's "
                            f"{num_classes} classes (pass --label-map to map the folders)")
        if limit is not None:
            samples = samples[:limit]
        dataset = _Dataset(samples, create_transform(**cfg), skip_bad)
        loader: torch.utils.data.DataLoader[Any] = torch.utils.data.DataLoader(
            dataset, batch_size=batch_size,  # type: ignore[arg-type]  # a map-style dataset
            sampler=shard_indices(len(samples), rank, world), num_workers=workers,
            collate_fn=_collate)
        counts = torch.zeros(4, dtype=torch.float64)  # n, correct1, correct5, skipped
        partial = False
        bar = None
        if progress and rank == 0:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(samples), desc=f"eval {name}", unit="img", file=sys.stderr)
        start = time.perf_counter()
        try:
            with torch.inference_mode():
                for step, (x, y, bad) in enumerate(loader):
                    if _interrupt_after is not None and step >= _interrupt_after:
                        raise KeyboardInterrupt
                    for b in bad:
                        warnings.warn(f"skipped unreadable image {b.path}: {b.reason}",
                                      stacklevel=2)
                    counts[3] += len(bad)
                    if bar is not None and bad:
                        bar.update(len(bad) * world)
                    if x is None:
                        continue
                    logits = model(x.to(device))
                    k = min(5, logits.shape[-1])
                    top = logits.topk(k, dim=-1).indices.cpu()
                    hit = top.eq(y.unsqueeze(1))
                    counts[0] += len(y)
                    counts[1] += hit[:, :1].any(1).sum().item()
                    counts[2] += hit.any(1).sum().item()
                    if bar is not None:
                        bar.update(len(y) * world)
        except KeyboardInterrupt:
            partial = True
        elapsed = time.perf_counter() - start
        if bar is not None:
            bar.close()
        if world > 1:  # the slowest rank's time; partial if any rank was interrupted
            counts = _all_reduce(counts, device)
            flags = _all_reduce(torch.tensor([float(partial), elapsed], dtype=torch.float64),
                                device, dist.ReduceOp.MAX)
            partial, elapsed = bool(flags[0].item()), flags[1].item()
        n, c1, c5, skipped = (int(v) for v in counts.tolist())
        return EvalResult(
            model=name, data=str(root), num_samples=n, correct1=c1, correct5=c5,
            top1=100.0 * c1 / n if n else 0.0, top5=100.0 * c5 / n if n else 0.0,
            skipped=skipped, images_per_sec=n / elapsed if elapsed > 0 else 0.0,
            partial=partial, world_size=world, batch_size=batch_size,
            data_config={k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()},
            date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            zoo_version=__version__, torch_version=torch.__version__, device=device)
    finally:
        if initialized_here:
            dist.destroy_process_group()


# -- CLI -----------------------------------------------------------------------------------------

def _cmd_eval(args: argparse.Namespace) -> int:
    for path in args.specs or []:
        register_specs(path)
    rank = _dist_env()[0]
    res = evaluate(args.name, args.data, split=args.split, weights=args.weights,
                   batch_size=args.batch_size, workers=args.workers, limit=args.limit,
                   label_map=args.label_map, skip_bad=args.skip_bad, device=args.device,
                   progress=not args.no_progress)
    if rank == 0:
        flag = " (PARTIAL: interrupted)" if res.partial else ""
        print(f"{res.model}: top-1 {res.top1:.3f}  top-5 {res.top5:.3f}  on {res.num_samples} images"
              f" ({res.skipped} skipped), {res.images_per_sec:.1f} img/s, {res.world_size} "
              f"process(es){flag}")
        if args.out:
            atomic_write_text(args.out, json.dumps(asdict(res), indent=2) + "\n")
    return 130 if res.partial else 0


def register(sub) -> None:
    p = sub.add_parser("eval", help="top-1/top-5 on an ImageFolder (works under torchrun)")
    p.add_argument("name", help="model[.tag] (a tag loads the registry weights)")
    p.add_argument("--data", required=True, help="ImageFolder root (or its parent, with --split)")
    p.add_argument("--split", help="sub-folder of --data to read (default: val, when present)")
    p.add_argument("--weights", help="hf-hub:org/repo[@rev], a folder or a .safetensors file")
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--workers", type=non_negative_int, default=2)
    p.add_argument("--limit", type=positive_int, help="evaluate the first N images only")
    p.add_argument("--label-map", type=existing_file,
                   help="JSON {folder: index} or lines 'folder index'")
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable images/empty classes")
    p.add_argument("--device")
    p.add_argument("--out", help="write the result as JSON (usable by zoo push --metrics)")
    p.add_argument("--specs", action="append", help="extra spec YAML file(s) to register")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_eval)
