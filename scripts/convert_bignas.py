#!/usr/bin/env python
"""Slice a child out of an original AttentiveNAS / AlphaNet supernet checkpoint
(facebookresearch, README "Evaluation" links, ``*.pth.tar``) into a hub-ready folder.

    python scripts/convert_bignas.py bignas_attentivenas_a0.attentivenas_in1k attentive_nas_pretrained.pth.tar --out hub/a0

The file is ``{'state_dict': {'module.<key>': tensor}}`` of the dynamic supernet, read with
``torch.load(weights_only=True)`` and zoo's allow-list (``zoo.weights.checkpoint.load_original_checkpoint``).
``zoo.convert_checkpoint`` slices every elastic tensor to the child's widths, kernel sizes and
depths (leading channels, centred kernel crops, first blocks of each stage), exactly as the
supernet's ``get_active_subnet`` does.  The supernet's BN statistics are not the child's: run
``zoo calibrate`` on the output (64 batches of training images, as upstream) before evaluating
or publishing it.  A thin wrapper over ``zoo.publish.conversion.convert_and_check``.
"""
from __future__ import annotations

import sys

from zoo.publish import convert_script

FAMILY = "bignas"

if __name__ == "__main__":
    sys.exit(convert_script(FAMILY, __doc__))
