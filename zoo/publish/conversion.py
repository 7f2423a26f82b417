"""Conversion of an original checkpoint: read safely, convert to zoo's layout, load strictly
into the model, write a weights folder (or zoo's cache for a registry tag).  ``zoo convert``."""
from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

import torch

from zoo.build import build_model, convert_checkpoint, create
from zoo.catalog import get_spec, split_name
from zoo.errors import CheckpointError, SourceChecksumError, WeightsError
from zoo.loading import load_into
from zoo.measure import count_params
from zoo.registry import registry
from zoo.weights import save_pretrained, sha256_file
from zoo.weights.cache import install_converted, staging_dir
from zoo.weights.checkpoint import load_original_checkpoint, load_pickled_tensor
from zoo.weights.sources import release_hash_prefix

__all__ = ["convert", "convert_and_check", "read_original", "release_hash_prefix"]


def convert(name: str, checkpoint: str | Path, *, out: str | Path | None = None,
            use_ema: bool = False, packed: bool = False,
            tensors: Mapping[str, str | Path] | None = None) -> Path:
    """Original checkpoint -> verified, strictly loaded zoo model -> save_pretrained folder.

    ``tensors``: original state-dict entries that upstream keeps in files of their own
    (``pickle.dump(tensor)``, e.g. EBV's fixed basis vectors), ``{key: file}``.
    Returns the folder written.  Without ``out``, ``name`` must carry a registry tag and the
    result replaces ``zoo.weights.converted_path(tag)`` atomically (with a conversion record
    holding its sha256, which later loads check).
    """
    model_name, tag = split_name(name)
    spec = get_spec(model_name)
    record = registry().get(f"{model_name}.{tag}") if tag else None
    checkpoint = Path(checkpoint)
    if out is None and record is None:
        raise WeightsError(f"zoo convert {name}: give --out DIR, or a registry tag "
                           f"(MODEL.TAG; known: {registry().tags_of(model_name) or 'none'}) to "
                           "store the result in zoo's cache")
    source_sha = None
    published = ((record.source.sha256 or release_hash_prefix(record.source.url))
                 if record is not None else None)
    if record is not None and published:
        if not checkpoint.is_file():
            raise WeightsError(f"{checkpoint}: no such file")
        source_sha = sha256_file(checkpoint)
        if not source_sha.startswith(published):
            raise SourceChecksumError(f"{checkpoint} (the original checkpoint of {name})",
                                      published, source_sha, record.source.url)
    state_dict = convert_checkpoint(spec, read_original(checkpoint, use_ema=use_ema,
                                                        tensors=tensors))
    if record is not None and record.num_classes and record.num_classes != spec.data.num_classes:
        spec = spec.with_overrides(num_classes=record.num_classes)
    model = build_model(spec, meta=True)
    load_into(model, state_dict, f"{checkpoint} converted for {model_name}")
    metrics = record.metrics.model_dump(mode="json", exclude_none=True) \
        if record is not None and record.metrics else None
    if out is not None:
        return save_pretrained(model.eval(), out, tag=tag, metrics=metrics, packed=packed)
    if packed:
        raise WeightsError("packed weights are written to a folder: give --out DIR")
    # store into the cache: write beside the target, then swap file by file
    full = f"{model_name}.{tag}"
    staged = staging_dir(full)
    try:
        save_pretrained(model, staged, tag=tag, metrics=metrics)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return install_converted(staged, full, source_sha256=source_sha, source_file=checkpoint.name)


def read_original(checkpoint: str | Path, *, use_ema: bool = False,
                  tensors: Mapping[str, str | Path] | None = None) -> dict[str, torch.Tensor]:
    """An original checkpoint's state dict, with the entries upstream stores apart added."""
    state_dict = load_original_checkpoint(checkpoint, use_ema=use_ema)
    for key, file in (tensors or {}).items():
        if key in state_dict:
            raise CheckpointError(f"{checkpoint} already holds a {key!r} entry; drop --tensor "
                                  f"{key}=...")
        state_dict[key] = load_pickled_tensor(file)
    return state_dict


def convert_and_check(name: str, checkpoint: str | Path, out: str | Path, *,
                      family: str | None = None, use_ema: bool = False,
                      packed: bool = False,
                      tensors: Mapping[str, str | Path] | None = None) -> Path:
    """:func:`convert` to ``out``, then reload the folder with ``zoo.create(weights=out)`` and
    require the same logits on a seeded random batch as the checkpoint loaded directly: bit for
    bit when ``packed``, else to float round-off (the checkpoint's tensors may be unaligned
    views of shared storages, which kernels treat differently)."""
    model_name, _ = split_name(name)
    spec = get_spec(model_name)
    if family is not None and spec.family != family:
        raise WeightsError(f"{model_name} is not a {family} model (family {spec.family!r})")
    out = convert(name, checkpoint, out=out, use_ema=use_ema, packed=packed, tensors=tensors)
    original = build_model(spec, meta=True)
    load_into(original, convert_checkpoint(
        spec, read_original(checkpoint, use_ema=use_ema, tensors=tensors)), str(checkpoint))
    reloaded = create(model_name, weights=str(out))
    x = torch.randn(1, *spec.data.input_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.manual_seed(0)
        expected = original.eval()(x)
        torch.manual_seed(0)
        got = reloaded(x)
        # packed: the codes are the latent model's quantized weights, bit for bit
        same = (torch.equal(got, expected) if packed
                else torch.allclose(got, expected, rtol=1e-5, atol=1e-6))
        if not same:
            raise WeightsError(f"round trip through {out}: the reloaded model's logits differ")
    print(f"{name}: {count_params(original):,} parameters written to {out}"
          + (" (packed)" if packed else ""))
    return Path(out)


