"""timm's ``pretrained_cfg`` of a spec (and weights tag): what timm's data pipeline, feature
extraction and hub code read from a model."""
from __future__ import annotations

import functools
from typing import Any

from zoo.registry import registry
from zoo.spec import SpecBase


def pretrained_cfg(spec: SpecBase, tag: str | None = None) -> dict[str, Any]:
    """timm's ``pretrained_cfg`` dict for a spec (and weights tag)."""
    d = spec.data
    cfg: dict[str, Any] = {
        "architecture": spec.name, "tag": tag or "", "num_classes": d.num_classes,
        "input_size": tuple(d.input_size), "fixed_input_size": d.fixed_input_size,
        "interpolation": d.interpolation, "crop_pct": d.crop_pct, "crop_mode": d.crop_mode,
        "mean": tuple(d.mean), "std": tuple(d.std), "first_conv": d.first_conv,
        "classifier": d.classifier, "license": spec.paper.license,
        "paper_ids": f"arXiv:{spec.paper.arxiv}" if spec.paper.arxiv else "",
        "paper_name": spec.paper.title, "origin_url": spec.paper.code or "",
    }
    if d.label_set == "imagenet-1k" and d.num_classes == 1000:
        cfg["label_names"] = _imagenet_1k_labels()
    if tag:
        rec = registry().records.get(f"{spec.name}.{tag}")
        if rec is not None:
            cfg["license"] = rec.license
            if rec.hub is not None:
                cfg["hf_hub_id"] = rec.hub.repo_id
                cfg["hf_hub_filename"] = rec.hub.filename
                cfg["hf_hub_revision"] = rec.hub.revision
            cfg["source_url"] = rec.source.url
    return cfg


@functools.cache
def _imagenet_1k_labels() -> tuple[str, ...]:
    """ImageNet-1k's class names (WordNet synsets, index order), from timm's dataset info."""
    from timm.data import ImageNetInfo

    return tuple(ImageNetInfo("imagenet-1k").label_names())
