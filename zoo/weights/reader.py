"""Reading safetensors files into tensors: header validated by the safetensors library, tensors
read into fresh, aligned storage (one ``readinto`` per tensor)."""
from __future__ import annotations

import json
import struct
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from zoo.errors import CorruptWeightsError
from zoo.weights.folder import require_regular_file

if TYPE_CHECKING:
    import torch

# safetensors dtype names -> torch dtypes (the ones zoo reads without the library's loader)
_ST_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
              "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8",
              "BOOL": "bool"}


def _read_aligned(path: Path) -> dict[str, torch.Tensor] | None:
    """Read every tensor of a (header-validated) safetensors file into its own fresh, allocator-
    aligned storage, one ``readinto`` per tensor.

    ``safetensors.torch.load_file`` returns views into one buffer at the file's byte offsets,
    which are rarely 64-byte aligned; CPU kernels then take other vectorised paths than for the
    same values in fresh tensors, and outputs differ in the last bits from a model built and
    loaded the slow way.  Fresh tensors cost the same memory (the file's size) and make the fast
    pretrained path bit-identical to the slow one.  Returns None where this reader does not apply
    (a big-endian host, a dtype it does not map): the caller falls back to the library."""
    import torch

    if sys.byteorder != "little":
        return None
    out: dict[str, torch.Tensor] = {}
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(n))
        header.pop("__metadata__", None)
        start = 8 + n
        entries = sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0])
        if any(info["dtype"] not in _ST_DTYPES for _, info in entries):
            return None
        for key, info in entries:
            t = torch.empty(info["shape"], dtype=getattr(torch, _ST_DTYPES[info["dtype"]]))
            begin, end = info["data_offsets"]
            if t.numel() * t.element_size() != end - begin:
                raise ValueError(f"tensor {key!r}: {end - begin} bytes for shape {info['shape']}")
            if end > begin:
                fh.seek(start + begin)
                if fh.readinto(t.view(-1).view(torch.uint8).numpy().data) != end - begin:
                    raise ValueError(f"tensor {key!r} is cut short")
            out[key] = t
    return out


def load_safetensors(path: str | Path, what: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a safetensors file (tensors, metadata); :class:`CorruptWeightsError` if it is not one.
    The safetensors library validates the header; the tensors are read into aligned storage
    (:func:`_read_aligned`)."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    path = require_regular_file(Path(path), what)
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        tensors = _read_aligned(path)
        return (load_file(str(path)) if tensors is None else tensors), metadata
    except (SafetensorError, OSError, ValueError, RuntimeError, KeyError, TypeError,
            struct.error) as e:
        raise CorruptWeightsError(
            f"{what}: {path} is not a valid safetensors file ({e}). Delete it and download or "
            "convert it again.") from None
