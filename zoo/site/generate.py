"""Writing the site: gather every model's row, measure (or read the cache), render, and replace
the output folder in one step."""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Literal, Sequence

from zoo.paths import unwritable_parent
from zoo.site import SiteError
from zoo.site.data import ModelRow

if TYPE_CHECKING:
    from zoo.site.exports import ExportMatrix

MARKER = ".zoo-catalog"
ASSETS = Path(__file__).resolve().parent / "assets"


@dataclass
class SiteReport:
    """What :func:`build_site` did."""

    out: Path
    models: list[str]
    measured: list[str] = field(default_factory=list)      # freshly measured this run
    cached: list[str] = field(default_factory=list)        # measurements read from the cache
    unmeasured: list[str] = field(default_factory=list)    # measuring off and nothing cached
    failed: dict[str, str] = field(default_factory=dict)   # model -> why measuring failed
    export_matrix: Path | None = None


def select_models(patterns: Sequence[str] = ("*",), family: str | None = None) -> list[str]:
    """Catalog names matching any of ``patterns`` (fnmatch) and ``family``; an error if none."""
    from zoo.catalog import catalog

    names = sorted({n for pat in patterns for n in catalog().names(pat, family)})
    if not names:
        raise SiteError(f"no model matches {list(patterns)}"
                        + (f" in family {family!r}" if family else "") + "; see `zoo list`")
    return names


def collect(names: Sequence[str], *, measure: bool = True, refresh: bool = False,
            cache_dir: Path | None = None, export_matrix: "ExportMatrix | None" = None,
            progress: Callable[[str], None] | None = None,
            report: SiteReport | None = None) -> list[ModelRow]:
    """One :class:`ModelRow` per model: spec, registry records, measurement, export results."""
    from zoo.catalog import catalog
    from zoo.registry import registry
    from zoo.site.measurements import measurement

    rows = []
    for name in names:
        spec = catalog().spec(name)
        row = ModelRow(spec, catalog().entries[name].source,
                       weights=[(t, registry().records[t]) for t in registry().tags_of(name)])
        start = time.perf_counter()
        try:
            row.measured, row.measure_status = measurement(spec, allow_measure=measure,
                                                           refresh=refresh, root=cache_dir)
        except Exception as e:  # a model that cannot be built: say so on the site, go on
            row.measure_status = f"failed: {type(e).__name__}: {e}"
            if report is not None:
                report.failed[name] = row.measure_status
        if report is not None:
            {"measured": report.measured, "cached": report.cached,
             "not measured": report.unmeasured}.get(row.measure_status, []).append(name)
        if progress is not None and row.measure_status != "cached":
            progress(f"{name}: {row.measure_status} ({time.perf_counter() - start:.1f}s)")
        if export_matrix is not None:
            row.exports = export_matrix.results(name)
        rows.append(row)
    return rows


def _catalog_json(rows: list[ModelRow], version: str) -> str:
    models = []
    for r in rows:
        rep = r.spec.reported
        models.append({
            "name": r.name, "family": r.family, "page": f"models/{r.name}.html",
            "input_size": list(r.spec.data.input_size),
            "params": r.measured.params if r.measured else None,
            "macs": r.measured.macs if r.measured else None,
            "measurement": r.measure_status,
            "reported": rep.model_dump(mode="json") if rep else None,
            "weights": {t: ("hub" if rec.pretrained else "convertible") for t, rec in r.weights},
            "licence": r.licence[0],
        })
    return json.dumps({"generator": f"zoo catalog (zoo {version})", "models": models}, indent=1) + "\n"


def _write_tree(folder: Path, rows: list[ModelRow], version: str,
                matrix: "ExportMatrix | None") -> None:
    from zoo.site.pages import index_page, model_page

    (folder / "models").mkdir(parents=True)
    shutil.copytree(ASSETS, folder / "assets")
    (folder / "index.html").write_text(index_page(rows, version=version, export_matrix=matrix),
                                       encoding="utf-8")
    for r in rows:
        (folder / "models" / f"{r.name}.html").write_text(
            model_page(r, version=version, export_matrix=matrix), encoding="utf-8")
    (folder / "catalog.json").write_text(_catalog_json(rows, version), encoding="utf-8")
    (folder / MARKER).write_text(json.dumps({"generator": "zoo catalog", "zoo": version}) + "\n",
                                 encoding="utf-8")


def check_out_folder(out: Path) -> None:
    """Refuse an ``out`` that is a file, or a folder of someone else's (not empty, no marker),
    or one whose folder cannot be made or written (the new site is written beside it)."""
    problem = unwritable_parent(out)
    if problem:
        raise SiteError(f"--out {out}: {problem}")
    if out.exists():
        if not out.is_dir():
            raise SiteError(f"{out} exists and is not a folder")
        if any(out.iterdir()) and not (out / MARKER).exists():
            raise SiteError(f"{out} is not empty and was not written by `zoo catalog` (no {MARKER} "
                            "file); give a new or empty folder so that nothing of yours is replaced")


def _replace_folder(out: Path, write: Callable[[Path], None]) -> None:
    """Write the site into a sibling temporary folder, then swap it in for ``out``: readers see
    the old site or the new one, and pages of models that are gone do not linger."""
    check_out_folder(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    try:
        write(tmp / "site")
        if out.exists():
            old = tmp / "old"
            out.rename(old)
            (tmp / "site").rename(out)
        else:
            (tmp / "site").rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def build_site(out: str | Path, patterns: Sequence[str] = ("*",), *, family: str | None = None,
               measure: bool = True, refresh: bool = False,
               export_matrix: str | Path | None | Literal["auto"] = "auto",
               cache_dir: str | Path | None = None,
               progress: Callable[[str], None] | None = None) -> SiteReport:
    """Write the catalog site of the models matching ``patterns``/``family`` to ``out``.

    ``measure=False`` builds no model (no torch): measurements come from the cache only.
    ``refresh`` re-measures even where the cache has an entry.  ``export_matrix``: a JSON file
    (schema in :mod:`zoo.site.exports`), ``"auto"`` for ``docs/export-matrix.json`` of a source
    checkout when it exists, or None (export support shown as unknown).  ``cache_dir`` overrides
    ``<zoo cache>/catalog/measure``.
    """
    from zoo.version import __version__
    from zoo.site import exports

    names = select_models(patterns, family)
    matrix_path = exports.default_path() if export_matrix == "auto" else export_matrix
    matrix = exports.load(matrix_path)
    out = Path(out)
    check_out_folder(out)  # before measuring: a bad --out fails at once
    report = SiteReport(out, names, export_matrix=Path(matrix_path) if matrix_path else None)
    rows = collect(names, measure=measure, refresh=refresh,
                   cache_dir=Path(cache_dir) if cache_dir else None, export_matrix=matrix,
                   progress=progress, report=report)
    _replace_folder(out, lambda folder: _write_tree(folder, rows, __version__, matrix))
    return report


def stderr_progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
