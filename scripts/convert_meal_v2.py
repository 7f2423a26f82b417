#!/usr/bin/env python
"""Convert an original MEAL V2 checkpoint (szq0214/MEAL-V2 release) to a hub-ready folder.

    python scripts/convert_meal_v2.py meal_v2_resnet50.in1k MEALV2_ResNet50_224.pth --out hub/r50

Input: a GitHub release v1.0.0 ``.pth`` of szq0214/MEAL-V2: the state dict of the timm student as
upstream saved it, wrapped in ``torch.nn.DataParallel`` (every key prefixed ``module.``).  It is
read with ``zoo.weights.checkpoint.load_original_checkpoint`` (``torch.load(weights_only=True)`` plus zoo's
explicit allow-list; nothing else is unpickled).  ``zoo.convert_checkpoint`` strips ``module.``
and puts the timm keys under the zoo wrapper's ``model.``; the model is loaded strictly, written
with ``zoo.save_pretrained``, reloaded with ``zoo.create(name, weights=DIR)`` and compared tensor by
tensor.  A thin wrapper over ``zoo.publish.conversion.convert_and_check``.
"""
from __future__ import annotations

import sys

from zoo.publish import convert_script

FAMILY = "timm_arch"

if __name__ == "__main__":
    sys.exit(convert_script(FAMILY, __doc__))
