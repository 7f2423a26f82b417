"""``zoo mirror``: every published original checkpoint converted once, verified, and hosted as
safetensors on the Hub with its spec, its registry record updated (for maintainers).

For each registry record with a source and no Hub file (matching PATTERN):

1. the original is downloaded from its host, or taken from ``--from-dir`` (hosts without a direct
   download: SharePoint/OneDrive, Baidu); its sha256 is checked where the registry pins one and
   recorded with its size (:func:`zoo.weights.fetch.get_source`); the source's tensor files
   (``source.tensors``) likewise, against their pinned sha256 and size;
2. it is converted (with its tensor files) in a separate process with ``weights_only``
   loading (``zoo convert --check``: strict load, forward pass compared), and the folder is
   checked again here: config and tensors name the tag, the model loads strictly from the
   safetensors file alone and its forward pass is finite;
3. the folder -- ``model.safetensors``, ``config.json`` with the full spec, a model card with the
   published metric, citation, licence and provenance -- is pushed in one commit to
   ``ORG/<model>.<tag>`` (one repo per tag, as timm does), unless that repo's head already holds
   exactly these files (a run cut off between push and registry write);
4. only when the Hub's answer for that commit matches (size, sha256 of the LFS object) is the
   record rewritten: ``hub`` (repo, commit, file, sha256, size) and the source's sha256 and size,
   atomically (:func:`zoo.registry.update_file`, comments kept).

Records already mirrored to ``ORG`` are verified (downloaded and re-hashed), not redone; records
with a Hub file elsewhere are left alone.  ``--dry-run`` prints the plan and touches nothing.
"""
from __future__ import annotations

import datetime as dt
import difflib
import fnmatch
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from zoo.catalog import get_spec
from zoo.errors import HubConnectionError, RegistryError, UsageError, WeightsError, ZooError
from zoo.paths import zoo_cache_dir
from zoo.registry import WeightsRecord, registry, update_file
from zoo.version import __version__
from zoo.weights.cache import sha256_file
from zoo.weights.card import model_card
from zoo.weights.fetch import (SourceFile, Wanted, check_folder, convert_in_subprocess,
                               find_in_dir, get_source, get_tensor_files, wanted_files)
from zoo.weights.folder import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, read_config
from zoo.weights.hub import network_errors
from zoo.weights.refs import check_repo_id, is_repo_id

KIND_WORDS = {"gdrive": "google-drive", "github": "github-release", "zenodo": "zenodo",
              "dropbox": "dropbox", "hub": "hf-hub-file", "direct": "https"}


@dataclass(frozen=True)
class Step:
    """One record's line of the plan: ``action`` is ``mirror``, ``verify`` (mirrored to ORG
    before), ``skip`` (a Hub file elsewhere) or ``manual`` (no direct download, not in
    ``--from-dir``)."""

    tag: str
    host: str
    action: str
    repo_id: str
    detail: str


@dataclass(frozen=True)
class Outcome:
    tag: str
    result: str  # mirrored | verified | skipped | manual | failed
    repo: str
    detail: str


def repo_for(org: str, tag: str) -> str:
    """The Hub repo of a mirrored tag: ``ORG/<model>.<tag>`` (one repo per tag, like timm)."""
    return check_repo_id(f"{org}/{tag}", f"repo id for {tag}")


def _matches(tag: str, patterns: Sequence[str]) -> bool:
    model = tag.rsplit(".", 1)[0]
    return any(fnmatch.fnmatchcase(tag, p) or fnmatch.fnmatchcase(model, p) for p in patterns)


def _check_patterns(patterns: Sequence[str]) -> None:
    """A pattern that matches no registry record is a typo, not 'nothing to do': refuse it with
    the closest tags."""
    tags = list(registry().records)
    for p in patterns:
        if not any(_matches(tag, [p]) for tag in tags):
            close = difflib.get_close_matches(p, tags + sorted({t.rsplit(".", 1)[0] for t in tags}),
                                              n=3, cutoff=0.6)
            hint = f"did you mean {', '.join(close)}?" if close else "see `zoo list --pretrained`"
            raise UsageError(f"{p!r} matches no registry record (MODEL, MODEL.TAG or a pattern "
                             f"like 'sret_*'); {hint}")


