"""``zoo fetch``: a registry tag's original checkpoint downloaded from its host, checked,
converted in a separate process and installed into zoo's cache as a verified safetensors file.

1. :func:`get_source`: the original file -- from ``--from-dir``, from zoo's source cache
   (``<zoo cache>/sources/``: ``blobs/<sha256>/<name>`` + ``by-url/<key>.json``, re-verified on
   every use), or downloaded (:mod:`.download`; one download per URL, under a file lock, so tags
   that share a checkpoint -- BigNAS children of one supernet -- share it).  Its sha256 is
   checked against the registry where the registry pins one (the full hash, or the prefix a
   torch.hub-style file name carries), else recorded as seen.  A source's tensor files
   (``source.tensors``: state-dict entries upstream publishes apart, e.g. EBV's basis vectors)
   are got the same way (:func:`get_tensor_files`), always against their pinned sha256 and size.
2. :func:`convert_in_subprocess`: ``python -m zoo convert TAG FILE [--tensor NAME=FILE ...] --out
   DIR --check`` in a child
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
from collections.abc import Mapping
from dataclasses import dataclass, field
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
    """A local, hashed file of a tag's source: its original checkpoint or a tensor file.

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


@dataclass(frozen=True)
class Wanted:
    """One file of a tag's source to get: the checkpoint (``name`` None) or a tensor file.

    ``stem``: the name a ``--from-dir`` file may carry (``<tag>`` or ``<tag>.<name>``, plus an
    extension); ``skip``: stems of the tag's other files, which the checkpoint's lookup leaves
    alone; ``pinned``: the registry's full sha256 or a release name's prefix, or None."""

    tag: str
    name: str | None
    url: str
    fmt: str
    size: int | None
    pinned: str | None
    stem: str
    skip: tuple[str, ...] = ()

    @property
    def plan(self) -> SourcePlan:
        return plan_source(self.url)

    @property
    def what(self) -> str:
        """The file in words, for messages: 'sret_t.in1k original' / 'ebv_resnet50.in1k
        tensor file basis (eq_1000_1000.pkl)'."""
        if self.name is None:
            return f"{self.tag} original"
        file = self.plan.filename
        return f"{self.tag} tensor file {self.name}" + (f" ({file})" if file else "")

    def whose(self, where: Path | str) -> str:
        """``where`` named as this file, for a checksum error."""
        if self.name is None:
            return f"{where} (the original checkpoint of {self.tag})"
        return f"{where} (the {self.name!r} tensor file of {self.tag})"

    def hint(self) -> str:
        """The file name to save a hand-downloaded copy under."""
        suffix = Path(self.plan.filename).suffix if self.plan.filename else ""
        return f"{self.stem}{suffix or ('.pth' if self.name is None else '.pkl')}"


def wanted_files(tag: str, record: WeightsRecord | None = None) -> list[Wanted]:
    """Every file of a tag's source: its checkpoint first, then its tensor files by name."""
    record = record or registry().get(tag)
    src = record.source
    tensors = sorted((src.tensors or {}).items())
    main = Wanted(tag, None, src.url, src.format, src.size, expected_hash(record), tag,
                  tuple(f"{tag}.{name}" for name, _ in tensors))
    return [main, *(Wanted(tag, name, t.url, t.format, t.size, t.sha256, f"{tag}.{name}")
                    for name, t in tensors)]


def _check_pin(wanted: Wanted, sha256: str, where: Path | str) -> None:
    if wanted.pinned and not sha256.startswith(wanted.pinned):
        raise SourceChecksumError(wanted.whose(where), wanted.pinned, sha256, wanted.url)


