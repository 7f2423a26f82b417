"""The weights folder format zoo writes and reads (``save_pretrained``, ``zoo convert``, a Hub
repo): ``model.safetensors`` + timm-style ``config.json`` (with a ``zoo`` section: the full spec,
the weights layout and tag) + a model card ``README.md``.

``config.json`` comes from wherever the weights come from, so it is untrusted: it is read with
size and nesting bounds and validated (:class:`FolderConfig`) before anything is built from it.
"""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from zoo.errors import CorruptWeightsError, WeightsError
from zoo.spec import MAX_CLASSES, NAME_PATTERN, StrictModel, validation_problems

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
CARD_NAME = "README.md"
MAX_CONFIG_BYTES = 4 * 1024 * 1024
MAX_CONFIG_DEPTH = 64

Layout = Literal["zoo", "original", "packed"]

# Version of the ``zoo`` section of config.json (the spec dict in it, the layout and tag):
# raised when a change would make an older zoo misread it.  Configs written before it existed
# carry none and are version 1.
SPEC_SCHEMA = 1


class ZooSection(StrictModel):
    """The ``zoo`` section of a config zoo wrote: the full spec (data only, validated against
    the installed families before use), its schema version, the weights layout and tag."""

    spec: dict[str, Any] | None = None
    spec_schema: int = Field(1, ge=1, strict=True)
    layout: Layout = "zoo"
    tag: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9_]*$", max_length=100)


class FolderConfig(BaseModel):
    """A weights folder's ``config.json``: timm's keys (others are kept, not used) and zoo's."""

    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False)

    architecture: str | None = Field(None, max_length=200)
    num_classes: int | None = Field(None, ge=0, le=MAX_CLASSES, strict=True)
    num_features: int | None = Field(None, ge=0, le=1 << 20, strict=True)
    pretrained_cfg: dict[str, Any] | None = None
    zoo: ZooSection | None = None

    @property
    def layout(self) -> Layout:
        return self.zoo.layout if self.zoo is not None else "zoo"

    @property
    def written_by_zoo(self) -> bool:
        return self.zoo is not None

    @property
    def zoo_architecture(self) -> str | None:
        """The zoo model the folder was saved from (configs zoo wrote name it)."""
        import re

        if self.zoo is None or self.architecture is None:
            return None
        return self.architecture if re.match(NAME_PATTERN, self.architecture) else None


def require_regular_file(path: Path, what: str) -> Path:
    """``path`` if it is a regular file (symlinks followed); never open a FIFO, device or folder,
    which could block or stream forever."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise WeightsError(f"{what}: no file at {path}") from None
    except OSError as e:
        raise WeightsError(f"{what}: cannot read {path} ({e.strerror or e})") from None
    if not stat.S_ISREG(mode):
        raise WeightsError(f"{what}: {path} is not a regular file (a folder, pipe or device); "
                           "give the path of a weights file or of a save_pretrained folder")
    return path


def read_config(path: Path) -> FolderConfig:
    """A folder's ``config.json``, bounded and validated; :class:`CorruptWeightsError` if it is
    not a config zoo can use (not JSON, not an object, too big or deep, bad values)."""
    require_regular_file(path, "config.json")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise CorruptWeightsError(f"{path}: config.json larger than {MAX_CONFIG_BYTES} bytes")
    try:
        doc = json.loads(path.read_bytes())
    except RecursionError:
        raise CorruptWeightsError(f"{path}: config.json nested too deep") from None
    except (OSError, ValueError) as e:
        raise CorruptWeightsError(f"{path}: unreadable config.json ({e})") from None
    if not isinstance(doc, dict):
        raise CorruptWeightsError(f"{path}: config.json must be a JSON object, not "
                                  f"{type(doc).__name__}")
    if _depth(doc) > MAX_CONFIG_DEPTH:
        raise CorruptWeightsError(f"{path}: config.json nested deeper than {MAX_CONFIG_DEPTH}")
    try:
        config = FolderConfig.model_validate(doc)
    except ValidationError as e:
        raise CorruptWeightsError(f"{path}: invalid config.json: "
                                  + "; ".join(validation_problems(e)[:5])) from None
    if config.zoo is not None and config.zoo.spec_schema > SPEC_SCHEMA:
        raise WeightsError(f"{path}: written by a newer zoo (spec schema "
                           f"{config.zoo.spec_schema}; this zoo reads up to {SPEC_SCHEMA}): "
                           "upgrade zoo (pip install -U zoo) to load it")
    return config


def _depth(node: Any) -> int:
    """Nesting depth of parsed JSON, without recursion."""
    deepest, stack = 0, [(node, 1)]
    while stack:
        item, d = stack.pop()
        deepest = max(deepest, d)
        if isinstance(item, dict):
            stack.extend((v, d + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, d + 1) for v in item)
    return deepest
