"""Architecture fields of a timm-backed model: which timm built-in architecture, the constructor
arguments given to ``timm.create_model`` (plain data: names and scalars, never a Python path),
and the key layout of the original checkpoints.  ``num_classes``/``in_chans`` come from the
spec's data section.

Where an original differs from timm's architecture only in a detail timm's constructor cannot
express, or saves its weights under extra names, that is declared here too, as data:
``layer_norm_eps`` (the eps of every LayerNorm) and ``stage_alias`` (a checkpoint that holds the
blocks a second time under per-stage containers, e.g. Deep Model Assembling's ``stages``).
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from zoo.layers.mm_layout import MMLayout
from zoo.layers.timm_spec import RESERVED_ARGS, Scalar, TimmArchFields
from zoo.spec import PositiveInt, StrictModel

IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"

__all__ = ["Arch", "RESERVED_ARGS", "Scalar", "StageAlias"]


class StageAlias(StrictModel):
    """Checkpoint key rule: the original model registers its blocks a second time under
    per-stage containers, so its state dict holds each block twice:
    ``<container>.<i>.<blocks>.<j>.*`` is ``<blocks>.<offset_i + j>.*`` (``offset_i`` = the
    depths of the stages before ``i``), and any other ``<container>.<i>.<name>`` is the
    top-level ``<name>`` (the stem in the first stage, the final norm and head in the last).
    ``convert`` folds the aliases onto timm's keys, checking that both copies agree."""

    container: str = Field("stages", pattern=IDENTIFIER,
                           description="the original's attribute holding the stage modules")
    blocks: str = Field("blocks", pattern=IDENTIFIER,
                        description="the flat block list (timm's name, also the original's)")
    depths: tuple[PositiveInt, ...] = Field(min_length=1,
                                            description="number of blocks in each stage")


class Arch(TimmArchFields):
    drop_rate: float = Field(0.0, ge=0.0, lt=1.0, description="dropout before the classifier")
    checkpoint_layout: Literal["timm"] | MMLayout = Field(
        "timm", description="the original checkpoints' key layout: 'timm' (the timm model's "
        "own state dict, optionally DataParallel-wrapped), or an OpenMMLab classifier "
        "(framework and backbone class, e.g. {framework: mmcls, backbone: ResNet})")
    layer_norm_eps: float | None = Field(
        None, gt=0.0, lt=1.0, description="eps of every LayerNorm of the timm model, where the "
        "original's differs from timm's (timm's ViTs: 1e-6; torch's nn.LayerNorm default: 1e-5)")
    stage_alias: StageAlias | None = Field(
        None, description="the original checkpoint also holds the blocks under per-stage "
        "containers (folded onto timm's keys by convert)")
