"""``zoo calibrate``: BN recalibration of a supernet child (imports torch only when run)."""
from __future__ import annotations

import argparse


def cmd_calibrate(args: argparse.Namespace) -> int:
    from zoo.build import split_name
    from zoo.families.bignas.calibrate import CalibrationError, calibrate

    out = args.out
    if out is None:
        if split_name(args.child)[1] is None:
            raise CalibrationError("give --out DIR, or name a weights tag (NAME.TAG) to replace "
                                   "its locally converted weights by the calibrated ones")
        from zoo.weights import converted_path

        out = converted_path(args.child).parent
    calibrate(args.child, args.data, weights=args.weights,
              supernet_checkpoint=args.supernet_checkpoint, num_batches=args.batches,
              batch_size=args.batch_size, seed=args.seed, num_workers=args.workers,
              out=out, device=args.device)
    print(f"{args.child}: BN statistics recalibrated on up to {args.batches} batch(es) of "
          f"{args.batch_size} images from {args.data}; wrote {out}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "calibrate", help="re-estimate the BN statistics of a supernet child on an image folder "
        "and write it as a standalone weights folder",
        description="Reset and re-estimate the batch-norm statistics of CHILD (a bignas child, "
        "optionally NAME.TAG to start from that tag's converted weights) on images from --data "
        "(an image folder, e.g. part of ImageNet train), then write the calibrated child with "
        "zoo.save_pretrained to --out (or over the tag's converted weights).  Deterministic for a "
        "fixed --seed.")
    p.add_argument("child", metavar="CHILD")
    p.add_argument("--data", required=True, help="image folder (class subfolders or flat)")
    p.add_argument("--out", help="output folder (model.safetensors, config.json); default for "
                   "NAME.TAG: that tag's local weights (after `zoo convert NAME.TAG`), so "
                   "zoo.create(NAME.TAG, pretrained=True) loads the calibrated child")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--weights", help="a weights tag, a save_pretrained folder or hf-hub:org/repo")
    src.add_argument("--supernet-checkpoint", metavar="PTH",
                     help="an original AttentiveNAS/AlphaNet supernet checkpoint to slice")
    p.add_argument("--batches", type=int, default=64, help="number of batches (default 64, "
                   "as AttentiveNAS)")
    p.add_argument("--batch-size", type=int, default=256, help="default 256, as AttentiveNAS")
    p.add_argument("--seed", type=int, default=0, help="shuffling seed")
    p.add_argument("--workers", type=int, default=0, help="data loader workers")
    p.add_argument("--device", default=None, help="e.g. cuda (default: cpu)")
    p.set_defaults(func=cmd_calibrate)
