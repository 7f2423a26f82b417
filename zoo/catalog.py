"""The catalog: every model spec zoo knows, from YAML files, entry points and user registrations.

A spec file is a mapping::

    defaults:            # optional; merged under every model of this file
      family: simplenet
      paper: {...}
    models:
      simplenetv1_5m_m1: {arch: {...}, data: {...}, reported: {...}}
      simplenetv1_5m_m2: {extends: simplenetv1_5m_m1, arch: {mode: 2}}

``extends`` names another model (in any file) whose resolved fields are the starting point;
sections merge field by field, a field's value replaces the base's whole.  Raw entries are read once; each spec is
validated on first use (listing needs no validation, and never imports torch).
"""
from __future__ import annotations

import fnmatch
import threading
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo import yamlio
from zoo.errors import SpecError, UnknownModelError

if TYPE_CHECKING:
    from zoo.spec import SpecBase

_FILE_KEYS = {"defaults", "models"}


def data_dir(kind: str) -> Path:
    """Folder of the shipped ``specs`` or ``registry`` files (wheel layout, then source tree)."""
    here = Path(__file__).resolve().parent
    for cand in (here / "_data" / kind, here.parent / kind):
        if cand.is_dir():
            return cand
    raise FileNotFoundError(f"zoo's {kind}/ folder is missing: reinstall zoo")


@dataclass
class _Entry:
    name: str
    raw: dict[str, Any]
    defaults: dict[str, Any]
    source: str


@dataclass
class Catalog:
    entries: dict[str, _Entry] = field(default_factory=dict)
    _resolved: dict[str, dict[str, Any]] = field(default_factory=dict)
    _specs: dict[str, Any] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)

    # -- reading -----------------------------------------------------------------------------
    def add_document(self, doc: Any, source: str, *, replace: bool = False) -> list[str]:
        """Add the models of one parsed spec document; return their names."""
        if isinstance(doc, dict) and "name" in doc and "models" not in doc:
            doc = {"models": {doc["name"]: {k: v for k, v in doc.items() if k != "name"}}}
        if not isinstance(doc, dict) or "models" not in doc:
            raise SpecError("a spec file must be a mapping with a `models:` mapping "
                            "(and optionally `defaults:`)", source=source)
        unknown = set(doc) - _FILE_KEYS
        if unknown:
            raise SpecError(f"unknown top-level key(s) {sorted(unknown)}; allowed: "
                            f"{sorted(_FILE_KEYS)}", source=source)
        defaults, models = doc.get("defaults") or {}, doc["models"]
        if not isinstance(defaults, dict) or not isinstance(models, dict) or not models:
            raise SpecError("`defaults` must be a mapping and `models` a non-empty mapping",
                            source=source)
        if "extends" in defaults or "name" in defaults:
            raise SpecError("`defaults` cannot hold `extends` or `name`", source=source)
        added = []
        with self._lock:
            for name, raw in models.items():
                if not isinstance(name, str):
                    raise SpecError(f"model name {name!r} is not a string", source=source)
                if not isinstance(raw, dict):
                    raise SpecError("a model entry must be a mapping", source=source, model=name)
                if "name" in raw and raw["name"] != name:
                    raise SpecError(f"entry's name {raw['name']!r} differs from its key",
                                    source=source, model=name)
                if name in self.entries and not replace:
                    raise SpecError(f"model {name!r} is already defined in "
                                    f"{self.entries[name].source}", source=source, model=name)
                self.entries[name] = _Entry(name, raw, defaults, source)
                added.append(name)
            self._resolved.clear()
            self._specs.clear()
        return added

    def add_file(self, path: Path, *, replace: bool = False) -> list[str]:
        try:
            doc = yamlio.load(path)
        except yamlio.YamlDataError as e:
            raise SpecError(str(e), source=str(path)) from None
        return self.add_document(doc, str(path), replace=replace)

    # -- resolving ---------------------------------------------------------------------------
    def resolve(self, name: str, _chain: tuple[str, ...] = ()) -> dict[str, Any]:
        """The spec dict of ``name`` with defaults and ``extends`` applied (not validated)."""
        with self._lock:
            if name in self._resolved:
                return self._resolved[name]
            entry = self.entries.get(name)
            if entry is None:
                raise UnknownModelError(name, self.entries)
            if name in _chain:
                cycle = " -> ".join((*_chain, name))
                raise SpecError(f"`extends` cycle: {cycle}", source=entry.source, model=name)
            raw = dict(entry.raw)
            base_name = raw.pop("extends", None)
            if base_name is not None and not isinstance(base_name, str):
                raise SpecError(f"`extends` must name a model (a string), not "
                                f"{type(base_name).__name__}", source=entry.source, model=name)
            merged = dict(entry.defaults)
            if base_name is not None:
                if base_name not in self.entries:
                    raise SpecError(f"`extends: {base_name}` names an unknown model",
                                    source=entry.source, model=name,
                                    problems=[str(UnknownModelError(base_name, self.entries))])
                base = dict(self.resolve(base_name, (*_chain, name)))
                base.pop("name", None)
                merged = yamlio.merge_spec(merged, base)
            merged = yamlio.merge_spec(merged, raw)
            merged["name"] = name
            self._resolved[name] = merged
            return merged

    def spec(self, name: str):
        with self._lock:
            if name not in self._specs:
                from zoo.spec import validate_spec

                raw = self.resolve(name)
                self._specs[name] = validate_spec(raw, source=self.entries[name].source)
            return self._specs[name]

    def family_of(self, name: str) -> str | None:
        fam = self.resolve(name).get("family")
        return fam if isinstance(fam, str) else None

    def names(self, pattern: str = "*", family: str | None = None) -> list[str]:
        out = []
        for name in sorted(self.entries):
            if not fnmatch.fnmatchcase(name, pattern):
                continue
            if family is not None and self.family_of(name) != family:
                continue
            out.append(name)
        return out


