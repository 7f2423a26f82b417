#!/usr/bin/env python
"""Convert an original SReT checkpoint (szq0214/SReT, Google Drive ``.pth``) to a hub-ready folder.

    python scripts/convert_sret.py sret_s.in1k SReT_S.pth --out hub/sret_s.in1k

The ``.pth`` is read with ``torch.load(weights_only=True)`` and zoo's explicit allow-list
(``zoo.checkpoint.load_original_checkpoint``: the weights under ``'model'``, an
``argparse.Namespace`` of training args beside them is allowed, nothing else is unpickled).
``zoo.convert_checkpoint`` maps upstream's layout to zoo's: the copies upstream's ``torch.save``
holds of every shared block (one per application) are checked to be identical and stored once.
The model is loaded strictly and written by ``zoo.save_pretrained`` (model.safetensors +
config.json + README.md); the folder is then reloaded with ``zoo.create(name, weights=DIR)`` and
compared tensor by tensor.  This is a thin wrapper over zoo's API: ``zoo convert`` does the same.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def convert(name: str, checkpoint: Path, out: Path, *, use_ema: bool = False) -> Path:
    import torch

    import zoo
    from zoo.build import build_model, get_spec, load_into, pretrained_cfg, split_name
    from zoo.checkpoint import load_original_checkpoint
    from zoo.registry import registry

    model_name, tag = split_name(name)
    spec = get_spec(model_name)
    if spec.family != "sret":
        raise SystemExit(f"{model_name} is not an SReT model (family {spec.family!r})")
    original = load_original_checkpoint(checkpoint, use_ema=use_ema)
    state_dict = zoo.convert_checkpoint(model_name, original)
    model = build_model(spec, meta=True)
    load_into(model, state_dict, f"{checkpoint} (converted)")
    model.pretrained_cfg = pretrained_cfg(spec, tag)
    record = registry().records.get(f"{model_name}.{tag}") if tag else None
    metrics = record.metrics.model_dump(mode="json", exclude_none=True) \
        if record is not None and record.metrics is not None else None
    zoo.save_pretrained(model.eval(), out, tag=tag, metrics=metrics)

    reloaded = zoo.create(model_name, weights=str(out))
    ours, theirs = model.state_dict(), reloaded.state_dict()
    bad = [k for k in ours if k not in theirs or not torch.equal(ours[k], theirs[k])]
    if bad or set(theirs) - set(ours):
        raise SystemExit(f"round trip through {out} changed tensors: {bad[:8]}")
    dropped = len(original) - len(state_dict)
    print(f"{name}: {len(original)} original tensors -> {len(state_dict)} "
          f"({dropped} duplicate copies of shared blocks checked identical and dropped); "
          f"{zoo.measure.count_params(model):,} parameters written to {out}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help="zoo model name, optionally with its tag (sret_s.in1k)")
    parser.add_argument("checkpoint", type=Path, help="original .pth file")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--use-ema", action="store_true",
                        help="convert the checkpoint's EMA weights (model_ema) instead")
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
