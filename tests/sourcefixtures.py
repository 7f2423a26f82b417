"""pytest fixtures for tests of ``zoo fetch`` / ``zoo mirror``: the original hosts
(:class:`zoo.testing.SourceEmulator`), a temporary copy of the registry, and original-layout
checkpoints made from the families' golden vectors.

``sources``: a running source emulator; ``ZOO_SOURCE_REWRITE`` sends every emulated host to
it, ``ZOO_SOURCE_TIMEOUT`` is 2 s (stall tests stay short), ``ZOO_CACHE`` a fresh folder.

``registry_copy``: a copy of the shipped ``registry/`` in a temporary folder that zoo reads
instead (``ZOO_REGISTRY_DIR``), so tests may rewrite records; the real registry is never
touched.

``original_checkpoint(tag) -> bytes``: a ``torch.save`` file in the layout the tag's upstream
publishes (wrapper keys, ``module.`` prefixes), with deterministic weights: the golden vectors'
fill rule (tests/golden.py) over the golden state dict where the family has one, else over the
model's own keys.  ``original_files(tag) -> (bytes, {name: bytes})``: the same, with the entries
that upstream publishes apart (the record's ``source.tensors``, e.g. EBV's basis vectors) taken
out and written as upstream writes them (``pickle.dump(tensor)``).
"""
from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from zoo.testing.source_emulator import SourceEmulator

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def sources(tmp_path_factory: pytest.TempPathFactory,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[SourceEmulator]:
    with SourceEmulator() as emulator:
        monkeypatch.setenv("ZOO_SOURCE_REWRITE", emulator.rewrite_setting())
        monkeypatch.setenv("ZOO_SOURCE_TIMEOUT", "2")
        monkeypatch.setenv("ZOO_CACHE", str(tmp_path_factory.mktemp("zoo-cache")))
        for key in ("ZOO_ALLOW_SOURCE_FETCH", "ZOO_SOURCE_MAX_BYTES"):
            monkeypatch.delenv(key, raising=False)
        yield emulator


@pytest.fixture
def registry_copy(tmp_path_factory: pytest.TempPathFactory,
                  monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    from zoo import registry as reg
    from zoo.paths import data_dir

    folder = tmp_path_factory.mktemp("registry") / "registry"
    shutil.copytree(data_dir("registry"), folder)
    monkeypatch.setenv("ZOO_REGISTRY_DIR", str(folder))
    reg._registry.reset()
    try:
        yield folder
    finally:
        reg._registry.reset()  # the next use (after monkeypatch's undo) reads the shipped files


def original_state_dict(tag: str) -> dict:
    """The tag's original-layout state dict (see the module doc)."""
    import zoo
    from tests import golden as G

    model = tag.split(".", 1)[0]
    spec = zoo.get_spec(model)
    golden = ROOT / "tests" / "golden" / f"{model}.json"
    if spec.family == "bignas":  # children are sliced from the supernet checkpoint
        golden = ROOT / "tests" / "golden" / "bignas_attentivenas_a0.json"
    if golden.exists():
        sd = G.fill_state_dict(G.load(golden))
    else:  # upstream's layout is the model's own (KAT) or timm's under `model.` (MEAL V2)
        own = zoo.create(model).state_dict()
        sd = {k.removeprefix("model.") if spec.family == "timm_arch" else k:
              G.fill(k, list(v.shape), str(v.dtype).removeprefix("torch."), "zoo-fill/2")
              for k, v in own.items()}
    wrap = {"sret": lambda d: {"model": d, "epoch": 299},
            "deepmad": lambda d: {"state_dict": {f"module.{k}": v for k, v in d.items()}},
            "bignas": lambda d: {"state_dict": {f"module.{k}": v for k, v in d.items()}},
            "timm_arch": lambda d: {f"module.{k}": v for k, v in d.items()}}
    return wrap.get(spec.family, lambda d: d)(sd)


def original_files(tag: str) -> tuple[bytes, dict[str, bytes]]:
    """The tag's checkpoint and its tensor files (see the module doc)."""
    import pickle

    import torch

    from zoo.registry import registry

    sd = original_state_dict(tag)
    apart = {name: pickle.dumps(sd.pop(name))
             for name in sorted(registry().get(tag).source.tensors or {})}
    buf = io.BytesIO()
    torch.save(sd, buf)
    return buf.getvalue(), apart


def original_checkpoint(tag: str) -> bytes:
    return original_files(tag)[0]
