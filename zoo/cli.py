"""The ``zoo`` command line.

Listing, info without measurement, schema and checks never import torch.  Commands from other
modules (publishing, evaluation, family tools such as ``zoo design``) plug in through a
``register(subparsers)`` function.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zoo.catalog import catalog, get_spec, list_models, register_specs, split_name
from zoo.catalog.discovery import file_family
from zoo.argtypes import ZooArgumentParser
from zoo.errors import ZooError
from zoo.families import family_names, get_family
from zoo.paths import data_dir

# Modules that add commands; each has register(subparsers) and imports torch lazily.
_COMMAND_MODULES = ("zoo.publish.commands", "zoo.evaluate", "zoo.bench", "zoo.calibrate",
                    "zoo.site.cli", "zoo.export.commands")
DEFAULT_DEMO_MODEL = "simplenetv1_5m_m2"


def _fmt_m(x: float | None, unit: str = "M") -> str:
    return "-" if x is None else f"{x:,.2f}{unit}"


def cmd_list(args: argparse.Namespace) -> int:
    for name in list_models(args.pattern, family=args.family, pretrained=args.pretrained):
        print(name)
    return 0


def cmd_families(args: argparse.Namespace) -> int:
    for fam in family_names():
        print(f"{fam:<14} {len(catalog().names(family=fam)):>3} models")
    return 0


def _weights_lines(name: str) -> list[str]:
    from zoo.registry import registry

    lines = []
    for tag in registry().tags_of(name):
        rec = registry().records[tag]
        if rec.hub:
            size = f"{rec.hub.size / 1e6:.1f} MB, " if rec.hub.size else ""
            where = f"hf-hub {rec.hub.repo_id}@{rec.hub.revision[:10]} {rec.hub.filename} " \
                    f"({size}sha256 {rec.hub.sha256[:12]}...)"
        else:
            where = f"convertible source {rec.source.url} (run `zoo fetch {tag}`)"
        metrics = ""
        if rec.metrics and rec.metrics.top1 is not None:
            metrics = f", top-1 {rec.metrics.top1} ({rec.metrics.measured_by})"
        lines.append(f"  {tag}: {where}; license {rec.license}{metrics}")
    return lines or ["  (no published weights)"]


def cmd_info(args: argparse.Namespace) -> int:
    from zoo.weights.refs import is_hub_reference

    for path in args.specs or []:
        register_specs(path)
    hub = None
    if is_hub_reference(args.name):  # a self-describing repo: the spec its config carries
        from zoo.weights.remote import hub_model

        hub = hub_model(args.name)
        spec = hub.spec
    else:
        spec = get_spec(split_name(args.name)[0])
    name = spec.name
    if args.json:
        print(json.dumps(spec.model_dump(mode="json"), indent=2))
        return 0
    d, p, r = spec.data, spec.paper, spec.reported
    print(f"{spec.name}  [{spec.family}]")
    if spec.description:
        print(f"  {spec.description}")
    print(f"paper:   {p.title}" + (f" (arXiv:{p.arxiv})" if p.arxiv else ""))
    if p.code:
        print(f"code:    {p.code}  (license: {p.license or 'unknown'})")
    print(f"input:   {tuple(d.input_size)}{' fixed' if d.fixed_input_size else ''}, "
          f"{d.interpolation}, crop {d.crop_pct}; classes: {d.num_classes} ({d.label_set})")
    print("arch:    " + json.dumps(spec.arch.model_dump(mode="json"), separators=(",", ":"))[:400])
    measured: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    if not args.no_measure:
        from zoo.build import build_model
        from zoo.measure import count_macs, count_params

        model = build_model(spec)
        c, h, w = d.input_size
        measured = {"params_m": count_params(model) / 1e6,
                    "macs_m": count_macs(model, (c, h, w)) / 1e6}
        extra = get_family(spec.family).info(model)
    print(f"{'':9}{'measured':>14}{'reported':>14}")
    for key, label in (("params_m", "params"), ("macs_m", "MACs")):
        rep = getattr(r, key) if r else None
        print(f"{label + ':':9}{_fmt_m(measured.get(key)):>14}{_fmt_m(rep):>14}")
    if r:
        acc = " / ".join(f"{v}" for v in (r.top1, r.top5) if v is not None)
        print(f"reported top-1/top-5: {acc or '-'} on {r.dataset}  [{r.source}]")
    for key, value in extra.items():
        print(f"{key + ':':9} {value}")
    print("weights:")
    if hub is not None:
        print(f"  {hub.ref}: model.safetensors from the repo itself (unpinned: no registry "
              f"record; spec schema {hub.config.zoo.spec_schema if hub.config.zoo else '?'})")
    else:
        print("\n".join(_weights_lines(name)))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from zoo.catalog import json_schema

    print(json.dumps(json_schema("entry" if args.entry else "file"), indent=2))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Validate every spec and registry record: each record names a known model, and each
    shipped file is named after the family of its models."""
    from zoo.registry import registry

    names = catalog().names()
    for name in names:
        catalog().spec(name)
    unknown = [t for t in registry().records if t.rsplit(".", 1)[0] not in catalog().entries]
    if unknown:
        print(f"registry records for unknown models: {unknown}", file=sys.stderr)
        return 1
    misplaced = _misplaced()
    if misplaced:
        print("files not named after their family (specs/<family>.yaml or "
              "specs/<family>/<paper>.yaml, registry likewise):\n  " + "\n  ".join(misplaced),
              file=sys.stderr)
        return 1
    print(f"ok: {len(names)} specs, {len(registry().records)} weights records")
    return 0


