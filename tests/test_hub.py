"""Weights from the Hub, end to end over real HTTP (the local emulator, real huggingface_hub):
exact bytes or a clear error, from one process or many, online or offline, over a flaky link."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import zoo
from zoo.errors import (ChecksumMismatchError, CorruptWeightsError, HubConnectionError,
                        StateDictMismatchError, WeightsError)
from zoo.testing import HubEmulator
from zoo.weights import cached_hub_file

ROOT = Path(__file__).resolve().parents[1]
NAME = "simplenetv1_small_m1_05"  # 1.5M parameters, fast on CPU
TAG = f"{NAME}.hubtest"
IMG = 64  # SimpleNet is fully convolutional: a small input keeps the tests fast


def _source(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = zoo.create(NAME).eval()
    with torch.no_grad():  # non-trivial BN statistics, so a wrong load cannot go unnoticed
        for name, buf in model.named_buffers():
            if name.endswith("running_mean"):
                buf.normal_(0, 0.1)
            elif name.endswith("running_var"):
                buf.uniform_(0.5, 1.5)
    return model


def _x(chans: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.randn(2, chans, IMG, IMG, generator=torch.Generator().manual_seed(seed))


def _out(model: torch.nn.Module, x: torch.Tensor | None = None) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(_x() if x is None else x)


@pytest.fixture(scope="module")
def source() -> torch.nn.Module:
    return _source()


# -- the emulator itself ---------------------------------------------------------------------

def test_emulator_speaks_the_hub_protocol() -> None:
    import httpx2 as httpx

    data = bytes(range(256)) * 40
    with HubEmulator() as hub:
        sha = hub.add_file("org/repo", "w.safetensors", data)
        assert len(sha) == 40 and int(sha, 16) >= 0
        url = f"{hub.endpoint}/org/repo/resolve/main/w.safetensors"
        head = httpx.head(url)
        assert head.status_code == 200
        assert head.headers["X-Repo-Commit"] == sha
        assert head.headers["X-Linked-Etag"].strip('"') == hashlib.sha256(data).hexdigest()
        assert int(head.headers["X-Linked-Size"]) == len(data)
        assert not any(k.lower().startswith("x-xet") for k in head.headers)
        part = httpx.get(url, headers={"Range": "bytes=1000-"})
        assert part.status_code == 206 and part.content == data[1000:]
        assert part.headers["Content-Range"] == f"bytes 1000-{len(data) - 1}/{len(data)}"
        assert httpx.get(url, headers={"Range": f"bytes={len(data)}-"}).status_code == 416
        missing = httpx.head(f"{hub.endpoint}/org/repo/resolve/main/nope.bin")
        assert missing.status_code == 404 and missing.headers["X-Error-Code"] == "EntryNotFound"
        assert httpx.head(f"{hub.endpoint}/org/none/resolve/main/w.safetensors") \
            .headers["X-Error-Code"] == "RepoNotFound"
        assert httpx.head(f"{hub.endpoint}/org/repo/resolve/{'0' * 40}/w.safetensors") \
            .headers["X-Error-Code"] == "RevisionNotFound"
        sha2 = hub.add_file("org/repo", "w.safetensors", data[::-1])
        assert httpx.get(f"{hub.endpoint}/org/repo/resolve/{sha}/w.safetensors").content == data
        assert httpx.get(url).content == data[::-1] and hub.head("org/repo") == sha2
        assert hub.count("GET", "org/repo", "w.safetensors") == 4
        assert hub.count("HEAD") == 4
    with pytest.raises(ValueError, match="loopback"):
        HubEmulator(host="0.0.0.0")


def test_emulator_accepts_huggingface_hub_uploads(hub: HubEmulator, tmp_path: Path) -> None:
    from huggingface_hub import HfApi

    (tmp_path / "a.safetensors").write_bytes(b"\x01" * 1000)
    (tmp_path / "README.md").write_text("---\nlicense: mit\n---\n# test\n")
    api = HfApi()
    api.create_repo("me/up", exist_ok=True)
    info = api.upload_folder(repo_id="me/up", folder_path=tmp_path)
    assert hub.list_files("me/up") == ["README.md", "a.safetensors"]
    # api.model_info, not the module-level model_info: that one is bound to an HfApi made when
    # huggingface_hub was first imported, whose endpoint may predate the emulator's
    assert info.oid == hub.head("me/up") == api.model_info("me/up").sha
    assert hub.file_bytes("me/up", "a.safetensors") == b"\x01" * 1000
    api.create_branch("me/up", branch="dev")
    (tmp_path / "a.safetensors").write_bytes(b"\x02" * 10)
    info2 = api.upload_file(path_or_fileobj=tmp_path / "a.safetensors",
                            path_in_repo="a.safetensors", repo_id="me/up", revision="dev")
    assert hub.head("me/up", "dev") == info2.oid != info.oid
    assert hub.file_bytes("me/up", "a.safetensors", "main") == b"\x01" * 1000


# -- loading published weights ---------------------------------------------------------------

def test_pretrained_load_end_to_end(hub, publish, source) -> None:
    record = publish(TAG, source.state_dict())
    model = zoo.create(TAG, pretrained=True)
    assert torch.equal(_out(model), _out(source))
    assert model.pretrained_cfg["hf_hub_id"] == record.hub.repo_id
    assert model.pretrained_cfg["hf_hub_revision"] == record.hub.revision
    assert hub.count("GET", record.hub.repo_id, "model.safetensors") == 1
    hub.reset_log()
    again = zoo.create(TAG, pretrained=True)  # pinned commit, cached: no request at all
    assert hub.requests == []
    assert torch.equal(_out(again), _out(source))


def test_original_layout_is_converted_on_load(hub, publish, source) -> None:
    """A Hub file in upstream's key layout (e.g. a timm repo) goes through the family's convert."""
    upstream = {"module." + k.replace("head.fc.", "classifier."): v
                for k, v in source.state_dict().items()}
    record = publish(TAG, upstream, layout="original", repo_id="upstream/simplenet")
    assert record.hub.layout == "original" and record.hub.repo_id == "upstream/simplenet"
    assert torch.equal(_out(zoo.create(TAG, pretrained=True)), _out(source))


def test_wrong_bytes_are_refused_and_not_cached(hub, publish, source) -> None:
    record = publish(TAG, source.state_dict())
    hub.corrupt(record.hub.repo_id, record.hub.filename, times=1)
    with pytest.raises(ChecksumMismatchError) as err:
        zoo.create(TAG, pretrained=True)
    served = bytearray(hub.file_bytes(record.hub.repo_id, record.hub.filename))
    served[-64:] = bytes(b ^ 0x55 for b in served[-64:])  # what the fault knob served
    actual = hashlib.sha256(bytes(served)).hexdigest()
    assert err.value.expected == record.hub.sha256 and err.value.actual == actual
    assert record.hub.sha256 in str(err.value) and actual in str(err.value)
    assert cached_hub_file(record.hub.repo_id, record.hub.filename, record.hub.revision) is None
    blobs = Path(os.environ["HF_HUB_CACHE"]).rglob("blobs/*")
    assert not [b for b in blobs if not b.name.endswith(".zoo-sha256")]
    model = zoo.create(TAG, pretrained=True)  # the server is fine again: the retry succeeds
    assert torch.equal(_out(model), _out(source))
    assert hub.count("GET", record.hub.repo_id, record.hub.filename) == 2


def test_damaged_cached_file_is_refused_by_hash_and_fetched_again(hub, publish, source) -> None:
    """A cached blob cut short (full disk, killed copy): the error names the expected and the
    actual sha256, the blob leaves the cache, and the next call downloads it again."""
    record = publish(TAG, source.state_dict())
    zoo.create(TAG, pretrained=True)
    where = (record.hub.repo_id, record.hub.filename, record.hub.revision)
    blob = cached_hub_file(*where).resolve()
    cut = blob.read_bytes()[:1000]
    os.chmod(blob, 0o644)
    blob.write_bytes(cut)
    with pytest.raises(ChecksumMismatchError) as err:
        zoo.create(TAG, pretrained=True)
    assert err.value.expected == record.hub.sha256
    assert err.value.actual == hashlib.sha256(cut).hexdigest()
    assert f"1000 bytes where {record.hub.size} are recorded" in str(err.value)
    assert not blob.exists() and cached_hub_file(*where) is None
    assert torch.equal(_out(zoo.create(TAG, pretrained=True)), _out(source))
    assert hub.count("GET", record.hub.repo_id, record.hub.filename) == 2


def _edit_in_place(blob: Path, *, keep_mtime: bool) -> bytes:
    """Flip one byte of a cached blob, size unchanged; its mtime then moves on by a second (an
    ordinary edit, made explicit: file systems with coarse timestamps may not move it), or is
    put back exactly (``keep_mtime``).  Returns the new bytes."""
    before = blob.stat()
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0x01
    os.chmod(blob, 0o644)
    blob.write_bytes(bytes(data))
    mtime = before.st_mtime_ns if keep_mtime else before.st_mtime_ns + 1_000_000_000
    os.utime(blob, ns=(before.st_atime_ns, mtime))
    assert blob.stat().st_size == before.st_size
    return bytes(data)


def test_cached_file_edited_in_place_after_a_verified_load_is_caught(hub, publish,
                                                                      source) -> None:
    """After a verified load (which stamps the blob with its sha256, size and mtime), an edit
    of the cached file that keeps its size but changes its mtime is re-hashed and refused on
    the next load, which then fetches the file again."""
    record = publish(TAG, source.state_dict())
    zoo.create(TAG, pretrained=True)  # downloaded, verified, stamped
    where = (record.hub.repo_id, record.hub.filename, record.hub.revision)
    blob = cached_hub_file(*where).resolve()
    assert blob.with_name(blob.name + ".zoo-sha256").exists()
    edited = _edit_in_place(blob, keep_mtime=False)
    with pytest.raises(ChecksumMismatchError) as err:
        zoo.create(TAG, pretrained=True)
    assert err.value.expected == record.hub.sha256
    assert err.value.actual == hashlib.sha256(edited).hexdigest()
    assert cached_hub_file(*where) is None
    assert torch.equal(_out(zoo.create(TAG, pretrained=True)), _out(source))
    assert hub.count("GET", record.hub.repo_id, record.hub.filename) == 2


def test_in_place_edit_keeping_size_and_mtime_is_caught_by_zoo_verify(hub, publish,
                                                                      source) -> None:
    """A load trusts the stamp of an unchanged (sha256, size, mtime) -- a documented limit
    (docs/security.md); `zoo verify` re-hashes every cached file regardless, finds the edit,
    removes the file, and the next load fetches it again."""
    from zoo.publish.verify import verify_tag

    record = publish(TAG, source.state_dict())
    zoo.create(TAG, pretrained=True)
    where = (record.hub.repo_id, record.hub.filename, record.hub.revision)
    blob = cached_hub_file(*where).resolve()
    _edit_in_place(blob, keep_mtime=True)
    status, detail = verify_tag(TAG)
    assert status == "corrupt" and record.hub.sha256 in detail
    assert cached_hub_file(*where) is None and not blob.exists()
    assert torch.equal(_out(zoo.create(TAG, pretrained=True)), _out(source))
    assert hub.count("GET", record.hub.repo_id, record.hub.filename) == 2
    assert verify_tag(TAG)[0] == "ok"


def test_size_mismatch_is_refused_before_downloading(hub, publish, source, monkeypatch) -> None:
    from zoo.registry import registry

    record = publish(TAG, source.state_dict())
    bad = record.model_copy(update={"hub": record.hub.model_copy(update={"size": 1234})})
    monkeypatch.setitem(registry().records, TAG, bad)
    with pytest.raises(ChecksumMismatchError, match="registry records 1234"):
        zoo.create(TAG, pretrained=True)
    assert hub.count("GET") == 0


def test_interrupted_download_restarts_and_ends_verified(hub, publish, source) -> None:
    record = publish(TAG, source.state_dict())
    hub.drop_connection(record.hub.repo_id, record.hub.filename, times=2)
    model = zoo.create(TAG, pretrained=True)
    assert torch.equal(_out(model), _out(source))
    gets = [r for r in hub.requests if r.method == "GET" and r.filename == record.hub.filename]
    assert [r.status for r in gets] == [599, 599, 200]
    assert 0 < gets[0].body_bytes < record.hub.size
    path = cached_hub_file(record.hub.repo_id, record.hub.filename, record.hub.revision)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == record.hub.sha256


def test_large_interrupted_download_resumes_with_range(hub) -> None:
    """Past huggingface_hub's 10 MB read chunk, a dropped transfer resumes where it stopped."""
    from zoo.weights import hub_download

    data = os.urandom(12 * 1024 * 1024)
    sha = hub.add_file("org/big", "big.safetensors", data)
    hub.drop_connection("org/big", "big.safetensors", after=11 * 1024 * 1024)
    path = hub_download("org/big", "big.safetensors", sha, "big", expected_size=len(data))
    assert hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(data).digest()
    gets = [r for r in hub.requests if r.method == "GET"]
    assert [r.status for r in gets] == [599, 206]
    assert gets[1].range == "bytes=10485760-"


