"""The catalog: every model spec zoo knows -- discovered (:mod:`.discovery`), read and resolved
(:mod:`.store`), validated against the families' schemas (:mod:`.schema`) -- and lookup by name.

Nothing here imports torch.  Code that must follow new registrations (the timm plug-in)
subscribes with :func:`on_register`; the catalog itself knows no integration.
"""
from __future__ import annotations

import fnmatch
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.catalog.discovery import shipped_and_plugin_files
from zoo.catalog.store import Catalog, Entry
from zoo.errors import SpecError, UnknownModelError
from zoo.families import family_names
from zoo.lazy import Lazy

if TYPE_CHECKING:  # imported on use: listing names needs neither pydantic nor the registry
    from zoo.catalog.schema import json_schema, spec_adapter
    from zoo.spec import SpecBase


def _load() -> Catalog:
    cat = Catalog()
    for path in shipped_and_plugin_files():
        cat.add_file(path)
    return cat


_catalog = Lazy(_load)
_listeners: list[Callable[[list[str]], None]] = []


def catalog() -> Catalog:
    """The process-wide catalog (built on first use)."""
    return _catalog.get()


def split_name(name: str) -> tuple[str, str | None]:
    """``"sret_s.in1k_dist"`` -> ``("sret_s", "in1k_dist")``."""
    model, _, tag = name.partition(".")
    return model, (tag or None)


def get_spec(name: str) -> SpecBase:
    """The validated spec of a model (a tag suffix is ignored)."""
    return catalog().spec(split_name(name)[0])


def validate_spec(raw: Any, *, source: str = "<dict>",
                  context: dict[str, Any] | None = None) -> SpecBase:
    """Validate one resolved spec dict against its family's schema (:class:`SpecError` naming
    every problem).  Specs it refers to (a BigNAS child's supernet) are looked up in the
    process-wide catalog unless ``context`` says otherwise."""
    from zoo.catalog import schema
    from zoo.spec import LOOKUP

    return schema.validate_spec(raw, source=source,
                                context=context if context is not None else {LOOKUP: get_spec})


def list_models(pattern: str = "*", *, family: str | None = None,
                pretrained: bool = False) -> list[str]:
    """Model names matching ``pattern`` (fnmatch); with ``pretrained``, the ``name.tag`` of
    every published weights file instead."""
    if family is not None and family not in family_names():
        raise UnknownModelError(family, family_names(), what="family")
    names = catalog().names(pattern if not pretrained else "*", family)
    if not pretrained:
        return names
    from zoo.registry import registry

    known = set(names)
    return [t for t, rec in registry().records.items() if rec.pretrained
            and t.rsplit(".", 1)[0] in known and (fnmatch.fnmatchcase(t, pattern)
                                                  or fnmatch.fnmatchcase(t.rsplit(".", 1)[0], pattern))]


def on_register(callback: Callable[[list[str]], None]) -> None:
    """Call ``callback(names)`` after every successful :func:`register_specs`."""
    if callback not in _listeners:
        _listeners.append(callback)


def register_specs(source: str | Path | dict[str, Any], *, replace: bool = False) -> list[str]:
    """Add user specs: a YAML file, a folder of them, or a dict (a file's content or one spec).

    Every added spec is validated right away (all or nothing); returns the added names.
    """
    cat = catalog()
    names: list[str] = []
    try:
        if isinstance(source, dict):
            names += cat.add_document(source, "<dict>", replace=replace)
        else:
            path = Path(source)
            if path.is_dir():
                for file in sorted(path.glob("*.yaml")):
                    names += cat.add_file(file, replace=replace)
            elif path.is_file():
                names += cat.add_file(path, replace=replace)
            else:
                raise SpecError(f"no spec file or folder at {path}")
        for name in names:
            cat.spec(name)
    except Exception:
        cat.remove(names)
        raise
    for callback in list(_listeners):
        callback(names)
    return names


def __getattr__(name: str) -> Any:
    """``json_schema`` and ``spec_adapter`` (from :mod:`.schema`), imported on first use."""
    if name in ("json_schema", "spec_adapter"):
        from zoo.catalog import schema

        return getattr(schema, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Catalog", "Entry", "catalog", "get_spec", "json_schema", "list_models", "on_register",
           "register_specs", "spec_adapter", "split_name", "validate_spec"]