def make_plan(org: str, patterns: str | Sequence[str] = "*", *,
              from_dir: str | Path | None = None) -> list[Step]:
    """What ``zoo mirror`` would do for every registry record matching one of ``patterns``
    (fnmatch on ``MODEL.TAG`` or ``MODEL``); no network."""
    if not is_repo_id(f"{org}/x"):
        raise WeightsError(f"invalid Hub organization {org[:100]!r}: give a Hub user or "
                           "organization name (letters, digits, '-', '_', '.'; no '/', '..' or "
                           "'--'; at most 96 characters)")
    patterns = [patterns] if isinstance(patterns, str) else list(patterns) or ["*"]
    _check_patterns(patterns)
    sharing: dict[str, int] = {}
    for rec in registry().records.values():
        sharing[rec.source.url] = sharing.get(rec.source.url, 0) + 1
    steps = []
    for tag, rec in registry().records.items():
        if not _matches(tag, patterns):
            continue
        repo = repo_for(org, tag)
        if rec.hub is not None:
            if rec.hub.repo_id == repo:
                steps.append(Step(tag, "hub-record", "verify", repo,
                                  f"mirrored at {rec.hub.revision[:12]}: download and re-hash"))
            else:
                steps.append(Step(tag, "hub-record", "skip", rec.hub.repo_id,
                                  f"has a Hub file already ({rec.hub.repo_id})"))
            continue
        main, *extras = wanted_files(tag, rec)
        plan = main.plan
        given = _from_dir(main, from_dir)
        host = KIND_WORDS[plan.kind] if plan.downloadable else \
            ".".join((urlsplit(rec.source.url).hostname or "?").split(".")[-2:])
        missing = next((w for w in [main, *extras]
                        if not w.plan.downloadable and _from_dir(w, from_dir) is None), None)
        if missing is not None:
            steps.append(Step(tag, host, "manual", repo,
                              f"{missing.plan.reason}: download {missing.url} by hand, save it "
                              f"as DIR/{missing.hint()}, rerun with --from-dir DIR"))
            continue
        tensors = "".join(f"; tensor file {_extra_detail(w, from_dir)}" for w in extras)
        if given is not None:
            steps.append(Step(tag, host, "mirror", repo,
                              f"from --from-dir ({given.name}){tensors}"))
        else:
            pin = ("sha256 pinned" if rec.source.sha256 else
                   "file-name hash prefix" if _prefix(rec) else "sha256 to record")
            shared = sharing[rec.source.url] - 1
            also = f" (one download for {shared + 1} tags)" if shared else ""
            steps.append(Step(tag, host, "mirror", repo,
                              f"download{also}, {pin}{tensors}, convert, push"))
    return steps


def _from_dir(wanted: Wanted, from_dir: str | Path | None) -> Path | None:
    return (find_in_dir(Path(from_dir), wanted.stem, wanted.plan, skip=wanted.skip)
            if from_dir is not None else None)


def _extra_detail(wanted: Wanted, from_dir: str | Path | None) -> str:
    """A tensor file in the plan: 'basis: eq_1000_1000.pkl (download, sha256 pinned)'."""
    given = _from_dir(wanted, from_dir)
    file = wanted.plan.filename or wanted.url
    how = f"from --from-dir ({given.name})" if given is not None else \
        f"download from {KIND_WORDS[wanted.plan.kind]}, sha256 pinned"
    return f"{wanted.name}: {file} ({how})"


def _prefix(rec: WeightsRecord) -> bool:
    from zoo.weights.sources import release_hash_prefix

    return release_hash_prefix(rec.source.url) is not None


