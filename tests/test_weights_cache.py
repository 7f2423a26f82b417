"""zoo's weights cache (``zoo.weights.cache``): hashing, verification stamps, the converted-
checkpoint folders and their conversion records."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from zoo.errors import ChecksumMismatchError, CorruptWeightsError
from zoo.weights import cache
from zoo.weights.folder import WEIGHTS_NAME


@pytest.fixture
def zoo_cache(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "zc"))
    return tmp_path / "zc"


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("chunk", [1, 7, 8 << 20])
def test_sha256_file_any_chunk(tmp_path: Path, chunk: int) -> None:
    data = os.urandom(1000)
    (tmp_path / "f").write_bytes(data)
    assert cache.sha256_file(tmp_path / "f", chunk) == _digest(data)
    assert cache.sha256_file(str(tmp_path / "f")) == _digest(data)


def test_verify_writes_a_stamp_and_trusts_it(tmp_path: Path) -> None:
    f = tmp_path / "w.safetensors"
    f.write_bytes(b"abc")
    cache.verify_file(f, _digest(b"abc"), 3, "w")
    stamp = tmp_path / "w.safetensors.zoo-sha256"
    st = f.stat()
    assert stamp.read_text() == f"{_digest(b'abc')} 3 {st.st_mtime_ns}"
    # same size, same mtime, other content: the stamp is trusted (that is what it is for) ...
    f.write_bytes(b"xyz")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    cache.verify_file(f, _digest(b"abc"), 3, "w")
    # ... but not by zoo verify, which re-hashes and removes the file
    with pytest.raises(ChecksumMismatchError):
        cache.verify_file(f, _digest(b"abc"), 3, "w", trust_stamp=False)
    assert not f.exists() and not stamp.exists()


def test_a_stamp_for_another_hash_or_mtime_is_not_trusted(tmp_path: Path) -> None:
    f = tmp_path / "w"
    f.write_bytes(b"abc")
    cache.verify_file(f, _digest(b"abc"), None, "w")
    with pytest.raises(ChecksumMismatchError):  # the stamp vouches for another hash
        cache.verify_file(f, _digest(b"zzz"), None, "w")
    f.write_bytes(b"abc")
    cache.verify_file(f, _digest(b"abc"), None, "w")
    stamp = tmp_path / "w.zoo-sha256"
    stamp.write_text(f"{_digest(b'abc')} 3 {f.stat().st_mtime_ns + 1}")  # another mtime
    f.write_bytes(b"xyz")
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns))
    with pytest.raises(ChecksumMismatchError):
        cache.verify_file(f, _digest(b"abc"), None, "w")


def test_mismatch_removes_the_blob_and_its_link(tmp_path: Path) -> None:
    blob = tmp_path / "blobs" / "abc"
    blob.parent.mkdir()
    blob.write_bytes(b"evil")
    link = tmp_path / "model.safetensors"
    link.symlink_to(blob)
    with pytest.raises(ChecksumMismatchError) as err:
        cache.verify_file(link, _digest(b"good"), None, "org/repo model.safetensors")
    assert not blob.exists() and not link.is_symlink()
    assert err.value.expected == _digest(b"good") and err.value.actual == _digest(b"evil")
    assert "org/repo model.safetensors" in str(err.value)


def test_wrong_size_is_named(tmp_path: Path) -> None:
    f = tmp_path / "w"
    f.write_bytes(b"abcd")
    with pytest.raises(ChecksumMismatchError) as err:
        cache.verify_file(f, _digest(b"abcd"), 5, "the file")
    assert "the file (4 bytes where 5 are recorded)" in str(err.value)
    assert not f.exists()


def test_unwritable_stamp_still_verifies(tmp_path: Path) -> None:
    f = tmp_path / "ro" / "w"
    f.parent.mkdir()
    f.write_bytes(b"abc")
    (tmp_path / "ro" / "w.zoo-sha256").mkdir()  # the stamp can be neither read nor written
    cache.verify_file(f, _digest(b"abc"), 3, "w")
    assert f.read_bytes() == b"abc"


def test_converted_layout(zoo_cache: Path) -> None:
    assert cache.converted_path("m.t") == zoo_cache / "converted" / "m.t" / WEIGHTS_NAME


def test_conversion_record_missing_unreadable_malformed(zoo_cache: Path) -> None:
    assert cache.read_conversion_record("m.t") is None
    folder = zoo_cache / "converted" / "m.t"
    folder.mkdir(parents=True)
    (folder / "conversion.json").write_text("{not json")
    with pytest.raises(CorruptWeightsError) as err:
        cache.read_conversion_record("m.t")
    assert str(err.value).startswith(f"{folder / 'conversion.json'}: unreadable conversion record (")
    assert str(err.value).endswith("); run `zoo convert m.t <checkpoint>` again")
    for doc in ([], {"sha256": "x"}, {"size": 3}, {"sha256": 1, "size": 3}, {"sha256": "x", "size": "3"}):
        (folder / "conversion.json").write_text(json.dumps(doc))
        with pytest.raises(CorruptWeightsError) as err:
            cache.read_conversion_record("m.t")
        assert str(err.value) == (f"{folder / 'conversion.json'}: malformed conversion record; run "
                                  "`zoo convert m.t <checkpoint>` again")
    good = {"sha256": "ab" * 32, "size": 3, "source_sha256": None}
    (folder / "conversion.json").write_text(json.dumps(good))
    assert cache.read_conversion_record("m.t") == good


def test_staging_dirs_are_fresh_and_beside_the_tags(zoo_cache: Path) -> None:
    a, b = cache.staging_dir("m.t"), cache.staging_dir("m.t")
    assert a != b and a.is_dir() and b.is_dir()
    assert a.parent == zoo_cache / "converted" and a.name.startswith(".convert-")
    assert list(a.iterdir()) == []


def test_install_converted_swaps_in_with_its_record(zoo_cache: Path) -> None:
    staged = cache.staging_dir("m.t")
    (staged / WEIGHTS_NAME).write_bytes(b"weights")
    (staged / "config.json").write_text("{}")
    folder = cache.install_converted(staged, "m.t", source_sha256="cd" * 32, source_file="x.pth",
                                     extra={"source_url": "https://example.org/x.pth"})
    assert folder == zoo_cache / "converted" / "m.t"
    assert not staged.exists()
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "conversion.json", WEIGHTS_NAME]
    assert json.loads((folder / "conversion.json").read_text()) == {
        "tag": "m.t", "sha256": _digest(b"weights"), "size": 7, "source_sha256": "cd" * 32,
        "source_file": "x.pth", "source_url": "https://example.org/x.pth"}
    assert cache.read_conversion_record("m.t")["sha256"] == _digest(b"weights")

    # a second conversion replaces the first: new file, new record, nothing left over
    staged = cache.staging_dir("m.t")
    (staged / WEIGHTS_NAME).write_bytes(b"other weights")
    cache.install_converted(staged, "m.t", source_sha256=None, source_file="y.pth")
    record = cache.read_conversion_record("m.t")
    assert record == {"tag": "m.t", "sha256": _digest(b"other weights"), "size": 13,
                      "source_sha256": None, "source_file": "y.pth"}
    assert (folder / WEIGHTS_NAME).read_bytes() == b"other weights"


def test_install_converted_failure_leaves_no_staging_and_no_stale_record(zoo_cache: Path) -> None:
    staged = cache.staging_dir("m.t")
    (staged / WEIGHTS_NAME).write_bytes(b"weights")
    cache.install_converted(staged, "m.t", source_sha256=None, source_file="x.pth")
    staged = cache.staging_dir("m.t")  # no weights file in it: the install fails
    with pytest.raises(FileNotFoundError):
        cache.install_converted(staged, "m.t", source_sha256=None, source_file="y.pth")
    assert not staged.exists()
    assert cache.read_conversion_record("m.t")["source_file"] == "x.pth"


def test_a_staging_folder_made_elsewhere_installs_into_a_fresh_cache(tmp_path: Path, zoo_cache: Path) -> None:
    staged = tmp_path / "mine"
    staged.mkdir()
    (staged / WEIGHTS_NAME).write_bytes(b"w")
    assert not zoo_cache.exists()
    folder = cache.install_converted(staged, "m.t", source_sha256=None, source_file="x.pth")
    assert folder == zoo_cache / "converted" / "m.t" and (folder / WEIGHTS_NAME).read_bytes() == b"w"
    assert not staged.exists()
