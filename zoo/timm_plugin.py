"""Registration of zoo's models in timm's model registry.

``import zoo`` must stay cheap, so it does not import timm.  Instead it installs an import
hook: when timm is imported (before or after zoo), every zoo model is registered under timm's
``zoo`` module, with its pretrained tags.  Entry points build through :func:`zoo.create`, so
weights loaded via timm are sha256-verified like zoo's own.  zoo never overwrites a timm name.
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import importlib.machinery
import sys
import threading
import types
import warnings
from typing import Any

MODULE = "zoo"                       # timm.list_models(module="zoo")
_HOST = "zoo._timm_entrypoints.zoo"  # timm keys modules by the last dotted part
_lock = threading.RLock()
_registered: set[str] = set()
skipped: dict[str, str] = {}         # zoo names not registered, with the reason


def _host_module() -> types.ModuleType:
    mod = sys.modules.get(_HOST)
    if mod is None:
        mod = types.ModuleType(_HOST, "timm entry points of zoo models (generated)")
        mod.default_cfgs = {}
        mod.__all__ = []
        sys.modules[_HOST] = mod
    return mod


def _entrypoint(name: str):
    def fn(pretrained: bool = False, pretrained_cfg: Any = None, pretrained_cfg_overlay: Any = None,
           cache_dir: Any = None, **kwargs: Any):
        from zoo.build import create

        kwargs.pop("pretrained_model_args", None)
        weights = tag = None
        cfg = pretrained_cfg
        if cfg is not None and not isinstance(cfg, str):
            cfg = cfg if isinstance(cfg, dict) else cfg.to_dict()
            if cfg.get("source") == "hf-hub" and cfg.get("hf_hub_id"):
                weights = f"hf-hub:{cfg['hf_hub_id']}"
            elif cfg.get("source") == "local-dir" and cfg.get("file"):
                weights = cfg["file"]
            else:
                tag = cfg.get("tag") or None
        elif isinstance(cfg, str):
            tag = cfg
        if not pretrained:
            weights = None
        full = f"{name}.{tag}" if tag else name
        return create(full, pretrained=pretrained, weights=weights, **kwargs)

    fn.__name__ = fn.__qualname__ = name
    fn.__module__ = _HOST
    fn.__doc__ = f"zoo model {name} (built from its spec; see `zoo info {name}`)."
    return fn


def _default_cfg(name: str):
    from timm.models._registry import generate_default_cfgs

    from zoo.build import get_spec, pretrained_cfg
    from zoo.registry import registry

    spec = get_spec(name)
    cfgs: dict[str, dict[str, Any]] = {}
    tags = registry().tags_of(name)
    for full in tags:
        rec = registry().records[full]
        tag = full.split(".", 1)[1]
        cfg = {k: v for k, v in pretrained_cfg(spec, tag).items()
               if k not in ("architecture", "tag", "hf_hub_revision", "source_url", "paper_name")}
        if rec.hub is None:  # a convertible source: known to timm, but without weights
            cfg.pop("hf_hub_id", None)
            cfg.pop("hf_hub_filename", None)
        cfgs[full] = cfg
    if not cfgs:
        base = pretrained_cfg(spec)
        cfgs[name] = {k: v for k, v in base.items()
                      if k not in ("architecture", "tag", "paper_name", "origin_url")}
    return generate_default_cfgs(cfgs)[name]


def register_new(names: list[str] | None = None) -> list[str]:
    """Register zoo models in timm (all if ``names`` is None).  No-op until timm is imported."""
    if "timm" not in sys.modules or not hasattr(sys.modules["timm"], "create_model"):
        return []
    from timm.models._registry import _model_entrypoints, register_model

    from zoo.catalog import catalog

    done = []
    with _lock:
        host = _host_module()
        for name in names if names is not None else catalog().names():
            if name in _registered:
                continue
            if name in _model_entrypoints:
                skipped[name] = "timm has a built-in model of this name"
                continue
            try:
                host.default_cfgs[name] = _default_cfg(name)
            except Exception as e:  # a broken spec must not break timm: report and skip it
                skipped[name] = f"{type(e).__name__}: {e}"
                warnings.warn(f"zoo: {name} not registered in timm: {skipped[name]}", stacklevel=2)
                continue
            register_model(_entrypoint(name))
            _registered.add(name)
            done.append(name)
    return done


class _TimmHook(importlib.abc.MetaPathFinder):
    """Runs :func:`register_new` right after ``timm`` finishes importing."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "timm":
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec("timm")
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return None
        loader = spec.loader
        original = loader.exec_module

        def exec_module(module):
            original(module)
            try:
                sys.meta_path.remove(self)
            except ValueError:
                pass
            try:
                register_new()
            except Exception as e:  # never break `import timm`
                warnings.warn(f"zoo: could not register its models in timm: {e}", stacklevel=2)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


_hook = _TimmHook()


def install() -> None:
    """Register now if timm is loaded, else when it gets imported."""
    import importlib.util  # noqa: F401  (used by the hook)

    if "timm" in sys.modules:
        register_new()
    elif not any(isinstance(f, _TimmHook) for f in sys.meta_path):
        sys.meta_path.insert(0, _hook)