def format_table(rows: Sequence[tuple[str, ...]], header: tuple[str, ...]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]
    widths[-1] = len(header[-1])  # the last column runs free
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(tuple("-" * w for w in widths)),
                      *(line(r) for r in rows)])


def plan_table(steps: list[Step]) -> str:
    rows = [(s.tag, s.host, s.action, s.repo_id, s.detail) for s in steps]
    counts: dict[str, int] = {}
    for s in steps:
        counts[s.action] = counts.get(s.action, 0) + 1
    summary = ", ".join(f"{n} {a}" for a, n in sorted(counts.items()))
    return (format_table(rows, ("TAG", "HOST", "ACTION", "REPO", "DETAIL"))
            + f"\n\n{len(steps)} records: {summary or 'none'}")


def report_table(outcomes: list[Outcome]) -> str:
    rows = [(o.tag, o.result, o.repo, o.detail) for o in outcomes]
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.result] = counts.get(o.result, 0) + 1
    summary = ", ".join(f"{n} {a}" for a, n in sorted(counts.items()))
    return format_table(rows, ("TAG", "RESULT", "REPO", "DETAIL")) + f"\n\n{summary or 'nothing to do'}"


# -- one tag -----------------------------------------------------------------------------------

def check_forward(folder: Path, tag: str) -> None:
    """The folder loads strictly into its model from the safetensors file alone, and a forward
    pass on a seeded input gives finite logits of the right shape."""
    import torch

    from zoo.build import create

    model_name = tag.rsplit(".", 1)[0]
    model = create(model_name, weights=str(folder))
    spec = get_spec(model_name)
    x = torch.randn(1, *spec.data.input_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.manual_seed(0)
        out = model(x)
    out = out[0] if isinstance(out, (tuple, list)) else out
    classes = getattr(model, "num_classes", None)
    if not torch.isfinite(out).all() or (classes and out.shape[-1] != classes):
        raise WeightsError(f"{tag}: the converted model's logits are not finite or have shape "
                           f"{tuple(out.shape)}; nothing pushed")


def write_card(folder: Path, tag: str, repo_id: str, record: WeightsRecord,
               source: SourceFile, tensors: dict[str, SourceFile] | None = None) -> None:
    """Replace the folder's card with the mirror's: published metric, citation, licence,
    provenance (source URL, hash, size, how it was converted)."""
    model_name = tag.rsplit(".", 1)[0]
    spec = get_spec(model_name)
    config = read_config(folder / CONFIG_NAME)
    cfg = dict(config.pretrained_cfg or {})
    cfg.setdefault("input_size", list(spec.data.input_size))
    cfg["num_classes"] = config.num_classes
    metrics = record.metrics.model_dump(mode="json", exclude_none=True) if record.metrics else None
    provenance = {"zoo tag": tag, "original checkpoint": record.source.url,
                  "original sha256": source.sha256, "original size (bytes)": source.size,
                  "original format": record.source.format,
                  **({"original tensor files": "; ".join(
                      f"{name}: {(record.source.tensors or {})[name].url} (sha256 {f.sha256}, "
                      f"{f.size} bytes)" for name, f in tensors.items())} if tensors else {}),
                  "conversion": f"zoo mirror (zoo {__version__}): `zoo convert` in a separate "
                                "process (torch.load weights_only), strict load and forward "
                                "pass checked",
                  "note": record.source.note}
    text = model_card(model_name, cfg, spec, metrics, record.license, repo_id=repo_id,
                      provenance=provenance)
    (folder / CARD_NAME).write_text(text)


def _hub_has(repo_id: str, folder: Path, sha256: str) -> str | None:
    """The head commit of ``repo_id`` if it already holds exactly this folder's files."""
    from zoo.weights.hub import hub_download, hub_metadata

    try:
        meta = hub_metadata(repo_id, WEIGHTS_NAME, "main", f"{repo_id} head")
    except WeightsError:
        return None
    if meta.etag != sha256 or meta.commit_hash is None:
        return None
    for name in (CONFIG_NAME, CARD_NAME):
        try:
            remote = hub_download(repo_id, name, meta.commit_hash, f"{repo_id} {name}")
        except WeightsError:  # push afresh
            return None
        if remote.read_bytes() != (folder / name).read_bytes():
            return None
    return str(meta.commit_hash)


def push_folder(folder: Path, repo_id: str, sha256: str, size: int, tag: str) -> tuple[str, bool]:
    """One commit of the folder's three files to ``repo_id`` (``main``), or the head commit if it
    holds them already; checked against the Hub's answer.  Returns (commit, pushed)."""
    from huggingface_hub import CommitOperationAdd, HfApi

    from zoo.weights.hub import guard_session, hub_download, hub_metadata

    transport: tuple[type[BaseException], ...] = (*network_errors(), OSError, ValueError)
    api = HfApi()
    guard_session()
    try:
        api.create_repo(repo_id, exist_ok=True)
        commit = _hub_has(repo_id, folder, sha256)
        pushed = commit is None
        if commit is None:
            ops = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(folder / name))
                   for name in (WEIGHTS_NAME, CONFIG_NAME, CARD_NAME)]
            info = api.create_commit(repo_id, operations=ops, revision="main",
                                     commit_message=f"zoo mirror: {tag}")
            commit = str(info.oid)
    except ZooError:
        raise
    except transport as e:
        raise HubConnectionError(f"{tag}: push to {repo_id} failed: {type(e).__name__}: {e}") \
            from None
    meta = hub_metadata(repo_id, WEIGHTS_NAME, commit, f"{tag} on {repo_id}")
    if len(meta.etag or "") == 64:  # an LFS object: the Hub's etag is its sha256
        same = meta.etag == sha256
    else:  # stored without LFS: read it back
        same = sha256_file(hub_download(repo_id, WEIGHTS_NAME, commit, tag)) == sha256
    if meta.commit_hash != commit or meta.size != size or not same:
        raise WeightsError(f"{tag}: the Hub reports {meta.size} bytes (etag {meta.etag}) at "
                           f"commit {meta.commit_hash} for {repo_id}/{WEIGHTS_NAME}; expected "
                           f"{size} bytes, sha256 {sha256} at {commit}. No record written.")
    return commit, pushed


