"""Publishing and cache commands: ``zoo convert``, ``zoo push``, ``zoo verify``, ``zoo download``.

The flow from an upstream checkpoint to a registry record::

    zoo convert simplenetv1_5m_m1.in1k original.pth --out out/   # safe load, convert, strict build
    zoo push out/ org/simplenetv1_5m_m1.in1k --update-registry simplenetv1_5m_m1.in1k
    zoo verify --all                                             # cached files vs. registry sha256

Each command's handler is ``func(args) -> int`` (0: success).  Nothing here imports torch or
huggingface_hub at import time.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from zoo.errors import (ChecksumMismatchError, CorruptWeightsError, RegistryError,
                        SourceChecksumError, WeightsError, ZooError)


def register(subparsers: Any) -> None:
    """Add the publishing commands to ``zoo``'s argument parser."""
    p = subparsers.add_parser(
        "convert", help="convert an original checkpoint into a zoo safetensors folder",
        description="Read an upstream checkpoint safely (torch.load weights_only with an "
        "allow-list, or safetensors), convert it to zoo's layout, load it strictly into the "
        "model, and write model.safetensors + config.json + README.md.")
    p.add_argument("name", help="MODEL or MODEL.TAG (a registry tag: its recorded source sha256 "
                   "is checked, and without --out the result goes to zoo's cache for that tag)")
    p.add_argument("checkpoint", help="the original checkpoint file (.pth/.pt/.bin/.safetensors)")
    p.add_argument("--out", help="folder to write (default: zoo's cache for the registry tag)")
    p.add_argument("--use-ema", action="store_true", help="take the checkpoint's EMA weights")
    p.set_defaults(func=cmd_convert)

    p = subparsers.add_parser(
        "push", help="upload a save_pretrained folder to the Hub and print its registry record")
    p.add_argument("directory", help="folder written by `zoo convert` / zoo.save_pretrained")
    p.add_argument("repo_id", help="org/name on the Hub (created if missing)")
    p.add_argument("--revision", default="main", help="branch to commit to (created if missing)")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.add_argument("--message", default=None, help="commit message")
    p.add_argument("--update-registry", metavar="TAG", default=None,
                   help="write the record into registry/<family>.yaml under MODEL.TAG "
                   "(atomically, schema-validated)")
    p.add_argument("--registry-dir", default=None,
                   help="registry folder to update (default: zoo's own registry/)")
    p.add_argument("--source-url", default=None,
                   help="provenance URL of the original checkpoint (needed when the tag has no "
                   "record yet)")
    p.add_argument("--license", default=None, help="license of the weights (default: the "
                   "existing record's, else the config's)")
    p.add_argument("--metrics", default=None, metavar="RESULTS_JSON",
                   help="attach a `zoo eval --out` result as the record's measured metrics")
    p.set_defaults(func=cmd_push)

    p = subparsers.add_parser(
        "verify", help="re-hash cached weights against the registry: ok / missing / corrupt")
    p.add_argument("name", nargs="?", help="MODEL or MODEL.TAG")
    p.add_argument("--all", action="store_true", help="every registry tag")
    p.set_defaults(func=cmd_verify)

    p = subparsers.add_parser("download", help="fetch registry weights into the cache")
    p.add_argument("name", help="MODEL.TAG (or MODEL for its default tag)")
    p.set_defaults(func=cmd_download)


# -- convert -------------------------------------------------------------------------------------

def cmd_convert(args: argparse.Namespace) -> int:
    out = convert(args.name, args.checkpoint, out=args.out, use_ema=args.use_ema)
    print(out)
    return 0


def release_hash_prefix(url: str) -> str | None:
    """The sha256 prefix a torch.hub-style release file name carries (``name-36c4ca4d.pth``:
    the file's sha256 starts with ``36c4ca4d``), or None."""
    m = re.search(r"-([0-9a-f]{8,64})\.(?:pth|pt|pth\.tar|bin)$", url.rsplit("/", 1)[-1])
    return m.group(1) if m else None


