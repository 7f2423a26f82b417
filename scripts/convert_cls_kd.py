#!/usr/bin/env python
"""Convert an original NKD student checkpoint (yzd-v/cls_KD, nkd.md) to a hub-ready folder.

    python scripts/convert_cls_kd.py nkd_resnet18.in1k res34_distill_res18.pth --out hub/nkd_r18

Input: the checkpoint linked in cls_KD's nkd.md (OneDrive / Baidu Pan): an mmcls training
checkpoint (``{"meta": ..., "state_dict": ...}``) of either the ``ClassificationDistiller``
(``student.*``, ``teacher.*`` entries) or, after upstream's ``pth_transfer.py``, the student
``ImageClassifier`` (``backbone.*`` in mmcls key names, ``head.fc.*``).  It is read with
``zoo.weights.checkpoint.load_original_checkpoint`` (``torch.load(weights_only=True)`` plus zoo's explicit
allow-list; nothing else is unpickled).  ``zoo.convert_checkpoint`` keeps the student and maps
its keys onto the timm architecture's (zoo/layers/mm_layout.py: ResNet -> timm resnet18,
cls_KD's MobileNetV1 -> timm mobilenetv1_100); the model is loaded strictly, written with
``zoo.save_pretrained``, reloaded with ``zoo.create(name, weights=DIR)`` and compared tensor by
tensor.  A thin wrapper over ``zoo.publish.conversion.convert_and_check``.
"""
from __future__ import annotations

import sys

from zoo.publish import convert_script

FAMILY = "timm_arch"

if __name__ == "__main__":
    sys.exit(convert_script(FAMILY, __doc__))
