"""Reading original checkpoints (``zoo.weights.checkpoint``): every kind of file a user or a
download can hand to ``zoo convert`` gives the state dict or a CheckpointError that says what the
file is and what to do -- the messages are the interface, so they are checked word for word
where they carry advice."""
from __future__ import annotations

import argparse
import os
import pickle
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from zoo.errors import CheckpointError
from zoo.weights.checkpoint import (EMA_KEYS, WRAPPER_KEYS, load_original_checkpoint,
                                    load_pickled_tensor, safe_globals)


def _sd() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"conv.weight": torch.randn(4, 3, 3, 3, generator=g),
            "fc.bias": torch.randn(5, generator=g)}


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


# -- not a file / not a checkpoint ---------------------------------------------------------------

def test_missing_file_and_folder_are_named(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError) as err:
        load_original_checkpoint(tmp_path / "nope.pth")
    assert str(err.value) == f"{tmp_path / 'nope.pth'}: no such checkpoint file"
    with pytest.raises(CheckpointError) as err:
        load_original_checkpoint(tmp_path)
    assert str(err.value) == f"{tmp_path}: not a regular file (a folder, pipe or device)"


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "e.pth").write_bytes(b"")
    with pytest.raises(CheckpointError) as err:
        load_original_checkpoint(tmp_path / "e.pth")
    assert str(err.value) == f"{tmp_path / 'e.pth'}: the file is empty, not a checkpoint; download it again"


@pytest.mark.parametrize("head", [b"<!DOCTYPE html><html>", b"  <html lang=en>", b"<head><title>x",
                                  b"<?xml version='1.0'?>", b"garbage line\n" * 3 + b"<html>"])
def test_html_pages_are_named(tmp_path: Path, head: bytes) -> None:
    (tmp_path / "p.pth").write_bytes(head + b" body " * 50)
    with pytest.raises(CheckpointError) as err:
        load_original_checkpoint(tmp_path / "p.pth")
    assert str(err.value) == (f"{tmp_path / 'p.pth'}: this is an HTML page, not a checkpoint. The "
                              "download saved the web page instead of the file: open the link in a "
                              "browser and confirm the download, or use the host's direct-download "
                              "link")


@pytest.mark.parametrize("word", [b"Google", b"drive"])
def test_drive_warning_page_is_recognised(tmp_path: Path, word: bytes) -> None:
    (tmp_path / "p.pth").write_bytes(b"<html><body>" + word + b" can't scan this file</body>")
    with pytest.raises(CheckpointError, match=r"HTML page, not a checkpoint \(Google Drive's "
                                              r"'can't scan for viruses' warning page\?\)\. "):
        load_original_checkpoint(tmp_path / "p.pth")


def test_text_file_is_named_with_its_start(tmp_path: Path) -> None:
    text = "Access denied. " * 10
    (tmp_path / "t.pth").write_text(text)
    with pytest.raises(CheckpointError) as err:
        load_original_checkpoint(tmp_path / "t.pth")
    assert str(err.value) == (f"{tmp_path / 't.pth'}: this is a text file, not a checkpoint (it "
                              f"starts with {text[:60]!r}); download the checkpoint file itself")


def test_binary_garbage_is_not_readable(tmp_path: Path) -> None:
    (tmp_path / "g.pth").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(CheckpointError) as err:
        load_original_checkpoint(tmp_path / "g.pth")
    assert str(err.value).startswith(f"{tmp_path / 'g.pth'}: ")
    assert "not a readable PyTorch checkpoint (" in str(err.value) or "refused to unpickle" in str(err.value)


