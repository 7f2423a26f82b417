#!/usr/bin/env python
"""Convert an original ReLabel checkpoint (naver-ai/relabel_imagenet README links, e.g.
``rn50_relabel_78.9.pth``) to a hub-ready folder.

    python scripts/convert_relabel.py relabel_resnet50.in1k rn50_relabel_78.9.pth --out hub/r50

Input: a torchvision ResNet state dict as upstream's Trainer saves/loads it (possibly under
``'state_dict'``, possibly with the DistributedDataParallel ``module.`` prefix), read with
``zoo.weights.checkpoint.load_original_checkpoint`` (``torch.load(weights_only=True)`` plus zoo's explicit
allow-list; nothing else is unpickled).  torchvision's and timm's ResNet keys are the same:
``zoo.convert_checkpoint`` strips ``module.`` and puts them under the zoo wrapper's ``model.``; the
model is loaded strictly, written with ``zoo.save_pretrained``, reloaded with
``zoo.create(name, weights=DIR)`` and compared on a random batch.  A thin wrapper over
``zoo.publish.conversion.convert_and_check``.
"""
from __future__ import annotations

import sys

from zoo.publish import convert_script

FAMILY = "timm_arch"

if __name__ == "__main__":
    sys.exit(convert_script(FAMILY, __doc__))
