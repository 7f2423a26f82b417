#!/usr/bin/env python
"""Convert an original KAT checkpoint (Adamdad/kat) to a hub-ready folder.

    python scripts/convert_kat.py kat_tiny_patch16_224.in1k pytorch_model.bin --out hub/kat_tiny

Input: the Hub ``adamdad/<model>[.vitft]`` ``pytorch_model.bin`` (a plain state dict) or a
GitHub release / ``adamdad/kat_pretained`` ``.pth`` (weights possibly nested under
``state_dict``/``model``; ``--use-ema`` takes the EMA copy where the file has one).  The file is
read with ``zoo.checkpoint.load_original_checkpoint`` (``torch.load(weights_only=True)`` plus
zoo's explicit allow-list; nothing else is unpickled).  ``zoo.convert_checkpoint`` checks that it
is a KAT (rational coefficients present) and strips a DataParallel ``module.`` prefix; the model
is loaded strictly, written with ``zoo.save_pretrained`` (model.safetensors + config.json +
README.md), reloaded with ``zoo.create(name, weights=DIR)`` and compared tensor by tensor.
A thin wrapper over zoo's API.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

FAMILY = "kat"


def convert(name: str, checkpoint: Path, out: Path, *, use_ema: bool = False) -> Path:
    import torch

    import zoo
    from zoo.build import build_model, get_spec, load_into, pretrained_cfg, split_name
    from zoo.checkpoint import load_original_checkpoint
    from zoo.registry import registry

    model_name, tag = split_name(name)
    spec = get_spec(model_name)
    if spec.family != FAMILY:
        raise SystemExit(f"{model_name} is not a {FAMILY} model (family {spec.family!r})")
    original = load_original_checkpoint(checkpoint, use_ema=use_ema)
    state_dict = zoo.convert_checkpoint(model_name, original)
    model = build_model(spec, meta=True)
    load_into(model, state_dict, f"{checkpoint} (converted)")
    model.pretrained_cfg = pretrained_cfg(spec, tag)
    record = registry().records.get(f"{model_name}.{tag}") if tag else None
    metrics = (record.metrics.model_dump(mode="json", exclude_none=True)
               if record is not None and record.metrics is not None else None)
    zoo.save_pretrained(model.eval(), out, tag=tag, metrics=metrics)

    reloaded = zoo.create(model_name, weights=str(out))
    ours, theirs = model.state_dict(), reloaded.state_dict()
    bad = [k for k in ours if k not in theirs or not torch.equal(ours[k], theirs[k])]
    if bad or set(theirs) - set(ours):
        raise SystemExit(f"round trip through {out} changed tensors: {bad[:8]}")
    print(f"{name}: {len(state_dict)} tensors, {zoo.measure.count_params(model):,} parameters "
          f"written to {out}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help="zoo model name with its tag (kat_tiny_patch16_224.in1k)")
    parser.add_argument("checkpoint", type=Path, help="original pytorch_model.bin / .pth file")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--use-ema", action="store_true",
                        help="convert the checkpoint's EMA weights instead")
    args = parser.parse_args(argv)
    from zoo.errors import ZooError

    try:
        convert(args.name, args.checkpoint, args.out, use_ema=args.use_ema)
    except ZooError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
