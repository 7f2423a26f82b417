"""The publishing commands: ``zoo convert``, ``zoo push``, ``zoo verify``, ``zoo download``,
``zoo fetch`` and ``zoo mirror``.

The flow from an upstream checkpoint to a registry record, by hand::

    zoo convert simplenetv1_5m_m1.in1k original.pth --out out/   # safe load, convert, strict build
    zoo push out/ org/simplenetv1_5m_m1.in1k --update-registry simplenetv1_5m_m1.in1k
    zoo verify --all                                             # cached files vs. registry sha256

or for every source record at once: ``zoo mirror --org ORG`` (see :mod:`zoo.publish.mirror`).
A user converts one tag into zoo's cache with ``zoo fetch NAME.TAG``.

Each handler is ``func(args) -> int`` (0: success).  Nothing here imports torch or
huggingface_hub at import time (``zoo list`` builds this parser too).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from zoo import yamlio
from zoo.argtypes import positive_int, tensor_file
from zoo.catalog import get_spec, split_name
from zoo.errors import UsageError, WeightsError


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
    p.add_argument("--tensor", action="append", default=[], metavar="KEY=FILE", type=tensor_file,
                   help="an original state-dict entry that upstream keeps in a file of its own "
                   "(pickle.dump of one tensor, e.g. EBV's basis vectors); repeatable")
    p.add_argument("--check", action="store_true",
                   help="with --out: reload the written folder and require the same logits as "
                   "the checkpoint loaded directly (what zoo fetch and zoo mirror run)")
    p.set_defaults(func=cmd_convert)

    p = subparsers.add_parser(
        "fetch", help="download a tag's original checkpoint, convert it into zoo's cache",
        description="For a registry tag published only as an original checkpoint: download it "
        "from its host (Google Drive, GitHub releases, Zenodo, Dropbox, the Hub, https), check "
        "its sha256 where the registry pins one (else record the one seen), convert it in a "
        "separate process with weights_only loading, check it, and store it as verified "
        "safetensors in zoo's cache. Afterwards zoo.create(NAME, pretrained=True) loads it, "
        "offline too.")
    p.add_argument("name", help="MODEL.TAG (or MODEL for its default tag)")
    p.add_argument("--from-dir", metavar="DIR", default=None,
                   help="use files downloaded by hand from DIR instead of downloading: the "
                   "checkpoint named TAG.<ext> or as in the source URL, a tensor file of the "
                   "source named TAG.NAME.<ext> or as in its URL")
    p.add_argument("--force", action="store_true",
                   help="fetch and convert again even if the tag is converted already")
    p.set_defaults(func=cmd_fetch)

    p = subparsers.add_parser(
        "mirror", help="(maintainers) convert every source-only record and host it on the Hub",
        description="For every registry record with a source and no Hub file: download the "
        "original, record its sha256 and size, convert it in a separate process (weights_only), "
        "check it (strict load, forward), push model.safetensors + config.json (full spec) + a "
        "model card to ORG/<model>.<tag>, and write the Hub record back into the registry "
        "(ZOO_REGISTRY_DIR, default zoo's own registry/). Tags mirrored before are verified, "
        "not redone.")
    p.add_argument("patterns", nargs="*", metavar="PATTERN",
                   help="fnmatch pattern(s) on MODEL.TAG or MODEL (default: every record)")
    p.add_argument("--org", required=True, help="Hub organization (or user) to push to")
    p.add_argument("--dry-run", action="store_true", help="print the plan as a table, do nothing")
    p.add_argument("--jobs", type=positive_int, default=1, metavar="N",
                   help="tags processed at once (default 1)")
    p.add_argument("--from-dir", metavar="DIR", default=None,
                   help="folder of originals downloaded by hand (TAG.<ext>, or the URL's file "
                   "name; a source's tensor files TAG.NAME.<ext> or their URL's file name); "
                   "needed for hosts without a direct download (SharePoint, Baidu)")
    p.set_defaults(func=cmd_mirror)

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
    if args.check and args.out is None:
        raise UsageError("zoo convert: --check needs --out DIR")
    from zoo.publish.conversion import convert, convert_and_check  # imports torch

    if args.check:
        convert_and_check(args.name, args.checkpoint, args.out, use_ema=args.use_ema,
                          tensors=dict(args.tensor))
        return 0
    out = convert(args.name, args.checkpoint, out=args.out, use_ema=args.use_ema,
                  tensors=dict(args.tensor))
    print(out)
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from zoo.registry import default_tag, registry
    from zoo.weights import resolve_tag
    from zoo.weights.cache import converted_path
    from zoo.weights.fetch import fetch_tag

    model, tag = split_name(args.name)
    get_spec(model)  # an unknown model -> UnknownModelError with suggestions
    full = f"{model}.{tag}" if tag else default_tag(model)
    if full is None:
        raise WeightsError(f"{model} has no registry weights to fetch")
    record = registry().get(full)
    if record.hub is not None:
        source = resolve_tag(get_spec(model), full.split(".", 1)[1])
        print(f"{full}: a Hub file, downloaded and verified: {source.path}")
        return 0
    if converted_path(full).exists() and not args.force:
        source = resolve_tag(get_spec(model), full.split(".", 1)[1])  # re-checks its record
        print(f"{full}: converted already ({source.path}); --force converts it again")
        return 0
    fetched = fetch_tag(full, from_dir=args.from_dir, progress=True)
    src = fetched.source
    print(f"{full}: original checkpoint via {src.how}; {src.size:,} bytes, sha256 {src.sha256}")
    print(f"  sha256 {src.pin_note()}")
    for name, file in fetched.tensors.items():
        print(f"  tensor file {name} via {file.how}; {file.size:,} bytes, sha256 {file.sha256} "
              f"{file.pin_note()}")
    print(f"  converted in a separate process (weights_only loading): {fetched.report}")
    print(f"  -> {fetched.path}")
    print(f"zoo.create({full!r}, pretrained=True) now loads it, offline too.")
    return 0


def cmd_mirror(args: argparse.Namespace) -> int:
    from zoo.publish.mirror import make_plan, plan_table, report_table, run_mirror

    if args.dry_run:
        print(plan_table(make_plan(args.org, args.patterns, from_dir=args.from_dir)))
        return 0
    outcomes = run_mirror(args.org, args.patterns, from_dir=args.from_dir, jobs=args.jobs,
                          progress=True)
    print(report_table(outcomes))
    return 1 if any(o.result == "failed" for o in outcomes) else 0


def cmd_push(args: argparse.Namespace) -> int:
    from zoo.publish.upload import metrics_from_eval, push

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
    from zoo.publish.verify import verify_tag
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
    from zoo.weights import resolve_tag

    model, tag = split_name(args.name)
    source = resolve_tag(get_spec(model), tag)
    print(f"{source.what}: {source.path}")
    return 0
