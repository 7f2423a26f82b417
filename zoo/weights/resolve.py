"""Which file a weights reference means: a registry tag (a pinned Hub file, or a locally
converted original), ``hf-hub:org/repo[@rev]``, a local folder or ``.safetensors`` file --
downloaded where needed and verified, as a :class:`WeightsSource`."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import (HubConnectionError, StateDictMismatchError, UnknownModelError,
                        WeightsError, WeightsNotCachedError, WeightsNotPublishedError)
from zoo.registry import default_tag, registry
from zoo.weights.cache import converted_path, read_conversion_record, verify_file
from zoo.weights.folder import CONFIG_NAME, WEIGHTS_NAME, read_config
from zoo.weights.hub import hub_download
from zoo.weights.reader import load_safetensors

if TYPE_CHECKING:
    import torch

    from zoo.spec import SpecBase


@dataclass
class WeightsSource:
    """A resolved, verified weights file and the layout its tensors are in.

    ``layout``: ``zoo`` (the module's own keys), ``original`` (the original implementation's
    keys: the family converts them) or ``packed`` (a quantized model's deployable form)."""

    path: Path
    what: str
    tag: str | None = None
    layout: str = "zoo"
    num_classes: int | None = None
    config: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        return self.what

    def read(self) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        return load_safetensors(self.path, self.what)

    def load(self, spec: SpecBase) -> dict[str, torch.Tensor]:
        """The tensors, after checking that the file's own metadata names this model."""
        state_dict, metadata = self.read()
        arch = metadata.get("zoo_architecture")
        if self.layout == "zoo" and arch and arch != spec.name:
            raise StateDictMismatchError(
                f"{self.what} holds weights of {arch}, not of {spec.name} (its safetensors "
                "metadata says so); nothing was loaded. Load it with the model it was saved from.")
        return state_dict


def resolve_tag(spec: SpecBase, tag: str | None) -> WeightsSource:
    """Registry weights of ``spec`` (``tag`` or the model's default tag), downloaded and verified."""
    if tag is None:
        full = default_tag(spec.name)
        if full is None:
            raise WeightsNotPublishedError(
                f"{spec.name} has no published weights (no registry record). Build it without "
                "pretrained=True, or load your own with weights='path/or/hf-hub:repo'.")
    else:
        full = f"{spec.name}.{tag}"
        if full not in registry().records:
            raise UnknownModelError(full, registry().tags_of(spec.name) or registry().records,
                                    what="weights tag")
    record = registry().get(full)
    tag = full.split(".", 1)[1]
    if record.hub is None:
        local = converted_path(full)
        if local.exists():
            what = f"{full} (converted locally)"
            stamp = read_conversion_record(full)
            if stamp is not None:
                verify_file(local, stamp["sha256"], stamp["size"], what)
            return WeightsSource(local, what, tag, num_classes=record.num_classes)
        raise WeightsNotPublishedError(
            f"{full} is not published as safetensors; its original checkpoint must be converted "
            f"once: download {record.source.url}"
            + (f" (sha256 {record.source.sha256})" if record.source.sha256 else "")
            + f", then run `zoo convert {full} <downloaded file>`; zoo never unpickles files "
            "from the network itself.")
    hub = record.hub
    path = hub_download(hub.repo_id, hub.filename, hub.revision, full,
                        expected_size=hub.size, expected_sha256=hub.sha256)
    verify_file(path, hub.sha256, hub.size, full)
    return WeightsSource(path, full, tag, layout=hub.layout, num_classes=record.num_classes)


_HF_HUB = re.compile(r"^hf-hub:(?P<repo>[\w.-]+/[\w.-]+)(?:@(?P<rev>[\w./-]+))?$")


def is_reference(weights: str | Path) -> bool:
    """True for an ``hf-hub:`` id or a path; False for a bare registry tag."""
    text = str(weights)
    return text.startswith("hf-hub:") or "/" in text or text.endswith(".safetensors") \
        or Path(text).exists()


def resolve_external(weights: str | Path, spec: SpecBase) -> WeightsSource:
    """``hf-hub:org/repo[@rev]``, a ``.safetensors`` file, or a folder from save_pretrained."""
    text = str(weights)
    m = _HF_HUB.match(text)
    if m:
        repo, rev = m["repo"], m["rev"]
        path = hub_download(repo, WEIGHTS_NAME, rev, text)
        config = read_config(hub_download(repo, CONFIG_NAME, rev, text)) \
            if _has_remote_config(repo, rev, text) else {}
        return _source_from(path, text, config)
    if text.startswith("hf-hub:"):
        raise WeightsError(f"malformed weights reference {text!r}: use hf-hub:org/repo[@revision]")
    path = Path(weights)
    if path.is_dir():
        file = path / WEIGHTS_NAME
        if not file.exists():
            raise WeightsNotCachedError(f"{path} has no {WEIGHTS_NAME}")
        config = read_config(path / CONFIG_NAME) if (path / CONFIG_NAME).exists() else {}
        return _source_from(file, str(path), config)
    if path.is_file():
        if path.suffix != ".safetensors":
            raise WeightsError(f"{path}: zoo loads only .safetensors files; convert other "
                               "checkpoints with `zoo convert`")
        return _source_from(path, str(path), {})
    raise WeightsNotCachedError(f"no weights at {path}")


def _has_remote_config(repo: str, rev: str | None, what: str) -> bool:
    try:
        hub_download(repo, CONFIG_NAME, rev, what)
        return True
    except WeightsError as e:
        if isinstance(e, (HubConnectionError, WeightsNotCachedError)):
            raise
        return False


def _source_from(path: Path, what: str, config: dict[str, Any]) -> WeightsSource:
    zoo_meta = config.get("zoo", {})
    return WeightsSource(path, what, tag=zoo_meta.get("tag"),
                         layout=zoo_meta.get("layout", "zoo"),
                         num_classes=config.get("num_classes"), config=config)
