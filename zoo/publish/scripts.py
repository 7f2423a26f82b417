"""The command line of every ``scripts/convert_<family>.py``: one shape, one set of options."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from zoo.errors import ZooError
from zoo.argtypes import tensor_file
from zoo.publish.conversion import convert_and_check


def convert_script(family: str, doc: str | None, argv: list[str] | None = None, *,
                   packed_option: bool = False) -> int:
    """The command line of ``scripts/convert_<family>.py`` (one per family, same options)."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    parser.add_argument("name", help="zoo model name, with its registry tag where it has one")
    parser.add_argument("checkpoint", type=Path, help="the original checkpoint file")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--use-ema", action="store_true", help="take the checkpoint's EMA weights")
    parser.add_argument("--tensor", action="append", default=[], metavar="KEY=FILE",
                        type=tensor_file, help="an original state-dict entry that upstream keeps "
                        "in a file of its own (pickle.dump of one tensor); repeatable")
    if packed_option:
        parser.add_argument("--packed", action="store_true",
                            help="write the deployable form (packed integer codes + scales)")
    args = parser.parse_args(argv)
    try:
        convert_and_check(args.name, args.checkpoint, args.out, family=family,
                          use_ema=args.use_ema, packed=getattr(args, "packed", False),
                          tensors=dict(args.tensor))
    except ZooError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0
