"""The catalog site: ``zoo catalog --out DIR`` writes a static, offline model-zoo page.

An index (a sortable, filterable table of every model; top-1 against MACs and parameters; a
check of the papers' parameter/MAC claims against zoo's measurements) and one page per model
(resolved spec, paper and BibTeX, weights provenance, usage, export support), all generated from
the specs and the registry.  Measurements are cached by spec content (:mod:`zoo.site.measurements`).

This is an integration layer: it reads the catalog, the registry and ``zoo.measure``; nothing
below it imports it.  Importing this package is cheap (no torch); only measuring builds models.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zoo.errors import ZooError

if TYPE_CHECKING:
    from zoo.site.generate import SiteReport, build_site

__all__ = ["SiteError", "SiteReport", "build_site"]


class SiteError(ZooError, ValueError):
    """The catalog site cannot be written as asked (output folder, export matrix, ...)."""


def __getattr__(name: str) -> Any:
    if name in ("build_site", "SiteReport"):
        from zoo.site import generate

        return getattr(generate, name)
    raise AttributeError(f"module 'zoo.site' has no attribute {name!r}")
