#!/usr/bin/env python
"""Convert an original SReT checkpoint (szq0214/SReT, Google Drive ``.pth``) to a hub-ready folder.

    python scripts/convert_sret.py sret_s.in1k SReT_S.pth --out hub/sret_s.in1k

The ``.pth`` is read with ``torch.load(weights_only=True)`` and zoo's explicit allow-list
(``zoo.weights.checkpoint.load_original_checkpoint``: the weights under ``'model'``, an
``argparse.Namespace`` of training args beside them is allowed, nothing else is unpickled).
``zoo.convert_checkpoint`` maps upstream's layout to zoo's: the copies upstream's ``torch.save``
holds of every shared block (one per application) are checked to be identical and stored once.
The model is loaded strictly and written by ``zoo.save_pretrained`` (model.safetensors +
config.json + README.md); the folder is then reloaded with ``zoo.create(name, weights=DIR)`` and
compared tensor by tensor.  This is a thin wrapper over zoo's API: ``zoo convert`` does the same.
"""
from __future__ import annotations

import sys

from zoo.publish import convert_script

FAMILY = "sret"

if __name__ == "__main__":
    sys.exit(convert_script(FAMILY, __doc__))
