#!/usr/bin/env python
"""Convert an original DeepMAD checkpoint (TinyNAS README's DeepMAD table, Aliyun OSS links) to a
hub-ready folder.

    python scripts/convert_deepmad.py deepmad_r18.in1k R18.pth.tar --out hub/deepmad_r18.in1k

The file is a TinyNAS training checkpoint of ``CnnNet`` (keys ``block_list.*`` / ``fc_linear.*``,
possibly under ``'state_dict'`` and with DataParallel's ``module.`` prefix), read with
``torch.load(weights_only=True)`` and zoo's allow-list (``zoo.weights.checkpoint.load_original_checkpoint``).
``zoo.convert_checkpoint`` maps TinyNAS's ``block_list`` (stem, super-blocks of ResK1KXK1 /
ResK1DWSEK1 blocks, final 1x1) and ``fc_linear`` to zoo's names and rejects any key it does not
know.  The model is loaded strictly, written by ``zoo.save_pretrained``, reloaded
and its logits compared with the checkpoint's (``zoo.publish.conversion.convert_and_check``).
"""
from __future__ import annotations

import sys

from zoo.publish import convert_script

FAMILY = "deepmad"

if __name__ == "__main__":
    sys.exit(convert_script(FAMILY, __doc__))
