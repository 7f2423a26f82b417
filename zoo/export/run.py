"""``zoo.export``: a zoo model -> an ONNX or ``torch.export`` file, checked against eager PyTorch.

The file carries its provenance (model name, weights, spec digest, zoo/torch versions) and the
preprocessing timm's ``pretrained_cfg`` describes, so a runtime can feed it correctly.  After
writing, the exported program runs on inputs of the model's size at two batch sizes and its
outputs are compared with the eager model's: the largest difference relative to the largest
eager output must stay within the family's bound (1e-4 unless the family documents another).
"""
from __future__ import annotations

import os
import re
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo.build import create
from zoo.catalog import get_spec, split_name
from zoo.errors import ExportError, UsageError
from zoo.export.formats import (FORMATS, ONNX_EXTERNAL_BYTES, SUFFIX, Format, Runner,
                                onnx_data_path, point_onnx_data, weight_bytes, write_onnx,
                                write_pt2)
from zoo.families import get_family
from zoo.paths import unwritable_parent
from zoo.version import __version__

CHECK_BATCHES = (1, 3)  # two batch sizes: the batch dimension must really be dynamic


@dataclass
class ExportReport:
    """What :func:`export` wrote and how the exported program compares with eager PyTorch."""

    model: str
    format: str
    path: str
    batch: str
    checked_batches: tuple[int, ...] = ()
    max_abs_error: float = 0.0
    max_rel_error: float = 0.0
    tolerance: float = 0.0
    tolerance_note: str = ""
    seconds: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)
    data_path: str | None = None  # an ONNX graph's weights, where they are a file of their own

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def metadata_for(model: nn.Module, name: str, weights: str | None) -> dict[str, Any]:
    """Provenance and preprocessing that travel with an exported file."""
    spec = get_spec(name)
    cfg = dict(getattr(model, "pretrained_cfg", {}) or {})
    keys = ("input_size", "interpolation", "crop_pct", "crop_mode", "mean", "std", "num_classes")
    preprocessing = {k: (list(cfg[k]) if isinstance(cfg.get(k), tuple) else cfg[k])
                     for k in keys if k in cfg}
    return {"zoo.model": spec.name, "zoo.weights": weights or "none (random init)",
            "zoo.spec_sha256": spec.digest(), "zoo.family": spec.family,
            "zoo.version": __version__, "torch.version": torch.__version__,
            "zoo.preprocessing": preprocessing, "zoo.label_set": spec.data.label_set}


def export(name: str, *, format: Format, out: str | Path, weights: str | None = None,
           batch: int | None = None, opset: int | None = None, check: bool = True,
           model: nn.Module | None = None, external_data: bool | None = None) -> ExportReport:
    """Export zoo model ``name`` (``name.tag`` loads the tag's weights; ``weights`` any weights
    reference) to ``out`` as ``format`` (``onnx`` or ``pt2``).  ``batch=None``: a dynamic batch
    dimension, else that fixed size.  With ``check`` the file is run and compared with eager
    PyTorch (:class:`ExportError` beyond the family's bound).  The file is written atomically:
    nothing is left at ``out`` when export or the check fails.  An ONNX model whose weights
    exceed protobuf's limit (``external_data=None``: above 1 GiB) keeps them in ``out.data``
    beside the graph (``external_data=True`` forces it)."""
    if format not in FORMATS:
        raise UsageError(f"unknown export format {format!r}; use one of {', '.join(FORMATS)}")
    if batch is not None and batch < 1:
        raise UsageError(f"batch must be a positive integer or None (dynamic), got {batch}")
    folder = str(out).endswith(("/", os.sep)) or Path(out).is_dir()
    out = Path(out) / f"{split_name(name)[0]}{SUFFIX[format]}" if folder else Path(out)
    if out.suffix != SUFFIX[format]:
        raise UsageError(f"--out {out}: a {format} file is named *{SUFFIX[format]} (or give a "
                         "folder)")
    problem = unwritable_parent(out)  # before any model is built
    if problem:
        raise UsageError(f"--out {out}: {problem}")
    model_name, tag = split_name(name)
    spec = get_spec(model_name)
    family = get_family(spec.family)
    if model is None:
        model = create(name, pretrained=tag is not None and weights is None, weights=weights)
    model = model.eval()
    refusal = family.export_refusal(model)
    if refusal:
        raise ExportError(f"{model_name} cannot be exported to {format}: {refusal}; nothing was "
                          "written")
    x = example_input(spec.data.input_size, batch or 2)
    metadata = metadata_for(model, model_name, weights or (name if tag else None))
    t0 = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=SUFFIX[format], dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    if external_data is None:
        external_data = weight_bytes(model) > ONNX_EXTERNAL_BYTES
    external_data = external_data and format == "onnx"
    tmp_data, out_data = onnx_data_path(tmp), onnx_data_path(out)
    try:
        with torch.no_grad():
            _write(format, model, x, tmp, batch=batch, opset=opset, metadata=metadata,
                   what=model_name, external_data=external_data)
        report = ExportReport(model=model_name, format=format, path=str(out),
                              batch="dynamic" if batch is None else str(batch),
                              tolerance=family.hooks.export_tolerance,
                              tolerance_note=family.hooks.export_note, metadata=metadata,
                              data_path=str(out_data) if external_data else None)
        if check:
            check_program(model, tmp, spec.data.input_size, report,
                          batches=CHECK_BATCHES if batch is None else (batch,))
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o666 & ~umask)  # mkstemp's 0600 -> what a plain open() would have made
        if external_data:  # checked: the graph now names the weights' final file
            point_onnx_data(tmp, out_data.name)
            tmp_data.chmod(0o666 & ~umask)
            os.replace(tmp_data, out_data)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
        tmp_data.unlink(missing_ok=True)
    report.seconds = time.perf_counter() - t0
    return report