def split_name(name: str) -> tuple[str, str | None]:
    """``"sret_s.in1k_dist"`` -> ``("sret_s", "in1k_dist")``."""
    model, _, tag = name.partition(".")
    return model, (tag or None)


def get_spec(name: str) -> "SpecBase":
    """The validated spec of a model (a tag suffix is ignored)."""
    return catalog().spec(split_name(name)[0])


def list_models(pattern: str = "*", *, family: str | None = None,
                pretrained: bool = False) -> list[str]:
    """Model names matching ``pattern`` (fnmatch); with ``pretrained``, the ``name.tag`` of
    every published weights file instead."""
    names = catalog().names(pattern if not pretrained else "*", family)
    if not pretrained:
        return names
    import fnmatch

    from zoo.registry import registry

    known = set(names)
    return [t for t, rec in registry().records.items() if rec.pretrained
            and t.rsplit(".", 1)[0] in known and (fnmatch.fnmatchcase(t, pattern)
                                                  or fnmatch.fnmatchcase(t.rsplit(".", 1)[0], pattern))]


_catalog: Catalog | None = None
_catalog_lock = threading.Lock()


def _entry_point_dirs() -> list[Path]:
    from importlib.resources import files

    dirs = []
    for ep in entry_points(group="zoo.specs"):
        target = files(ep.value)
        dirs.append(Path(str(target)))
    return dirs


def catalog() -> Catalog:
    """The process-wide catalog (built on first use)."""
    global _catalog
    if _catalog is None:
        with _catalog_lock:
            if _catalog is None:
                cat = Catalog()
                for folder in [data_dir("specs"), *_entry_point_dirs()]:
                    for path in sorted(folder.glob("*.yaml")):
                        cat.add_file(path)
                _catalog = cat
    return _catalog


def register_specs(source: str | Path | dict[str, Any], *, replace: bool = False) -> list[str]:
    """Add user specs: a YAML file, a folder of them, or a dict (a file's content or one spec).

    Every added spec is validated right away; returns the added names.
    """
    cat = catalog()
    if isinstance(source, dict):
        names = cat.add_document(source, "<dict>", replace=replace)
    else:
        path = Path(source)
        if path.is_dir():
            names = [n for p in sorted(path.glob("*.yaml")) for n in cat.add_file(p, replace=replace)]
        elif path.is_file():
            names = cat.add_file(path, replace=replace)
        else:
            raise SpecError(f"no spec file or folder at {path}")
    try:
        for name in names:
            cat.spec(name)
    except Exception:
        with cat._lock:  # all or nothing: a registration that fails leaves no trace
            for name in names:
                cat.entries.pop(name, None)
            cat._resolved.clear()
            cat._specs.clear()
        raise
    from zoo import timm_plugin

    timm_plugin.register_new(names)
    return names