@pytest.mark.parametrize("damage", ["missing", "extra", "shape", "dtype"])
def test_state_dict_mismatch_is_a_specific_error(publish, source, damage) -> None:
    sd = dict(source.state_dict())
    key = "features.0.weight"
    if damage == "missing":
        del sd[key]
    elif damage == "extra":
        sd["features.99.weight"] = torch.zeros(3)
    elif damage == "shape":
        sd[key] = sd[key][:, :, :2, :2].clone()
    else:
        sd[key] = sd[key].to(torch.int32)
    publish(TAG, sd)
    with pytest.raises(StateDictMismatchError, match="nothing was loaded") as err:
        zoo.create(TAG, pretrained=True)
    assert ("features.99.weight" if damage == "extra" else key) in str(err.value)


def test_weights_of_another_architecture_are_refused(source, tmp_path) -> None:
    """Same shapes, other model (stride mode 2): the file's metadata gives it away."""
    zoo.save_pretrained(source, tmp_path / "out")
    with pytest.raises(StateDictMismatchError, match=f"holds weights of {NAME}"):
        zoo.create("simplenetv1_small_m2_05", weights=tmp_path / "out")


def _header(doc: dict) -> bytes:
    """A safetensors header: 8-byte little-endian length, then the JSON."""
    text = json.dumps(doc).encode()
    return len(text).to_bytes(8, "little") + text


