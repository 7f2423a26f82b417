"""The export support matrix the site shows on model pages: reading and checking
``docs/export-matrix.json`` (its schema: :mod:`zoo.export.matrix`, written by
``scripts/export_matrix.py``).  A model or format missing from the file -- or no file at all --
is shown as "unknown"."""
from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from zoo.export.matrix import VERSION, ExportMatrix, ExportResult

__all__ = ["ExportMatrix", "ExportResult", "VERSION", "default_path", "load"]


def default_path() -> Path | None:
    """``docs/export-matrix.json`` of a source checkout, if zoo runs from one."""
    from zoo.paths import data_dir

    try:
        root = data_dir("specs").parent
    except FileNotFoundError:
        return None
    path = root / "docs" / "export-matrix.json"
    return path if path.is_file() else None


def load(path: str | Path | None) -> ExportMatrix | None:
    """Read and validate an export matrix; None when ``path`` is None."""
    from zoo.site import SiteError

    if path is None:
        return None
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SiteError(f"no export matrix at {path}; leave out --export-matrix to show export "
                        "support as unknown") from None
    except (OSError, ValueError) as e:
        raise SiteError(f"export matrix {path} is not readable JSON: {e}") from None
    try:
        matrix = ExportMatrix.model_validate(doc)
    except ValidationError as e:
        problems = "\n".join(f"  - {'.'.join(map(str, err['loc'])) or '<root>'}: {err['msg']}"
                             for err in e.errors())
        raise SiteError(f"export matrix {path} does not follow its schema (see zoo/site/exports.py, "
                        f"version {VERSION}):\n{problems}") from None
    undeclared = sorted({f for row in matrix.models.values() for f in row} - set(matrix.formats))
    if undeclared:
        raise SiteError(f"export matrix {path}: format(s) {undeclared} used under `models` but not "
                        "declared under `formats`")
    return matrix
