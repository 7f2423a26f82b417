"""The weights registry: which published weights exist for which model, and where exactly.

``registry/<family>.yaml`` maps ``<model>.<tag>`` to a :class:`WeightsRecord`.  A record with a
``hub`` section is *pretrained*: a safetensors file on the Hugging Face Hub, pinned to a commit
and a sha256.  A record without one is a *convertible source*: an original checkpoint (usually a
pickle) that the user downloads and converts with ``zoo convert``; zoo never downloads or
unpickles it itself.  Nothing here imports torch.
"""
from __future__ import annotations

import datetime as _dt
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

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


class Source(StrictModel):
    """Provenance: the original checkpoint these weights were converted from."""

    url: str = Field(pattern=r"^https://")
    sha256: str | None = Field(None, pattern=SHA256)
    format: Literal["pickle", "safetensors", "tf-checkpoint"] = "pickle"
    converter: str = Field(description="what converted it, e.g. 'zoo convert (zoo x.y)'")
    note: str | None = None


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


def _load_shipped() -> Registry:
    reg = Registry()
    for path in registry_files(data_dir("registry")):
        reg.add_file(path)
    return reg


_registry = Lazy(_load_shipped)


def registry() -> Registry:
    """The process-wide registry of zoo's shipped records (read on first use)."""
    return _registry.get()


def default_tag(model: str) -> str | None:
    """The first pretrained tag of a model in registry order, else its first tag, else None."""
    tags = registry().tags_of(model)
    pretrained = [t for t in tags if registry().records[t].pretrained]
    found = pretrained or tags
    return found[0] if found else None


def update_file(path: str | Path, tag: str, record: WeightsRecord | dict[str, Any]) -> None:
    """Insert or replace one record in a registry file, atomically and schema-validated."""
    path = Path(path)
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
    yamlio.atomic_write_text(path, yamlio.dumps(doc))
    _registry.reset()
