"""The publishing commands: ``zoo convert``, ``zoo push``, ``zoo verify``, ``zoo download``.

The flow from an upstream checkpoint to a registry record::

    zoo convert simplenetv1_5m_m1.in1k original.pth --out out/   # safe load, convert, strict build
    zoo push out/ org/simplenetv1_5m_m1.in1k --update-registry simplenetv1_5m_m1.in1k
    zoo verify --all                                             # cached files vs. registry sha256

Each handler is ``func(args) -> int`` (0: success).  Nothing here imports torch or
huggingface_hub at import time (``zoo list`` builds this parser too).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from zoo import yamlio
from zoo.catalog import get_spec, split_name
from zoo.errors import UsageError, WeightsError
from zoo.publish.upload import metrics_from_eval, push
from zoo.publish.verify import verify_tag
from zoo.registry import registry
from zoo.weights import resolve_tag


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


def cmd_convert(args: argparse.Namespace) -> int:
    if args.out is not None and Path(args.out).exists() and not Path(args.out).is_dir():
        raise UsageError(f"zoo convert: --out {args.out} is an existing file; give a folder (it "
                         "receives model.safetensors, config.json and README.md)")
    if not Path(args.checkpoint).is_file():
        raise UsageError(f"zoo convert: no checkpoint file at {args.checkpoint}")
    from zoo.publish.conversion import convert  # imports torch

    out = convert(args.name, args.checkpoint, out=args.out, use_ema=args.use_ema)
    print(out)
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    tag, record, written = push(args.directory, args.repo_id, revision=args.revision,
                                private=args.private, message=args.message,
                                update_registry=args.update_registry,
                                registry_dir=args.registry_dir, source_url=args.source_url,
                                license_=args.license,
                                metrics=metrics_from_eval(args.metrics) if args.metrics else None)
    print(yamlio.dumps({"weights": {tag: record}}).rstrip())
    if written is not None:
        print(f"# written to {written}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
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
            get_spec(model)  # an unknown model -> UnknownModelError with suggestions
            print(f"{model}: no registry weights")
            return 0
    bad = 0
    for tag in tags:
        status, detail = verify_tag(tag)
        bad += status == "corrupt"
        print(f"{tag:<40} {status:<10} {detail}")
    return 1 if bad else 0


def cmd_download(args: argparse.Namespace) -> int:
    model, tag = split_name(args.name)
    source = resolve_tag(get_spec(model), tag)
    print(f"{source.what}: {source.path}")
    return 0