def find_in_dir(folder: Path, stem: str, plan: SourcePlan, *,
                skip: tuple[str, ...] = ()) -> Path | None:
    """The file for ``stem`` (a tag, or ``<tag>.<tensor name>`` for a tensor file) in a
    ``--from-dir`` folder: named ``<stem>`` or ``<stem>.<ext>``, or named as in the source URL;
    files of the ``skip`` stems (a tag's tensor files, for its checkpoint) are not taken; None if
    there is none; an error if several match."""
    if not folder.is_dir():
        raise WeightsError(f"--from-dir {folder}: no such folder")

    def named(p: Path, s: str) -> bool:
        return p.name == s or p.name.startswith(s + ".")

    def tagged(p: Path) -> bool:
        return named(p, stem) and not any(named(p, other) for other in skip)

    found = sorted(p for p in folder.iterdir() if p.is_file() and (
        tagged(p) or (plan.filename is not None and p.name == plan.filename)))
    found = [p for p in found if tagged(p)] or found
    if len(found) > 1:
        raise WeightsError(f"--from-dir {folder}: several files for {stem} "
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


def _given_or_reachable(wanted: Wanted, from_dir: str | Path | None) -> Path | None:
    """The ``--from-dir`` file for ``wanted``, else None if it can be downloaded; an error for a
    host without a direct download (before anything is written)."""
    plan = wanted.plan
    given = (find_in_dir(Path(from_dir), wanted.stem, plan, skip=wanted.skip)
             if from_dir is not None else None)
    if given is None and not plan.downloadable:
        hint = f" (not found in --from-dir {from_dir})" if from_dir is not None else ""
        raise SourceDownloadError(
            f"{wanted.what}: {plan.url} has no direct download ({plan.reason}){hint}. Download "
            f"it by hand, save it as <folder>/{wanted.hint()}, then pass --from-dir <folder>")
    return given


def check_reachable(tag: str, from_dir: str | Path | None = None) -> None:
    """Every file of the tag's source is in ``--from-dir`` or has a direct download (else the
    error says what to do); nothing is written."""
    for wanted in wanted_files(tag):
        _given_or_reachable(wanted, from_dir)


def _get_file(wanted: Wanted, *, from_dir: str | Path | None, progress: bool) -> SourceFile:
    """One file of a tag's source as a local file, hashed and checked against its pin: from
    ``--from-dir``, else zoo's source cache, else downloaded (see the module doc)."""
    from filelock import FileLock

    plan = wanted.plan
    given = _given_or_reachable(wanted, from_dir)
    if given is not None:
        sha = sha256_file(given)
        _check_pin(wanted, sha, given)
        size = given.stat().st_size
        if wanted.size is not None and size != wanted.size:
            raise WeightsError(f"{wanted.what}: {given} has {size} bytes where the registry "
                               f"records {wanted.size}; it is not the recorded file")
        return SourceFile(given, sha, size, wanted.pinned, f"file {given}",
                          f"--from-dir ({given.name})")
    url = wanted.url
    locks = sources_dir() / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    with FileLock(str(locks / f"{_url_key(url)}.lock")):
        cached = _cached_source(url)
        if cached is not None and wanted.pinned \
                and not cached[1]["sha256"].startswith(wanted.pinned):
            _forget_source(url, cached[0])  # cached before the registry pinned another file
            cached = None
        if cached is None:
            folder = sources_dir() / "blobs"
            if plan.kind == "hub":
                downloaded = hub_source_download(plan, folder, fmt=wanted.fmt,
                                                 expected_size=wanted.size, what=wanted.what)
            else:
                downloaded = http_download(plan, folder, fmt=wanted.fmt,
                                           expected_size=wanted.size, what=wanted.what,
                                           progress=progress)
            try:
                _check_pin(wanted, downloaded.sha256, url)
            except SourceChecksumError:
                downloaded.path.unlink(missing_ok=True)
                raise
            cached = _store(downloaded, url, wanted.fmt)
            hit = False
        else:
            hit = True
    blob, doc = cached
    return SourceFile(blob, doc["sha256"], doc["size"], wanted.pinned,
                      str(doc.get("origin", url)), str(doc.get("how", "downloaded")), cached=hit)


def get_source(tag: str, *, from_dir: str | Path | None = None,
               progress: bool = False) -> SourceFile:
    """The original checkpoint of a registry tag as a local file, hashed and checked against
    the registry's pin (see the module doc)."""
    return _get_file(wanted_files(tag)[0], from_dir=from_dir, progress=progress)


def get_tensor_files(tag: str, *, from_dir: str | Path | None = None,
                     progress: bool = False) -> dict[str, SourceFile]:
    """The tag's tensor files (``source.tensors``), name -> local file, each checked against
    its pinned sha256 and size; empty for a source without any."""
    return {w.name: _get_file(w, from_dir=from_dir, progress=progress)
            for w in wanted_files(tag)[1:] if w.name is not None}


def convert_in_subprocess(tag: str, checkpoint: Path, out: Path, *,
                          tensors: Mapping[str, Path] | None = None,
                          timeout: float | None = None) -> str:
    """Run ``zoo convert TAG CHECKPOINT [--tensor NAME=FILE ...] --out OUT --check`` in a child
    process (the pickles are read there, weights_only, never here); return its report line.
    The child gets no network for the Hub (``HF_HUB_OFFLINE=1``)."""
    cmd = [sys.executable, "-m", "zoo", "convert", tag, str(checkpoint), "--out", str(out),
           "--check", *(a for name, file in (tensors or {}).items()
                        for a in ("--tensor", f"{name}={file}"))]
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
    tensors: dict[str, SourceFile] = field(default_factory=dict)


def fetch_tag(tag: str, *, from_dir: str | Path | None = None, progress: bool = False,
              timeout: float | None = None) -> Fetched:
    """Download, check, convert (separate process) and install one source-only tag into zoo's
    cache; afterwards ``zoo.create(model, pretrained=True)`` loads it, offline too."""
    from filelock import FileLock

    record = registry().get(tag)
    if record.hub is not None:
        raise WeightsError(f"{tag} has a Hub file ({record.hub.repo_id}); `zoo download {tag}` "
                           "fetches it, nothing needs converting")
    check_reachable(tag, from_dir)  # fail before writing
    lock_dir = converted_path(tag).parent.parent
    lock_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock_dir / f".{tag}.lock")):
        tensors = get_tensor_files(tag, from_dir=from_dir, progress=progress)  # small, pinned
        source = get_source(tag, from_dir=from_dir, progress=progress)
        staged = staging_dir(tag)
        try:
            report = convert_in_subprocess(tag, source.path, staged, timeout=timeout,
                                           tensors={n: f.path for n, f in tensors.items()})
            check_folder(staged, tag)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        extra: dict[str, Any] = {
            "source_size": source.size, "source_url": record.source.url,
            "source_origin": source.origin, "source_pinned": source.pinned is not None,
            "converter": f"zoo fetch (zoo {__version__})"}
        if tensors:
            extra["source_tensors"] = {
                name: {"url": (record.source.tensors or {})[name].url, "sha256": f.sha256,
                       "size": f.size, "file": f.path.name, "origin": f.origin}
                for name, f in tensors.items()}
        folder = install_converted(staged, tag, source_sha256=source.sha256,
                                   source_file=source.path.name, extra=extra)
    return Fetched(tag, folder / WEIGHTS_NAME, source, report, tensors)