def test_truncated_zip_is_not_readable(tmp_path: Path) -> None:
    torch.save(_sd(), tmp_path / "full.pth")
    data = (tmp_path / "full.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as err:
        load_original_checkpoint(tmp_path / "cut.pth")
    msg = str(err.value)
    assert msg.startswith(f"{tmp_path / 'cut.pth'}: not a readable PyTorch checkpoint (")
    assert "(RuntimeError: PytorchStreamReader failed reading zip archive: failed finding central " \
        "directory" in msg  # the error's type and the first line of its message
    assert "\n" not in msg


# -- safetensors originals ------------------------------------------------------------------------

def test_safetensors_original_is_read(tmp_path: Path) -> None:
    save_file(_sd(), str(tmp_path / "w.safetensors"))
    assert _equal(load_original_checkpoint(tmp_path / "w.safetensors"), _sd())
    assert _equal(load_original_checkpoint(str(tmp_path / "w.safetensors")), _sd())


def test_corrupt_safetensors_original_is_a_checkpoint_error(tmp_path: Path) -> None:
    save_file(_sd(), str(tmp_path / "w.safetensors"))
    data = (tmp_path / "w.safetensors").read_bytes()
    (tmp_path / "bad.safetensors").write_bytes(data[:-7])
    with pytest.raises(CheckpointError) as err:
        load_original_checkpoint(tmp_path / "bad.safetensors")
    assert str(err.value).startswith(f"original checkpoint: {tmp_path / 'bad.safetensors'} is not "
                                     "a valid safetensors file (")


def test_text_named_safetensors_goes_to_the_safetensors_checks(tmp_path: Path) -> None:
    (tmp_path / "t.safetensors").write_text("hello world, this is text")
    with pytest.raises(CheckpointError) as err:
        load_original_checkpoint(tmp_path / "t.safetensors")
    assert "text file" not in str(err.value) and str(tmp_path / "t.safetensors") in str(err.value)


# -- pickles: what is allowed, what is refused ----------------------------------------------------

def test_legacy_and_zip_pickles_read_the_same(tmp_path: Path) -> None:
    torch.save(_sd(), tmp_path / "zip.pth")
    torch.save(_sd(), tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    assert _equal(load_original_checkpoint(tmp_path / "zip.pth"), _sd())
    assert _equal(load_original_checkpoint(tmp_path / "legacy.pth"), _sd())


def test_safe_globals_are_the_documented_ones() -> None:
    import numpy as np

    allowed = safe_globals()
    assert allowed[0] is argparse.Namespace
    assert np.dtype in allowed
    scalar = getattr(getattr(np, "_core", np.core).multiarray, "scalar")
    assert scalar in allowed
    assert np.dtypes.Float64DType in allowed and np.dtypes.Int64DType in allowed
    assert all(callable(g) for g in allowed)


@pytest.mark.parametrize("value", ["f64", "f32", "i64", "i32", "bool"])
def test_numpy_metrics_next_to_the_weights_are_allowed(tmp_path: Path, value: str) -> None:
    import numpy as np

    metric = {"f64": np.float64(71.5), "f32": np.float32(1.5), "i64": np.int64(3),
              "i32": np.int32(3), "bool": np.bool_(True)}[value]
    torch.save({"state_dict": _sd(), "best": metric, "arr_dtype": np.dtype(type(metric))},
               tmp_path / "m.pth")
    assert _equal(load_original_checkpoint(tmp_path / "m.pth"), _sd())


class _Opaque:
    pass


def test_refused_global_is_named_without_torchs_advice(tmp_path: Path) -> None:
    torch.save({"model": _sd(), "cfg": _Opaque()}, tmp_path / "o.pth")
    with pytest.raises(CheckpointError) as err:
        load_original_checkpoint(tmp_path / "o.pth")
    msg = str(err.value)
    assert msg.startswith(f"{tmp_path / 'o.pth'}: refused to unpickle (it needs the global "
                          f"`{__name__}._Opaque`, which is not plain data). ")
    assert "weights_only=False" not in msg and "argparse.Namespace, numpy scalars and dtypes" in msg
    assert msg.endswith("better, ask upstream for a safetensors file.")


def test_malformed_pickle_keeps_torchs_diagnosis_only(tmp_path: Path) -> None:
    # a protocol-2 pickle whose opcode stream is cut: the restricted unpickler's own complaint
    (tmp_path / "m.pth").write_bytes(b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01")
    with pytest.raises(CheckpointError) as err:
        load_original_checkpoint(tmp_path / "m.pth")
    msg = str(err.value)
    assert msg.startswith(f"{tmp_path / 'm.pth'}: ")
    assert "re-running" not in msg.lower() and "trusted source" not in msg.lower()


@pytest.mark.parametrize("key", WRAPPER_KEYS)
def test_every_wrapper_key_is_unwrapped(tmp_path: Path, key: str) -> None:
    torch.save({key: _sd(), "epoch": 3}, tmp_path / "w.pth")
    assert _equal(load_original_checkpoint(tmp_path / "w.pth"), _sd())


@pytest.mark.parametrize("key", EMA_KEYS)
def test_every_ema_key_is_taken_with_use_ema(tmp_path: Path, key: str) -> None:
    ema = {k: v + 1 for k, v in _sd().items()}
    torch.save({"state_dict": _sd(), key: ema}, tmp_path / "w.pth")
    assert _equal(load_original_checkpoint(tmp_path / "w.pth", use_ema=True), ema)
    assert _equal(load_original_checkpoint(tmp_path / "w.pth"), _sd())


def test_wrapper_order_prefers_state_dict(tmp_path: Path) -> None:
    other = {k: v * 2 for k, v in _sd().items()}
    torch.save({"model": other, "state_dict": _sd()}, tmp_path / "w.pth")
    assert _equal(load_original_checkpoint(tmp_path / "w.pth"), _sd())


def test_empty_or_tensorless_wrappers_are_skipped(tmp_path: Path) -> None:
    torch.save({"state_dict": {}, "model": {"a": 1}, "net": _sd()}, tmp_path / "w.pth")
    assert _equal(load_original_checkpoint(tmp_path / "w.pth"), _sd())


def test_no_state_dict_inside(tmp_path: Path) -> None:
    torch.save({"epoch": 3, "acc": 1.0}, tmp_path / "n.pth")
    with pytest.raises(CheckpointError) as err:
        load_original_checkpoint(tmp_path / "n.pth")
    assert str(err.value) == (f"{tmp_path / 'n.pth'}: no state dict found (top level: ['acc', "
                              "'epoch']); expected tensors directly or under one of state_dict, "
                              "model, net, network")
    torch.save([torch.zeros(1)], tmp_path / "l.pth")
    with pytest.raises(CheckpointError, match=r"no state dict found \(top level: list\)"):
        load_original_checkpoint(tmp_path / "l.pth")


def test_use_ema_without_ema_weights(tmp_path: Path) -> None:
    torch.save({"model": _sd()}, tmp_path / "w.pth")
    with pytest.raises(CheckpointError) as err:
        load_original_checkpoint(tmp_path / "w.pth", use_ema=True)
    assert str(err.value) == (f"{tmp_path / 'w.pth'}: use_ema=True but no EMA weights "
                              "(model_ema, state_dict_ema, ema) in the checkpoint; drop --use-ema to "
                              "convert its raw weights")


def test_non_tensor_entries_in_the_state_dict(tmp_path: Path) -> None:
    torch.save({**_sd(), "n_averaged": 3, "arch": "x"}, tmp_path / "w.pth")
    with pytest.raises(CheckpointError) as err:
        load_original_checkpoint(tmp_path / "w.pth")
    assert str(err.value) == (f"{tmp_path / 'w.pth'}: the state dict holds non-tensor entries "
                              "['arch', 'n_averaged']")


def test_non_string_keys_are_not_a_state_dict(tmp_path: Path) -> None:
    torch.save({0: torch.zeros(1), "a": torch.zeros(1)}, tmp_path / "w.pth")
    with pytest.raises(CheckpointError, match="no state dict found"):
        load_original_checkpoint(tmp_path / "w.pth")


def test_returns_a_plain_dict(tmp_path: Path) -> None:
    from collections import OrderedDict

    torch.save(OrderedDict(_sd()), tmp_path / "w.pth")
    out = load_original_checkpoint(tmp_path / "w.pth")
    assert type(out) is dict and _equal(out, _sd())


# -- one pickled tensor (EBV's basis) -------------------------------------------------------------

def test_pickled_tensor_is_read_contiguous_on_cpu(tmp_path: Path) -> None:
    t = torch.randn(6, 4).t()  # not contiguous
    with open(tmp_path / "b.pkl", "wb") as f:
        pickle.dump(t, f)
    out = load_pickled_tensor(tmp_path / "b.pkl")
    assert torch.equal(out, t) and out.is_contiguous() and not out.requires_grad
    assert torch.equal(load_pickled_tensor(str(tmp_path / "b.pkl")), t)


def test_pickled_tensor_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError) as err:
        load_pickled_tensor(tmp_path / "none.pkl")
    assert str(err.value) == f"{tmp_path / 'none.pkl'}: no such file"
    with pytest.raises(CheckpointError) as err:
        load_pickled_tensor(tmp_path)
    assert str(err.value) == f"{tmp_path}: not a regular file"
    (tmp_path / "list.pkl").write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(CheckpointError) as err:
        load_pickled_tensor(tmp_path / "list.pkl")
    assert str(err.value) == f"{tmp_path / 'list.pkl'}: expected one pickled tensor, got list"
    (tmp_path / "cut.pkl").write_bytes(pickle.dumps(torch.zeros(3))[:20])
    with pytest.raises(CheckpointError) as err:
        load_pickled_tensor(tmp_path / "cut.pkl")
    assert str(err.value) == f"{tmp_path / 'cut.pkl'}: not a pickled tensor (pickle data was truncated)"
    (tmp_path / "bad.pkl").write_bytes(b"\x80\x04\x95garbage")
    with pytest.raises(CheckpointError) as err:
        load_pickled_tensor(tmp_path / "bad.pkl")
    assert re.fullmatch(rf"{re.escape(str(tmp_path / 'bad.pkl'))}: not a pickled tensor \((\w+Error: )?\S.*\)",
                        str(err.value)), str(err.value)
    assert "refused" not in str(err.value)


def test_pickled_tensor_refuses_other_globals(tmp_path: Path) -> None:
    (tmp_path / "e.pkl").write_bytes(pickle.dumps(os.getcwd))
    with pytest.raises(CheckpointError) as err:
        load_pickled_tensor(tmp_path / "e.pkl")
    assert "refused to unpickle (it needs the global `posix.getcwd`" in str(err.value) \
        or "refused to unpickle (it needs the global `os.getcwd`" in str(err.value)
    from collections import OrderedDict

    (tmp_path / "od.pkl").write_bytes(pickle.dumps(OrderedDict(a=1)))
    with pytest.raises(CheckpointError, match="expected one pickled tensor, got OrderedDict"):
        load_pickled_tensor(tmp_path / "od.pkl")


class _Boom:
    def __reduce__(self):
        return (os.getcwd, ())


def test_weights_only_is_explicit_so_torchs_env_switch_cannot_turn_it_off(tmp_path: Path,
                                                                          monkeypatch) -> None:
    """TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD makes torch.load unpickle everything when weights_only
    is left to its default; zoo passes it explicitly, so a hostile pickle stays refused."""
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    torch.save({"model": _sd(), "x": _Boom()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="refused to unpickle"):
        load_original_checkpoint(tmp_path / "evil.pth")


def test_first_line_of_a_long_error_is_bounded(tmp_path: Path) -> None:
    from zoo.weights.checkpoint import _first_line

    assert _first_line("  first\nsecond") == "first"
    assert _first_line("x" * 500) == "x" * 300
    assert _first_line(" \n ") == ""


def test_a_single_tensor_is_a_state_dict(tmp_path: Path) -> None:
    torch.save({"w": torch.ones(2)}, tmp_path / "one.pth")
    assert set(load_original_checkpoint(tmp_path / "one.pth")) == {"w"}


def test_long_listings_are_cut(tmp_path: Path) -> None:
    torch.save({**_sd(), **{f"meta{i}": i for i in range(12)}}, tmp_path / "w.pth")
    with pytest.raises(CheckpointError) as err:
        load_original_checkpoint(tmp_path / "w.pth")
    listed = sorted(f"meta{i}" for i in range(12))[:8]
    assert str(err.value).endswith(f"non-tensor entries {listed}")
    torch.save({f"k{i:02d}": i for i in range(15)}, tmp_path / "n.pth")
    with pytest.raises(CheckpointError) as err:
        load_original_checkpoint(tmp_path / "n.pth")
    assert f"(top level: {[f'k{i:02d}' for i in range(10)]})" in str(err.value)


def test_pickled_tensor_refusal_names_file_and_global(tmp_path: Path) -> None:
    (tmp_path / "e.pkl").write_bytes(pickle.dumps(os.getcwd))
    with pytest.raises(CheckpointError) as err:
        load_pickled_tensor(tmp_path / "e.pkl")
    assert re.match(rf"{re.escape(str(tmp_path / 'e.pkl'))}: refused to unpickle \(it needs the "
                    r"global `(posix|os)\.getcwd`, which is not plain data\)\. ", str(err.value))


def test_pickled_tensor_cut_before_its_first_opcode(tmp_path: Path) -> None:
    (tmp_path / "short.pkl").write_bytes(b"\x80\x04")
    with pytest.raises(CheckpointError) as err:
        load_pickled_tensor(tmp_path / "short.pkl")
    assert str(err.value) == f"{tmp_path / 'short.pkl'}: not a pickled tensor (EOFError: Ran out of input)"


def test_refusal_message_word_for_word(tmp_path: Path) -> None:
    from zoo.weights.checkpoint import _unsafe_message

    tail = ("Only tensors, containers, primitive values and zoo's allow-list (argparse.Namespace, "
            "numpy scalars and dtypes) may appear in an original checkpoint; unpickling anything else "
            "could run code, so nothing from the file was executed. If you trust the file and the type "
            "is plain data, pass it in extra_safe_globals; better, ask upstream for a safetensors file.")
    path = tmp_path / "c.pth"
    torch_text = ("Weights only load failed. Re-running `torch.load` with `weights_only` set to `False` "
                  "will likely succeed.\n  Unsupported operand 149\n\nCheck the documentation of "
                  "torch.load to learn more.")
    assert _unsafe_message(path, torch_text) == (
        f"{path}: refused to unpickle (Unsupported operand 149). " + tail)
    assert _unsafe_message(path, "WEIGHTS_ONLY failed\nRe-run it") == (
        f"{path}: refused to unpickle (a malformed pickle). " + tail)
    long = "x" * 400
    assert _unsafe_message(path, long) == f"{path}: refused to unpickle ({'x' * 300}). " + tail
    assert _unsafe_message(path, "  two   spaced\n\n words ") == (
        f"{path}: refused to unpickle (two spaced words). " + tail)
    assert _unsafe_message(path, "Unsupported global: GLOBAL os.system was not an allowed global") == (
        f"{path}: refused to unpickle (it needs the global `os.system`, which is not plain data). " + tail)


def test_html_recognised_by_its_doctype_alone(tmp_path: Path) -> None:
    # the doctype (after blank lines) is the only sign: no <html> within the first 512 bytes
    (tmp_path / "p.pth").write_bytes(b"\n \n<!DOCTYPE HTML PUBLIC>" + b"<!-- x -->" * 60 + b"<html>")
    with pytest.raises(CheckpointError, match="this is an HTML page, not a checkpoint"):
        load_original_checkpoint(tmp_path / "p.pth")


def test_text_start_cut_inside_a_character_is_still_shown(tmp_path: Path) -> None:
    text = "a" + "é" * 40  # byte 60 falls inside the 30th 'é'
    (tmp_path / "t.pth").write_text(text, encoding="utf-8")
    with pytest.raises(CheckpointError) as err:
        load_original_checkpoint(tmp_path / "t.pth")
    shown = text.encode()[:60].decode("utf-8", "replace")
    assert shown.endswith("\ufffd")
    assert str(err.value) == (f"{tmp_path / 't.pth'}: this is a text file, not a checkpoint (it "
                              f"starts with {shown!r}); download the checkpoint file itself")


def test_a_checkpoint_saved_from_gpu_tensors_loads_on_the_cpu(tmp_path: Path) -> None:
    """Original checkpoints are mostly saved from CUDA tensors: their storages are tagged
    ``cuda:0`` and load onto the CPU (``map_location``), on a machine without a GPU too.  The
    file is made here by tagging CPU storages as CUDA ones while saving."""
    from torch import serialization

    def as_cuda(storage):
        return "cuda:0"

    entry = (1, as_cuda, lambda obj, location: None)  # tag at save time; restore as usual
    serialization._package_registry.append(entry)
    serialization._package_registry.sort(key=lambda e: e[0])
    try:
        torch.save({"weight": torch.arange(6.0).reshape(2, 3)}, tmp_path / "gpu.pth")
    finally:
        serialization._package_registry.remove(entry)
    assert b"cuda:0" in (tmp_path / "gpu.pth").read_bytes()
    state = load_original_checkpoint(tmp_path / "gpu.pth")
    assert state["weight"].device.type == "cpu"
    assert torch.equal(state["weight"], torch.arange(6.0).reshape(2, 3))
