"""zoo: a declarative model zoo and registry for image classification.

    >>> import zoo
    >>> zoo.list_models("sret*")
    >>> model = zoo.create("sret_s", pretrained=True)

Importing zoo is cheap: torch, timm and huggingface_hub are imported on first use of what
needs them.  If timm gets imported (before or after zoo), zoo's models are registered in it.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from zoo.version import __version__

_LAZY = {
    "create": "zoo.build",
    "convert_checkpoint": "zoo.build",
    "list_models": "zoo.catalog",
    "get_spec": "zoo.catalog",
    "register_specs": "zoo.catalog",
    "list_families": "zoo.families",
    "save_pretrained": "zoo.weights",
    "errors": None,
    "measure": None,
}

if TYPE_CHECKING:
    from zoo import errors, measure
    from zoo.build import convert_checkpoint, create
    from zoo.catalog import get_spec, list_models, register_specs
    from zoo.families import list_families
    from zoo.weights import save_pretrained

__all__ = [*_LAZY, "__version__"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        # a family's public API module: zoo.<family> -> zoo/families/<family>/api.py
        from zoo.families import family_names, get_family

        if name in family_names():
            api = get_family(name).module("api")
            if api is not None:
                globals()[name] = api
                return api
        raise AttributeError(f"module 'zoo' has no attribute {name!r}")
    module = _LAZY[name]
    if module is None:
        return importlib.import_module(f"zoo.{name}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


# imported by its full name: ``from zoo import timm_plugin`` would first ask __getattr__ above,
# which discovers the families (pydantic and every family schema) on every ``import zoo``
importlib.import_module("zoo.timm_plugin").install()  # installs the import hook only
