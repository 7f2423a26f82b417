"""The export support matrix the site shows on model pages (written by zoo's export work).

The file is JSON (default ``docs/export-matrix.json`` in a source checkout)::

    {
      "version": 1,
      "generated": "2026-11-02",                       # optional: date of the run
      "zoo_version": "0.1.0", "torch_version": "2.14.1",   # optional
      "formats": {"onnx": "ONNX (torch.onnx.export, dynamo)", "pt2": "torch.export"},
      "models": {
        "sret_s": {
          "onnx": {"status": "ok", "max_rel_error": 2.1e-06},
          "pt2": {"status": "error", "op": "aten.foo", "reason": "data-dependent shape"}
        }
      }
    }

``status`` is ``ok`` or ``error``; ``max_rel_error`` (against eager PyTorch), ``op`` and
``reason`` (why an export fails), ``note`` and ``latency_ms`` (label -> milliseconds, e.g.
``{"ort_b1": 3.1, "eager_b1": 4.0}``) are optional.  A model or format missing from the file --
or no file at all -- is shown as "unknown".  Unknown keys are errors (a typo must not silently
hide a result).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError

from zoo.spec import StrictModel

VERSION = 1


class ExportResult(StrictModel):
    status: Literal["ok", "error"]
    max_rel_error: float | None = Field(None, ge=0)
    op: str | None = Field(None, description="the operation that fails to export")
    reason: str | None = None
    note: str | None = None
    latency_ms: dict[str, float] | None = None


class ExportMatrix(StrictModel):
    version: Literal[1]
    generated: str | None = None
    zoo_version: str | None = None
    torch_version: str | None = None
    formats: dict[str, str] = Field(description="format id -> human-readable name")
    models: dict[str, dict[str, ExportResult]]

    def results(self, model: str) -> dict[str, ExportResult | None]:
        """Every declared format -> this model's result, or None where it is unknown."""
        row = self.models.get(model, {})
        return {fmt: row.get(fmt) for fmt in self.formats}


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
