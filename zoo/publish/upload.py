"""Publishing a weights folder: upload it to the Hub in one commit and build (and optionally
write) its registry record, checked against the Hub's own answer.  ``zoo push``."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from zoo.catalog import get_spec, split_name
from zoo.errors import CorruptWeightsError, HubConnectionError, RegistryError, WeightsError, ZooError
from zoo.registry import WeightsRecord, registry, update_file
from zoo.registry import registry_dir as default_registry_dir
from zoo.version import __version__
from zoo.weights import CONFIG_NAME, WEIGHTS_NAME, load_safetensors, sha256_file
from zoo.weights.hub import network_errors


def _read_folder(directory: Path) -> tuple[str, dict[str, Any]]:
    weights, config_path = directory / WEIGHTS_NAME, directory / CONFIG_NAME
    if not weights.is_file() or not config_path.is_file():
        raise WeightsError(f"{directory}: not a save_pretrained folder (needs {WEIGHTS_NAME} and "
                           f"{CONFIG_NAME}; write one with `zoo convert` or zoo.save_pretrained)")
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as e:
        raise CorruptWeightsError(f"{config_path}: unreadable ({e})") from None
    arch = config.get("architecture") if isinstance(config, dict) else None
    if not isinstance(arch, str):
        raise CorruptWeightsError(f"{config_path}: no `architecture`")
    _, metadata = load_safetensors(weights, str(weights))  # refuses a broken file before upload
    if metadata.get("zoo_architecture") not in (None, arch):
        raise CorruptWeightsError(f"{weights} holds {metadata['zoo_architecture']}, but "
                                  f"{config_path} says {arch}")
    return arch, config


def push(directory: str | Path, repo_id: str, *, revision: str = "main", private: bool = False,
         message: str | None = None, update_registry: str | None = None,
         registry_dir: str | Path | None = None, source_url: str | None = None,
         license_: str | None = None, metrics: dict[str, Any] | None = None,
         ) -> tuple[str, dict[str, Any], Path | None]:
    """Upload a save_pretrained folder in one commit; return (tag, record dict, file written).

    The record pins the commit sha and the file's sha256 and size.  With ``update_registry``
    it is schema-checked before anything is uploaded, and the upload is checked against the
    Hub's own answer for that commit before the registry file is (atomically) rewritten.
    """
    from huggingface_hub import CommitOperationAdd, HfApi, get_hf_file_metadata, hf_hub_url

    directory = Path(directory)
    arch, config = _read_folder(directory)
    spec = get_spec(arch)
    layout = (config.get("zoo") or {}).get("layout", "zoo")
    weights = directory / WEIGHTS_NAME
    sha256, size = sha256_file(weights), weights.stat().st_size
    full = _full_tag(update_registry or (config.get("zoo") or {}).get("tag") or "unpublished",
                     arch)
    hub = {"repo_id": repo_id, "revision": "0" * 40, "filename": WEIGHTS_NAME, "sha256": sha256,
           "size": size, "layout": layout}
    base = _record_dict(full, hub, config, spec, source_url, license_)
    if metrics is not None:
        base["metrics"] = metrics
    if update_registry is not None:
        _validated(full, base)  # refuse before uploading anything
    transport: tuple[type[BaseException], ...] = (*network_errors(), OSError, ValueError)
    api = HfApi()
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        if revision != "main":
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        ops = [CommitOperationAdd(path_in_repo=p.name, path_or_fileobj=str(p))
               for p in sorted(directory.iterdir())
               if p.is_file() and not p.name.startswith(".")]
        info = api.create_commit(repo_id, operations=ops, revision=revision,
                                 commit_message=message or f"zoo push: {arch}")
        meta = get_hf_file_metadata(hf_hub_url(repo_id, WEIGHTS_NAME, revision=info.oid))
    except ZooError:
        raise
    except transport as e:
        raise HubConnectionError(f"push to {repo_id} failed: {type(e).__name__}: {e}") from None
    if meta.commit_hash != info.oid or (meta.size is not None and meta.size != size):
        raise WeightsError(f"push to {repo_id}: the Hub reports {meta.size} bytes at commit "
                           f"{meta.commit_hash} for {WEIGHTS_NAME}, expected {size} at {info.oid}; "
                           "no record written")
    base["hub"]["revision"] = info.oid
    written = None
    if update_registry is not None:
        record = _validated(full, base)
        written = None if registry_dir is not None else registry().sources.get(full)
        folder = Path(registry_dir) if registry_dir is not None else default_registry_dir()
        written = written or folder / f"{spec.family}.yaml"
        update_file(written, full, record)
        base = record.model_dump(mode="json", exclude_none=True)
    return full, base, written


def metrics_from_eval(path: str | Path) -> dict[str, Any]:
    """The registry ``metrics`` of a ``zoo eval --out`` JSON result (refuses partial results)."""
    try:
        res = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise RegistryError(f"{path}: unreadable eval result ({e})") from None
    if res.get("partial"):
        raise RegistryError(f"{path} is a partial (interrupted) evaluation; rerun it to the end")
    cfg = res.get("data_config") or {}
    size = cfg.get("input_size")
    return {"top1": round(res["top1"], 3), "top5": round(res["top5"], 3),
            "num_samples": res["num_samples"], "img_size": size[-1] if size else None,
            "crop_pct": cfg.get("crop_pct"), "measured_by": f"zoo eval (zoo {res.get('zoo_version')})",
            "date": (res.get("date") or "")[:10] or None,
            "dataset": "/".join(Path(res.get("data", "dataset")).parts[-2:])}


def _record_dict(full: str, hub: dict[str, Any], config: dict[str, Any], spec: Any,
                 source_url: str | None, license_: str | None) -> dict[str, Any]:
    """The registry record for a pushed file: the tag's existing record (provenance, metrics)
    with the new ``hub`` section, and the given source URL / license."""
    existing = registry().records.get(full)
    base: dict[str, Any] = existing.model_dump(mode="json", exclude_none=True) if existing else {}
    base["hub"] = hub
    if source_url is not None:
        base["source"] = {**base.get("source", {}), "url": source_url}
    base.setdefault("source", {}).setdefault("converter", f"zoo convert (zoo {__version__})")
    lic = license_ or base.get("license") or (config.get("pretrained_cfg") or {}).get("license")
    if lic:
        base["license"] = lic
    num_classes = config.get("num_classes")
    if isinstance(num_classes, int) and num_classes != spec.data.num_classes:
        base["num_classes"] = num_classes
    return base


def _validated(full: str, base: dict[str, Any]) -> Any:
    if "url" not in base["source"]:
        raise RegistryError(f"{full} has no registry record yet: give --source-url (the "
                            "original checkpoint's URL, for provenance)")
    if not base.get("license"):
        raise RegistryError(f"{full}: give --license")
    try:
        return WeightsRecord.model_validate(base)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}"
                             for err in e.errors())
        raise RegistryError(f"{full}: the record would be invalid ({problems}); nothing was "
                            "pushed or written") from None


def _full_tag(tag: str, arch: str) -> str:
    model, sub = split_name(tag)
    if sub is None:  # a bare tag
        return f"{arch}.{model}"
    if model != arch:
        raise RegistryError(f"tag {tag!r} names model {model!r}, but the folder holds {arch}")
    return tag
