"""zoo's weights cache: content hashes, verification stamps, and locally converted checkpoints.

Hub downloads live in huggingface_hub's cache; zoo adds a stamp beside each verified blob so a
later load need not re-hash it.  Original checkpoints converted with ``zoo convert NAME.TAG``
live in ``<zoo cache>/converted/<tag>/`` with a conversion record (their sha256 and size, the
source's sha256) that every load checks.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from zoo.errors import ChecksumMismatchError, CorruptWeightsError
from zoo.paths import zoo_cache_dir
from zoo.weights.folder import WEIGHTS_NAME

_STAMP = ".zoo-sha256"
CONVERSION_RECORD = "conversion.json"


def sha256_file(path: str | Path, chunk: int = 8 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _stamp_path(blob: Path) -> Path:
    return blob.with_name(blob.name + _STAMP)


def _read_stamp(stamp: Path) -> str | None:
    try:
        return stamp.read_text()
    except (OSError, UnicodeDecodeError):  # none, or not a file zoo wrote: re-hash
        return None


def verify_file(path: Path, sha256: str, size: int | None, what: str, *,
                trust_stamp: bool = True) -> None:
    """Check ``path`` against the expected size and sha256; remove it on mismatch.

    A verified file gets a stamp (hash, size, mtime) beside its cache blob so that later loads
    need not re-hash it; ``zoo verify`` re-hashes regardless (``trust_stamp=False``).
    """
    blob = path.resolve()
    st = blob.stat()
    stamp = _stamp_path(blob)
    token = f"{sha256} {st.st_size} {st.st_mtime_ns}"
    if trust_stamp and _read_stamp(stamp) == token:
        return
    actual = sha256_file(blob)
    wrong_size = size is not None and st.st_size != size
    if actual != sha256 or wrong_size:
        stamp.unlink(missing_ok=True)
        blob.unlink(missing_ok=True)
        if path.is_symlink() or path.exists():
            path.unlink(missing_ok=True)
        if wrong_size:  # the error still names the actual hash, the size says why
            what = f"{what} ({st.st_size} bytes where {size} are recorded)"
        raise ChecksumMismatchError(what, sha256, actual)
    try:
        stamp.write_text(token)
    except OSError:  # a read-only cache still loads, it just re-hashes next time
        pass


def converted_path(tag: str) -> Path:
    """Where ``zoo convert NAME.TAG CKPT`` stores a converted original checkpoint."""
    return zoo_cache_dir() / "converted" / tag / WEIGHTS_NAME


def read_conversion_record(tag: str) -> dict[str, Any] | None:
    """What ``zoo convert`` recorded beside a converted file (its sha256 and size, the source's
    sha256), or None for a file converted without one."""
    path = converted_path(tag).with_name(CONVERSION_RECORD)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise CorruptWeightsError(f"{path}: unreadable conversion record ({e}); run `zoo convert "
                                  f"{tag} <checkpoint>` again") from None
    if not (isinstance(doc, dict) and isinstance(doc.get("sha256"), str)
            and isinstance(doc.get("size"), int)):
        raise CorruptWeightsError(f"{path}: malformed conversion record; run `zoo convert {tag} "
                                  "<checkpoint>` again")
    return doc


def staging_dir(tag: str) -> Path:
    """A fresh folder beside the tag's cache folder to write a conversion into (same file
    system, so :func:`install_converted` can swap it in with renames)."""
    parent = converted_path(tag).parent.parent
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".convert-", dir=parent))


def install_converted(staged: Path, tag: str, *, source_sha256: str | None,
                      source_file: str, extra: dict[str, Any] | None = None) -> Path:
    """Move a staged save_pretrained folder into the tag's cache folder, with its conversion
    record written last (a reader never checks a new file against an old hash); the staging
    folder is removed whatever happens.  ``extra``: more provenance for the record (``zoo
    fetch``: the source's size, URL, whether the registry pinned its hash).  Returns the tag's
    folder."""
    target = converted_path(tag)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        record = {"tag": tag, "sha256": sha256_file(staged / WEIGHTS_NAME),
                  "size": (staged / WEIGHTS_NAME).stat().st_size, "source_sha256": source_sha256,
                  "source_file": source_file, **(extra or {})}
        (staged / CONVERSION_RECORD).write_text(json.dumps(record, indent=2))
        (target.parent / CONVERSION_RECORD).unlink(missing_ok=True)
        for item in sorted(p.name for p in staged.iterdir() if p.name != CONVERSION_RECORD):
            os.replace(staged / item, target.parent / item)
        os.replace(staged / CONVERSION_RECORD, target.parent / CONVERSION_RECORD)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return target.parent
