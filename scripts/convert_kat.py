#!/usr/bin/env python
"""Convert an original KAT checkpoint (Adamdad/kat) to a hub-ready folder.

    python scripts/convert_kat.py kat_tiny_patch16_224.in1k pytorch_model.bin --out hub/kat_tiny

Input: the Hub ``adamdad/<model>[.vitft]`` ``pytorch_model.bin`` (a plain state dict) or a
GitHub release / ``adamdad/kat_pretained`` ``.pth`` (weights possibly nested under
``state_dict``/``model``; ``--use-ema`` takes the EMA copy where the file has one).  The file is
read with ``zoo.weights.checkpoint.load_original_checkpoint`` (``torch.load(weights_only=True)`` plus
zoo's explicit allow-list; nothing else is unpickled).  ``zoo.convert_checkpoint`` checks that it
is a KAT (rational coefficients present) and strips a DataParallel ``module.`` prefix; the model
is loaded strictly, written with ``zoo.save_pretrained`` (model.safetensors + config.json +
README.md), reloaded with ``zoo.create(name, weights=DIR)`` and compared tensor by tensor.
A thin wrapper over ``zoo.publish.conversion.convert_and_check``.
"""
from __future__ import annotations

import sys

from zoo.publish import convert_script

FAMILY = "kat"

if __name__ == "__main__":
    sys.exit(convert_script(FAMILY, __doc__))
