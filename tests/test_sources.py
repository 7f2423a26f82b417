"""Downloading original checkpoints from their hosts (zoo.weights.sources/download/fetch), over
real HTTP against the source emulator on 127.0.0.1: every host kind, Google Drive's confirmation
step, and hosts that misbehave (HTML instead of the file, wrong sizes, stalls, error codes, bad
redirects) -- each refused with a clear error and no partial file left behind."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from zoo.errors import SourceChecksumError, SourceDownloadError, WeightsError
from zoo.registry import registry, update_file
from zoo.weights.download import http_download
from zoo.weights.fetch import get_source, sources_dir
from zoo.weights.sources import plan_source, rewrite

ZIP = b"PK\x03\x04"  # what a torch.save file starts with


def _blob(n: int = 300_000, seed: int = 0) -> bytes:
    return ZIP + hashlib.shake_256(str(seed).encode()).digest(n)


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# -- plans: every registry source gets one -----------------------------------------------------

def test_every_registry_source_has_a_plan() -> None:
    kinds = {}
    for tag, rec in registry().records.items():
        plan = plan_source(rec.source.url)
        kinds[tag] = plan.kind
        assert plan.downloadable == (plan.kind != "manual")
        if plan.kind == "manual":
            assert plan.reason and plan.download_url is None
        elif plan.kind == "hub":
            repo, rev, filename = plan.hub
            assert rec.source.url.endswith(f"{repo}/resolve/{rev}/{filename}")
        else:
            assert plan.download_url.startswith("https://")
    by_host = {"sharepoint.com": "manual", "1drv.ms": "manual", "drive.google.com": "gdrive",
               "github.com": "github", "huggingface.co": "hub", "zenodo.org": "zenodo",
               "dropbox.com": "dropbox"}
    for tag, kind in kinds.items():
        host = registry().records[tag].source.url.split("/")[2]
        expected = next((v for k, v in by_host.items() if host.endswith(k)), "direct")
        assert kind == expected, (tag, host, kind)
    assert {"manual", "gdrive", "github", "hub", "direct"} <= set(kinds.values())


@pytest.mark.parametrize("url, kind, download", [
    ("https://drive.google.com/file/d/1cCla-OQNIAn-rjsY2b832DuP59ZKr8uh/view?usp=sharing",
     "gdrive", "https://drive.google.com/uc?export=download&id=1cCla-OQNIAn-rjsY2b832DuP59ZKr8uh"),
    ("https://drive.google.com/open?id=1cCla-OQNIAn-rjsY2b832DuP59ZKr8uh", "gdrive",
     "https://drive.google.com/uc?export=download&id=1cCla-OQNIAn-rjsY2b832DuP59ZKr8uh"),
    ("https://zenodo.org/records/42/files/w.pth", "zenodo",
     "https://zenodo.org/records/42/files/w.pth?download=1"),
    ("https://www.dropbox.com/s/k3y/w.pth?dl=0", "dropbox",
     "https://www.dropbox.com/s/k3y/w.pth?dl=1"),
    ("https://pan.baidu.com/s/1abc", "manual", None),
    ("https://onedrive.live.com/?cid=1", "manual", None),
    ("https://drive.google.com/drive/folders/x", "manual", None),
])
def test_plans_of_hosts(url, kind, download) -> None:
    plan = plan_source(url)
    assert (plan.kind, plan.download_url) == (kind, download)


def test_only_https_sources() -> None:
    with pytest.raises(WeightsError, match="https only"):
        plan_source("http://example.org/w.pth")


@pytest.mark.parametrize("setting", ["github.com", "github.com=ftp://x", "github.com=http://",
                                     "git hub=http://127.0.0.1:1", "a=http://h/?q=1",
                                     "*=http://h/{path}"])
def test_a_malformed_rewrite_setting_is_an_error(monkeypatch, setting) -> None:
    monkeypatch.setenv("ZOO_SOURCE_REWRITE", setting)
    with pytest.raises(WeightsError, match="ZOO_SOURCE_REWRITE"):
        rewrite("https://github.com/a/b")


def test_rewrite_keeps_path_and_query(monkeypatch) -> None:
    monkeypatch.setenv("ZOO_SOURCE_REWRITE", "zenodo.org=http://127.0.0.1:9/z, x.org=https://m")
    assert rewrite("https://zenodo.org/r/1/f.pth?download=1") == \
        ("http://127.0.0.1:9/z/r/1/f.pth?download=1", True)
    assert rewrite("https://other.org/f.pth") == ("https://other.org/f.pth", False)
    monkeypatch.setenv("ZOO_SOURCE_REWRITE", "*=http://127.0.0.1:9/{host}, x.org=https://m")
    assert rewrite("https://other.org/f.pth")[0] == "http://127.0.0.1:9/other.org/f.pth"
    assert rewrite("https://x.org/f.pth")[0] == "https://m/f.pth"


# -- every host kind, for real ---------------------------------------------------------------

HOSTED = [
    ("https://drive.google.com/file/d/1FDTpva6y-I_bKmyVmLFDn_3BlDq3dwni", {"drive_confirm": True}),
    ("https://drive.google.com/file/d/1xzG4VQyQyxWJfQTcGCE-fuMuK3BwPCjK",
     {"drive_confirm": True, "drive_flow": "legacy"}),
    ("https://drive.google.com/file/d/1uSWvoVLHmOH6rNYiXSxD_rlN5dSBvEm3", {}),  # small: no page
    ("https://github.com/szq0214/MEAL-V2/releases/download/v1.0.0/MEALV2_ResNet50_224.pth", {}),
    ("https://zenodo.org/records/42/files/w.pth", {}),
    ("https://www.dropbox.com/s/k3y/w.pth?dl=0", {}),
    ("https://idstcv.oss-cn-zhangjiakou.aliyuncs.com/DeepMAD/DeepMAD-R18/R18.pth.tar", {}),
]


@pytest.mark.parametrize("url, options", HOSTED, ids=lambda v: str(v)[8:40])
def test_each_host_yields_the_exact_bytes(sources, tmp_path, url, options) -> None:
    data = _blob()
    sources.add(url, data, **options)
    got = http_download(plan_source(url), tmp_path, fmt="pickle", what="t")
    assert got.path.read_bytes() == data and got.size == len(data)
    assert got.sha256 == hashlib.sha256(data).hexdigest()
    assert got.path.parent == tmp_path and got.path.name.startswith(".download-")
    if options.get("drive_confirm"):
        assert "confirmation page" in got.how
        # the warning page was answered, then the file came: two answers from the last endpoint
        assert sources.count(path_contains="/download") + sources.count(path_contains="/uc") >= 2


def test_a_served_file_name_cannot_leave_the_folder(sources, tmp_path) -> None:
    url = HOSTED[4][0]
    sources.add(url, _blob(), filename="../../etc/x y.pth")
    got = http_download(plan_source(url), tmp_path / "dl", fmt="pickle", what="t")
    assert got.filename == "x_y.pth" and got.path.parent == tmp_path / "dl"
    assert [p.name for p in tmp_path.iterdir()] == ["dl"]


def test_drive_quota_page_is_named(sources, tmp_path) -> None:
    url = HOSTED[0][0]
    sources.add(url, _blob(), drive_confirm=True)
    sources.fault(url, "quota")
    with pytest.raises(SourceDownloadError, match="quota is exceeded.*--from-dir"):
        http_download(plan_source(url), tmp_path, fmt="pickle", what="t")
    assert _files(tmp_path) == []


@pytest.mark.parametrize("fault", ["html", "html_octet"])
def test_an_html_page_instead_of_the_file_is_refused(sources, tmp_path, fault) -> None:
    url = HOSTED[3][0]
    sources.add(url, _blob())
    sources.fault(url, fault)
    with pytest.raises(SourceDownloadError, match="HTML page instead of the file"):
        http_download(plan_source(url), tmp_path, fmt="pickle", what="t")
    assert _files(tmp_path) == []


def test_a_text_file_is_not_a_checkpoint(sources, tmp_path) -> None:
    url = HOSTED[6][0]
    sources.add(url, b"AccessDenied: this bucket is private\n" * 100)
    with pytest.raises(SourceDownloadError, match="did not send a pickle checkpoint"):
        http_download(plan_source(url), tmp_path, fmt="pickle", what="t")
    with pytest.raises(SourceDownloadError, match="safetensors header"):
        http_download(plan_source(url), tmp_path, fmt="safetensors", what="t")
    assert _files(tmp_path) == []


def test_error_status_is_not_retried(sources, tmp_path) -> None:
    url = HOSTED[6][0]
    sources.add(url, _blob())
    sources.fault(url, "status", status=404)
    with pytest.raises(SourceDownloadError, match="404"):
        http_download(plan_source(url), tmp_path, fmt="pickle", what="t")
    assert sources.count(path_contains="R18.pth.tar") == 1


def test_a_server_error_is_retried(sources, tmp_path) -> None:
    url = HOSTED[6][0]
    data = _blob()
    sources.add(url, data)
    sources.fault(url, "status", status=503, times=1)
    assert http_download(plan_source(url), tmp_path, fmt="pickle", what="t").path.read_bytes() \
        == data
    assert sources.count(path_contains="R18.pth.tar") == 2


def test_a_short_body_is_retried_then_refused(sources, tmp_path) -> None:
    url = HOSTED[6][0]
    data = _blob()
    sources.add(url, data)
    sources.fault(url, "length", length=len(data) + 1000)  # announces more than it sends
    with pytest.raises(SourceDownloadError, match="failed 3 times.*ended after"):
        http_download(plan_source(url), tmp_path, fmt="pickle", what="t")
    assert sources.count(path_contains="R18.pth.tar") == 3
    assert _files(tmp_path) == []


def test_a_size_other_than_the_registry_s_is_refused_before_the_body(sources, tmp_path) -> None:
    url = HOSTED[6][0]
    data = _blob()
    sources.add(url, data)
    with pytest.raises(SourceDownloadError, match=f"announces {len(data)} bytes where the "
                       f"registry records {len(data) - 1}"):
        http_download(plan_source(url), tmp_path, fmt="pickle", what="t",
                      expected_size=len(data) - 1)
    assert _files(tmp_path) == []


def test_the_size_cap(sources, tmp_path, monkeypatch) -> None:
    url = HOSTED[6][0]
    sources.add(url, _blob(5000))
    monkeypatch.setenv("ZOO_SOURCE_MAX_BYTES", "4096")
    with pytest.raises(SourceDownloadError, match="over the 4096-byte cap"):
        http_download(plan_source(url), tmp_path, fmt="pickle", what="t")
    assert _files(tmp_path) == []


def test_a_stall_is_retried(sources, tmp_path) -> None:
    url = HOSTED[3][0]
    data = _blob()
    sources.add(url, data)
    sources.fault(url, "stall", after=70_000, seconds=30, times=1)
    assert http_download(plan_source(url), tmp_path, fmt="pickle", what="t").path.read_bytes() \
        == data
    assert _files(tmp_path) != [] and len(_files(tmp_path)) == 1


def test_a_host_that_keeps_stalling_fails_in_bounded_time(sources, tmp_path) -> None:
    import time

    url = HOSTED[3][0]
    sources.add(url, _blob())
    sources.fault(url, "stall", after=70_000, seconds=30)
    start = time.monotonic()
    with pytest.raises(SourceDownloadError, match=r"stalled after \d+ bytes \(no data for 2 s\)"):
        http_download(plan_source(url), tmp_path, fmt="pickle", what="t")
    assert time.monotonic() - start < 20  # 3 attempts x ZOO_SOURCE_TIMEOUT=2 s, plus back-off
    assert sources.count("github.com") == 3  # each attempt starts over
    assert sources.count(path_contains="github-production-release-asset") == 3
    assert _files(tmp_path) == []


@pytest.mark.parametrize("fault, message", [("redirect_loop", "more than 10 redirects"),
                                            ("redirect_http", "not https; refused")])
def test_bad_redirects_are_refused(sources, tmp_path, fault, message) -> None:
    url = HOSTED[4][0]
    sources.add(url, _blob())
    sources.fault(url, fault)
    with pytest.raises(SourceDownloadError, match=message):
        http_download(plan_source(url), tmp_path, fmt="pickle", what="t")
    assert _files(tmp_path) == []


# -- the source cache and the registry's pins --------------------------------------------------

def test_tags_that_share_an_original_download_it_once(sources, registry_copy) -> None:
    a0, a1 = "bignas_attentivenas_a0.in1k", "bignas_attentivenas_a1.in1k"
    url = registry().get(a0).source.url
    assert registry().get(a1).source.url == url
    data = _blob(seed=1)
    sources.add(url, data, drive_confirm=True)
    first, second = get_source(a0), get_source(a1)
    assert first.path == second.path and first.path.read_bytes() == data
    assert not first.cached and "confirmation page" in first.how
    assert second.cached and "source cache" in second.how
    assert sources.count("drive.usercontent.google.com") == 2  # page + file, once
    assert first.pinned is None and "not pinned" in first.pin_note()
    assert [p.name for p in _files(sources_dir() / "blobs")
            if not p.name.endswith(".zoo-sha256")] == [first.path.name]


def test_a_pinned_sha256_is_checked(sources, registry_copy) -> None:
    tag = "deepmad_r18.in1k"
    rec = registry().get(tag)
    data = _blob(seed=2)
    sources.add(rec.source.url, data)
    wrong = rec.model_dump(mode="json", exclude_none=True)
    wrong["source"]["sha256"] = "0" * 64
    update_file(registry().sources[tag], tag, wrong)
    with pytest.raises(SourceChecksumError, match="not the file the registry records"):
        get_source(tag)
    assert _files(sources_dir() / "blobs") == []  # the wrong file is not kept
    right = dict(wrong, source={**wrong["source"], "sha256": hashlib.sha256(data).hexdigest()})
    update_file(registry().sources[tag], tag, right)
    got = get_source(tag)
    assert got.pinned and "matches the registry" in got.pin_note()


def test_a_release_file_name_s_hash_prefix_is_checked(sources, registry_copy) -> None:
    tag = "simplenetv1_5m_m1.in1k"  # simplenetv1_5m_m1-36c4ca4d.pth
    sources.add(registry().get(tag).source.url, _blob(seed=3))
    with pytest.raises(SourceChecksumError, match="36c4ca4d"):
        get_source(tag)
    assert _files(sources_dir() / "blobs") == []


def test_manual_hosts_take_a_file_from_dir(sources, registry_copy, tmp_path) -> None:
    tag = "ofq_deit_tiny_w2a2.in1k"
    with pytest.raises(SourceDownloadError, match=f"save it as <folder>/{tag}.pth.*--from-dir"):
        get_source(tag)
    (tmp_path / f"{tag}.pth.tar").write_bytes(_blob(seed=4))
    got = get_source(tag, from_dir=tmp_path)
    assert got.path == tmp_path / f"{tag}.pth.tar" and "--from-dir" in got.how
    assert sources.requests == []  # nothing was downloaded
    (tmp_path / f"{tag}.pt").write_bytes(b"x")
    with pytest.raises(WeightsError, match="several files"):
        get_source(tag, from_dir=tmp_path)


def test_the_parent_checks_what_the_conversion_wrote(tmp_path) -> None:
    import zoo
    from zoo.errors import CorruptWeightsError
    from zoo.weights.fetch import check_folder

    name = "simplenetv1_small_m1_05"
    folder = zoo.save_pretrained(zoo.create(name), tmp_path / "out", tag="in1k")
    assert check_folder(folder, f"{name}.in1k") == hashlib.sha256(
        (folder / "model.safetensors").read_bytes()).hexdigest()
    with pytest.raises(CorruptWeightsError, match=f"not {name}.other"):
        check_folder(folder, f"{name}.other")
    with pytest.raises(CorruptWeightsError, match="not simplenetv1_small_m2_05.in1k"):
        check_folder(folder, "simplenetv1_small_m2_05.in1k")


def test_a_cached_source_is_re_verified(sources, registry_copy) -> None:
    tag = "deepmad_r34.in1k"
    url = registry().get(tag).source.url
    sources.add(url, _blob(seed=5))
    first = get_source(tag)
    with open(first.path, "r+b") as f:  # the cached file changes behind zoo's back
        f.seek(100)
        f.write(b"\x00\x01\x02")
    os.utime(first.path, ns=(1, 1))
    again = get_source(tag)  # re-hashed, found wrong, removed, downloaded anew
    assert again.sha256 == first.sha256 and not again.cached
    assert sources.count(path_contains="R34.pth.tar") == 2


# -- a source's tensor files (source.tensors: EBV's basis vectors) ------------------------------

EBV = "ebv_resnet50.in1k"
_TENSOR = {"url": "https://github.com/o/r/raw/0123abc/EBV_pkl/eq_8_12.pkl", "sha256": "a" * 64,
           "size": 500}


def _record_with(tensors) -> dict:
    return {"t.x": {"license": "mit", "source": {
        "url": "https://github.com/o/r/releases/download/v1/w.pth", "converter": "zoo convert",
        "tensors": tensors}}}


def test_a_tensor_file_entry_parses() -> None:
    from zoo.registry import parse_file

    rec = parse_file({"weights": _record_with({"basis": _TENSOR})}, "t")["t.x"]
    assert rec.source.tensors["basis"].sha256 == "a" * 64
    assert rec.source.tensors["basis"].format == "pickle"


@pytest.mark.parametrize("tensors, where", [
    ({"basis": {**_TENSOR, "md5": "x"}}, ".tensors.basis.md5"),
    ({"basis": {**_TENSOR, "url": "http://github.com/o/r/raw/x/b.pkl"}}, ".tensors.basis.url"),
    ({"basis": {**_TENSOR, "url": "https://"}}, ".tensors.basis.url"),
    ({"basis": {**_TENSOR, "sha256": "A" * 64}}, ".tensors.basis.sha256"),
    ({"basis": {k: v for k, v in _TENSOR.items() if k != "sha256"}}, ".tensors.basis.sha256"),
    ({"basis": {k: v for k, v in _TENSOR.items() if k != "size"}}, ".tensors.basis.size"),
    ({"basis": {**_TENSOR, "size": 0}}, ".tensors.basis.size"),
    ({"basis": {**_TENSOR, "size": 1 << 41}}, ".tensors.basis.size"),
    ({"basis": {**_TENSOR, "format": "safetensors"}}, ".tensors.basis.format"),
    ({"a b": _TENSOR}, ".tensors: .*names must be state-dict keys"),
    ({"x=y": _TENSOR}, ".tensors: .*names must be state-dict keys"),
    ({}, ".tensors: .*an empty `tensors` map"),
    ({"basis": {**_TENSOR, "url": "https://example.org/w.pth"}}, ": .*tensor 'basis' and the checkpoint have the same URL or file name"),
    ({"a": _TENSOR, "b": {**_TENSOR, "url": _TENSOR["url"] + "?x=1"}}, ": .*tensor 'b' and tensor 'a' have the same URL or file name"),
])
def test_a_malformed_tensor_file_entry_is_refused(tensors, where) -> None:
    from zoo.errors import RegistryError
    from zoo.registry import parse_file

    with pytest.raises(RegistryError, match=f"weights.t.x.source{where}"):
        parse_file({"weights": _record_with(tensors)}, "t")


def test_ebv_record_pins_its_basis_file() -> None:
    """What the EBV record's note used to say in prose is data now: the basis file's URL (the
    repository's EBV_pkl/eq_<dim>_<classes>.pkl), its sha256 and a size that fits the spec's
    classes x dim float32 basis."""
    import zoo

    rec = registry().get(EBV)
    spec = zoo.get_spec(EBV.split(".")[0])
    basis = rec.source.tensors["basis"]
    classes, dim = spec.data.num_classes, spec.arch.dim
    assert set(rec.source.tensors) == {"basis"} and basis.format == "pickle"
    assert basis.url.endswith(f"/EBV_pkl/eq_{dim}_{classes}.pkl") and len(basis.sha256) == 64
    assert 4 * classes * dim < basis.size < 4 * classes * dim + 4096  # a pickled float32 tensor
    assert basis.sha256 not in rec.source.note and basis.url not in rec.source.note


def _sd_with_basis() -> tuple[bytes, bytes]:
    return _blob(seed=7), b"\x80\x04" + hashlib.shake_256(b"basis").digest(1000)


def _pin_basis(data: bytes) -> None:
    rec = registry().get(EBV).model_dump(mode="json", exclude_none=True)
    rec["source"]["tensors"]["basis"].update(sha256=hashlib.sha256(data).hexdigest(),
                                             size=len(data))
    update_file(registry().sources[EBV], EBV, rec)


def test_from_dir_tells_a_checkpoint_from_its_tensor_file(sources, registry_copy,
                                                          tmp_path) -> None:
    from zoo.weights.fetch import get_tensor_files

    ckpt, basis = _sd_with_basis()
    _pin_basis(basis)
    (tmp_path / f"{EBV}.pth").write_bytes(ckpt)
    (tmp_path / f"{EBV}.basis.pkl").write_bytes(basis)
    assert get_source(EBV, from_dir=tmp_path).path == tmp_path / f"{EBV}.pth"
    got = get_tensor_files(EBV, from_dir=tmp_path)
    assert list(got) == ["basis"] and got["basis"].path == tmp_path / f"{EBV}.basis.pkl"
    assert got["basis"].pinned and "--from-dir" in got["basis"].how
    assert sources.requests == []
    (tmp_path / f"{EBV}.basis.pkl").write_bytes(basis[:-1])  # a truncated copy
    with pytest.raises(SourceChecksumError, match=f"{EBV}.basis.pkl \\(the 'basis' tensor"):
        get_tensor_files(EBV, from_dir=tmp_path)


def test_a_tensor_file_without_a_direct_download_is_manual(sources, registry_copy,
                                                           tmp_path) -> None:
    from zoo.publish.mirror import make_plan
    from zoo.weights.fetch import fetch_tag

    rec = registry().get(EBV).model_dump(mode="json", exclude_none=True)
    rec["source"]["tensors"]["basis"]["url"] = "https://1drv.ms/u/s!basis"
    update_file(registry().sources[EBV], EBV, rec)
    (step,) = make_plan("example-org", EBV)
    assert step.action == "manual" and "1drv.ms/u/s!basis by hand" in step.detail
    assert f"save it as DIR/{EBV}.basis.pkl" in step.detail
    with pytest.raises(SourceDownloadError, match=f"{EBV} tensor file basis: .* no direct "
                       f"download .*save it as <folder>/{EBV}.basis.pkl"):
        fetch_tag(EBV)
    assert sources.requests == [] and not (sources_dir() / "blobs").exists()
    (tmp_path / f"{EBV}.basis.pkl").write_bytes(b"\x80")
    (step,) = make_plan("example-org", EBV, from_dir=tmp_path)
    assert step.action == "mirror" and f"basis: https://1drv.ms" in step.detail