def convert(name: str, checkpoint: str | Path, *, out: str | Path | None = None,
            use_ema: bool = False, packed: bool = False) -> Path:
    """Original checkpoint -> verified, strictly loaded zoo model -> save_pretrained folder.

    Returns the folder written.  Without ``out``, ``name`` must carry a registry tag and the
    result replaces ``zoo.weights.converted_path(tag)`` atomically (with a conversion record
    holding its sha256, which later loads check).
    """
    from zoo.build import build_model, get_spec, load_into, split_name
    from zoo.build import convert_checkpoint
    from zoo.checkpoint import load_original_checkpoint
    from zoo.registry import registry
    from zoo.weights import converted_path, save_pretrained, sha256_file

    model_name, tag = split_name(name)
    spec = get_spec(model_name)
    record = registry().get(f"{model_name}.{tag}") if tag else None
    checkpoint = Path(checkpoint)
    if out is None and record is None:
        raise WeightsError(f"zoo convert {name}: give --out DIR, or a registry tag "
                           f"(MODEL.TAG; known: {registry().tags_of(model_name) or 'none'}) to "
                           "store the result in zoo's cache")
    source_sha = None
    published = ((record.source.sha256 or release_hash_prefix(record.source.url))
                 if record is not None else None)
    if published:
        if not checkpoint.is_file():
            raise WeightsError(f"{checkpoint}: no such file")
        source_sha = sha256_file(checkpoint)
        if not source_sha.startswith(published):
            raise SourceChecksumError(f"{checkpoint} (the original checkpoint of {name})",
                                      published, source_sha, record.source.url)
    state_dict = convert_checkpoint(model_name, load_original_checkpoint(checkpoint,
                                                                         use_ema=use_ema))
    if record is not None and record.num_classes and record.num_classes != spec.data.num_classes:
        spec = spec.with_overrides(num_classes=record.num_classes)
    model = build_model(spec, meta=True)
    load_into(model, state_dict, f"{checkpoint} converted for {model_name}")
    metrics = record.metrics.model_dump(mode="json", exclude_none=True) \
        if record is not None and record.metrics else None
    if out is not None:
        return save_pretrained(model.eval(), out, tag=tag, metrics=metrics, packed=packed)
    if packed:
        raise WeightsError("packed weights are written to a folder: give --out DIR")
    # store into the cache: build beside the target, then swap file by file
    full = f"{model_name}.{tag}"
    target = converted_path(full)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent.parent))
    try:
        save_pretrained(model, tmp, tag=tag, metrics=metrics)
        conversion = {"tag": full, "sha256": sha256_file(tmp / target.name),
                      "size": (tmp / target.name).stat().st_size, "source_sha256": source_sha,
                      "source_file": checkpoint.name}
        (tmp / "conversion.json").write_text(json.dumps(conversion, indent=2))
        # the old record goes first: a reader never checks a new file against an old hash
        (target.parent / "conversion.json").unlink(missing_ok=True)
        for item in sorted(p.name for p in tmp.iterdir() if p.name != "conversion.json"):
            os.replace(tmp / item, target.parent / item)
        os.replace(tmp / "conversion.json", target.parent / "conversion.json")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target.parent


