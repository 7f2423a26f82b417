#!/usr/bin/env python
"""Convert an original OFQ checkpoint (nbasyl/OFQ, README "Model Link", ``*.pth.tar``) to a
hub-ready folder, latent fp32 weights or the packed deployable form.

    python scripts/convert_ofq.py ofq_deit_small_w2a2.in1k w2a2_deit_s_qkr_cga.pth.tar --out hub/x
    python scripts/convert_ofq.py ofq_deit_small_w2a2.in1k w2a2_deit_s_qkr_cga.pth.tar --out hub/y --packed

The ``.pth.tar`` (timm's ``save_checkpoint``: the weights under ``'state_dict'``, an
``argparse.Namespace`` of the training args beside them) is read with ``torch.load(weights_only=True)``
and zoo's explicit allow-list (``zoo.weights.checkpoint.load_original_checkpoint``); nothing else is
unpickled.  The trained LSQ steps (``*.s``) are in the checkpoint; ``zoo.convert_checkpoint`` only
strips a DistributedDataParallel ``module.`` prefix.  The model is loaded strictly and written by
``zoo.save_pretrained`` (``packed=True``: integer codes + per-row scales).  The folder is reloaded
with ``zoo.create(name, weights=DIR)`` and checked: latent tensors equal, or (packed) logits on a
random batch bit-identical to the latent model's.  A thin wrapper over ``zoo.publish.conversion.convert_and_check``.
"""
from __future__ import annotations

import sys

from zoo.publish import convert_script

FAMILY = "ofq"

if __name__ == "__main__":
    sys.exit(convert_script(FAMILY, __doc__, packed_option=True))
