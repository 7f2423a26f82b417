"""The catalog's store: spec documents read into entries, ``extends`` resolved, specs validated.

A spec file is a mapping::

    defaults:            # optional; merged under every model of this file
      family: simplenet
      paper: {...}
    models:
      simplenetv1_5m_m1: {arch: {...}, data: {...}, reported: {...}}
      simplenetv1_5m_m2: {extends: simplenetv1_5m_m1, arch: {mode: 2}}

``extends`` names another model (in any file) whose resolved fields are the starting point;
sections merge field by field, a field's value replaces the base's whole.  Raw entries are read
once; each spec is validated on first use (listing needs no validation, and never imports torch).
"""
from __future__ import annotations

import fnmatch
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo import yamlio
from zoo.errors import SpecError, UnknownModelError

if TYPE_CHECKING:
    from zoo.spec import SpecBase

_FILE_KEYS = {"defaults", "models"}


@dataclass
class Entry:
    """One model as written in a spec file (before ``defaults``/``extends`` are applied)."""

    name: str
    raw: dict[str, Any]
    defaults: dict[str, Any]
    source: str


@dataclass
class Catalog:
    entries: dict[str, Entry] = field(default_factory=dict)
    _resolved: dict[str, dict[str, Any]] = field(default_factory=dict)
    _specs: dict[str, SpecBase] = field(default_factory=dict)
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
            raise SpecError(f"unknown top-level key(s) {sorted(map(str, unknown))}; allowed: "
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
                self.entries[name] = Entry(name, raw, defaults, source)
                added.append(name)
            self._forget()
        return added

    def add_file(self, path: Path, *, replace: bool = False) -> list[str]:
        try:
            doc = yamlio.load(path)
        except yamlio.YamlDataError as e:
            raise SpecError(str(e), source=str(path)) from None
        return self.add_document(doc, str(path), replace=replace)

    def remove(self, names: list[str]) -> None:
        """Drop entries (a registration that failed validation leaves no trace)."""
        with self._lock:
            for name in names:
                self.entries.pop(name, None)
            self._forget()

    def _forget(self) -> None:
        self._resolved.clear()
        self._specs.clear()

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
                base = self.resolve(base_name, (*_chain, name))  # its name is replaced below
                merged = yamlio.merge_spec(merged, base)
            merged = yamlio.merge_spec(merged, raw)
            merged["name"] = name
            self._resolved[name] = merged
            return merged

    def spec(self, name: str) -> SpecBase:
        """The validated spec of ``name`` (validated once, on first use)."""
        from zoo.catalog.schema import validate_spec  # pydantic: only once a spec is needed
        from zoo.spec import LOOKUP

        with self._lock:
            if name not in self._specs:
                raw = self.resolve(name)
                self._specs[name] = validate_spec(raw, source=self.entries[name].source,
                                                  context={LOOKUP: self.spec})
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
