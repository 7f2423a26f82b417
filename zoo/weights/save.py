"""Writing a weights folder: :func:`save_pretrained`."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.catalog import get_spec
from zoo.errors import WeightsError
from zoo.weights.card import model_card
from zoo.weights.folder import CARD_NAME, CONFIG_NAME, SPEC_SCHEMA, WEIGHTS_NAME

if TYPE_CHECKING:
    from torch import nn


def canonical_header(path: Path) -> None:
    """Rewrite a safetensors header with its keys sorted (same length: same pairs, compact
    JSON), so that the same tensors always give the same bytes: safetensors writes its metadata
    map in a per-process random order, and a conversion's sha256 should not depend on it."""
    with open(path, "r+b") as f:
        n = int.from_bytes(f.read(8), "little")
        raw = f.read(n)
        header = json.loads(raw)
        text = json.dumps({k: (dict(sorted(v.items())) if k == "__metadata__" else v)
                           for k, v in sorted(header.items())}, separators=(",", ":")).encode()
        if len(text) > n:  # never: the same pairs, compact; keep the file as written
            return
        text += b" " * (n - len(text))
        if text != raw:
            f.seek(8)
            f.write(text)


def save_pretrained(model: nn.Module, directory: str | Path, *, tag: str | None = None,
                    metrics: dict[str, Any] | None = None, packed: bool = False) -> Path:
    """Write ``model.safetensors`` + timm-style ``config.json`` + a model card ``README.md``.

    The folder loads back with ``zoo.create(name, weights=directory)`` and, pushed to the Hub,
    with ``timm.create_model("hf-hub:org/repo", pretrained=True)``.  With ``packed=True`` a
    quantized model writes its deployable form (``model.packed_state_dict()``).
    """
    from safetensors.torch import save_file

    cfg = dict(getattr(model, "pretrained_cfg", {}) or {})
    name = cfg.get("architecture")
    if not name:
        raise WeightsError("save_pretrained needs a zoo model (its pretrained_cfg names the "
                           "architecture); build it with zoo.create")
    spec = get_spec(name)
    if packed:
        if not hasattr(model, "packed_state_dict"):
            raise WeightsError(f"{name} has no packed (deployable) form")
        state_dict = getattr(model, "packed_state_dict")()
    else:
        state_dict = model.state_dict()
    seen: dict[tuple[int, int, tuple[int, ...]], str] = {}
    tensors = {}
    for k, v in state_dict.items():
        ptr = (v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape)) if v.numel() else None
        if ptr is not None and ptr in seen:
            raise WeightsError(f"{name}: state-dict entries {seen[ptr]!r} and {k!r} share one "
                               "tensor; zoo models must hold shared weights once")
        if ptr is not None:
            seen[ptr] = k
        tensors[k] = v.detach().to("cpu").contiguous()
    num_classes = getattr(model, "num_classes", cfg.get("num_classes"))
    cfg["num_classes"] = num_classes
    cfg["input_size"] = list(cfg.get("input_size", spec.data.input_size))
    cfg.pop("tag", None)
    layout = "packed" if packed else "zoo"
    config = {"architecture": name, "num_classes": num_classes,
              "num_features": getattr(model, "num_features", None),
              "pretrained_cfg": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()
                                 if k != "architecture"},
              "zoo": {"spec": spec.model_dump(mode="json"), "spec_schema": SPEC_SCHEMA,
                      "layout": layout, "tag": tag}}
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise WeightsError(f"{directory} is an existing file; save_pretrained writes a folder "
                           "(model.safetensors, config.json, README.md): give a folder path")
    directory.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".zoo-save-", dir=directory))
    try:
        save_file(tensors, str(tmp / WEIGHTS_NAME),
                  metadata={"format": "pt", "zoo_architecture": name, "zoo_layout": layout})
        canonical_header(tmp / WEIGHTS_NAME)
        (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2, default=str))
        (tmp / CARD_NAME).write_text(model_card(name, cfg, spec, metrics, cfg.get("license")))
        for item in (WEIGHTS_NAME, CONFIG_NAME, CARD_NAME):
            os.replace(tmp / item, directory / item)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return directory
