#!/usr/bin/env python
"""Convert an original ConvNeXt-dcls checkpoint (Zenodo record 7112021, linked from the
K-H-Ismail/ConvNeXt-dcls README) to a hub-ready folder.

    python scripts/convert_dcls.py convnext_tiny_dcls.in1k convnext_dcls_tiny_1k_224_ema.pth \
        --out hub/convnext_tiny_dcls.in1k

The file holds upstream ``ConvNeXt_dcls``'s EMA weights under ``'model'``, read with
``torch.load(weights_only=True)`` and zoo's allow-list
(``zoo.weights.checkpoint.load_original_checkpoint``).
``zoo.convert_checkpoint`` maps ``downsample_layers`` / ``stages.i.j.{dwconv,norm,pwconv1,pwconv2,
gamma}`` / ``norm`` / ``head`` to timm's ConvNeXt names, keeps each stage's positions
(``stages.i.j.dwconv.P``, one tensor repeated under every block) once as ``stages.i.positions``
after checking the copies are equal, and rejects any key it does not know.  The model is loaded
strictly, written by ``zoo.save_pretrained``, reloaded and its logits compared with the
checkpoint's (``zoo.publish.conversion.convert_and_check``).
"""
from __future__ import annotations

import sys

from zoo.publish import convert_script

FAMILY = "dcls"

if __name__ == "__main__":
    sys.exit(convert_script(FAMILY, __doc__))
