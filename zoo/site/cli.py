"""``zoo catalog``: the command (imports nothing heavy until it runs)."""
from __future__ import annotations

import argparse
import sys
from typing import Any


def register(subparsers: Any) -> None:
    """Add ``zoo catalog`` to zoo's argument parser."""
    p = subparsers.add_parser(
        "catalog", help="write a static site of the catalog: plots, a table and a page per model",
        description="Write an offline HTML site (no CDN) from the specs and the registry: a "
        "sortable, filterable table of every model, top-1 against MACs and parameters, a check "
        "of the papers' parameter/MAC claims, and a page per model. Measured numbers are cached "
        "by spec content in zoo's cache ($ZOO_CACHE or ~/.cache/zoo), so regenerating is fast.")
    p.add_argument("patterns", nargs="*", default=["*"], metavar="PATTERN",
                   help="only models matching any of these fnmatch patterns (default: all)")
    p.add_argument("--out", required=True, help="folder to write (new, empty, or an earlier "
                   "`zoo catalog` site, which is replaced)")
    p.add_argument("--family", help="only this family's models")
    p.add_argument("--specs", action="append", default=[], metavar="PATH",
                   help="also a spec file or folder of your own (repeatable)")
    p.add_argument("--no-measure", action="store_true",
                   help="build no model (no torch): only cached measurements are shown")
    p.add_argument("--refresh", action="store_true",
                   help="re-measure every model even where the cache has it")
    p.add_argument("--export-matrix", metavar="JSON", default="auto",
                   help="export support matrix (default: docs/export-matrix.json of a source "
                   "checkout if present; 'none': show export support as unknown)")
    p.add_argument("--quiet", action="store_true", help="no per-model progress lines")
    p.set_defaults(func=cmd_catalog)


def cmd_catalog(args: argparse.Namespace) -> int:
    from zoo.catalog import register_specs
    from zoo.site.generate import build_site, stderr_progress

    for path in args.specs:
        register_specs(path)
    matrix = None if args.export_matrix == "none" else args.export_matrix
    report = build_site(args.out, args.patterns, family=args.family, measure=not args.no_measure,
                        refresh=args.refresh, export_matrix=matrix,
                        progress=None if args.quiet else stderr_progress)
    parts = [f"{len(report.measured)} measured", f"{len(report.cached)} from the cache"]
    if report.unmeasured:
        parts.append(f"{len(report.unmeasured)} not measured (--no-measure)")
    print(f"wrote {report.out / 'index.html'}: {len(report.models)} models ({', '.join(parts)}); "
          f"export matrix: {report.export_matrix or 'none (export support unknown)'}")
    if report.failed:
        for name, why in report.failed.items():
            print(f"zoo: measuring {name} {why}", file=sys.stderr)
        print(f"zoo: error: {len(report.failed)} model(s) could not be measured (shown as such on "
              "the site)", file=sys.stderr)
        return 1
    return 0
