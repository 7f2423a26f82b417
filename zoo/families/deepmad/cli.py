"""``zoo design deepmad``: design a DeepMAD network for budgets and print/write its spec.

    zoo design deepmad --macs 4.5e9 --params 29e6 --rho 0.5 --block k1dwsek1 \\
        --final-chs 1792 --name my_deepmad --out my_deepmad.yaml
    python -c "import zoo; zoo.register_specs('my_deepmad.yaml'); zoo.create('my_deepmad')"

No torch is imported (the designer only needs numpy and scipy).
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from zoo.argtypes import non_negative_int, positive_int
from zoo.errors import require_modules


def _pair(text: str) -> tuple[float, float]:
    parts = text.split(",")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected MIN,MAX, got {text!r}")
    return float(parts[0]), float(parts[1])


def _ints(text: str) -> list[int]:
    try:
        return [int(p) for p in text.split(",") if p]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}") from None


def cmd_design_deepmad(args: argparse.Namespace) -> int:
    import os

    require_modules("zoo design deepmad", ["numpy", "scipy"], "design")
    if "numpy" not in sys.modules:  # one BLAS thread: the solver's LAPACK calls are tiny
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, "1")
    from zoo import yamlio

    from .designer import design

    stem = args.stem_chs
    stem_chs = (int(stem[0]), int(stem[1])) if isinstance(stem, tuple) else stem
    d = design(macs=args.macs, params=args.params, rho=args.rho, block=args.block,
               num_stages=args.stages, strides=args.strides, resolution=args.resolution,
               max_layers=args.max_layers, stem_chs=stem_chs, final_chs=args.final_chs,
               kernel_sizes=args.kernels, max_depth=args.max_depth,
               channel_step=args.channel_step, tinynas_compat=args.tinynas_compat,
               macs_count=args.macs_count, num_classes=args.num_classes, name=args.name)
    text = d.to_yaml()
    if args.out:
        yamlio.atomic_write_text(args.out, text)
    else:
        sys.stdout.write(text)
    e = d.evaluation
    slack = ", ".join(f"{k} {v:+.2%}" for k, v in d.slack().items())
    print(f"# {args.name}: score {e.score:.2f} (entropy {e.entropy:.2f}, penalty "
          f"{e.depth_penalty:.2f}), rho {e.rho:.4f}, {e.macs / 1e9:.3f} GMACs "
          f"({e.tinynas_flops / 1e9:.3f} G TinyNAS FLOPs), "
          f"{e.params / 1e6:.3f}M params w/o classifier; slack: {slack}; {d.seconds:.1f} s"
          + (f"; written to {args.out}" if args.out else ""), file=sys.stderr)
    return 0


def _stem(text: str) -> int | tuple[float, float]:
    return _pair(text) if "," in text else int(text)


def register(subparsers: Any) -> None:
    """Add ``zoo design deepmad`` (``design`` is shared with other families' designers)."""
    design_parser = subparsers.choices.get("design")
    if design_parser is None:
        design_parser = subparsers.add_parser("design", help="design a network from budgets")
        design_parser._zoo_designers = design_parser.add_subparsers(
            dest="designer", metavar="FAMILY", required=True)
    p = design_parser._zoo_designers.add_parser(
        "deepmad", help="DeepMAD (arXiv 2303.02165): maximize the multi-scale entropy under "
        "MACs / params / rho budgets", description=__doc__.split("\n\n")[0])
    p.add_argument("--macs", type=float, required=True,
                   help="MACs budget, classifier included (what count_macs measures)")
    p.add_argument("--params", type=float, required=True, help="params budget w/o classifier")
    p.add_argument("--rho", type=float, default=0.5, help="rho0, bound on the effectiveness")
    p.add_argument("--block", choices=("k1dwsek1", "k1kxk1"), default="k1dwsek1")
    p.add_argument("--stages", type=positive_int, default=5, help="number of super-blocks")
    p.add_argument("--strides", type=_ints, default=None, help="e.g. 2,2,2,2,1")
    p.add_argument("--resolution", type=positive_int, default=224)
    p.add_argument("--max-layers", type=positive_int, default=None, help="depth budget (conv layers)")
    p.add_argument("--stem-chs", type=_stem, default=(16, 64), help="width or MIN,MAX")
    p.add_argument("--final-chs", type=positive_int, default=None, help="final 1x1 conv width")
    p.add_argument("--kernels", type=_ints, default=None, help="kernel choices, e.g. 3,5,7")
    p.add_argument("--max-depth", type=positive_int, default=16, help="most blocks per super-block")
    p.add_argument("--channel-step", type=positive_int, default=8)
    p.add_argument("--tinynas-compat", action="store_true", help="score as TinyNAS does")
    p.add_argument("--macs-count", choices=("zoo", "tinynas"), default="zoo",
                   help="what --macs bounds: zoo's MAC count (default) or TinyNAS's get_flops "
                   "(the unit of TinyNAS's and the DeepMAD README's FLOPs budgets)")
    p.add_argument("--num-classes", type=non_negative_int, default=1000)
    p.add_argument("--name", default="deepmad_designed", help="model name of the spec")
    p.add_argument("--out", help="write the spec YAML here (default: stdout)")
    p.set_defaults(func=cmd_design_deepmad)
