"""``zoo fetch``: a registry tag's original checkpoint downloaded from its host, checked,
converted in a separate process and installed into zoo's cache as a verified safetensors file.

1. :func:`get_source`: the original file -- from ``--from-dir``, from zoo's source cache
   (``<zoo cache>/sources/``: ``blobs/<sha256>/<name>`` + ``by-url/<key>.json``, re-verified on
   every use), or downloaded (:mod:`.download`; one download per URL, under a file lock, so tags
   that share a checkpoint -- BigNAS children of one supernet -- share it).  Its sha256 is
   checked against the registry where the registry pins one (the full hash, or the prefix a
   torch.hub-style file name carries), else recorded as seen.
2. :func:`convert_in_subprocess`: ``python -m zoo convert TAG FILE --out DIR --check`` in a child
   process (``HF_HUB_OFFLINE=1``): the only place the pickle is read, with ``weights_only``
   loading and zoo's allow-list; it loads the result strictly and compares a forward pass.  The
   child is zoo's own command line, reached through a process boundary, never imported here.
3. :func:`check_folder`: the folder the child wrote is checked again here from its safetensors
   and config.json alone (names this model and tag, readable tensors), then installed with a
   conversion record that later loads check (:func:`zoo.weights.cache.install_converted`).

By default zoo never unpickles anything from the network by itself: ``zoo.create(...,
pretrained=True)`` on a source-only tag names the ``zoo fetch`` command, unless
``ZOO_ALLOW_SOURCE_FETCH=1`` lets it run this on its own.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo import yamlio
from zoo.errors import (CheckpointError, CorruptWeightsError, SourceChecksumError,
                        SourceDownloadError, WeightsError)
from zoo.paths import zoo_cache_dir
from zoo.registry import registry
from zoo.version import __version__
from zoo.weights.cache import (converted_path, install_converted, sha256_file, staging_dir,
                               verify_file)
from zoo.weights.download import Downloaded, http_download, hub_source_download
from zoo.weights.folder import CONFIG_NAME, WEIGHTS_NAME, read_config
from zoo.weights.sources import (ALLOW_ENV, SourcePlan, plan_source, release_hash_prefix,
                                 safe_filename)

if TYPE_CHECKING:
    from zoo.registry import WeightsRecord

def sources_dir() -> Path:
    return zoo_cache_dir() / "sources"


@dataclass(frozen=True)
class SourceFile:
    """A local, hashed original checkpoint of a tag.

    ``pinned``: what the registry pins (a full sha256 or a file-name prefix; None: nothing, so
    the hash is what was seen); ``origin``: where the bytes came from (the final URL, a Hub
    commit, a --from-dir file); ``via``: the host or folder, in words; ``cached``: taken from
    zoo's source cache (downloaded before)."""

    path: Path
    sha256: str
    size: int
    pinned: str | None
    origin: str
    via: str
    cached: bool = False

    @property
    def how(self) -> str:
        return f"from zoo's source cache ({self.via})" if self.cached else self.via

    def pin_note(self) -> str:
        if self.pinned is None:
            return ("not pinned by the registry: recorded as downloaded (compare it with the "
                    "publisher's hash if one is published)")
        if len(self.pinned) < 64:
            return f"starts with {self.pinned}, the hash prefix in its release file name: checked"
        return "matches the registry's sha256: checked"


def expected_hash(record: WeightsRecord) -> str | None:
    """The registry's pin on a tag's original: its sha256, else a release file name's prefix."""
    return record.source.sha256 or release_hash_prefix(record.source.url)


def _check_pin(tag: str, record: WeightsRecord, sha256: str, what: Path | str) -> None:
    pinned = expected_hash(record)
    if pinned and not sha256.startswith(pinned):
        raise SourceChecksumError(f"{what} (the original checkpoint of {tag})", pinned, sha256,
                                  record.source.url)


def manual_name_hint(tag: str, plan: SourcePlan) -> str:
    return f"{tag}{Path(plan.filename).suffix if plan.filename else '.pth'}"


