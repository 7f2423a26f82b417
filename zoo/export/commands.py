"""``zoo export``: a model to ONNX or torch.export, checked against eager PyTorch."""
from __future__ import annotations

import argparse
import json
from typing import Any

from zoo.argtypes import positive_int
from zoo.errors import require_modules

FORMAT_CHOICES = ("onnx", "pt2")
ONNX_MODULES = ("onnx", "onnxscript", "onnxruntime")  # writing and checking ONNX: the export extra


def batch_size(text: str) -> int | None:
    """``dynamic`` (None) or a positive integer."""
    return None if text == "dynamic" else positive_int(text)


def cmd_export(args: argparse.Namespace) -> int:
    if args.format == "onnx":
        require_modules("zoo export --format onnx", list(ONNX_MODULES), "export")
    from zoo.export.run import export  # imports torch

    report = export(args.name, format=args.format, out=args.out, weights=args.weights,
                    batch=args.batch, opset=args.opset, check=not args.no_check)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 0
    checked = (f"; checked at batch {', '.join(map(str, report.checked_batches))}: max relative "
               f"error {report.max_rel_error:.2e} (bound {report.tolerance:g})"
               if report.checked_batches else "; not checked (--no-check)")
    weights = f" (weights in {report.data_path}, keep it beside)" if report.data_path else ""
    print(f"{report.model} -> {report.path}{weights} ({report.format}, batch {report.batch})"
          f"{checked}, {report.seconds:.1f} s")
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "export", help="export a model to ONNX or torch.export (.pt2), checked against eager",
        description="Export NAME (NAME.TAG loads the tag's weights) with PyTorch's dynamo-based "
        "ONNX exporter or torch.export, then run the exported program at two batch sizes and "
        "compare it with eager PyTorch (fails above the family's bound, 1e-4 by default). The "
        "file carries the model name, weights, spec sha256 and preprocessing as metadata.")
    p.add_argument("name", help="MODEL or MODEL.TAG")
    p.add_argument("--format", required=True, choices=FORMAT_CHOICES)
    p.add_argument("--out", required=True, help="output file (or folder: NAME.onnx / NAME.pt2)")
    p.add_argument("--weights", help="a weights tag, folder, .safetensors file or hf-hub:org/repo")
    p.add_argument("--batch", type=batch_size, default=None, metavar="dynamic|N",
                   help="batch dimension: dynamic (default) or a fixed size")
    p.add_argument("--opset", type=positive_int, default=None, help="ONNX opset (default: the "
                   "exporter's)")
    p.add_argument("--no-check", action="store_true", help="skip running the exported program")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_export)
