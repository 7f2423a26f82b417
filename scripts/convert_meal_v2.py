#!/usr/bin/env python
"""Convert an original MEAL V2 checkpoint (szq0214/MEAL-V2 release) to a hub-ready folder.

    python scripts/convert_meal_v2.py meal_v2_resnet50.in1k MEALV2_ResNet50_224.pth --out hub/r50

Input: a GitHub release v1.0.0 ``.pth`` of szq0214/MEAL-V2: the state dict of the timm student as
upstream saved it, wrapped in ``torch.nn.DataParallel`` (every key prefixed ``module.``).  It is
read with ``zoo.checkpoint.load_original_checkpoint`` (``torch.load(weights_only=True)`` plus zoo's
explicit allow-list; nothing else is unpickled).  ``zoo.convert_checkpoint`` strips ``module.``
and puts the timm keys under the zoo wrapper's ``model.``; the model is loaded strictly, written
with ``zoo.save_pretrained``, reloaded with ``zoo.create(name, weights=DIR)`` and compared tensor by
tensor.  A thin wrapper over zoo's API.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

FAMILY = "timm_arch"


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
    parser.add_argument("name", help="zoo model name with its tag (meal_v2_resnet50.in1k)")
    parser.add_argument("checkpoint", type=Path, help="original MEAL V2 .pth file")
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
