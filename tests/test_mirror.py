"""``zoo mirror`` and ``zoo fetch`` end to end, against emulated original hosts and an emulated
Hub on 127.0.0.1 (network code real: urllib for the hosts, huggingface_hub for the Hub), with a
temporary copy of the registry: originals in their upstream layouts go in, verified Hub records
come out, and a fresh process loads the tags with ``zoo.create(tag, pretrained=True)`` to the
same tensors and logits as a direct ``zoo convert``."""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

import zoo
from tests.sourcefixtures import original_checkpoint, original_files
from zoo.cli import main
from zoo.errors import RegistryError, SourceChecksumError, WeightsNotPublishedError
from zoo.registry import registry, update_file
from zoo.weights.folder import SPEC_SCHEMA

ROOT = Path(__file__).resolve().parents[1]
ORG = "example-org"
# one tag per family and host kind: Drive (large-file confirmation), a plain https bucket,
# a GitHub release (redirect to its asset store), a Hub file
MIRRORED = ["sret_t.in1k", "deepmad_r18.in1k", "meal_v2_mobilenetv3_small_075.in1k",
            "kat_tiny_patch16_224.in1k"]
FETCHED = ["sret_t.in1k_dist", "kat_tiny_patch16_224.in1k_vitft",
           "meal_v2_mobilenetv3_small_100.in1k"]
# a checkpoint plus a tensor file upstream publishes apart (its basis vectors): a GitHub release
# asset and a file in the repository
EBV = "ebv_resnet50.in1k"


def publish_original(tag: str, sources, hub) -> bytes:
    """Put the tag's original checkpoint where its registry URL points (emulated)."""
    data = original_checkpoint(tag)
    url = registry().get(tag).source.url
    if url.startswith("https://huggingface.co/"):
        org, name, _, rev, *path = url.split("/")[3:]
        assert rev == "main"
        hub.add_file(f"{org}/{name}", "/".join(path), data)
    else:
        sources.add(url, data, drive_confirm=True, drive_flow="legacy" if "dist" in tag else "form")
    return data


def publish_with_tensors(tag: str, sources) -> tuple[bytes, dict[str, bytes]]:
    """Put the tag's checkpoint and its tensor files where the registry points (emulated), and
    pin the tensor files in the registry copy to these files (the test's are not upstream's)."""
    data, apart = original_files(tag)
    record = registry().get(tag)
    assert apart and set(apart) == set(record.source.tensors)
    sources.add(record.source.url, data)
    doc = record.model_dump(mode="json", exclude_none=True)
    for name, blob in apart.items():
        sources.add(record.source.tensors[name].url, blob)
        doc["source"]["tensors"][name].update(sha256=hashlib.sha256(blob).hexdigest(),
                                              size=len(blob))
    update_file(registry().sources[tag], tag, doc)
    return data, apart


def reference_outputs(tag: str, data: bytes, tmp: Path,
                      tensors: dict[str, bytes] | None = None) -> dict[str, torch.Tensor]:
    """A direct `zoo convert TAG FILE [--tensor NAME=FILE] --out DIR` of the same original,
    loaded with zoo.create."""
    ckpt = tmp / f"{tag}.pth"
    ckpt.write_bytes(data)
    options = []
    for name, blob in (tensors or {}).items():
        (tmp / f"{tag}-{name}.pkl").write_bytes(blob)
        options += ["--tensor", f"{name}={tmp / f'{tag}-{name}.pkl'}"]
    out = tmp / f"{tag}-converted"
    assert main(["convert", tag, str(ckpt), *options, "--out", str(out)]) == 0
    model = zoo.create(tag.split(".")[0], weights=out)
    return {"sd": model.state_dict(), "y": _forward(model, tag)}


