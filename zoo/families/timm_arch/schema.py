"""Architecture fields of a timm-backed model: which timm built-in architecture, the constructor
arguments given to ``timm.create_model`` (plain data: names and scalars, never a Python path),
and the key layout of the original checkpoints.  ``num_classes``/``in_chans`` come from the
spec's data section."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from zoo.layers.mm_layout import MMLayout
from zoo.layers.timm_spec import RESERVED_ARGS, Scalar, TimmArchFields

__all__ = ["Arch", "RESERVED_ARGS", "Scalar"]


class Arch(TimmArchFields):
    drop_rate: float = Field(0.0, ge=0.0, lt=1.0, description="dropout before the classifier")
    checkpoint_layout: Literal["timm"] | MMLayout = Field(
        "timm", description="the original checkpoints' key layout: 'timm' (the timm model's "
        "own state dict, optionally DataParallel-wrapped), or an OpenMMLab classifier "
        "(framework and backbone class, e.g. {framework: mmcls, backbone: ResNet})")