def find_in_dir(folder: Path, tag: str, plan: SourcePlan) -> Path | None:
    """The file for ``tag`` in a ``--from-dir`` folder: named ``<tag>`` or ``<tag>.<ext>``, or
    named as in the source URL; None if there is none; an error if several match."""
    if not folder.is_dir():
        raise WeightsError(f"--from-dir {folder}: no such folder")
    found = sorted(p for p in folder.iterdir() if p.is_file() and (
        p.name == tag or p.name.startswith(tag + ".")
        or (plan.filename is not None and p.name == plan.filename)))
    tagged = [p for p in found if p.name == tag or p.name.startswith(tag + ".")]
    found = tagged or found
    if len(found) > 1:
        raise WeightsError(f"--from-dir {folder}: several files for {tag} "
                           f"({', '.join(p.name for p in found)}); keep one")
    return found[0] if found else None


def _url_key(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:32]


def _cached_source(url: str) -> tuple[Path, dict[str, Any]] | None:
    """The cached download of ``url``, re-verified (its stamp, or a re-hash), or None."""
    index = sources_dir() / "by-url" / f"{_url_key(url)}.json"
    try:
        doc = json.loads(index.read_text())
        sha, size, name = doc["sha256"], doc["size"], doc["filename"]
        if doc.get("url") != url or safe_filename(name) != name or len(sha) != 64 \
                or not all(c in "0123456789abcdef" for c in sha) or not isinstance(size, int):
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    blob = sources_dir() / "blobs" / sha / name
    if not blob.is_file():
        return None
    try:
        verify_file(blob, sha, size, f"cached download of {url}")
    except WeightsError:  # removed by verify_file; download again
        return None
    return blob, doc


def _forget_source(url: str, blob: Path) -> None:
    (sources_dir() / "by-url" / f"{_url_key(url)}.json").unlink(missing_ok=True)
    for path in (blob, blob.with_name(blob.name + ".zoo-sha256")):  # and verify_file's stamp
        path.unlink(missing_ok=True)


def _store(downloaded: Downloaded, url: str, fmt: str) -> tuple[Path, dict[str, Any]]:
    """Move a verified temporary download into the source cache and index it by URL (a
    safetensors original keeps that suffix: the converter goes by it)."""
    name = downloaded.filename
    if fmt == "safetensors" and not name.endswith(".safetensors"):
        name = safe_filename(name + ".safetensors")
    blob = sources_dir() / "blobs" / downloaded.sha256 / name
    blob.parent.mkdir(parents=True, exist_ok=True)
    os.replace(downloaded.path, blob)
    doc = {"url": url, "sha256": downloaded.sha256, "size": downloaded.size,
           "filename": name, "origin": downloaded.final_url, "how": downloaded.how}
    index = sources_dir() / "by-url" / f"{_url_key(url)}.json"
    yamlio.atomic_write_text(index, json.dumps(doc, indent=2))
    return blob, doc


def _given_or_reachable(tag: str, plan: SourcePlan, from_dir: str | Path | None) -> Path | None:
    """The ``--from-dir`` file for ``tag``, else None if the source can be downloaded; an error
    for a host without a direct download (before anything is written)."""
    given = find_in_dir(Path(from_dir), tag, plan) if from_dir is not None else None
    if given is None and not plan.downloadable:
        hint = f" (not found in --from-dir {from_dir})" if from_dir is not None else ""
        raise SourceDownloadError(
            f"{tag}: {plan.url} has no direct download ({plan.reason}){hint}. Download it by "
            f"hand, save it as <folder>/{manual_name_hint(tag, plan)}, then pass --from-dir "
            "<folder>")
    return given


def get_source(tag: str, *, from_dir: str | Path | None = None,
               progress: bool = False) -> SourceFile:
    """The original checkpoint of a registry tag as a local file, hashed and checked against
    the registry's pin (see the module doc)."""
    from filelock import FileLock

    record = registry().get(tag)
    plan = plan_source(record.source.url)
    what = f"{tag} original"
    pinned = expected_hash(record)
    given = _given_or_reachable(tag, plan, from_dir)
    if given is not None:
        sha = sha256_file(given)
        _check_pin(tag, record, sha, given)
        return SourceFile(given, sha, given.stat().st_size, pinned, f"file {given}",
                          f"--from-dir ({given.name})")
    url = record.source.url
    locks = sources_dir() / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    with FileLock(str(locks / f"{_url_key(url)}.lock")):
        cached = _cached_source(url)
        if cached is not None and pinned and not cached[1]["sha256"].startswith(pinned):
            _forget_source(url, cached[0])  # cached before the registry pinned another file
            cached = None
        if cached is None:
            folder = sources_dir() / "blobs"
            if plan.kind == "hub":
                downloaded = hub_source_download(plan, folder, fmt=record.source.format,
                                                 expected_size=record.source.size, what=what)
            else:
                downloaded = http_download(plan, folder, fmt=record.source.format,
                                           expected_size=record.source.size, what=what,
                                           progress=progress)
            try:
                _check_pin(tag, record, downloaded.sha256, url)
            except SourceChecksumError:
                downloaded.path.unlink(missing_ok=True)
                raise
            cached = _store(downloaded, url, record.source.format)
            hit = False
        else:
            hit = True
    blob, doc = cached
    return SourceFile(blob, doc["sha256"], doc["size"], pinned, str(doc.get("origin", url)),
                      str(doc.get("how", "downloaded")), cached=hit)


