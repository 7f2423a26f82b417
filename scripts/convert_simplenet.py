#!/usr/bin/env python
"""Convert an original SimpleNet checkpoint (Coderx7/SimpleNet_Pytorch, GitHub release v1.0.0,
``simplenetv1_*-<sha8>.pth``) to a hub-ready folder.

    python scripts/convert_simplenet.py simplenetv1_5m_m1.in1k simplenetv1_5m_m1-36c4ca4d.pth --out hub/x

The ``.pth`` is a pickled state dict in upstream's ``features.<i>.*`` / ``classifier.*`` layout,
read with ``torch.load(weights_only=True)`` and zoo's allow-list
(``zoo.weights.checkpoint.load_original_checkpoint``).  ``zoo.convert_checkpoint`` keeps upstream's
``features.<i>`` indices (zoo's SimpleNet lays its layers out as upstream does), renames
``classifier.*`` to ``head.fc.*`` and strips DataParallel's ``module.`` prefix.  Under a registry
tag (``NAME.in1k``) the file's sha256 must start with the prefix its release name carries.  The
model is loaded strictly, written by ``zoo.save_pretrained``, reloaded with
``zoo.create(name, weights=DIR)`` and its logits compared with the checkpoint's.  A thin wrapper
over ``zoo.publish.conversion.convert_and_check``: ``zoo convert`` does the same.
"""
from __future__ import annotations

import sys

from zoo.publish import convert_script

FAMILY = "simplenet"

if __name__ == "__main__":
    sys.exit(convert_script(FAMILY, __doc__))
