#!/usr/bin/env python
"""Convert an original EBV checkpoint (aassxun/Equiangular-Basis-Vectors release asset
``EBV_ResNet_dim1000_SGD_epoch605.pth``) to a hub-ready folder.

Upstream keeps the basis vectors apart from the weights (``EBV_pkl/eq_1000_1000.pkl`` of the
repository); merge the two into one file first, then convert that file:

    python -c "import zoo; zoo.ebv.merge_basis('EBV_ResNet_dim1000_SGD_epoch605.pth', 'eq_1000_1000.pkl', 'ebv.safetensors')"
    python scripts/convert_ebv.py ebv_resnet50.in1k ebv.safetensors --out hub/ebv_r50

``zoo.ebv.merge_basis`` reads the ``.pth`` with ``zoo.checkpoint.load_original_checkpoint``
(``torch.load(weights_only=True)`` plus zoo's allow-list) and the ``.pkl`` with a restricted
unpickler (``zoo.ebv.read_basis``: only the two torch functions that rebuild one tensor);
nothing else is unpickled.  ``zoo.convert_checkpoint`` strips ``module.`` from upstream's
``nn.DataParallel(Net)`` keys and row-normalizes the basis into ``ebv.weight`` (as upstream does
when it loads the pkl); the model is loaded strictly, written with ``zoo.save_pretrained``,
reloaded with ``zoo.create(name, weights=DIR)`` and compared on a random batch.  A thin wrapper
over ``zoo.publish.convert_and_check``.
"""
from __future__ import annotations

import sys

from zoo.publish import convert_script

FAMILY = "ebv"

if __name__ == "__main__":
    sys.exit(convert_script(FAMILY, __doc__))
