"""Measured parameters and MACs for the site, cached by the content of what decides them.

A model's cache key is the sha256 of its spec's ``family``, ``arch`` and ``data`` sections (the
parts that decide the built network and the measurement's input size) together with a
fingerprint of the code that builds and counts it: the family's package sources, ``zoo.layers``,
``zoo.model``, ``zoo.measure``, and the installed torch and timm versions.  Editing a spec's
architecture, its family's code or upgrading torch re-measures; editing a description or the
paper's numbers does not.  Entries are small JSON files under ``<zoo cache>/catalog/measure/``,
written atomically, so concurrent or interrupted runs never leave a half-written entry.
"""
from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import importlib.util
import json
import sys
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo import yamlio

if TYPE_CHECKING:
    from zoo.spec import SpecBase

FORMAT = 1  # bump when what an entry means changes


@dataclass(frozen=True)
class Measured:
    """One model's measurement as the site shows it."""

    params: int
    macs: int
    input_size: tuple[int, int, int]

    @property
    def params_m(self) -> float:
        return self.params / 1e6

    @property
    def macs_m(self) -> float:
        return self.macs / 1e6


def cache_root() -> Path:
    """``<zoo cache>/catalog/measure`` (``$ZOO_CACHE`` or ``~/.cache/zoo``)."""
    from zoo.paths import zoo_cache_dir

    return zoo_cache_dir() / "catalog" / "measure"


def _sources(module: str) -> list[Path]:
    """The .py files of a module or package, found without importing it (torch stays unloaded)."""
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return []
    if found is None:
        return []
    if found.submodule_search_locations:
        return sorted(p for loc in found.submodule_search_locations for p in Path(loc).rglob("*.py"))
    return [Path(found.origin)] if found.origin and found.origin.endswith(".py") else []


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


@functools.lru_cache(maxsize=None)
def code_fingerprint(package: str) -> str:
    """sha256 over the code a family's measurement depends on (see the module docstring)."""
    h = hashlib.sha256(f"format {FORMAT}; torch {_version('torch')}; timm {_version('timm')}; "
                       f"python {sys.version_info[:2]}".encode())
    for module in (package, "zoo.layers", "zoo.model", "zoo.measure"):
        for path in _sources(module):
            h.update(path.name.encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def spec_key(spec: "SpecBase") -> str:
    """The cache key of ``spec``'s measurement (64 hex digits)."""
    from zoo.families import get_family

    dumped = spec.model_dump(mode="json")
    content = {k: dumped[k] for k in ("family", "arch", "data")}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"))
    code = code_fingerprint(get_family(spec.family).package)
    return hashlib.sha256(f"{code}\n{text}".encode()).hexdigest()


def _entry_path(key: str, root: Path) -> Path:
    return root / key[:2] / f"{key}.json"


def read_cached(spec: "SpecBase", root: Path | None = None) -> Measured | None:
    """The cached measurement of ``spec``, or None (missing or unreadable entries are misses)."""
    key = spec_key(spec)
    path = _entry_path(key, root or cache_root())
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("key") != key or doc.get("format") != FORMAT:
            return None
        return Measured(int(doc["params"]), int(doc["macs"]), tuple(doc["input_size"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_cached(spec: "SpecBase", measured: Measured, root: Path | None = None) -> Path:
    key = spec_key(spec)
    path = _entry_path(key, root or cache_root())
    doc: dict[str, Any] = {"format": FORMAT, "key": key, "model": spec.name, **asdict(measured),
                           "torch": _version("torch"),
                           "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    yamlio.atomic_write_text(path, json.dumps(doc, indent=1) + "\n")
    return path


def measure_spec(spec: "SpecBase") -> Measured:
    """Build ``spec``'s model and count its parameters and MACs at its ``data.input_size``.

    The model is built with its parameters on the meta device (no memory, no initialization
    arithmetic) where the family allows it, else for real.  Imports torch.
    """
    from zoo.build import build_model
    from zoo.measure import count_macs, count_params

    c, h, w = spec.data.input_size
    size = (c, h, w)
    try:
        model = build_model(spec, meta=True)
        params = count_params(model)
        macs = count_macs(model, size)
    except Exception:  # a family whose build or forward needs real tensors
        model = build_model(spec)
        params, macs = count_params(model), count_macs(model, size)
    return Measured(params, macs, size)


def measurement(spec: "SpecBase", *, allow_measure: bool = True, refresh: bool = False,
                root: Path | None = None) -> tuple[Measured | None, str]:
    """``(measurement, how)``: from the cache (``how="cached"``), freshly measured and cached
    (``"measured"``), or ``(None, "not measured")`` when measuring is off and nothing is cached."""
    if not refresh:
        hit = read_cached(spec, root)
        if hit is not None:
            return hit, "cached"
    if not allow_measure:
        return None, "not measured"
    result = measure_spec(spec)
    write_cached(spec, result, root)
    return result, "measured"
