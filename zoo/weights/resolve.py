"""Which file a weights reference means: a registry tag (a pinned Hub file, or a locally
converted original), ``hf-hub:org/repo[@rev]``, a local folder or ``.safetensors`` file --
downloaded where needed and verified, as a :class:`WeightsSource`."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from zoo.errors import (CorruptWeightsError, HubConnectionError, StateDictMismatchError,
                        UnknownModelError, WeightsError, WeightsNotCachedError,
                        WeightsNotPublishedError)
from zoo.registry import default_tag, registry
from zoo.weights.cache import converted_path, read_conversion_record, verify_file
from zoo.weights.folder import (CONFIG_NAME, WEIGHTS_NAME, FolderConfig, Layout, read_config,
                                require_regular_file)
from zoo.weights.hub import hub_download
from zoo.weights.reader import load_safetensors
from zoo.weights.refs import is_hub_reference, parse_hub_reference
from zoo.weights.sources import ALLOW_ENV, plan_source, source_fetch_allowed

log = logging.getLogger("zoo")

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
    layout: Layout = "zoo"
    num_classes: int | None = None
    config: FolderConfig | None = None

    def describe(self) -> str:
        return self.what

    def read(self) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        return load_safetensors(self.path, self.what)

    def check_architecture(self, spec: SpecBase, metadata: dict[str, str]) -> None:
        """Refuse weights that their own metadata or config.json ascribe to another zoo model,
        whatever their layout (variants can share every key and shape)."""
        named = {("safetensors metadata", metadata.get("zoo_architecture")),
                 ("config.json", self.config.zoo_architecture if self.config else None)}
        for where, arch in sorted(named, key=str):
            if arch and arch != spec.name:
                raise StateDictMismatchError(
                    f"{self.what} holds weights of {arch}, not of {spec.name} (its {where} says "
                    "so); nothing was loaded. Load it with the model it was saved from.")

    def load(self, spec: SpecBase) -> dict[str, torch.Tensor]:
        """The tensors, after checking that the file's own metadata names this model."""
        state_dict, metadata = self.read()
        self.check_architecture(spec, metadata)
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
        if not local.exists() and source_fetch_allowed():
            from zoo.weights.fetch import fetch_tag  # urllib & co. only when it is used

            fetched = fetch_tag(full)  # ZOO_ALLOW_SOURCE_FETCH=1: download, convert apart
            log.warning("%s: fetched its original (%s) and converted it into zoo's cache; its "
                        "sha256 %s %s", full, fetched.source.how, fetched.source.sha256,
                        fetched.source.pin_note())
        if local.exists():
            what = f"{full} (converted locally)"
            stamp = read_conversion_record(full)
            if stamp is not None:
                verify_file(local, stamp["sha256"], stamp["size"], what)
            return WeightsSource(local, what, tag, num_classes=record.num_classes)
        raise WeightsNotPublishedError(not_converted_message(full))
    hub = record.hub
    path = hub_download(hub.repo_id, hub.filename, hub.revision, full,
                        expected_size=hub.size, expected_sha256=hub.sha256)
    verify_file(path, hub.sha256, hub.size, full)
    return WeightsSource(path, full, tag, layout=hub.layout, num_classes=record.num_classes)


def not_converted_message(full: str) -> str:
    """What to do about a source-only tag that is not converted yet: the exact ``zoo fetch``
    command (or, for hosts without a direct download, the manual way)."""
    record = registry().get(full)
    src = record.source
    pinned = f" (sha256 {src.sha256})" if src.sha256 else ""
    pickle = src.format == "pickle"
    kind = ("a safetensors file in upstream's layout" if src.format == "safetensors" else
            f"an original {src.format} checkpoint")
    how = "with weights_only loading in a separate process" if pickle else "in a separate process"
    plan = plan_source(src.url)
    # tensor files upstream publishes apart (EBV's basis vectors) go with a manual conversion
    with_tensors = "".join(f" --tensor {name}=<{plan_source(t.url).filename or name + ' file'}>"
                           for name, t in sorted((src.tensors or {}).items()))
    if not plan.downloadable:
        return (f"{full} is published only as {kind} at {src.url}{pinned}, which has no "
                f"direct download ({plan.reason}). Download it by hand, then run `zoo fetch "
                f"{full} --from-dir <its folder>` (or `zoo convert {full} <downloaded file>"
                f"{with_tensors}`) once; zoo converts it {how}.")
    return (f"{full} is published only as {kind} ({src.url}{pinned}), not converted to zoo's "
            f"layout yet: run `zoo fetch {full}` once (downloads it, checks it, converts it "
            f"{how}, into zoo's cache; then it loads offline), or download it yourself and run "
            f"`zoo convert {full} <downloaded file>{with_tensors}`. Set {ALLOW_ENV}=1 to let "
            "pretrained=True fetch it by itself" + ("; by default zoo never unpickles files from "
                                                   "the network." if pickle else "."))


def is_reference(weights: str | Path) -> bool:
    """True for an ``hf-hub:`` id or a path; False for a bare registry tag."""
    text = str(weights)
    if is_hub_reference(text) or "/" in text or text.endswith(".safetensors"):
        return True
    try:
        return Path(text).exists()
    except (OSError, ValueError):  # a name no file system accepts is no path
        return False


def resolve_external(weights: str | Path, spec: SpecBase) -> WeightsSource:
    """``hf-hub:org/repo[@rev]``, a ``.safetensors`` file, or a folder from save_pretrained."""
    text = str(weights)
    if is_hub_reference(text):
        repo, rev = parse_hub_reference(text)
        path = hub_download(repo, WEIGHTS_NAME, rev, text)
        config = read_config(hub_download(repo, CONFIG_NAME, rev, text)) \
            if _has_remote_config(repo, rev, text) else None
        return _source_from(path, text, config)
    if "\x00" in text:
        raise WeightsError(f"invalid weights path {text!r} (it holds a NUL character)")
    path = Path(weights)
    try:
        is_dir = path.is_dir()
        exists = path.exists()
    except OSError as e:
        raise WeightsError(f"invalid weights path {text[:200]!r}: {e.strerror or e}") from None
    if is_dir:
        file = path / WEIGHTS_NAME
        if not file.exists():
            raise WeightsNotCachedError(f"{path} has no {WEIGHTS_NAME}")
        require_regular_file(file, str(path))
        config = read_config(path / CONFIG_NAME) if (path / CONFIG_NAME).exists() else None
        return _source_from(file, str(path), config)
    if exists:
        require_regular_file(path, text)
        if path.suffix != ".safetensors":
            raise WeightsError(f"{path}: zoo loads only .safetensors files; convert other "
                               "checkpoints with `zoo convert`")
        return _source_from(path, str(path), None)
    raise WeightsNotCachedError(f"no weights at {path}")


def _has_remote_config(repo: str, rev: str | None, what: str) -> bool:
    try:
        hub_download(repo, CONFIG_NAME, rev, what)
        return True
    except WeightsError as e:
        if isinstance(e, (HubConnectionError, WeightsNotCachedError)):
            raise
        return False


def _source_from(path: Path, what: str, config: FolderConfig | None) -> WeightsSource:
    if config is None:
        return WeightsSource(path, what)
    return WeightsSource(path, what, tag=config.zoo.tag if config.zoo else None,
                         layout=config.layout, num_classes=config.num_classes, config=config)
