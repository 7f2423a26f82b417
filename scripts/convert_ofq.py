#!/usr/bin/env python
"""Convert an original OFQ checkpoint (nbasyl/OFQ, README "Model Link", ``*.pth.tar``) to a
hub-ready folder, latent fp32 weights or the packed deployable form.

    python scripts/convert_ofq.py ofq_deit_small_w2a2.in1k w2a2_deit_s_qkr_cga.pth.tar --out hub/x
    python scripts/convert_ofq.py ofq_deit_small_w2a2.in1k w2a2_deit_s_qkr_cga.pth.tar --out hub/y --packed

The ``.pth.tar`` (timm's ``save_checkpoint``: the weights under ``'state_dict'``, an
``argparse.Namespace`` of the training args beside them) is read with ``torch.load(weights_only=True)``
and zoo's explicit allow-list (``zoo.checkpoint.load_original_checkpoint``); nothing else is
unpickled.  The trained LSQ steps (``*.s``) are in the checkpoint; ``zoo.convert_checkpoint`` only
strips a DistributedDataParallel ``module.`` prefix.  The model is loaded strictly and written by
``zoo.save_pretrained`` (``packed=True``: integer codes + per-row scales).  The folder is reloaded
with ``zoo.create(name, weights=DIR)`` and checked: latent tensors equal, or (packed) logits on a
random batch bit-identical to the latent model's.  A thin wrapper over zoo's API.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def convert(name: str, checkpoint: Path, out: Path, *, packed: bool = False) -> Path:
    import torch

    import zoo
    from zoo.build import build_model, get_spec, load_into, pretrained_cfg, split_name
    from zoo.checkpoint import load_original_checkpoint
    from zoo.registry import registry

    model_name, tag = split_name(name)
    spec = get_spec(model_name)
    if spec.family != "ofq":
        raise SystemExit(f"{model_name} is not an OFQ model (family {spec.family!r})")
    original = load_original_checkpoint(checkpoint)
    state_dict = zoo.convert_checkpoint(model_name, original)
    model = build_model(spec, meta=True)
    load_into(model, state_dict, f"{checkpoint} (converted)")
    model.pretrained_cfg = pretrained_cfg(spec, tag)
    model.eval()
    record = registry().records.get(f"{model_name}.{tag}") if tag else None
    metrics = record.metrics.model_dump(mode="json", exclude_none=True) \
        if record is not None and record.metrics is not None else None
    zoo.save_pretrained(model, out, tag=tag, metrics=metrics, packed=packed)

    reloaded = zoo.create(model_name, weights=str(out)).eval()
    if packed:
        x = torch.randn(2, *spec.data.input_size, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            if not torch.equal(model(x), reloaded(x)):
                raise SystemExit(f"the packed model in {out} is not bit-identical to the latent one")
    else:
        ours, theirs = model.state_dict(), reloaded.state_dict()
        bad = [k for k in ours if k not in theirs or not torch.equal(ours[k], theirs[k])]
        if bad or set(theirs) - set(ours):
            raise SystemExit(f"round trip through {out} changed tensors: {bad[:8]}")
    size = sum(p.stat().st_size for p in out.glob("*.safetensors"))
    print(f"{name}: {len(original)} original tensors -> {out} ({'packed' if packed else 'latent'}, "
          f"{size / 2**20:.2f} MiB)")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help="zoo model name with its tag (ofq_deit_tiny_w2a2.in1k)")
    parser.add_argument("checkpoint", type=Path, help="original .pth.tar file")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--packed", action="store_true",
                        help="write the deployable form (packed integer codes + per-row scales)")
    args = parser.parse_args(argv)
    from zoo.errors import ZooError

    try:
        convert(args.name, args.checkpoint, args.out, packed=args.packed)
    except ZooError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