def example_input(input_size: tuple[int, ...], batch: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, *input_size, generator=torch.Generator().manual_seed(seed))


def _write(format: Format, model: nn.Module, x: torch.Tensor, path: Path, *, batch: int | None,
           opset: int | None, metadata: dict[str, Any], what: str, external_data: bool) -> None:
    try:
        if format == "onnx":
            write_onnx(model, x, path, batch=batch, opset=opset, metadata=metadata,
                       external_data=external_data)
        else:
            write_pt2(model, x, path, batch=batch, metadata=metadata)
    except ExportError:
        raise
    except Exception as e:  # the exporters raise many types; name the operation and the reason
        raise ExportError(f"{what} cannot be exported to {format}: {diagnose(e)}") from e


def check_program(model: nn.Module, path: Path, input_size: tuple[int, ...],
                  report: ExportReport, *, batches: tuple[int, ...]) -> None:
    """Run the exported file at each batch size and compare with the eager model."""
    try:
        runner = Runner(path)
    except Exception as e:  # e.g. ONNX Runtime refuses an invalid graph the exporter wrote
        raise ExportError(f"{report.model} ({report.format}): the exported file does not load "
                          f"in its runtime: {diagnose(e)}; nothing was written") from e
    worst_abs = worst_rel = 0.0
    for i, b in enumerate(batches):
        x = example_input(input_size, b, seed=i + 1)
        with torch.no_grad():
            expected = model(x)
            if i == 0 and not torch.equal(model(x), expected):
                raise ExportError(
                    f"{report.model} ({report.format}): the model draws random numbers at "
                    "inference (two eager forwards of one input differ), so no export can match "
                    "it; nothing was written")
            got = runner(x)
        if tuple(got.shape) != tuple(expected.shape):
            raise ExportError(f"{report.model} ({report.format}): the exported program returns "
                              f"shape {tuple(got.shape)} at batch {b}, eager PyTorch "
                              f"{tuple(expected.shape)}")
        diff = (got.float() - expected.float()).abs().max().item()
        scale = max(expected.float().abs().max().item(), 1e-12)
        worst_abs, worst_rel = max(worst_abs, diff), max(worst_rel, diff / scale)
    report.checked_batches = tuple(batches)
    report.max_abs_error, report.max_rel_error = worst_abs, worst_rel
    if not worst_rel <= report.tolerance:  # also catches NaN
        bound = report.tolerance_note or "the default bound"
        raise ExportError(f"{report.model} ({report.format}): the exported program differs from "
                          f"eager PyTorch by {worst_rel:.3g} (relative to the largest output), "
                          f"above {report.tolerance:g} ({bound}); nothing was written")


_OP = re.compile(r"(aten::\w+(?:\.\w+)?|aten\.\w+(?:\.\w+)?|torch\.ops\.[\w.]+|onnx::\w+)")


def diagnose(error: BaseException) -> str:
    """One line naming the operation an exporter failed on (where it says) and why."""
    text = str(error)
    chain = [text]
    cause = error.__cause__ or error.__context__
    while cause is not None and len(chain) < 5:
        chain.append(str(cause))
        cause = cause.__cause__ or cause.__context__
    full = "\n".join(chain)
    op = _OP.search(full)
    kind = type(error).__name__
    lines = [ln.strip() for ln in full.splitlines() if ln.strip()
             and not ln.strip().startswith(("File ", "For more information", "Set TORCH",
                                            "from user code", "[torch.onnx]"))]
    reason = lines[0] if lines else kind
    if "data-dependent" in full or "GuardOnDataDependentSymNode" in full:
        reason = "control flow that depends on tensor values (data-dependent)"
    elif "Dynamic" in full and "specialized" in full:
        reason = "the model specializes the batch dimension to one value"
    reason = " ".join(reason.split())[:300]
    return (f"operation {op.group(1)}: " if op else "") + f"{reason} ({kind})"
