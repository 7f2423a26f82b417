"""zoo's safetensors reader (``zoo.weights.reader``): every dtype read into fresh, aligned storage,
metadata kept, the library's loader as the fallback, and anything malformed a CorruptWeightsError."""
from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from zoo.errors import CorruptWeightsError, WeightsError
from zoo.weights.reader import _ST_DTYPES, _read_aligned, load_safetensors


def _tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    out = {}
    for i, name in enumerate(sorted(set(_ST_DTYPES.values()))):
        dtype = getattr(torch, name)
        values = torch.randn(3, 5, generator=g) * 50
        out[f"t{i}.{name}"] = values.to(dtype) if dtype != torch.bool else values > 0
    out["empty"] = torch.zeros(0, 4)
    out["scalar"] = torch.tensor(2.5)
    return out


def _raw(path: Path, header: dict, data: bytes) -> None:
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)


def test_every_mapped_dtype_reads_back_exactly_into_fresh_aligned_tensors(tmp_path: Path) -> None:
    expected = _tensors()
    save_file(expected, tmp_path / "m.safetensors", metadata={"format": "pt", "zoo.model": "m"})
    tensors, metadata = load_safetensors(tmp_path / "m.safetensors", "test weights")
    assert metadata == {"format": "pt", "zoo.model": "m"}
    assert set(tensors) == set(expected)
    for key, t in expected.items():
        assert tensors[key].dtype == t.dtype and tensors[key].shape == t.shape, key
        assert torch.equal(tensors[key], t), key
    storages = {tensors[k].untyped_storage().data_ptr() for k in tensors if tensors[k].numel()}
    assert len(storages) == sum(1 for t in tensors.values() if t.numel())  # no shared buffer
    assert all(tensors[k].data_ptr() % 64 == 0 for k in tensors if tensors[k].numel())


def test_the_reader_itself_handles_every_mapped_dtype(tmp_path: Path) -> None:
    save_file(_tensors(), tmp_path / "m.safetensors")
    out = _read_aligned(tmp_path / "m.safetensors")
    assert out is not None and set(out) == set(_tensors())


def test_a_dtype_the_reader_does_not_map_falls_back_to_the_library(tmp_path: Path) -> None:
    t = {"f8": torch.randn(4).to(torch.float8_e4m3fn), "f": torch.ones(2)}
    save_file(t, tmp_path / "m.safetensors")
    assert _read_aligned(tmp_path / "m.safetensors") is None
    tensors, metadata = load_safetensors(tmp_path / "m.safetensors", "w")
    assert metadata == {}
    assert torch.equal(tensors["f8"].float(), t["f8"].float()) and torch.equal(tensors["f"], t["f"])


def test_a_big_endian_host_uses_the_library(tmp_path: Path, monkeypatch) -> None:
    save_file({"a": torch.arange(6.0)}, tmp_path / "m.safetensors")
    monkeypatch.setattr(sys, "byteorder", "big")
    assert _read_aligned(tmp_path / "m.safetensors") is None
    # what the library gives on such a host (it swaps the bytes), not zoo's reader
    assert torch.equal(load_safetensors(tmp_path / "m.safetensors", "w")[0]["a"],
                       load_file(tmp_path / "m.safetensors")["a"])


def test_byte_counts_that_do_not_fit_the_shape_are_refused(tmp_path: Path) -> None:
    _raw(tmp_path / "x.safetensors", {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 12]}},
         bytes(12))
    with pytest.raises(ValueError) as err:
        _read_aligned(tmp_path / "x.safetensors")
    assert str(err.value) == "tensor 'a': 12 bytes for shape [2]"


def test_a_file_cut_inside_a_tensor_is_refused(tmp_path: Path) -> None:
    _raw(tmp_path / "x.safetensors", {"__metadata__": {"k": "v"},
                                      "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}},
         bytes(10))
    with pytest.raises(ValueError) as err:
        _read_aligned(tmp_path / "x.safetensors")
    assert str(err.value) == "tensor 'a' is cut short"


def test_tensors_are_placed_by_their_offsets_not_their_header_order(tmp_path: Path) -> None:
    data = struct.pack("<2f", 1.0, 2.0) + struct.pack("<3f", 3.0, 4.0, 5.0)
    _raw(tmp_path / "x.safetensors", {"z": {"dtype": "F32", "shape": [3], "data_offsets": [8, 20]},
                                      "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                      "__metadata__": {"format": "pt"}}, data)
    tensors, metadata = load_safetensors(tmp_path / "x.safetensors", "w")
    assert metadata == {"format": "pt"}
    assert tensors["a"].tolist() == [1.0, 2.0] and tensors["z"].tolist() == [3.0, 4.0, 5.0]


@pytest.mark.parametrize("content", [b"", b"\x05", b"\xff" * 8 + b"{}", b"not a safetensors file at all"])
def test_malformed_files_are_corrupt_weights_with_advice(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(CorruptWeightsError) as err:
        load_safetensors(path, "test weights")
    msg = str(err.value)
    assert msg.startswith(f"test weights: {path} is not a valid safetensors file (")
    assert msg.endswith("). Delete it and download or convert it again.")


def test_a_truncated_file_is_corrupt_weights(tmp_path: Path) -> None:
    save_file({"a": torch.ones(100)}, tmp_path / "m.safetensors")
    data = (tmp_path / "m.safetensors").read_bytes()
    (tmp_path / "m.safetensors").write_bytes(data[:-50])
    with pytest.raises(CorruptWeightsError, match="is not a valid safetensors file"):
        load_safetensors(tmp_path / "m.safetensors", "w")


def test_only_regular_files_are_read(tmp_path: Path) -> None:
    with pytest.raises(WeightsError) as err:
        load_safetensors(tmp_path, "w")
    assert str(err.value).startswith(f"w: {tmp_path} is not a regular file")
