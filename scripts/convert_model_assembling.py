#!/usr/bin/env python
"""Convert an original Deep Model Assembling checkpoint (Hub repo nzl-thu/Model-Assembling,
``pretrained/vit_{base,large,huge}.pth`` and ``pretrained/high_res/...``) to a hub-ready folder.

    python scripts/convert_model_assembling.py assembled_vit_base_patch16_224.in1k vit_base.pth --out hub/b16

Input: upstream ``utils.save_model``'s pickle, read with ``zoo.weights.checkpoint.load_original_checkpoint``
(``torch.load(weights_only=True)`` plus zoo's explicit allow-list; nothing else is unpickled), which
takes its ``'model'`` state dict: timm's ViT keys, each block a second time under
``stages.<i>.blocks.<j>`` (upstream's VisionTransformer registers its modules per stage).
``zoo.convert_checkpoint`` folds those aliases onto ``blocks.<k>`` as the spec's
``arch.stage_alias`` declares (checking both copies are equal) and puts the keys under the zoo
wrapper's ``model.``; the model is loaded strictly, written with ``zoo.save_pretrained``,
reloaded with ``zoo.create(name, weights=DIR)`` and compared on a random batch.  A thin wrapper
over ``zoo.publish.conversion.convert_and_check``.
"""
from __future__ import annotations

import sys

from zoo.publish import convert_script

FAMILY = "timm_arch"

if __name__ == "__main__":
    sys.exit(convert_script(FAMILY, __doc__))
