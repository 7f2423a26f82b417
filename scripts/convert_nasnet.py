#!/usr/bin/env python
"""Convert a NASNet-A checkpoint in Cadene's or timm's layout to a hub-ready zoo folder.

    python scripts/convert_nasnet.py nasnet_a_large.tf_in1k model.safetensors --out hub/large
    python scripts/convert_nasnet.py nasnet_a_mobile nasnetamobile-7e03cead.pth --out hub/mobile

Inputs: timm's ``timm/nasnetalarge.tf_in1k`` ``model.safetensors`` (timm layout), or a Cadene
``pretrainedmodels`` ``.pth`` (read with ``torch.load(weights_only=True)`` and zoo's allow-list,
``zoo.checkpoint.load_original_checkpoint``).  When the registry records the source's sha256,
the file is checked against it first.  ``zoo.convert_checkpoint`` maps the layout (Cadene's
mobile numbers its normal cells with gaps, cell_0..3, cell_6..9, cell_12..15); the model is
loaded strictly, written by ``zoo.save_pretrained`` and reloaded to compare every tensor.  A thin
wrapper over zoo's API, as ``zoo convert`` is.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def convert(name: str, checkpoint: Path, out: Path) -> Path:
    import torch

    import zoo
    from zoo.build import build_model, get_spec, load_into, pretrained_cfg, split_name
    from zoo.checkpoint import load_original_checkpoint
    from zoo.errors import CheckpointError
    from zoo.registry import registry
    from zoo.weights import sha256_file

    model_name, tag = split_name(name)
    spec = get_spec(model_name)
    if spec.family != "nasnet":
        raise SystemExit(f"{model_name} is not a nasnet-family model (family {spec.family!r})")
    record = registry().records.get(f"{model_name}.{tag}") if tag else None
    if record is not None and record.source.sha256 is not None:
        actual = sha256_file(checkpoint)
        if actual != record.source.sha256:
            raise CheckpointError(f"{checkpoint}: sha256 {actual} is not the recorded source's "
                                  f"{record.source.sha256} ({record.source.url})")
    original = load_original_checkpoint(checkpoint)
    state_dict = zoo.convert_checkpoint(model_name, original)
    model = build_model(spec, meta=True)
    load_into(model, state_dict, f"{checkpoint} (converted)")
    model.pretrained_cfg = pretrained_cfg(spec, tag)
    metrics = record.metrics.model_dump(mode="json", exclude_none=True) \
        if record is not None and record.metrics is not None else None
    zoo.save_pretrained(model.eval(), out, tag=tag, metrics=metrics)

    reloaded = zoo.create(model_name, weights=str(out))
    ours, theirs = model.state_dict(), reloaded.state_dict()
    bad = [k for k in ours if k not in theirs or not torch.equal(ours[k], theirs[k])]
    if bad or set(theirs) - set(ours):
        raise SystemExit(f"round trip through {out} changed tensors: {bad[:8]}")
    print(f"{name}: {len(original)} original tensors -> {len(state_dict)} zoo tensors, "
          f"{zoo.measure.count_params(model):,} parameters written to {out}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help="zoo model name, optionally with its tag "
                        "(nasnet_a_large.tf_in1k)")
    parser.add_argument("checkpoint", type=Path, help="original .safetensors or .pth file")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    args = parser.parse_args(argv)
    from zoo.errors import ZooError

    try:
        convert(args.name, args.checkpoint, args.out)
    except ZooError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
