"""Original implementations for the throughput comparison in ``scripts/bench.py``.

Nothing here is vendored: each builder imports the upstream code from a checkout the user
made under ``--reference-root`` (folder names as the repositories are called) and returns
``None`` when it is absent.  timm's own ports need no checkout.
"""
from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path
from typing import Callable

from torch import nn


def _load(path: Path, module_name: str):
    if not path.exists():
        return None
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # upstream code, run only when the user points at it
    return module


def _sret(fn: str, file: str) -> Callable[[Path], nn.Module | None]:
    def build(root: Path):
        mod = _load(root / "SReT" / file, file.removesuffix(".py"))
        return None if mod is None else getattr(mod, fn)(pretrained=False)
    return build


def _simplenet(fn: str) -> Callable[[Path], nn.Module | None]:
    def build(root: Path):
        mod = _load(root / "SimpleNet_Pytorch" / "imagenet" / "simplenet.py", "simplenet_ref")
        return None if mod is None else getattr(mod, fn)(pretrained=False)
    return build


def _timm(name: str) -> Callable[[Path], nn.Module | None]:
    def build(root: Path):
        import timm

        return timm.create_model(name)
    return build


def _deepmad(txt: str) -> Callable[[Path], nn.Module | None]:
    def build(root: Path):
        repo = root / "lightweight-neural-architecture-search"
        cnnnet_dir = repo / "tinynas" / "deploy" / "cnnnet"
        if not cnnnet_dir.exists():
            return None
        sys.path.insert(0, str(cnnnet_dir))
        from cnnnet import CnnNet  # type: ignore[import-not-found]

        info = ast.literal_eval((repo / "configs" / "classification" / "models" / txt).read_text())
        return CnnNet(structure_info=info["best_structures"][0], out_indices=(4,),
                      num_classes=1000, classfication=True)
    return build


BUILDERS: dict[str, Callable[[Path], nn.Module | None]] = {
    "sret_t": _sret("SReT_T", "SReT.py"),
    "sret_s": _sret("SReT_S", "SReT.py"),
    "sret_s_wo_slice": _sret("SReT_S_wo_slice", "SReT_wo_slice.py"),
    "simplenetv1_5m_m2": _simplenet("simplenetv1_5m_m2"),
    "simplenetv1_9m_m2": _simplenet("simplenetv1_9m_m2"),
    "nasnet_a_large": _timm("nasnetalarge"),
    "deepmad_29m_224": _deepmad("deepmad-29M-224.txt"),
    "deepmad_r50": _deepmad("deepmad-R50.txt"),
}


def build(name: str, root: Path | None) -> nn.Module | None:
    """The original implementation of ``name`` (random weights), or None if not available."""
    builder = BUILDERS.get(name)
    if builder is None:
        return None
    try:
        return builder(Path(root) if root is not None else Path("/nonexistent"))
    except (ImportError, FileNotFoundError):
        return None
