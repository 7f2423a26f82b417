"""The export support matrix: which models export to which format, how close the exported program
is to eager PyTorch, and why an export fails.  Written by ``scripts/export_matrix.py``
(``docs/export-matrix.json``, rendered as ``docs/export.md``), read by ``zoo catalog``.

    {
      "version": 1, "generated": "2026-12-07", "zoo_version": "0.1.0", "torch_version": "2.14.1",
      "formats": {"onnx": "ONNX (torch.onnx.export, dynamo)", "pt2": "torch.export"},
      "caveat": "measured while the machine ran other work: latencies are noisy",
      "models": {
        "sret_s": {
          "onnx": {"status": "ok", "max_rel_error": 2.1e-06, "latency_ms": {"ort_b1": 3.1, ...}},
          "pt2": {"status": "error", "op": "aten.foo", "reason": "data-dependent shape"}
        }
      }
    }

``status`` is ``ok`` or ``error``; ``max_rel_error`` (against eager PyTorch), ``op`` and
``reason`` (why an export fails), ``note``, ``latency_ms`` (label -> milliseconds) and
``spec_sha256`` (the variant measured) are optional.  Unknown keys are errors (a typo must not
silently hide a result).  No torch here.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from zoo.spec import StrictModel

VERSION = 1
FORMAT_NAMES = {"onnx": "ONNX (torch.onnx.export, dynamo)", "pt2": "torch.export (.pt2)"}


class ExportResult(StrictModel):
    status: Literal["ok", "error"]
    max_rel_error: float | None = Field(None, ge=0)
    op: str | None = Field(None, description="the operation that fails to export")
    reason: str | None = None
    note: str | None = None
    latency_ms: dict[str, float] | None = None
    spec_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")


class ExportMatrix(StrictModel):
    version: Literal[1]
    generated: str | None = None
    zoo_version: str | None = None
    torch_version: str | None = None
    formats: dict[str, str] = Field(description="format id -> human-readable name")
    caveat: str | None = Field(None, description="how the run was made, where it affects the "
                                                 "numbers (e.g. a busy machine's latencies)")
    models: dict[str, dict[str, ExportResult]]

    def results(self, model: str) -> dict[str, ExportResult | None]:
        """Every declared format -> this model's result, or None where it is unknown."""
        row = self.models.get(model, {})
        return {fmt: row.get(fmt) for fmt in self.formats}