@pytest.mark.parametrize("damage", ["garbage", "truncated", "huge_header", "empty", "bad_json",
                                    "short_data", "overlapping", "padded"])
def test_corrupt_safetensors_is_refused(hub, monkeypatch, source, damage, tmp_path) -> None:
    from tests.hubfixtures import safetensors_bytes
    from zoo.registry import WeightsRecord, registry

    good = safetensors_bytes(source.state_dict(), {"zoo_architecture": NAME})
    w = {"dtype": "F32", "shape": [4]}
    data = {"garbage": b"\x00not a safetensors file" * 10,
            "truncated": good[: len(good) // 2],
            "huge_header": (10 ** 12).to_bytes(8, "little") + good[8:],
            "empty": b"{}",
            "bad_json": (16).to_bytes(8, "little") + b'{"w": not json!}' + bytes(16),
            "short_data": _header({"w": {**w, "data_offsets": [0, 16]}}) + bytes(8),
            "overlapping": _header({"a": {**w, "data_offsets": [0, 16]},
                                    "b": {**w, "data_offsets": [8, 24]}}) + bytes(24),
            "padded": good + bytes(8),  # bytes past the last tensor
            }[damage]
    sha = hub.add_file("org/corrupt", "model.safetensors", data)
    record = WeightsRecord.model_validate({
        "hub": {"repo_id": "org/corrupt", "revision": sha, "filename": "model.safetensors",
                "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)},
        "source": {"url": "https://zoo.invalid/corrupt", "converter": "test"}, "license": "MIT"})
    monkeypatch.setitem(registry().records, TAG, record)
    with pytest.raises(CorruptWeightsError, match="not a valid safetensors file"):
        zoo.create(TAG, pretrained=True)
    local = tmp_path / "x.safetensors"
    local.write_bytes(data)
    with pytest.raises(CorruptWeightsError):
        zoo.create(NAME, weights=local)


def test_num_classes_and_in_chans_adaptation(publish, source) -> None:
    publish(TAG, source.state_dict())
    model = zoo.create(TAG, pretrained=True, num_classes=7, in_chans=1)
    assert model.get_classifier().out_features == 7
    x1 = _x(chans=1)
    with torch.no_grad():  # a summed first conv on gray == the original on a replicated image
        torch.testing.assert_close(model.forward_features(x1),
                                   source.forward_features(x1.repeat(1, 3, 1, 1)),
                                   rtol=1e-4, atol=1e-4)
    assert model.get_classifier().weight.device.type == "cpu"
    assert not torch.equal(model.get_classifier().weight[:7],
                           source.get_classifier().weight[:7])
    pooled = zoo.create(TAG, pretrained=True, num_classes=0)
    with torch.no_grad():
        torch.testing.assert_close(pooled(_x()), source.forward_head(
            source.forward_features(_x()), pre_logits=True))


def test_save_pretrained_round_trip(source, tmp_path) -> None:
    zoo.save_pretrained(source, tmp_path / "out")
    assert {p.name for p in (tmp_path / "out").iterdir()} == \
        {"model.safetensors", "config.json", "README.md"}
    model = zoo.create(NAME, weights=tmp_path / "out")
    assert torch.equal(_out(model), _out(source))
    model = zoo.create(NAME, weights=tmp_path / "out" / "model.safetensors")
    assert torch.equal(_out(model), _out(source))


def test_hf_hub_reference_and_timm_round_trip(hub, source, tmp_path) -> None:
    from huggingface_hub import HfApi

    zoo.save_pretrained(source, tmp_path / "out")
    api = HfApi()
    api.create_repo("org/simplenet-small", exist_ok=True)
    api.upload_folder(repo_id="org/simplenet-small", folder_path=tmp_path / "out")
    model = zoo.create(NAME, weights="hf-hub:org/simplenet-small")
    assert torch.equal(_out(model), _out(source))
    import timm

    model = timm.create_model("hf-hub:org/simplenet-small", pretrained=True)
    assert torch.equal(_out(model), _out(source))
    sha = hub.head("org/simplenet-small")
    model = zoo.create(NAME, weights=f"hf-hub:org/simplenet-small@{sha}")
    assert torch.equal(_out(model), _out(source))
    with pytest.raises(WeightsError, match="does not exist"):
        zoo.create(NAME, weights="hf-hub:org/nothing-here")


def test_zoo_never_unpickles_downloads(publish, source, monkeypatch, tmp_path) -> None:
    import pickle

    def refuse(*args, **kwargs):
        raise AssertionError("torch.load/pickle called on a weights file")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    publish(TAG, source.state_dict())
    assert torch.equal(_out(zoo.create(TAG, pretrained=True)), _out(source))
    (tmp_path / "w.pth").write_bytes(b"PK\x03\x04")
    with pytest.raises(WeightsError, match="only .safetensors"):
        zoo.create(NAME, weights=tmp_path / "w.pth")


# -- no network, a dead network, a hanging network --------------------------------------------

def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record every ``time.sleep`` from now on (huggingface_hub's retry back-off sleeps)."""
    sleeps: list[float] = []
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", sleep)
    return sleeps


def test_stopped_hub_is_a_clear_connection_error_without_retries(hub, publish, source,
                                                                  monkeypatch) -> None:
    record = publish(TAG, source.state_dict())
    hub.stop()
    sleeps = _no_backoff(monkeypatch)
    with pytest.raises(HubConnectionError, match="cannot reach the Hub") as err:
        zoo.create(TAG, pretrained=True)
    assert "HF_HUB_OFFLINE=1" in str(err.value) and "not cached" in str(err.value)
    assert sleeps == []  # one refused connection, no back-off: the wait is bounded
    assert cached_hub_file(record.hub.repo_id, record.hub.filename, record.hub.revision) is None


def test_hanging_hub_times_out(hub, publish, source, monkeypatch) -> None:
    """The Hub never answers in time: zoo gives up after HF_HUB_ETAG_TIMEOUT, before any reply
    (the emulator logs a request only when it answers), and does not retry."""
    from huggingface_hub import constants

    record = publish(TAG, source.state_dict())
    monkeypatch.setattr(constants, "HF_HUB_ETAG_TIMEOUT", 1)  # what HF_HUB_ETAG_TIMEOUT=1 sets
    hub.delay(60, record.hub.repo_id, record.hub.filename)
    sleeps = _no_backoff(monkeypatch)
    with pytest.raises(HubConnectionError, match="within 1 s"):
        zoo.create(TAG, pretrained=True)
    assert hub.count(None, record.hub.repo_id, record.hub.filename) == 0  # no answer awaited
    assert sleeps == []


def _child(script: str, env: dict[str, str] | None = None, timeout: float = 240) -> \
        subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], env=full_env,
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


_LOAD = """
import json, sys, torch, zoo
from zoo.registry import WeightsRecord, registry
for tag, rec in json.loads(sys.argv[1] if len(sys.argv) > 1 else {records!r}).items():
    registry().records[tag] = WeightsRecord.model_validate(rec)
"""


def _records_script(records: dict, body: str) -> str:
    payload = json.dumps({t: r.model_dump(mode="json") for t, r in records.items()})
    return textwrap.dedent(_LOAD).format(records=payload) + textwrap.dedent(body)


@pytest.mark.slow
def test_offline_cached_works_without_requests_uncached_says_how(hub, publish, source,
                                                                tmp_path) -> None:
    cached = publish(TAG, source.state_dict())
    other = publish(f"{NAME}.hubtest_uncached", source.state_dict())
    zoo.create(TAG, pretrained=True)  # fills the cache
    torch.save(_x(), tmp_path / "x.pt")
    hub.reset_log()
    script = _records_script({TAG: cached, f"{NAME}.hubtest_uncached": other}, f"""
        from zoo.errors import WeightsNotCachedError
        x = torch.load({str(tmp_path / 'x.pt')!r})
        with torch.no_grad():
            torch.save(zoo.create({TAG!r}, pretrained=True)(x), {str(tmp_path / 'y.pt')!r})
        try:
            zoo.create("{NAME}.hubtest_uncached", pretrained=True)
        except WeightsNotCachedError as e:
            print("NOT CACHED:", e)
    """)
    proc = _child(script, {"HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr
    assert hub.requests == []  # offline: not a single request, cached or not
    torch.testing.assert_close(torch.load(tmp_path / "y.pt"), _out(source), rtol=1e-5, atol=1e-5)
    message = proc.stdout.split("NOT CACHED:", 1)[1]
    assert "HF_HUB_OFFLINE" in message and f"zoo download {NAME}.hubtest_uncached" in message


@pytest.mark.slow
def test_eight_processes_cold_cache_download_once(hub, publish, source, tmp_path) -> None:
    record = publish(TAG, source.state_dict())
    hub.delay(0.5, record.hub.repo_id, record.hub.filename)  # widen the race window
    go = tmp_path / "go"
    script = _records_script({TAG: record}, f"""
        import os, time
        while not os.path.exists({str(go)!r}):
            time.sleep(0.01)
        model = zoo.create({TAG!r}, pretrained=True)
        torch.save(model.state_dict(), {str(tmp_path)!r} + f"/y{{os.getpid()}}.pt")
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", script], env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(8)]
    time.sleep(1.0)
    go.touch()
    results = [p.communicate(timeout=480) for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, [r[1][-2000:] for r in results]
    outputs = sorted(tmp_path.glob("y*.pt"))
    assert len(outputs) == 8
    expected = source.state_dict()
    for path in outputs:  # every process holds exactly the published tensors
        loaded = torch.load(path)
        assert loaded.keys() == expected.keys()
        assert all(torch.equal(loaded[k], expected[k]) for k in expected)
    assert hub.count("GET", record.hub.repo_id, record.hub.filename) == 1
    assert hub.count("HEAD", record.hub.repo_id, record.hub.filename) >= 1
