"""Single-Path NAS architecture fields: the searched MobileNetV2-style network (paper Sec. 3 and
the figure of the found architecture), written as data in timm's EfficientNet
architecture-definition strings, one list per stage, e.g. ``ir_r3_k3_s2_e3_c24`` = 3
inverted-residual (MBConv) blocks, kernel 3x3, first stride 2, expansion 3, 24 output channels
(``noskip``: no residual; ``ds``: depthwise-separable).

The strings are checked here without importing timm; timm's ``decode_arch_def`` decodes them.
"""
from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from zoo.spec import ArchBase

BLOCK_TYPES = ("ir", "ds", "dsa", "er", "cn")
_OPTION = re.compile(r"^(r\d+|k\d+(\.\d+)*|a\d+(\.\d+)*|p\d+(\.\d+)*|s\d+|e\d+(\.\d+)?|c\d+|"
                     r"se\d+(\.\d+)?|f\d+|d\d+|noskip|skip|n(re|r6|hs|sw|mi)|g\d+|gs\d+|"
                     r"cc\d+|l\d+|fc\d+)$")
_REQUIRED = ("r", "k", "s", "c")


def check_block_string(text: str) -> str:
    parts = text.split("_")
    if parts[0] not in BLOCK_TYPES:
        raise ValueError(f"block {text!r}: type {parts[0]!r} is not one of "
                         f"{', '.join(BLOCK_TYPES)}")
    bad = [p for p in parts[1:] if not _OPTION.match(p)]
    if bad:
        raise ValueError(f"block {text!r}: unknown option(s) {bad}")
    required = _REQUIRED + (("e",) if parts[0] in ("ir", "er") else ())
    missing = [r for r in required
               if not any(re.match(rf"^{r}\d", p) for p in parts[1:] if not p.startswith("se"))]
    if missing:
        raise ValueError(f"block {text!r}: missing {missing} (repeats r, kernel k, stride s, "
                         "channels c, and expansion e for ir/er blocks, are required)")
    return text


class Arch(ArchBase):
    stages: tuple[tuple[str, ...], ...] = Field(
        min_length=1, description="per stage, its blocks as timm arch-definition strings")
    stem_size: int = Field(32, gt=0, description="channels of the 3x3 stride-2 stem conv")
    num_features: int = Field(1280, gt=0, description="channels of the 1x1 head conv")
    channel_multiplier: float = Field(1.0, gt=0, description="width multiplier (rounded to "
                                      "multiples of 8 as timm's round_channels)")
    act_layer: Literal["relu", "relu6", "swish", "hard_swish"] = "relu"
    bn_eps: float = Field(1e-5, gt=0)
    bn_momentum: float = Field(0.1, gt=0, le=1)
    global_pool: Literal["avg", "max", "avgmax", "catavgmax", ""] = Field(
        "avg", description="pooling before the classifier ('' none)")
    output_stride: Literal[8, 16, 32] = Field(
        32, description="stride of the last map; 8/16 dilate the later stages (timm's "
        "EfficientNet builder), for dense prediction")
    drop_rate: float = Field(0.0, ge=0.0, lt=1.0, description="dropout before the classifier")
    drop_path_rate: float = Field(0.0, ge=0.0, lt=1.0, description="stochastic depth")

    @field_validator("stages")
    @classmethod
    def _blocks(cls, v: tuple[tuple[str, ...], ...]) -> tuple[tuple[str, ...], ...]:
        for i, stage in enumerate(v):
            if not stage:
                raise ValueError(f"stage {i} has no blocks")
            for block in stage:
                try:
                    check_block_string(block)
                except ValueError as e:
                    raise ValueError(f"stage {i}: {e}") from None
        return v
