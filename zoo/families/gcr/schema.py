"""Architecture fields of a GCR model: a timm backbone (as in family timm_arch), the layout of
the original (mmpretrain) checkpoints, and the Grassmann head's subspace dimension and scale."""
from __future__ import annotations

from pydantic import Field

from zoo.layers.mm_layout import MMLayout
from zoo.layers.timm_spec import TimmArchFields


class Arch(TimmArchFields):
    checkpoint_layout: MMLayout = Field(
        description="the original checkpoints' layout (mmpretrain ImageClassifier) and backbone "
        "class, which selects the key mapping to the timm backbone")
    subspace_dim: int = Field(ge=1, description="k, the dimension of every class subspace "
                              "(upstream config `dims=[k] * num_classes`)")
    gamma: float = Field(25.0, gt=0, description="logit scale: logits are gamma times the "
                         "projection norms of the unit-length feature (upstream `gamma`)")
