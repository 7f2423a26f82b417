"""``zoo demo``: zoo's main job on one model — build it from its spec, measure it against the
paper, and classify an image with the model's own preprocessing."""
from __future__ import annotations

import time
from importlib.resources import files
from pathlib import Path
from typing import Any

from zoo.catalog import get_spec
from zoo.errors import UsageError

SAMPLE_IMAGE = "sample.png"


def sample_image_path() -> Path:
    """The bundled sample image (a synthetic drawing shipped with zoo)."""
    return Path(str(files("zoo.assets").joinpath(SAMPLE_IMAGE)))


def _label_names(num_classes: int, label_set: str) -> list[str] | None:
    if label_set != "imagenet-1k" or num_classes != 1000:
        return None
    try:
        from timm.data import ImageNetInfo

        info = ImageNetInfo()
        return [info.index_to_description(i) for i in range(1000)]
    except Exception:  # label files missing from an unusual timm build: show indices
        return None


def _read_image(path: Path) -> Any:
    """The image at ``path`` as RGB; :class:`UsageError` saying why if it is not one."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise UsageError(f"--image {path}: no such file" if not path.exists() else
                         f"--image {path}: not a regular file")
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError,
            ValueError) as e:
        raise UsageError(f"--image {path}: not an image file that Pillow can read ({e})") from None


def run_demo(name: str, *, image: str | None = None, pretrained: bool = False,
             topk: int = 5) -> int:
    import torch
    from timm.data import create_transform, resolve_data_config

    from zoo.build import create
    from zoo.measure import count_macs, count_params

    spec = get_spec(name)
    path = Path(image) if image else sample_image_path()
    picture = _read_image(path)  # a bad --image fails before anything is built
    t0 = time.perf_counter()
    model = create(name, pretrained=pretrained).eval()
    build_s = time.perf_counter() - t0
    c, h, w = spec.data.input_size
    params, macs = count_params(model), count_macs(model, (c, h, w))
    rep = spec.reported
    print(f"model   {spec.name} [{spec.family}] built from its spec in {build_s * 1e3:.0f} ms "
          f"({'pretrained' if pretrained else 'random weights'})")
    print(f"params  {params / 1e6:.3f} M" + (f"   (paper: {rep.params_m} M)" if rep and rep.params_m else ""))
    print(f"MACs    {macs / 1e6:.1f} M" + (f"   (paper: {rep.macs_m} M)" if rep and rep.macs_m else ""))
    if rep and rep.top1 is not None:
        print(f"top-1   {rep.top1} on {rep.dataset}, as the paper reports it ({rep.source}; not "
              "measured here)")

    config = resolve_data_config(model=model)
    transform = create_transform(**config)
    x = transform(picture).unsqueeze(0)
    with torch.inference_mode():
        t0 = time.perf_counter()
        probs = model(x).softmax(-1)[0]
        infer_s = time.perf_counter() - t0
    labels = _label_names(probs.numel(), spec.data.label_set)
    print(f"image   {path.name} -> {tuple(x.shape)} ({config['interpolation']}, crop "
          f"{config['crop_pct']}); forward {infer_s * 1e3:.1f} ms")
    values, indices = probs.topk(min(topk, probs.numel()))
    for p, i in zip(values.tolist(), indices.tolist()):
        label = labels[i] if labels else f"class {i}"
        print(f"  {p:7.2%}  {label}")
    if not pretrained:
        print("(random weights: the ranking is meaningless; use --pretrained where the registry "
              "has published weights, see `zoo list --pretrained`)")
    return 0