def convert_and_check(name: str, checkpoint: str | Path, out: str | Path, *,
                      family: str | None = None, use_ema: bool = False,
                      packed: bool = False) -> Path:
    """:func:`convert` to ``out``, then reload the folder with ``zoo.create(weights=out)`` and
    require the same logits on a seeded random batch as the checkpoint loaded directly: bit for
    bit when ``packed``, else to float round-off (the checkpoint's tensors may be unaligned
    views of shared storages, which kernels treat differently)."""
    import torch

    import zoo
    from zoo.build import build_model, get_spec, load_into, split_name
    from zoo.checkpoint import load_original_checkpoint

    model_name, _ = split_name(name)
    spec = get_spec(model_name)
    if family is not None and spec.family != family:
        raise WeightsError(f"{model_name} is not a {family} model (family {spec.family!r})")
    out = convert(name, checkpoint, out=out, use_ema=use_ema, packed=packed)
    original = build_model(spec, meta=True)
    load_into(original, zoo.convert_checkpoint(
        model_name, load_original_checkpoint(checkpoint, use_ema=use_ema)), str(checkpoint))
    reloaded = zoo.create(model_name, weights=str(out))
    x = torch.randn(1, *spec.data.input_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.manual_seed(0)
        expected = original.eval()(x)
        torch.manual_seed(0)
        got = reloaded(x)
        # packed: the codes are the latent model's quantized weights, bit for bit
        same = (torch.equal(got, expected) if packed
                else torch.allclose(got, expected, rtol=1e-5, atol=1e-6))
        if not same:
            raise WeightsError(f"round trip through {out}: the reloaded model's logits differ")
    print(f"{name}: {zoo.measure.count_params(original):,} parameters written to {out}"
          + (" (packed)" if packed else ""))
    return Path(out)


def convert_script(family: str, doc: str | None, argv: list[str] | None = None, *,
                   packed_option: bool = False) -> int:
    """The command line of ``scripts/convert_<family>.py`` (one per family, same options)."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    parser.add_argument("name", help="zoo model name, with its registry tag where it has one")
    parser.add_argument("checkpoint", type=Path, help="the original checkpoint file")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--use-ema", action="store_true", help="take the checkpoint's EMA weights")
    if packed_option:
        parser.add_argument("--packed", action="store_true",
                            help="write the deployable form (packed integer codes + scales)")
    args = parser.parse_args(argv)
    try:
        convert_and_check(args.name, args.checkpoint, args.out, family=family,
                          use_ema=args.use_ema, packed=getattr(args, "packed", False))
    except ZooError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


# -- push ----------------------------------------------------------------------------------------

def cmd_push(args: argparse.Namespace) -> int:
    tag, record, written = push(args.directory, args.repo_id, revision=args.revision,
                                private=args.private, message=args.message,
                                update_registry=args.update_registry,
                                registry_dir=args.registry_dir, source_url=args.source_url,
                                license_=args.license,
                                metrics=metrics_from_eval(args.metrics) if args.metrics else None)
    from zoo import yamlio

    print(yamlio.dumps({"weights": {tag: record}}).rstrip())
    if written is not None:
        print(f"# written to {written}")
    return 0


def _read_folder(directory: Path) -> tuple[str, dict[str, Any]]:
    from zoo.weights import CONFIG_NAME, WEIGHTS_NAME, load_safetensors

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

    from zoo.build import get_spec
    from zoo.registry import registry, update_file
    from zoo.weights import WEIGHTS_NAME, sha256_file

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
    network = _network_errors()
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
    except (*network, OSError, ValueError) as e:
        from zoo.errors import HubConnectionError

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
        folder = Path(registry_dir) if registry_dir is not None else _registry_dir()
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
    import zoo
    from zoo.registry import registry

    existing = registry().records.get(full)
    base: dict[str, Any] = existing.model_dump(mode="json", exclude_none=True) if existing else {}
    base["hub"] = hub
    if source_url is not None:
        base["source"] = {**base.get("source", {}), "url": source_url}
    base.setdefault("source", {}).setdefault("converter", f"zoo convert (zoo {zoo.__version__})")
    lic = license_ or base.get("license") or (config.get("pretrained_cfg") or {}).get("license")
    if lic:
        base["license"] = lic
    num_classes = config.get("num_classes")
    if isinstance(num_classes, int) and num_classes != spec.data.num_classes:
        base["num_classes"] = num_classes
    return base


def _validated(full: str, base: dict[str, Any]) -> Any:
    from pydantic import ValidationError

    from zoo.registry import WeightsRecord

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
    from zoo.build import split_name

    model, sub = split_name(tag)
    if sub is None:  # a bare tag
        return f"{arch}.{model}"
    if model != arch:
        raise RegistryError(f"tag {tag!r} names model {model!r}, but the folder holds {arch}")
    return tag


def _registry_dir() -> Path:
    from zoo.catalog import data_dir

    return data_dir("registry")


def _network_errors() -> tuple[type[BaseException], ...]:
    from zoo.weights import _network_errors as errors

    return errors()


# -- verify / download ---------------------------------------------------------------------------

def verify_tag(tag: str) -> tuple[str, str]:
    """(status, detail) of one registry tag's local file, re-hashed; no network.

    status: ``ok``, ``missing``, ``corrupt`` (the bad file is removed) or ``unverified`` (a
    converted file without a conversion record; its safetensors header is valid).
    """
    from zoo.registry import registry
    from zoo.weights import (cached_hub_file, converted_path, load_safetensors,
                             read_conversion_record, verify_file)

    record = registry().get(tag)
    if record.hub is not None:
        hub = record.hub
        path = cached_hub_file(hub.repo_id, hub.filename, hub.revision)
        if path is None:
            return "missing", f"not cached (fetch with `zoo download {tag}`)"
        sha, size, where = hub.sha256, hub.size, path
    else:
        path = converted_path(tag)
        if not path.exists():
            return "missing", f"not converted (run `zoo convert {tag} <checkpoint>`)"
        try:
            stamp = read_conversion_record(tag)
        except CorruptWeightsError as e:
            return "corrupt", str(e)
        if stamp is None:
            try:
                load_safetensors(path, tag)
            except CorruptWeightsError as e:
                return "corrupt", str(e)
            return "unverified", f"{path} (readable; no conversion record to check it against)"
        sha, size, where = stamp["sha256"], stamp["size"], path
    try:
        verify_file(Path(where), sha, size, tag, trust_stamp=False)
    except ChecksumMismatchError as e:
        return "corrupt", f"{e}"
    except OSError as e:
        return "corrupt", f"{where}: unreadable ({e})"
    return "ok", str(Path(where))


def cmd_verify(args: argparse.Namespace) -> int:
    from zoo.build import split_name
    from zoo.registry import registry

    if args.all == (args.name is not None):
        raise WeightsError("zoo verify: give a MODEL / MODEL.TAG, or --all")
    if args.all:
        tags = list(registry().records)
    else:
        model, tag = split_name(args.name)
        tags = [f"{model}.{tag}"] if tag else registry().tags_of(model)
        if tag:
            registry().get(tags[0])  # unknown tag -> UnknownModelError with suggestions
        if not tags:
            from zoo.build import ensure_known

            ensure_known(model)
            print(f"{model}: no registry weights")
            return 0
    bad = 0
    for tag in tags:
        status, detail = verify_tag(tag)
        bad += status == "corrupt"
        print(f"{tag:<40} {status:<10} {detail}")
    return 1 if bad else 0


def cmd_download(args: argparse.Namespace) -> int:
    from zoo.build import get_spec, split_name
    from zoo.weights import resolve_tag

    model, tag = split_name(args.name)
    source = resolve_tag(get_spec(model), tag)
    print(f"{source.what}: {source.path}")
    return 0
