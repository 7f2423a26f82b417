"""The weights registry: which published weights exist for which model, and where exactly.

``registry/<family>.yaml`` maps ``<model>.<tag>`` to a :class:`WeightsRecord`.  A record with a
``hub`` section is *pretrained*: a safetensors file on the Hugging Face Hub, pinned to a commit
and a sha256.  A record without one is a *convertible source*: an original checkpoint (usually a
pickle) that ``zoo fetch`` (or the user, then ``zoo convert``) downloads and converts locally;
``zoo mirror`` turns such records into Hub records.  Nothing here imports torch.

``ZOO_REGISTRY_DIR`` points zoo at another registry folder than the shipped one (a maintainer's
working copy, a test's temporary copy).
"""
from __future__ import annotations

import datetime as _dt
import os
import re
import threading
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from zoo import yamlio
from zoo.errors import RegistryError, UnknownModelError
from zoo.lazy import Lazy
from zoo.paths import data_dir
from zoo.spec import StrictModel

SHA256 = r"^[0-9a-f]{64}$"
COMMIT = r"^[0-9a-f]{40}$"
TAG_PATTERN = r"^[a-z][a-z0-9_]*\.[a-z0-9][a-z0-9_]*$"


class HubFile(StrictModel):
    """A file on the Hugging Face Hub, pinned to a commit and its content hash."""

    repo_id: str = Field(pattern=r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
    revision: str = Field(pattern=COMMIT, description="full commit sha, never a branch")
    filename: str = Field(pattern=r"^[\w./-]+\.safetensors$")
    sha256: str = Field(pattern=SHA256)
    size: int | None = Field(None, gt=0, description="bytes; omitted only where it is not known "
                             "(the sha256 still pins the content)")
    layout: Literal["zoo", "original", "packed"] = Field(
        "zoo", description="'original': the file holds upstream's key layout and is converted "
        "with the family's convert() on load (e.g. a timm repo); 'packed': a quantized model's "
        "deployable form (integer codes + scales)")


HTTPS_URL = r"^https://[A-Za-z0-9.-]+(:[0-9]+)?(/\S*)?$"
MAX_SOURCE_BYTES = 1 << 40  # no original checkpoint comes near a TiB; a bigger size is a typo
TENSOR_NAME = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$"


def _url_file_name(url: str) -> str:
    return url.split("?", 1)[0].split("#", 1)[0].rstrip("/").rsplit("/", 1)[-1]


class TensorFile(StrictModel):
    """An original file that upstream keeps beside its checkpoint: one tensor written with
    ``pickle.dump(tensor)`` (EBV's basis vectors), added to the checkpoint's state dict under its
    name before conversion (``zoo convert --tensor NAME=FILE``).  Always pinned: ``zoo fetch`` and
    ``zoo mirror`` refuse any other file."""

    url: str = Field(pattern=HTTPS_URL, max_length=2000)
    sha256: str = Field(pattern=SHA256)
    size: int = Field(gt=0, le=MAX_SOURCE_BYTES, description="bytes of the file")
    format: Literal["pickle"] = Field("pickle", description="'pickle': one pickled tensor, read "
                                      "without unpickling anything else")


class Source(StrictModel):
    """Provenance: the original checkpoint these weights were converted from."""

    url: str = Field(pattern=HTTPS_URL, max_length=2000)
    sha256: str | None = Field(None, pattern=SHA256)
    size: int | None = Field(None, gt=0, le=MAX_SOURCE_BYTES,
                             description="bytes of the original file (recorded with its sha256 "
                             "by `zoo mirror`)")
    format: Literal["pickle", "safetensors", "tf-checkpoint"] = "pickle"
    tensors: dict[str, TensorFile] | None = Field(
        None, description="state-dict entries upstream publishes in files of their own, name -> "
        "file; downloaded and checked with the checkpoint and handed to its conversion")
    converter: str = Field(description="what converted it, e.g. 'zoo convert (zoo x.y)'")
    note: str | None = None

    @field_validator("tensors")
    @classmethod
    def _tensor_names(cls, v: dict[str, TensorFile] | None) -> dict[str, TensorFile] | None:
        if v is None:
            return v
        bad = [k for k in v if len(k) > 200 or not re.match(TENSOR_NAME, k)]
        if bad:
            raise ValueError(f"tensor names must be state-dict keys (letters, digits, _ and "
                             f"dots): {bad}")
        if not v:
            raise ValueError("an empty `tensors` map: leave it out")
        return v

    @model_validator(mode="after")
    def _distinct_files(self) -> Source:
        files = [("the checkpoint", self.url),
                 *((f"tensor {k!r}", t.url) for k, t in (self.tensors or {}).items())]
        urls: dict[str, str] = {}
        names: dict[str, str] = {}
        for what, url in files:
            name = _url_file_name(url)
            name = name if "." in name else ""  # a page URL (Drive's .../view) names no file
            other = urls.get(url) or (names.get(name) if name else None)
            if other is not None:
                raise ValueError(f"{what} and {other} have the same URL or file name "
                                 f"({name or url}); each file of a source needs its own")
            urls[url] = what
            if name:
                names[name] = what
        return self


class Metrics(StrictModel):
    """Measured accuracy of these weights (not the paper's claim: that is in the spec)."""

    top1: float | None = Field(None, ge=0, le=100)
    top5: float | None = Field(None, ge=0, le=100)
    dataset: str = "imagenet-1k-val"
    num_samples: int | None = Field(None, gt=0)
    img_size: int | None = Field(None, gt=0)
    crop_pct: float | None = Field(None, gt=0, le=1)
    measured_by: str = Field(description="who measured, e.g. 'upstream README' or 'zoo eval'")
    date: _dt.date | None = None


class WeightsRecord(StrictModel):
    hub: HubFile | None = None
    source: Source
    license: str
    num_classes: int | None = Field(None, gt=0, description="if it differs from the spec's")
    metrics: Metrics | None = None
    note: str | None = None

    @property
    def pretrained(self) -> bool:
        return self.hub is not None


class RegistryFile(StrictModel):
    weights: dict[str, WeightsRecord]

    @field_validator("weights")
    @classmethod
    def _tags(cls, v: dict[str, WeightsRecord]) -> dict[str, WeightsRecord]:
        bad = [k for k in v if not re.match(TAG_PATTERN, k)]
        if bad:
            raise ValueError(f"weights keys must be `model.tag` (lower_snake): {bad}")
        return v


def parse_file(doc: Any, source: str) -> dict[str, WeightsRecord]:
    try:
        return RegistryFile.model_validate(doc).weights
    except ValidationError as e:
        problems = "\n".join(f"  - {'.'.join(map(str, err['loc']))}: {err['msg']}"
                             for err in e.errors())
        raise RegistryError(f"invalid registry file {source}:\n{problems}") from None


class Registry:
    def __init__(self) -> None:
        self.records: dict[str, WeightsRecord] = {}
        self.sources: dict[str, Path] = {}

    def add_file(self, path: Path) -> None:
        try:
            doc = yamlio.load(path)
        except yamlio.YamlDataError as e:
            raise RegistryError(str(e)) from None
        for tag, rec in parse_file(doc, str(path)).items():
            if tag in self.records:
                raise RegistryError(f"{tag} is recorded twice: {self.sources[tag]} and {path}")
            self.records[tag] = rec
            self.sources[tag] = path

    def tags_of(self, model: str) -> list[str]:
        return [t for t in self.records if t.rsplit(".", 1)[0] == model]

    def get(self, tag: str) -> WeightsRecord:
        try:
            return self.records[tag]
        except KeyError:
            raise UnknownModelError(tag, self.records, what="weights tag") from None


def registry_files(folder: Path) -> list[Path]:
    """The registry files of a folder: ``<family>.yaml`` and ``<family>/<paper>.yaml``, sorted."""
    return sorted([*folder.glob("*.yaml"), *folder.glob("*/*.yaml")])


REGISTRY_DIR_ENV = "ZOO_REGISTRY_DIR"


def registry_dir() -> Path:
    """The registry folder zoo reads: ``$ZOO_REGISTRY_DIR`` if set, else the shipped one."""
    env = os.environ.get(REGISTRY_DIR_ENV)
    if env:
        path = Path(env)
        if not path.is_dir():
            raise RegistryError(f"{REGISTRY_DIR_ENV}={env}: no such folder (it must hold the "
                                "registry's <family>.yaml files)")
        return path
    return data_dir("registry")


def _load_shipped() -> Registry:
    reg = Registry()
    for path in registry_files(registry_dir()):
        reg.add_file(path)
    return reg


_registry = Lazy(_load_shipped)


def registry() -> Registry:
    """The process-wide registry of zoo's records (read on first use, from
    :func:`registry_dir`)."""
    return _registry.get()


def default_tag(model: str) -> str | None:
    """The first pretrained tag of a model in registry order, else its first tag, else None."""
    tags = registry().tags_of(model)
    pretrained = [t for t in tags if registry().records[t].pretrained]
    found = pretrained or tags
    return found[0] if found else None


_write_lock = threading.Lock()  # read-modify-write of one file by several threads (zoo mirror --jobs)


def update_file(path: str | Path, tag: str, record: WeightsRecord | dict[str, Any]) -> None:
    """Insert or replace one record in a registry file, atomically and schema-validated."""
    with _write_lock:
        _update_file(Path(path), tag, record)


def _update_file(path: Path, tag: str, record: WeightsRecord | dict[str, Any]) -> None:
    try:
        doc = (yamlio.load(path) if path.exists() else None) or {}
    except yamlio.YamlDataError as e:
        raise RegistryError(f"{e}; not rewriting it") from None
    if isinstance(doc, dict) and doc.get("weights") is None:
        doc["weights"] = {}  # a new or empty file
    if not isinstance(doc, dict) or not isinstance(doc["weights"], dict):
        raise RegistryError(f"{path} is not a registry file (a mapping with a `weights` mapping); "
                            "not rewriting it")
    try:
        rec = record if isinstance(record, WeightsRecord) else WeightsRecord.model_validate(record)
    except ValidationError as e:
        raise RegistryError(f"invalid record for {tag}: {e}") from None
    doc["weights"][tag] = rec.model_dump(mode="json", exclude_none=True)
    parse_file(doc, str(path))  # the whole file must validate before it replaces the old one
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    spliced = _splice(text, tag, doc["weights"][tag])
    try:
        same = spliced is not None and yamlio.loads(spliced) == doc
    except yamlio.YamlDataError:
        same = False
    yamlio.atomic_write_text(path, spliced if same and spliced is not None else yamlio.dumps(doc))
    _registry.reset()


def _splice(text: str, tag: str, record: dict[str, Any]) -> str | None:
    """``text`` with the block of ``tag`` under ``weights:`` replaced by (or, if absent, appended
    as) ``record`` in block style, every comment of the file kept (the ones inside the old block
    move to the top of the new one); None where the file's shape is not the plain one (block
    style ``weights:`` as the last top-level key), so the caller rewrites the whole file."""
    lines = text.splitlines()
    top = [i for i, ln in enumerate(lines) if ln and not ln[0].isspace() and not ln.startswith("#")]
    if not top or lines[top[-1]].rstrip() != "weights:":
        return None
    start = top[-1] + 1
    children = [ln for ln in lines[start:] if ln.strip() and not ln.lstrip().startswith("#")]
    indent = (len(children[0]) - len(children[0].lstrip())) if children else 2
    if indent == 0:
        return None

    def depth(line: str) -> int:
        return len(line) - len(line.lstrip())

    block = [f"{' ' * indent}{ln}" for ln in yamlio.dumps({tag: record}).splitlines()]
    head = next((i for i in range(start, len(lines))
                 if lines[i].strip() and depth(lines[i]) == indent
                 and lines[i].strip().split(":", 1)[0].strip("'\"") == tag), None)
    if head is None:
        while lines and not lines[-1].strip():
            lines.pop()
        return "\n".join([*lines, *block]) + "\n"
    end = head + 1
    while end < len(lines) and (not lines[end].strip() or depth(lines[end]) > indent):
        end += 1
    while end > head + 1 and not lines[end - 1].strip():
        end -= 1  # blank lines before the next record stay where they are
    kept = [ln for ln in lines[head + 1:end] if ln.lstrip().startswith("#")]
    return "\n".join([*lines[:head], block[0], *kept, *block[1:], *lines[end:]]) + "\n"