def convert_in_subprocess(tag: str, checkpoint: Path, out: Path, *,
                          timeout: float | None = None) -> str:
    """Run ``zoo convert TAG CHECKPOINT --out OUT --check`` in a child process (the pickle is
    read there, weights_only, never here); return its report line.  The child gets no network
    for the Hub (``HF_HUB_OFFLINE=1``)."""
    cmd = [sys.executable, "-m", "zoo", "convert", tag, str(checkpoint), "--out", str(out),
           "--check"]
    root = str(Path(__file__).resolve().parents[2])  # the child runs this very zoo
    path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1", ALLOW_ENV: "0"}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise CheckpointError(f"{tag}: the conversion of {checkpoint.name} ran past {timeout} s; "
                              "stopped") from None
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        detail = lines[-1].removeprefix("zoo: error: ") if lines else f"exit status {proc.returncode}"
        raise CheckpointError(f"{tag}: converting {checkpoint.name} failed: {detail}")
    lines = [ln for ln in proc.stdout.strip().splitlines() if ln.strip()]
    report = lines[-1].split(" written to ")[0] if lines else tag
    return f"{report}; strict load and forward pass checked"


def check_folder(folder: Path, tag: str) -> str:
    """Check a converted folder from its own files (config.json validated, tensors readable,
    both naming this model and tag); return the weights' sha256."""
    from zoo.weights.reader import load_safetensors

    model, sub = tag.split(".", 1)
    config = read_config(folder / CONFIG_NAME)
    if config.architecture != model or config.zoo is None or config.zoo.tag != sub:
        raise CorruptWeightsError(f"{folder}: the conversion wrote a config for "
                                  f"{config.architecture}.{config.zoo.tag if config.zoo else '?'}"
                                  f", not {tag}")
    _, metadata = load_safetensors(folder / WEIGHTS_NAME, f"{tag} (converted)")
    if metadata.get("zoo_architecture") != model:
        raise CorruptWeightsError(f"{folder}: the converted weights name "
                                  f"{metadata.get('zoo_architecture')}, not {model}")
    return sha256_file(folder / WEIGHTS_NAME)


@dataclass(frozen=True)
class Fetched:
    tag: str
    path: Path
    source: SourceFile
    report: str


def fetch_tag(tag: str, *, from_dir: str | Path | None = None, progress: bool = False,
              timeout: float | None = None) -> Fetched:
    """Download, check, convert (separate process) and install one source-only tag into zoo's
    cache; afterwards ``zoo.create(model, pretrained=True)`` loads it, offline too."""
    from filelock import FileLock

    record = registry().get(tag)
    if record.hub is not None:
        raise WeightsError(f"{tag} has a Hub file ({record.hub.repo_id}); `zoo download {tag}` "
                           "fetches it, nothing needs converting")
    _given_or_reachable(tag, plan_source(record.source.url), from_dir)  # fail before writing
    lock_dir = converted_path(tag).parent.parent
    lock_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock_dir / f".{tag}.lock")):
        source = get_source(tag, from_dir=from_dir, progress=progress)
        staged = staging_dir(tag)
        try:
            report = convert_in_subprocess(tag, source.path, staged, timeout=timeout)
            check_folder(staged, tag)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        folder = install_converted(staged, tag, source_sha256=source.sha256,
                                   source_file=source.path.name, extra={
                                       "source_size": source.size, "source_url": record.source.url,
                                       "source_origin": source.origin,
                                       "source_pinned": source.pinned is not None,
                                       "converter": f"zoo fetch (zoo {__version__})"})
    return Fetched(tag, folder / WEIGHTS_NAME, source, report)