def _misplaced() -> list[str]:
    """Shipped spec/registry entries whose model's family differs from their file's family."""
    from zoo.registry import registry, registry_dir

    out = []
    root = data_dir("specs")
    for name, entry in catalog().entries.items():
        path = Path(entry.source)
        if path.is_relative_to(root) and catalog().family_of(name) != file_family(path, root):
            out.append(f"{name} ({catalog().family_of(name)}) in {path}")
    root = registry_dir()
    for tag, path in registry().sources.items():
        model = tag.rsplit(".", 1)[0]
        if model in catalog().entries and catalog().family_of(model) != file_family(path, root):
            out.append(f"{tag} ({catalog().family_of(model)}) in {path}")
    return out


def cmd_demo(args: argparse.Namespace) -> int:
    from zoo.demo import run_demo

    return run_demo(args.name, image=args.image, pretrained=args.pretrained)


def build_parser() -> argparse.ArgumentParser:
    from zoo.version import __version__

    parser = ZooArgumentParser(prog="zoo", description="A declarative model zoo for image "
                               "classification: specs, builders, Hub weights, timm plug-in.")
    parser.add_argument("--version", action="version", version=f"zoo {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error (give it before the command)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="list models (or pretrained name.tag with --pretrained)")
    p.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern, e.g. 'sret*'")
    p.add_argument("--family")
    p.add_argument("--pretrained", action="store_true")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("families", help="list model families")
    p.set_defaults(func=cmd_families)

    p = sub.add_parser("info", help="a model's spec, measured params/MACs next to the paper's, "
                       "and its weights")
    p.add_argument("name", help="MODEL[.TAG], or hf-hub:org/repo[@rev] (a repo written by zoo)")
    p.add_argument("--no-measure", action="store_true", help="don't build the model (no torch)")
    p.add_argument("--json", action="store_true", help="print the resolved spec as JSON")
    p.add_argument("--specs", action="append", metavar="YAML",
                   help="extra spec file(s) or folder(s) to register first (repeatable)")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("schema", help="print the JSON Schema of spec files (for editors)")
    p.add_argument("--entry", action="store_true",
                   help="the schema of one resolved spec entry instead of a whole spec file")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("check", help="validate all specs and registry records")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("demo", help="build a model from its spec, measure it and classify the "
                       "bundled sample image")
    p.add_argument("name", nargs="?", default=DEFAULT_DEMO_MODEL)
    p.add_argument("--image", help="an image file instead of the bundled sample")
    p.add_argument("--pretrained", action="store_true", help="load the registry weights")
    p.set_defaults(func=cmd_demo)

    for module_name in _COMMAND_MODULES:
        importlib.import_module(module_name).register(sub)
    for fam in family_names():
        get_family(fam).register_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``zoo`` command.  Every failure ends in one ``zoo: error:`` line on stderr and
    exit status 2 (130 when interrupted); ``--debug`` (before the command) re-raises instead,
    with the traceback."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv[:argv.index("--")] if "--" in argv else "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        if debug:
            raise
        print("zoo: interrupted", file=sys.stderr)
        return 130
    except ZooError as e:
        if debug:
            raise
        print(f"zoo: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if debug:
            raise
        print(f"zoo: error: {_os_error(e)}", file=sys.stderr)
        return 2
    except Exception as e:  # a bug in zoo or below it: still one line, the details on request
        if debug:
            raise
        print(f"zoo: error: {_unexpected(e)}", file=sys.stderr)
        return 2


def _unexpected(e: BaseException) -> str:
    return (f"unexpected {type(e).__name__}: {_one_line(e)} (this is a bug; rerun with "
            "`zoo --debug ...` for the traceback and report it)")


def _os_error(e: OSError) -> str:
    """A file-system failure on a named path (a folder that does not exist, no permission, a
    full disk) is the environment's, not a bug: say which path and what to check."""
    if e.filename is None:
        return _unexpected(e)
    paths = " -> ".join(str(f) for f in (e.filename, e.filename2) if f is not None)
    return (f"{paths}: {e.strerror or type(e).__name__} (check that this path exists and that "
            "you may read or write there; `zoo --debug ...` shows where it failed)")


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text[:500] + ("..." if len(text) > 500 else "")


if __name__ == "__main__":
    sys.exit(main())
