"""ConvNeXt-dcls architecture fields (paper Sec. 4, ConvNeXt-dcls; upstream ``ConvNeXt_dcls``).

A ConvNeXt (patchify 4x4 stem + LayerNorm, four stages separated by LayerNorm + 2x2 stride-2
convs, blocks ``DCLS dw conv -> LayerNorm -> Linear 4x -> GELU -> Linear -> layer scale``, then
global average pooling, LayerNorm and a Linear head) whose depthwise convolution is a DCLS one:
``kernel_count`` weights per channel at learnable positions in a ``dilated_kernel_size`` square
kernel.  No torch here.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from zoo.spec import ArchBase, PositiveInt, Probability


class Arch(ArchBase):
    depths: tuple[PositiveInt, PositiveInt, PositiveInt, PositiveInt] = Field(
        description="blocks per stage")
    dims: tuple[PositiveInt, PositiveInt, PositiveInt, PositiveInt] = Field(
        description="channels per stage")
    kernel_count: PositiveInt = Field(
        description="weights (kernel elements) per channel of each DCLS depthwise kernel")
    dilated_kernel_size: PositiveInt = Field(
        17, description="side of the square kernel the elements are placed in (odd; padding "
                        "dilated_kernel_size // 2 keeps the resolution)")
    ls_init_value: float = Field(1e-6, gt=0, description="layer-scale (gamma) initial value")
    global_pool: Literal["avg", "max", "avgmax", ""] = Field(
        "avg", description="pooling of the head (upstream: average); '' none, the head applies "
        "its norm and classifier at every position")
    drop_path_rate: Probability = Field(
        0.0, description="stochastic depth, linear over all blocks (training only)")

    @field_validator("dilated_kernel_size")
    @classmethod
    def _odd(cls, k: int) -> int:
        if k % 2 != 1:
            raise ValueError(f"dilated_kernel_size must be odd (the convolution pads it by "
                             f"dilated_kernel_size // 2 and adds a residual), got {k}")
        return k

    @property
    def num_features(self) -> int:
        return self.dims[-1]
