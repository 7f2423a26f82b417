"""The two export formats: writing a model as ONNX (PyTorch's dynamo-based exporter, with
onnxscript) or as a ``torch.export`` program (``.pt2``), and running what was written (ONNX
Runtime; the loaded ``ExportedProgram``)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

Format = Literal["onnx", "pt2"]
FORMATS: tuple[Format, ...] = ("onnx", "pt2")
SUFFIX = {"onnx": ".onnx", "pt2": ".pt2"}
METADATA_FILE = "zoo.json"  # the metadata inside a .pt2 archive
MAX_BATCH = 4096
# weights above this go to a ``<file>.data`` beside the ONNX graph: protobuf cannot hold 2 GiB
ONNX_EXTERNAL_BYTES = 1 << 30


def dynamic_shapes(batch: int | None) -> Any:
    """torch.export's dynamic shapes for one image batch input: the batch dimension dynamic
    (``batch=None``) or fixed."""
    if batch is not None:
        return None
    return ({0: torch.export.Dim("batch", min=1, max=MAX_BATCH)},)


def export_program(model: nn.Module, x: torch.Tensor, batch: int | None) -> torch.export.ExportedProgram:
    """``torch.export.export`` of ``model`` on ``x`` (non-strict: traced through Python)."""
    return torch.export.export(model, (x,), dynamic_shapes=dynamic_shapes(batch), strict=False)


def write_pt2(model: nn.Module, x: torch.Tensor, path: Path, *, batch: int | None,
              metadata: dict[str, Any]) -> None:
    program = export_program(model, x, batch)
    torch.export.save(program, str(path), extra_files={METADATA_FILE: json.dumps(metadata)})


def write_onnx(model: nn.Module, x: torch.Tensor, path: Path, *, batch: int | None,
               opset: int | None, metadata: dict[str, Any], external_data: bool = False) -> None:
    """The ONNX graph at ``path``; with ``external_data`` its weights in
    :func:`onnx_data_path` (``path`` + ``.data``), which the graph names relative to itself."""
    import onnx

    program = torch.onnx.export(model, (x,), dynamo=True, dynamic_shapes=dynamic_shapes(batch),
                                opset_version=opset, input_names=["pixel_values"],
                                output_names=["logits"], verbose=False, report=False)
    if program is None:  # the exporter returns the program with dynamo=True
        raise RuntimeError("torch.onnx.export returned no program")
    program.save(str(path), external_data=external_data)
    proto = onnx.load(str(path), load_external_data=False)
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value if isinstance(value, str) else json.dumps(value)
    onnx.save(proto, str(path))


def onnx_data_path(path: Path) -> Path:
    """Where the weights of an ONNX graph written with ``external_data`` are: beside it."""
    return path.with_name(path.name + ".data")


def weight_bytes(model: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))


def point_onnx_data(path: Path, data_name: str) -> None:
    """Make the ONNX graph at ``path`` read its external weights from ``data_name``, a file
    beside it (the graph is rewritten; the weights are not touched)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    for tensor in proto.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = data_name
    onnx.save(proto, str(path))


def read_metadata(path: Path) -> dict[str, Any]:
    """The zoo metadata written into an exported file."""
    if path.suffix == ".onnx":
        import onnx

        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        return {k: _maybe_json(v) for k, v in props.items()}
    files = {METADATA_FILE: ""}
    torch.export.load(str(path), extra_files=files)
    return json.loads(files[METADATA_FILE])


def _maybe_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


class Runner:
    """Runs an exported file on float32 image batches (CPU, ``threads`` intra-op threads)."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        self.path = path
        if path.suffix == ".onnx":
            import onnxruntime as ort

            options = ort.SessionOptions()
            if threads:
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = 1
            self._session = ort.InferenceSession(str(path), options,
                                                 providers=["CPUExecutionProvider"])
            self._input = self._session.get_inputs()[0].name
        else:
            self._program = torch.export.load(str(path)).module()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.path.suffix == ".onnx":
            (out,) = self._session.run(None, {self._input: x.numpy()})[:1]
            return torch.from_numpy(out)
        with torch.no_grad():
            return self._program(x)
