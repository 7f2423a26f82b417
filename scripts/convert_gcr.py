#!/usr/bin/env python
"""Convert an original GCR checkpoint (innerlee/GCR README, Google Drive) to a hub-ready folder.

    python scripts/convert_gcr.py gcr_resnet50d_d8.in1k resnet50d_gcr8.pth --out hub/gcr_r50d_d8

Input: the mmpretrain checkpoint of one README row (``{"meta": ..., "state_dict": ...}``): an
``ImageClassifier`` whose ``backbone.*`` entries carry mmpretrain's key names (ResNetV1d, VGG,
SwinTransformer, DeiT3) and whose head is the ``GrassmannClsHead`` (``head.fc.weight``, class
subspaces) or, for the vector baselines (``gcr_*_vector``, family timm_arch), a linear head.  It
is read with ``zoo.weights.checkpoint.load_original_checkpoint`` (``torch.load(weights_only=True)`` plus
zoo's explicit allow-list; nothing else is unpickled).  ``zoo.convert_checkpoint`` maps the
backbone onto the timm architecture's keys (zoo/layers/mm_layout.py) and the subspaces onto
``head.weight``; the model is loaded strictly, written with ``zoo.save_pretrained``, reloaded
with ``zoo.create(name, weights=DIR)`` and compared tensor by tensor.  A thin wrapper over
``zoo.publish.conversion.convert_and_check``.
"""
from __future__ import annotations

import sys

from zoo.publish import convert_script

FAMILY = "gcr"

if __name__ == "__main__":
    sys.exit(convert_script(FAMILY, __doc__))
