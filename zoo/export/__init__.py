"""Deployment: a zoo model exported to ONNX or ``torch.export`` (``.pt2``) and checked against
eager PyTorch (:mod:`.run`), in the two formats of :mod:`.formats`; ``zoo export`` in
:mod:`.commands`.  Needs the ``export`` extra for ONNX (onnx, onnxscript, onnxruntime); names are
imported on first use, so ``import zoo`` stays cheap."""
from __future__ import annotations

import importlib
from typing import Any

_LAZY = {"export": "zoo.export.run", "ExportReport": "zoo.export.run",
         "read_metadata": "zoo.export.formats", "Runner": "zoo.export.formats",
         "register": "zoo.export.commands"}
__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'zoo.export' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
