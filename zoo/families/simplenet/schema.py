"""SimpleNet's architecture fields: a plain stack of 3x3/1x1 conv-BN-ReLU layers and 2x2 max
pools (paper Sec. 3), a width ``scale`` and a per-layer stride table (the "stride mode")."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from zoo.spec import ArchBase, StrictModel

Dropout = float | None  # None: no dropout module after the layer (upstream's key layout)


class Conv(StrictModel):
    """conv(k x k, padding k//2) -> BN -> ReLU [-> Dropout2d]."""

    filters: int = Field(gt=0, description="output channels before width scaling")
    kernel: Literal[1, 3] = 3
    dropout: Dropout = Field(0.0, ge=0.0, lt=1.0)


class Pool(StrictModel):
    """2x2 max pool [-> Dropout2d]."""

    pool: Literal["max"] = "max"
    dropout: Dropout = Field(0.0, ge=0.0, lt=1.0)


class Arch(ArchBase):
    layers: tuple[Conv | Pool, ...] = Field(min_length=1)
    scale: float = Field(1.0, gt=0.0, le=8.0, description="width multiplier (rounded per layer)")
    strides: dict[int, Literal[1, 2]] = Field(
        default_factory=dict,
        description="layer index -> stride; other convs use 1 and pools 2 (upstream's stride mode)")
    drop_rate: float = Field(0.0, ge=0.0, lt=1.0, description="dropout before the classifier")
    global_pool: Literal["max", "avg", "avgmax", "catavgmax", ""] = Field(
        "max", description="pooling before the classifier (the paper's global max pooling; "
        "timm's other pools; '' none: the head gets the map)")

    @model_validator(mode="after")
    def _check(self) -> "Arch":
        bad = sorted(i for i in self.strides if not 0 <= i < len(self.layers))
        if bad:
            raise ValueError(f"strides name layer indices {bad} outside 0..{len(self.layers) - 1}")
        if not isinstance(self.layers[-1], Conv):
            raise ValueError("the last layer must be a conv (the classifier reads its channels)")
        empty = [i for i, layer in enumerate(self.layers)
                 if isinstance(layer, Conv) and self.width(layer) < 1]
        if empty:
            raise ValueError(f"scale {self.scale} leaves layers {empty} without channels")
        return self

    def width(self, layer: Conv) -> int:
        """Output channels of a conv after width scaling (upstream's ``round(filters * scale)``)."""
        return round(layer.filters * self.scale)