def new_record(tag: str, repo_id: str, commit: str, sha256: str, size: int,
               source: SourceFile) -> WeightsRecord:
    """The tag's current record with the Hub file and the source's hash and size."""
    current = registry().get(tag)
    doc: dict[str, Any] = current.model_dump(mode="json", exclude_none=True)
    doc["hub"] = {"repo_id": repo_id, "revision": commit, "filename": WEIGHTS_NAME,
                  "sha256": sha256, "size": size, "layout": "zoo"}
    src = doc["source"]
    if not src.get("sha256"):
        today = dt.date.today().isoformat()
        measured = (f"sha256 and size: of the file zoo mirror got on {today} ({source.via}); "
                    "the publisher pins no hash")
        src["note"] = f"{src['note']}; {measured}" if src.get("note") else measured
    src["sha256"], src["size"] = source.sha256, source.size
    previous = re.sub(r"^zoo mirror \(zoo [^)]*\) via ", "", current.source.converter)
    src["converter"] = f"zoo mirror (zoo {__version__}) via {previous}"
    try:
        return WeightsRecord.model_validate(doc)
    except Exception as e:  # noqa: BLE001 - pydantic's error, as a registry error
        raise RegistryError(f"{tag}: the mirrored record would be invalid ({e}); no record "
                            "written") from None


