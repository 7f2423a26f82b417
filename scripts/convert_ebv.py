#!/usr/bin/env python
"""Convert an original EBV checkpoint (aassxun/Equiangular-Basis-Vectors release asset
``EBV_ResNet_dim1000_SGD_epoch605.pth``) to a hub-ready folder.

Upstream keeps the basis vectors apart from the weights (``EBV_pkl/eq_1000_1000.pkl`` of the
repository, ``pickle.dump`` of one tensor); give that file as an extra tensor:

    python scripts/convert_ebv.py ebv_resnet50.in1k EBV_ResNet_dim1000_SGD_epoch605.pth \\
        --tensor basis=eq_1000_1000.pkl --out hub/ebv_r50

The ``.pth`` is read with ``zoo.weights.checkpoint.load_original_checkpoint``
(``torch.load(weights_only=True)`` plus zoo's allow-list) and the ``.pkl`` with
``load_pickled_tensor`` (a restricted unpickler that rebuilds one tensor and nothing else).
``zoo.convert_checkpoint`` strips ``module.`` from upstream's ``nn.DataParallel(Net)`` keys and
row-normalizes the basis into ``ebv.weight`` (as upstream does when it loads the pkl); the model
is loaded strictly, written with ``zoo.save_pretrained``, reloaded with
``zoo.create(name, weights=DIR)`` and compared on a random batch.  A thin wrapper over
``zoo.publish.conversion.convert_and_check``.
"""
from __future__ import annotations

import sys

from zoo.publish import convert_script

FAMILY = "ebv"

if __name__ == "__main__":
    sys.exit(convert_script(FAMILY, __doc__))
