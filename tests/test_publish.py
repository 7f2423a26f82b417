"""The publishing commands (``zoo convert``, ``zoo push``, ``zoo verify``, ``zoo download``) and
atomic registry writes, against the local Hub emulator."""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import zoo
from tests.util import random_eval_model
from zoo import publish as P
from zoo import yamlio
from zoo.errors import (ChecksumMismatchError, RegistryError, StateDictMismatchError,
                        WeightsError, WeightsNotPublishedError)
from zoo.registry import Registry, WeightsRecord, registry, update_file
from zoo.weights import cached_hub_file, converted_path

ROOT = Path(__file__).resolve().parents[1]
NAME = "simplenetv1_small_m1_05"
IMG = 64


def run(argv: list[str]) -> int:
    """Run a publishing command through its own parser (as `zoo <argv>` does)."""
    parser = argparse.ArgumentParser(prog="zoo")
    P.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture(scope="module")
def source() -> torch.nn.Module:
    return random_eval_model(NAME)


def _out(model: torch.nn.Module) -> torch.Tensor:
    x = torch.randn(2, 3, IMG, IMG, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return model.eval()(x)


def _original_checkpoint(model: torch.nn.Module, path: Path) -> Path:
    """The model's weights in upstream SimpleNet's layout, as its training script saves them."""
    import numpy as np

    sd = {("module." + k.replace("head.fc.", "classifier.")): v
          for k, v in model.state_dict().items()}
    torch.save({"state_dict": sd, "epoch": 90, "best_acc1": np.float64(61.1),
                "arch": "simplenetv1_small_m1_05",
                "args": argparse.Namespace(lr=0.1, arch="simplenetv1_small_m1_05")}, path)
    return path


def _convertible(tag: str, monkeypatch, sha256: str | None) -> WeightsRecord:
    record = WeightsRecord.model_validate({
        "source": {"url": "https://zoo.invalid/original.pth", "format": "pickle",
                   "converter": "zoo convert", **({"sha256": sha256} if sha256 else {})},
        "license": "MIT"})
    monkeypatch.setitem(registry().records, tag, record)
    return record


# -- convert -------------------------------------------------------------------------------------

def test_convert_to_folder(source, tmp_path, capsys) -> None:
    ckpt = _original_checkpoint(source, tmp_path / "orig.pth")
    assert run(["convert", NAME, str(ckpt), "--out", str(tmp_path / "out")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "out")
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["architecture"] == NAME and config["num_classes"] == 1000
    assert torch.equal(_out(zoo.create(NAME, weights=tmp_path / "out")), _out(source))


def test_convert_into_cache_for_a_registry_tag(hub, source, tmp_path, monkeypatch) -> None:
    tag = f"{NAME}.orig_test"
    ckpt = _original_checkpoint(source, tmp_path / "orig.pth")
    sha = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    _convertible(tag, monkeypatch, sha)
    with pytest.raises(WeightsNotPublishedError, match=f"zoo convert {tag}"):
        zoo.create(tag, pretrained=True)
    assert run(["convert", tag, str(ckpt)]) == 0
    target = converted_path(tag)
    record = json.loads(target.with_name("conversion.json").read_text())
    assert record["source_sha256"] == sha
    assert record["sha256"] == hashlib.sha256(target.read_bytes()).hexdigest()
    assert not [p for p in target.parent.parent.iterdir() if p.name.startswith(".convert-")]
    assert torch.equal(_out(zoo.create(tag, pretrained=True)), _out(source))
    assert P.verify_tag(tag)[0] == "ok"
    data = bytearray(target.read_bytes())  # damage the converted file: it is caught and removed
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatchError):
        zoo.create(tag, pretrained=True)
    assert not target.exists()


def test_convert_checks_the_source_sha256(source, tmp_path, monkeypatch) -> None:
    tag = f"{NAME}.orig_test"
    ckpt = _original_checkpoint(source, tmp_path / "orig.pth")
    _convertible(tag, monkeypatch, "0" * 64)
    with pytest.raises(ChecksumMismatchError, match="0{64}"):
        run(["convert", tag, str(ckpt)])
    assert not converted_path(tag).exists()


def test_convert_refuses_checkpoints_that_do_not_fit(source, tmp_path) -> None:
    sd = {k: v for k, v in source.state_dict().items() if not k.startswith("features.0.")}
    torch.save({"model": sd}, tmp_path / "partial.pth")
    with pytest.raises(StateDictMismatchError, match="features.0.weight"):
        run(["convert", NAME, str(tmp_path / "partial.pth"), "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()
    with pytest.raises(WeightsError, match="give --out"):
        run(["convert", NAME, str(tmp_path / "partial.pth")])


# -- push ----------------------------------------------------------------------------------------

def _push(folder: Path, repo: str, regdir: Path, *extra: str) -> int:
    return run(["push", str(folder), repo, "--update-registry", "pushed_test",
                "--registry-dir", str(regdir), "--source-url", "https://zoo.invalid/orig.pth",
                "--license", "MIT", *extra])


def test_push_writes_a_pinned_record(hub, source, tmp_path, capsys) -> None:
    folder = zoo.save_pretrained(source, tmp_path / "out")
    regdir = tmp_path / "registry"
    assert _push(folder, "org/pushed", regdir) == 0
    printed = capsys.readouterr().out
    records = Registry()
    records.add_file(regdir / "simplenet.yaml")
    rec = records.get(f"{NAME}.pushed_test")
    weights = (folder / "model.safetensors").read_bytes()
    assert rec.hub.repo_id == "org/pushed" and rec.hub.revision == hub.head("org/pushed")
    assert rec.hub.sha256 == hashlib.sha256(weights).hexdigest() and rec.hub.size == len(weights)
    assert rec.hub.layout == "zoo" and rec.license == "MIT"
    assert rec.source.url == "https://zoo.invalid/orig.pth"
    # what it prints is the record it wrote: repo, commit, file, sha256, size
    printed_doc = yamlio.loads("\n".join(line for line in printed.splitlines()
                                         if not line.startswith("#")))
    assert printed_doc["weights"][f"{NAME}.pushed_test"] == rec.model_dump(mode="json",
                                                                           exclude_none=True)
    assert f"# written to {regdir / 'simplenet.yaml'}" in printed
    assert sorted(hub.list_files("org/pushed")) == ["README.md", "config.json",
                                                    "model.safetensors"]
    assert hub.file_bytes("org/pushed", "model.safetensors") == weights
    # a second push to a branch: a new record pinned to the branch's commit, main untouched
    main_head = hub.head("org/pushed")
    assert _push(folder, "org/pushed", regdir, "--revision", "dev") == 0
    again = Registry()
    again.add_file(regdir / "simplenet.yaml")
    assert again.get(f"{NAME}.pushed_test").hub.revision == hub.head("org/pushed", "dev")
    assert hub.head("org/pushed") == main_head


def test_push_needs_provenance_and_a_matching_tag(hub, source, tmp_path) -> None:
    folder = zoo.save_pretrained(source, tmp_path / "out")
    with pytest.raises(RegistryError, match="--source-url"):
        run(["push", str(folder), "org/p", "--update-registry", "t",
             "--registry-dir", str(tmp_path / "r"), "--license", "MIT"])
    with pytest.raises(RegistryError, match="names model"):
        run(["push", str(folder), "org/p", "--update-registry", "simplenet_cifar_5m.t",
             "--registry-dir", str(tmp_path / "r"), "--source-url", "https://zoo.invalid/x"])
    with pytest.raises(RegistryError, match="source.url"):
        run(["push", str(folder), "org/p", "--update-registry", "t", "--license", "MIT",
             "--registry-dir", str(tmp_path / "r"), "--source-url", "http://insecure/x.pth"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsError, match="not a save_pretrained folder"):
        run(["push", str(tmp_path / "empty"), "org/p"])
    assert not (tmp_path / "r").exists()
    assert hub.repos() == []  # every refusal came before any upload


def test_push_private_repo_is_hidden_without_a_token(hub, source, tmp_path, monkeypatch,
                                                    capsys) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_emulator_test_token")
    folder = zoo.save_pretrained(source, tmp_path / "out")
    assert run(["push", str(folder), "org/secret", "--private"]) == 0
    sha = hub.head("org/secret")
    assert hub.is_private("org/secret") and sha in capsys.readouterr().out
    model = zoo.create(NAME, weights=f"hf-hub:org/secret@{sha}")
    assert torch.equal(_out(model), _out(source))
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(WeightsError, match="does not exist"):
        zoo.create(NAME, weights="hf-hub:org/secret")


@pytest.mark.slow
def test_push_then_pretrained_load_in_a_fresh_process(hub, source, tmp_path) -> None:
    folder = zoo.save_pretrained(source, tmp_path / "out")
    regdir = tmp_path / "registry"
    assert _push(folder, "org/fresh", regdir) == 0
    x = torch.randn(2, 3, IMG, IMG, generator=torch.Generator().manual_seed(1))
    torch.save(x, tmp_path / "x.pt")
    script = f"""
        import torch, zoo
        from zoo.registry import registry
        registry().add_file(__import__("pathlib").Path({str(regdir / 'simplenet.yaml')!r}))
        model = zoo.create("{NAME}.pushed_test", pretrained=True).eval()
        with torch.no_grad():
            y = model(torch.load({str(tmp_path / 'x.pt')!r}))
        torch.save({{"y": y, "sd": model.state_dict()}}, {str(tmp_path / 'out.pt')!r})
    """
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    got, expected = torch.load(tmp_path / "out.pt"), source.state_dict()
    assert got["sd"].keys() == expected.keys()
    assert all(torch.equal(got["sd"][k], expected[k]) for k in expected)
    with torch.no_grad():  # same bits in; the other process may run other thread counts, which
        # change float summation order, so the outputs agree to float round-off
        torch.testing.assert_close(got["y"], source.eval()(x), rtol=1e-6, atol=1e-6)
    assert hub.count("GET", "org/fresh", "model.safetensors") == 1


def test_pushed_model_card_has_a_model_index(hub, source, tmp_path) -> None:
    """The card of a folder saved with metrics carries a model-index that the Hub's own parser
    reads back, and it is what lands in the repo."""
    from huggingface_hub import ModelCard

    metrics = {"top1": 61.1, "top5": 82.9, "dataset": "imagenet-1k"}
    folder = zoo.save_pretrained(source, tmp_path / "out", tag="pushed_test", metrics=metrics)
    assert run(["push", str(folder), "org/carded"]) == 0
    card = ModelCard(hub.file_bytes("org/carded", "README.md").decode())
    assert card.text.lstrip().startswith(f"# {NAME}")
    assert card.data.library_name == "timm" and "image-classification" in card.data.tags
    results = {(r.metric_name, r.metric_value, r.dataset_type) for r in card.data.eval_results}
    assert results == {("top-1", 61.1, "imagenet-1k"), ("top-5", 82.9, "imagenet-1k")}
    assert card.data.model_name == NAME
    config = json.loads(hub.file_bytes("org/carded", "config.json"))
    assert config["architecture"] == NAME and config["num_classes"] == 1000
    assert config["pretrained_cfg"]["input_size"] == list(source.pretrained_cfg["input_size"])


# -- verify / download ---------------------------------------------------------------------------

def test_download_and_verify(hub, publish, source, capsys) -> None:
    tag = f"{NAME}.verify_test"
    record = publish(tag, source.state_dict())
    assert run(["verify", tag]) == 0
    assert "missing" in capsys.readouterr().out
    assert run(["download", tag]) == 0
    assert hub.count("GET", record.hub.repo_id, "model.safetensors") == 1
    path = cached_hub_file(record.hub.repo_id, record.hub.filename, record.hub.revision)
    assert str(path) in capsys.readouterr().out
    assert run(["verify", NAME]) == 0
    assert f"{tag}" in (out := capsys.readouterr().out) and " ok " in out
    blob = path.resolve()  # flip one byte in the cache, size unchanged
    data = bytearray(blob.read_bytes())
    data[100] ^= 0x01
    os.chmod(blob, 0o644)
    blob.write_bytes(bytes(data))
    assert run(["verify", "--all"]) == 1
    out = capsys.readouterr().out
    assert f"{tag}" in out and "corrupt" in out and record.hub.sha256 in out
    assert cached_hub_file(record.hub.repo_id, record.hub.filename, record.hub.revision) is None
    assert torch.equal(_out(zoo.create(tag, pretrained=True)), _out(source))  # fetched again
    with pytest.raises(WeightsError, match="--all"):
        run(["verify"])


def test_download_of_a_convertible_tag_says_convert(monkeypatch) -> None:
    tag = f"{NAME}.orig_test"
    _convertible(tag, monkeypatch, None)
    with pytest.raises(WeightsNotPublishedError, match="zoo convert"):
        run(["download", tag])


# -- atomic registry writes ----------------------------------------------------------------------

_RECORD = {"hub": {"repo_id": "org/x", "revision": "a" * 40, "filename": "model.safetensors",
                   "sha256": "b" * 64, "size": 10},
           "source": {"url": "https://zoo.invalid/x.pth", "converter": "test"},
           "license": "MIT"}


def test_registry_update_is_validated_before_writing(tmp_path) -> None:
    path = tmp_path / "simplenet.yaml"
    update_file(path, f"{NAME}.first", _RECORD)
    before = path.read_text()
    with pytest.raises(RegistryError):
        update_file(path, "Not A Tag", _RECORD)
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["simplenet.yaml"]


@pytest.mark.parametrize("text", ["weights: [1, 2]\n", "- a list\n",
                                  "weights: {}\nweights: {}\n", "weights: &x {}\n", "a: [\n"])
def test_registry_update_leaves_an_unreadable_file_alone(tmp_path, text) -> None:
    path = tmp_path / "simplenet.yaml"
    path.write_text(text)
    with pytest.raises(RegistryError, match="not rewriting it"):
        update_file(path, f"{NAME}.first", _RECORD)
    assert path.read_text() == text
    assert [p.name for p in tmp_path.iterdir()] == ["simplenet.yaml"]


@pytest.mark.parametrize("text", ["", "weights:\n"])
def test_registry_update_fills_an_empty_file(tmp_path, text) -> None:
    path = tmp_path / "simplenet.yaml"
    path.write_text(text)
    update_file(path, f"{NAME}.first", _RECORD)
    records = Registry()
    records.add_file(path)
    assert records.get(f"{NAME}.first").hub.sha256 == "b" * 64


def test_registry_write_survives_a_kill_mid_write(tmp_path) -> None:
    path = tmp_path / "simplenet.yaml"
    update_file(path, f"{NAME}.first", _RECORD)
    before = path.read_text()
    ready = tmp_path / "ready"
    script = f"""
        import os, time, pathlib
        from zoo import registry
        def stall(fd):  # the new text is written, not yet renamed over the old file
            pathlib.Path({str(ready)!r}).touch()
            time.sleep(300)
        os.fsync = stall
        registry.update_file(pathlib.Path({str(path)!r}), "{NAME}.second", {_RECORD!r})
    """
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert proc.poll() is None, "the writer exited early"
            assert time.monotonic() < deadline, "the writer never reached the write"
            time.sleep(0.05)
        temps = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
        assert len(temps) == 1 and f"{NAME}.second" in temps[0].read_text()
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert path.read_text() == before
    reg = Registry()
    for p in tmp_path.glob("*.yaml"):  # leftovers are not registry files
        reg.add_file(p)
    assert list(reg.records) == [f"{NAME}.first"]
    assert yamlio.load(path)["weights"][f"{NAME}.first"]["hub"]["sha256"] == "b" * 64


def test_publishing_and_testing_modules_import_without_torch() -> None:
    code = ("import sys, zoo.publish.commands, zoo.weights.checkpoint, zoo.testing; "
            "print(sorted(m for m in ('torch', 'huggingface_hub', 'safetensors') "
            "if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_eval_result_becomes_registry_metrics(tmp_path) -> None:
    """`zoo eval --out` JSON -> the record's metrics (what `zoo push --metrics` attaches)."""
    from zoo.errors import RegistryError
    from zoo.publish import metrics_from_eval
    from zoo.registry import Metrics

    result = {"model": "m", "data": "/data/imagenet/val", "num_samples": 50000, "top1": 72.0312,
              "top5": 90.3244, "partial": False, "zoo_version": "0.1.0",
              "date": "2026-11-25T10:00:00+00:00",
              "data_config": {"input_size": [3, 224, 224], "crop_pct": 0.875}}
    path = tmp_path / "res.json"
    path.write_text(json.dumps(result))
    metrics = Metrics.model_validate(metrics_from_eval(path))
    assert (metrics.top1, metrics.top5, metrics.num_samples) == (72.031, 90.324, 50000)
    assert metrics.dataset == "imagenet/val" and metrics.img_size == 224
    assert metrics.measured_by.startswith("zoo eval") and str(metrics.date) == "2026-11-25"
    path.write_text(json.dumps({**result, "partial": True}))
    with pytest.raises(RegistryError, match="partial"):
        metrics_from_eval(path)