def mirror_tag(tag: str, org: str, *, from_dir: str | Path | None = None,
               progress: bool = False) -> Outcome:
    """Download, convert (separate process), check, push and record one tag."""
    repo_id = repo_for(org, tag)
    record = registry().get(tag)
    tensors = get_tensor_files(tag, from_dir=from_dir, progress=progress)  # small, pinned
    source = get_source(tag, from_dir=from_dir, progress=progress)
    work = zoo_cache_dir() / "mirror"
    work.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{tag}-", dir=work))
    try:
        convert_in_subprocess(tag, source.path, staged,
                              tensors={n: f.path for n, f in tensors.items()})
        sha256 = check_folder(staged, tag)
        check_forward(staged, tag)
        write_card(staged, tag, repo_id, record, source, tensors)
        size = (staged / WEIGHTS_NAME).stat().st_size
        commit, pushed = push_folder(staged, repo_id, sha256, size, tag)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    new = new_record(tag, repo_id, commit, sha256, size, source)
    path = registry().sources[tag]
    update_file(path, tag, new)
    how = "pushed" if pushed else "already on the Hub"
    extra = "".join(f"; tensor file {n} {f.sha256[:12]}... ({f.how})" for n, f in tensors.items())
    return Outcome(tag, "mirrored", f"{repo_id}@{commit[:12]}",
                   f"{how}; source {source.sha256[:12]}... {source.size} B ({source.how}){extra}; "
                   f"{path.name} updated")


def verify_mirrored(tag: str) -> Outcome:
    """A tag mirrored before: its Hub file downloaded (or cached) and re-hashed."""
    from zoo.weights.cache import verify_file
    from zoo.weights.resolve import resolve_tag

    record = registry().get(tag)
    if record.hub is None:
        raise WeightsError(f"{tag} has no Hub record to verify")
    model, sub = tag.rsplit(".", 1)
    source = resolve_tag(get_spec(model), sub)
    verify_file(source.path, record.hub.sha256, record.hub.size, tag, trust_stamp=False)
    return Outcome(tag, "verified", f"{record.hub.repo_id}@{record.hub.revision[:12]}",
                   "sha256 and size match the record")


def run_mirror(org: str, patterns: str | Sequence[str] = "*", *, from_dir: str | Path | None = None,
               jobs: int = 1, progress: bool = False,
               on_outcome: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Carry out the plan; one :class:`Outcome` per record, in plan order."""
    steps = make_plan(org, patterns, from_dir=from_dir)
    outcomes: dict[str, Outcome] = {}
    lock = threading.Lock()
    bar = _bar(progress, sum(s.action in ("mirror", "verify") for s in steps))

    def done(outcome: Outcome) -> None:
        with lock:
            outcomes[outcome.tag] = outcome
            if bar is not None and outcome.result not in ("skipped", "manual"):
                bar.update(1)
            if on_outcome is not None:
                on_outcome(outcome)

    def work(step: Step) -> None:
        try:
            if step.action == "verify":
                done(verify_mirrored(step.tag))
            else:
                done(mirror_tag(step.tag, org, from_dir=from_dir, progress=progress))
        except ZooError as e:
            done(Outcome(step.tag, "failed", step.repo_id, _one_line(str(e))))
        except Exception as e:  # noqa: BLE001 - one tag's bug must not stop the others
            done(Outcome(step.tag, "failed", step.repo_id,
                         f"unexpected {type(e).__name__}: {_one_line(str(e))}"))

    for step in steps:
        if step.action == "skip":
            done(Outcome(step.tag, "skipped", step.repo_id, step.detail))
        elif step.action == "manual":
            done(Outcome(step.tag, "manual", step.repo_id, step.detail))
    todo = [s for s in steps if s.action in ("mirror", "verify")]
    try:
        if jobs <= 1:
            for step in todo:
                work(step)
        else:
            with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="zoo-mirror") as pool:
                list(pool.map(work, todo))
    finally:
        if bar is not None:
            bar.close()
    return [outcomes[s.tag] for s in steps if s.tag in outcomes]


def _bar(show: bool, total: int) -> Any:
    if not show or total == 0:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="tag", desc="zoo mirror", disable=None)


def _one_line(text: str, limit: int = 400) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."
