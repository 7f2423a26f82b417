#!/usr/bin/env python
"""Convert a NASNet-A checkpoint in Cadene's or timm's layout to a hub-ready zoo folder.

    python scripts/convert_nasnet.py nasnet_a_large.tf_in1k model.safetensors --out hub/large
    python scripts/convert_nasnet.py nasnet_a_mobile nasnetamobile-7e03cead.pth --out hub/mobile

Inputs: timm's ``timm/nasnetalarge.tf_in1k`` ``model.safetensors`` (timm layout), or a Cadene
``pretrainedmodels`` ``.pth`` (read with ``torch.load(weights_only=True)`` and zoo's allow-list,
``zoo.weights.checkpoint.load_original_checkpoint``).  When the registry records the source's sha256,
the file is checked against it first.  ``zoo.convert_checkpoint`` maps the layout (Cadene's
mobile numbers its normal cells with gaps, cell_0..3, cell_6..9, cell_12..15); the model is
loaded strictly, written by ``zoo.save_pretrained`` and reloaded to compare every tensor.  A thin
wrapper over zoo's API, as ``zoo convert`` is.
"""
from __future__ import annotations

import sys

from zoo.publish import convert_script

FAMILY = "nasnet"

if __name__ == "__main__":
    sys.exit(convert_script(FAMILY, __doc__))