def _forward(model: torch.nn.Module, tag: str) -> torch.Tensor:
    shape = zoo.get_spec(tag.split(".")[0]).data.input_size
    x = torch.randn(1, *shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.manual_seed(0)
        return model.eval()(x)


FRESH = """
import sys, torch, zoo
out = {}
for ref in sys.argv[2:]:
    model = zoo.create(ref, pretrained=True)
    shape = model.pretrained_cfg["input_size"]
    x = torch.randn(1, *shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.manual_seed(0)  # models that draw random numbers at inference (SReT) draw alike
        out[ref] = {"sd": model.state_dict(), "y": model.eval()(x)}
torch.save(out, sys.argv[1])
"""


def fresh_process(refs: list[str], tmp: Path, **env: str) -> dict:
    """Load refs with zoo.create(ref, pretrained=True) in a new process (fresh caches unless
    given); return {ref: {"sd", "y"}}."""
    out = tmp / "fresh.pt"
    base = {k: v for k, v in os.environ.items()  # the originals' hosts out of reach, unless
            if k not in ("ZOO_SOURCE_REWRITE", "ZOO_ALLOW_SOURCE_FETCH")}  # env says otherwise
    environ = {**base, "PYTHONPATH": str(ROOT), "HF_HUB_CACHE": str(tmp / "fresh-hf"),
               "ZOO_CACHE": str(tmp / "fresh-zoo"), "OMP_NUM_THREADS": "1", **env}
    proc = subprocess.run([sys.executable, "-c", FRESH, str(out), *refs], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return torch.load(out)


def assert_same(got: dict, expected: dict) -> None:
    assert got["sd"].keys() == expected["sd"].keys()
    for key, value in expected["sd"].items():
        assert torch.equal(got["sd"][key], value), key
    # same tensors in; another process may run other thread counts (float summation order)
    torch.testing.assert_close(got["y"], expected["y"], rtol=1e-5, atol=1e-5)


# -- the plan ----------------------------------------------------------------------------------

def test_dry_run_lists_every_source_record_with_its_action(capsys) -> None:
    assert main(["mirror", "--org", ORG, "--dry-run"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[2] for line in out.splitlines()[2:] if line.strip()
            and not line.startswith(f"{len(registry().records)} records")}
    assert set(rows) == set(registry().records)
    from zoo.weights.sources import plan_source

    for tag, rec in registry().records.items():
        if rec.hub is not None:
            assert rows[tag] == "skip", tag
        elif not plan_source(rec.source.url).downloadable:  # SharePoint, OneDrive, Baidu
            assert rows[tag] == "manual", tag
        else:
            assert rows[tag] == "mirror", tag
    assert {"skip", "manual", "mirror"} <= set(rows.values())
    assert f"{len(registry().records)} records:" in out


def test_dry_run_takes_patterns_and_from_dir(capsys, tmp_path) -> None:
    tag = "ofq_deit_tiny_w2a2.in1k"
    (tmp_path / f"{tag}.pth.tar").write_bytes(b"PK\x03\x04")
    assert main(["mirror", "--org", ORG, "--dry-run", "ofq_deit_tiny_w2a2", "ofq_deit_tiny_w3a3",
                 "--from-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"{tag} " in out and "from --from-dir" in out
    assert "ofq_deit_tiny_w3a3.in1k" in out and "manual" in out and "2 records" in out


# -- mirror, end to end ------------------------------------------------------------------------

@pytest.mark.slow
def test_mirror_end_to_end(hub, sources, registry_copy, tmp_path, capsys) -> None:
    originals = {tag: publish_original(tag, sources, hub) for tag in MIRRORED}
    broken = "sret_t.in1k_dist"  # its host answers with a sign-in page
    sources.add(registry().get(broken).source.url, b"unused")
    sources.fault(registry().get(broken).source.url, "html")
    before = {p.name: p.read_text() for p in registry_copy.rglob("*.yaml")}

    rc = main(["mirror", "--org", ORG, "--jobs", "2", *MIRRORED, broken,
               "ofq_deit_tiny_w2a2.in1k"])
    report = capsys.readouterr().out
    assert rc == 1, report  # one tag failed
    results = {ln.split()[0]: ln.split()[1] for ln in report.splitlines()[2:] if ln.strip()
               and not ln[0].isdigit()}
    assert results == {**dict.fromkeys(MIRRORED, "mirrored"), broken: "failed",
                       "ofq_deit_tiny_w2a2.in1k": "manual"}, report
    assert "Google Drive answered with a page that has no download confirmation" in report

    for tag in MIRRORED:
        rec = registry().get(tag)
        repo = f"{ORG}/{tag}"
        blob = hub.file_bytes(repo, "model.safetensors")
        # the record is what the Hub holds: its commit, the file's hash and size
        assert rec.hub.repo_id == repo and rec.hub.revision == hub.head(repo)
        assert rec.hub.sha256 == hashlib.sha256(blob).hexdigest() and rec.hub.size == len(blob)
        assert rec.hub.layout == "zoo" and rec.hub.filename == "model.safetensors"
        # the source's hash and size are the original's
        assert rec.source.sha256 == hashlib.sha256(originals[tag]).hexdigest()
        assert rec.source.size == len(originals[tag])
        assert "zoo mirror" in rec.source.converter and "zoo mirror got" in rec.source.note
        # the repo describes itself: the full spec and its schema version
        config = json.loads(hub.file_bytes(repo, "config.json"))
        spec = zoo.get_spec(tag.split(".")[0])
        assert config["zoo"]["spec"] == spec.model_dump(mode="json")
        assert config["zoo"]["spec_schema"] == SPEC_SCHEMA and config["zoo"]["tag"] == tag.split(".")[1]
        card = hub.file_bytes(repo, "README.md").decode()
        front = yaml.safe_load(card.split("---\n")[1])
        assert front["license"] == rec.license.lower()
        top1 = front["model-index"][0]["results"][0]["metrics"][0]
        assert (top1["name"], top1["value"]) == ("top-1", rec.metrics.top1)
        assert f"@inproceedings{{" in card or "@article{" in card
        assert rec.source.url in card and rec.source.sha256 in card
    # nothing recorded or pushed for the failed and the manual tag
    for tag in (broken, "ofq_deit_tiny_w2a2.in1k"):
        assert registry().get(tag).hub is None and f"{ORG}/{tag}" not in hub.repos()
    # the rest of the registry is untouched, comments included
    after = {p.name: p.read_text() for p in registry_copy.rglob("*.yaml")}
    for name, text in before.items():
        head = [ln for ln in text.splitlines() if ln.startswith("#")]
        assert [ln for ln in after[name].splitlines() if ln.startswith("#")] == head, name
    assert after["ofq.yaml"] == before["ofq.yaml"] and after["bignas.yaml"] == before["bignas.yaml"]
    assert main(["check"]) == 0

    # a fresh process, fresh caches, no route to the original hosts: loads from the Hub records
    fresh = fresh_process([*MIRRORED, f"hf-hub:{ORG}/{MIRRORED[0]}"], tmp_path)
    for tag in MIRRORED:
        assert_same(fresh[tag], reference_outputs(tag, originals[tag], tmp_path))
    assert_same(fresh[f"hf-hub:{ORG}/{MIRRORED[0]}"], fresh[MIRRORED[0]])

    # a second run resumes: mirrored tags are verified (downloaded, re-hashed), not redone
    heads = {tag: hub.head(f"{ORG}/{tag}") for tag in MIRRORED}
    hosted = len(sources.requests)
    capsys.readouterr()
    assert main(["mirror", "--org", ORG, *MIRRORED]) == 0
    report = capsys.readouterr().out
    assert report.count(" verified ") == len(MIRRORED) and "mirrored" not in report
    assert {tag: hub.head(f"{ORG}/{tag}") for tag in MIRRORED} == heads
    assert len(sources.requests) == hosted  # no original downloaded again
    capsys.readouterr()
    assert main(["mirror", "--org", ORG, "--dry-run", *MIRRORED]) == 0
    assert capsys.readouterr().out.count(" verify ") == len(MIRRORED)


@pytest.mark.slow
def test_mirror_cut_off_before_the_registry_write_does_not_push_twice(
        hub, sources, registry_copy, capsys) -> None:
    tag = "meal_v2_mobilenetv3_small_075.in1k"
    publish_original(tag, sources, hub)
    import zoo.publish.mirror as M

    def cut(*args, **kwargs):
        raise RegistryError("the disk is full")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(M, "update_file", cut)
        assert main(["mirror", "--org", ORG, tag]) == 1
    assert "the disk is full" in capsys.readouterr().out
    assert registry().get(tag).hub is None  # no record without the write
    head = hub.head(f"{ORG}/{tag}")
    hub.reset_log()
    assert main(["mirror", "--org", ORG, tag]) == 0
    assert "already on the Hub" in capsys.readouterr().out
    assert hub.head(f"{ORG}/{tag}") == head and hub.count("POST") <= 1  # create_repo only
    assert registry().get(tag).hub.revision == head


# -- fetch, end to end -------------------------------------------------------------------------

@pytest.mark.slow
def test_fetch_end_to_end(hub, sources, registry_copy, tmp_path, capsys) -> None:
    originals = {tag: publish_original(tag, sources, hub) for tag in FETCHED}
    first, *rest = FETCHED
    for tag in rest:
        assert main(["fetch", tag]) == 0
        out = capsys.readouterr().out
        assert hashlib.sha256(originals[tag]).hexdigest() in out and "not pinned" in out
        record = json.loads((Path(os.environ["ZOO_CACHE"]) / "converted" / tag /
                             "conversion.json").read_text())
        assert record["source_sha256"] == hashlib.sha256(originals[tag]).hexdigest()
        assert record["source_size"] == len(originals[tag]) and record["source_pinned"] is False
    # without the opt-in, pretrained=True names the exact command and unpickles nothing
    with pytest.raises(WeightsNotPublishedError, match=f"run `zoo fetch {first}` once"):
        zoo.create(first, pretrained=True)
    assert main(["fetch", rest[0]]) == 0 and "converted already" in capsys.readouterr().out

    cache = os.environ["ZOO_CACHE"]
    # offline, in a fresh process: the fetched tags load from zoo's cache
    fresh = fresh_process(rest, tmp_path, ZOO_CACHE=cache, HF_HUB_OFFLINE="1")
    for tag in rest:
        assert_same(fresh[tag], reference_outputs(tag, originals[tag], tmp_path))
    # with the opt-in, pretrained=True fetches and converts by itself
    fresh = fresh_process([first], tmp_path, ZOO_CACHE=cache, ZOO_ALLOW_SOURCE_FETCH="1",
                          ZOO_SOURCE_REWRITE=os.environ["ZOO_SOURCE_REWRITE"])
    assert_same(fresh[first], reference_outputs(first, originals[first], tmp_path))
    assert (Path(cache) / "converted" / first / "conversion.json").is_file()


# -- a source with a tensor file (EBV: checkpoint + basis vectors) -----------------------------

def test_dry_run_shows_tensor_files(capsys, tmp_path) -> None:
    basis = registry().get(EBV).source.tensors["basis"]
    assert main(["mirror", "--org", ORG, "--dry-run", "ebv_*"]) == 0
    row = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith(EBV))
    assert " mirror " in row and "tensor file basis: eq_1000_1000.pkl (download" in row, row
    assert basis.url.endswith("/eq_1000_1000.pkl")
    (tmp_path / "eq_1000_1000.pkl").write_bytes(b"\x80")
    assert main(["mirror", "--org", ORG, "--dry-run", "ebv_*", "--from-dir", str(tmp_path)]) == 0
    row = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith(EBV))
    assert "basis: eq_1000_1000.pkl (from --from-dir (eq_1000_1000.pkl))" in row, row


@pytest.mark.slow
def test_fetch_and_mirror_a_source_with_a_tensor_file(hub, sources, registry_copy, tmp_path,
                                                      capsys) -> None:
    data, apart = publish_with_tensors(EBV, sources)
    basis_url = registry().get(EBV).source.tensors["basis"].url
    expected = reference_outputs(EBV, data, tmp_path, apart)

    # a user fetches it: both files downloaded, checked, handed to the conversion together
    assert main(["fetch", EBV]) == 0
    out = capsys.readouterr().out
    assert f"tensor file basis via direct https download; {len(apart['basis']):,} bytes" in out
    assert "matches the registry's sha256: checked" in out
    assert sources.count(path_contains="eq_1000_1000.pkl") == 1
    stamp = json.loads((Path(os.environ["ZOO_CACHE"]) / "converted" / EBV /
                        "conversion.json").read_text())
    assert stamp["source_tensors"]["basis"]["sha256"] == hashlib.sha256(apart["basis"]).hexdigest()
    assert stamp["source_tensors"]["basis"]["url"] == basis_url
    model = zoo.create(EBV, pretrained=True)
    assert_same({"sd": model.state_dict(), "y": _forward(model, EBV)}, expected)

    # a maintainer mirrors it: the source cache serves both files, one push, one record
    hosted = len(sources.requests)
    capsys.readouterr()
    assert main(["mirror", "--org", ORG, EBV]) == 0
    report = capsys.readouterr().out
    assert f"{EBV} " in report and "mirrored" in report and "tensor file basis" in report
    assert len(sources.requests) == hosted
    rec = registry().get(EBV)
    repo = f"{ORG}/{EBV}"
    assert rec.hub.repo_id == repo and rec.hub.revision == hub.head(repo)
    assert rec.source.sha256 == hashlib.sha256(data).hexdigest() and rec.source.size == len(data)
    basis = rec.source.tensors["basis"]  # pinned before, kept as it was
    assert (basis.url, basis.sha256, basis.size) == \
        (basis_url, hashlib.sha256(apart["basis"]).hexdigest(), len(apart["basis"]))
    card = hub.file_bytes(repo, "README.md").decode()
    assert basis_url in card and basis.sha256 in card
    assert main(["check"]) == 0
    fresh = fresh_process([EBV], tmp_path)  # fresh caches, no route to the original hosts
    assert_same(fresh[EBV], expected)


def test_a_wrong_tensor_file_is_refused_before_anything_is_installed(
        hub, sources, registry_copy, capsys) -> None:
    data, apart = publish_with_tensors(EBV, sources)
    record = registry().get(EBV)
    url = record.source.tensors["basis"].url
    tampered = apart["basis"][:-1] + bytes([apart["basis"][-1] ^ 1])  # same size, other bytes
    sources.add(url, tampered)
    cache = Path(os.environ["ZOO_CACHE"])

    assert main(["fetch", EBV]) == 2
    err = capsys.readouterr().err
    assert re.search(r"eq_1000_1000\.pkl \(the 'basis' tensor file of ebv_resnet50\.in1k\): "
                     r"sha256 [0-9a-f]{64} does not match the published "
                     + record.source.tensors["basis"].sha256, err), err
    assert not (cache / "converted" / EBV).exists()
    assert [p.name for p in (cache / "converted").iterdir()] == [f".{EBV}.lock"]  # no staging
    blobs = [p for p in (cache / "sources" / "blobs").rglob("*") if p.is_file()]
    assert blobs == []  # the wrong file is not kept; the checkpoint was not even downloaded
    assert sources.count(path_contains="EBV_ResNet") == 0

    assert main(["mirror", "--org", ORG, EBV]) == 1
    report = capsys.readouterr().out
    assert f"{EBV} " in report and " failed " in report and "'basis' tensor file" in report
    assert f"{ORG}/{EBV}" not in hub.repos() and registry().get(EBV) == record


def test_fetch_takes_both_files_from_dir(sources, registry_copy, tmp_path, monkeypatch) -> None:
    """--from-dir: the checkpoint and the tensor file by their URLs' file names (or TAG.<ext> and
    TAG.NAME.<ext>), checked, nothing downloaded; both go to the conversion child."""
    import subprocess as sp

    import zoo.weights.fetch as F
    from zoo.errors import CheckpointError

    data, apart = publish_with_tensors(EBV, sources)
    seen = []

    def child(cmd, **kwargs):  # the conversion child, stood in for: its command line is the point
        seen.append(cmd)
        return sp.CompletedProcess(cmd, 1, "", "zoo: error: stopped by the test")

    monkeypatch.setattr(F.subprocess, "run", child)
    record = registry().get(EBV)
    for main_name, basis_name in [(record.source.url.rsplit("/", 1)[1], "eq_1000_1000.pkl"),
                                  (f"{EBV}.pth", f"{EBV}.basis.pkl")]:
        folder = tmp_path / main_name
        folder.mkdir()
        (folder / main_name).write_bytes(data)
        (folder / basis_name).write_bytes(apart["basis"])
        with pytest.raises(CheckpointError, match="stopped by the test"):
            F.fetch_tag(EBV, from_dir=folder)
        cmd = seen.pop()
        assert cmd[3:6] == ["convert", EBV, str(folder / main_name)], cmd
        assert cmd[cmd.index("--tensor") + 1] == f"basis={folder / basis_name}", cmd
    assert sources.requests == []  # nothing downloaded
    assert not (Path(os.environ["ZOO_CACHE"]) / "converted" / EBV).exists()
    # a basis that is not the pinned one is refused, named
    (folder / basis_name).write_bytes(apart["basis"][::-1])
    with pytest.raises(SourceChecksumError, match=f"{basis_name} \\(the 'basis' tensor file"):
        F.fetch_tag(EBV, from_dir=folder)
    assert seen == []


# -- the command line's errors -----------------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["fetch", "sret_ss.in1k"], "Did you mean: sret_s"),
    (["fetch", "sret_t.nosuchtag"], "unknown weights tag"),
    (["fetch", "ofq_deit_tiny_w2a2.in1k"], "no direct download .*--from-dir"),
    (["fetch", "ofq_deit_tiny_w2a2.in1k", "--from-dir", "/no/such/dir"], "no such folder"),
    (["mirror", "--org", "bad org", "--dry-run"], "invalid Hub organization 'bad org': give"),
    (["mirror", "--org", "../x"], "invalid Hub organization '../x': .*no '/', '..'"),
    (["mirror", "--org", ORG, "--jobs", "0"], "--jobs"),
    (["mirror", "nosuch*", "--org", ORG, "--dry-run"],
     "'nosuch\\*' matches no registry record .*see `zoo list --pretrained`"),
    (["mirror", "sret_t", "sret_ss", "--org", ORG], "'sret_ss' matches no .*did you mean sret_s"),
    (["convert", "sret_t.in1k", __file__, "--check"], "--check needs --out"),
])
def test_command_line_errors(argv, message, capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("zoo: error:") and "Traceback" not in err
    assert re.search(message, err), err
    assert list(tmp_path.iterdir()) == []  # nothing downloaded or cached
