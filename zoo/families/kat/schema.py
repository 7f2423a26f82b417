"""KAT's architecture fields (paper Sec. 4; upstream ``katransformer.py``).

A KAT is a plain ViT (patch embedding, class token, learned positional embedding, pre-norm
transformer blocks, final LayerNorm, linear head on the class token) whose MLP is replaced by a
GR-KAN: ``rational -> fc1 -> rational -> fc2``.  Each rational is a *group-rational*
function: the channels are split into ``rational_groups`` contiguous groups; all groups share
one numerator polynomial of order ``numerator_order`` and every group has its own denominator of
order ``denominator_order``.  The first rational is initialized to the identity, the second to
``act_init`` (the paper's variance-preserving initialization).
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from zoo.spec import ArchBase


class Arch(ArchBase):
    patch_size: int = Field(16, gt=0)
    embed_dim: int = Field(gt=0, description="token width")
    depth: int = Field(gt=0, description="number of transformer blocks")
    num_heads: int = Field(gt=0)
    mlp_ratio: float = Field(4.0, gt=0, description="GR-KAN hidden width / embed_dim")
    qkv_bias: bool = True
    global_pool: Literal["token", "avg", ""] = Field(
        "token", description="'token': the class token feeds the head (upstream's default); "
        "'avg': mean of the patch tokens, with the final norm moved after pooling (timm's fc_norm); "
        "'' none: the head gets every token")
    rational_groups: int = Field(8, gt=0, description="channel groups of every group-rational "
                                 "(upstream KAT_Group num_groups)")
    numerator_order: int = Field(5, gt=0, description="order m of the shared numerator P "
                                 "(m + 1 coefficients); upstream's kernel is fixed to 5")
    denominator_order: int = Field(4, gt=0, description="order n of each group's denominator "
                                   "Q = 1 + sum_i |b_i| |x|^i (n coefficients); upstream's "
                                   "kernel is fixed to 4")
    act_init: Literal["swish", "gelu"] = Field(
        "swish", description="function the second rational of every GR-KAN is initialized to "
        "(upstream act_init; the released kat_*_patch16_224 models use swish)")
    drop_rate: float = Field(0.0, ge=0.0, lt=1.0, description="dropout before the head")
    pos_drop_rate: float = Field(0.0, ge=0.0, lt=1.0)
    proj_drop_rate: float = Field(0.0, ge=0.0, lt=1.0, description="dropout in attention "
                                  "projection and GR-KAN")
    attn_drop_rate: float = Field(0.0, ge=0.0, lt=1.0)
    drop_path_rate: float = Field(0.0, ge=0.0, lt=1.0, description="stochastic depth, linearly "
                                  "increasing over the blocks")

    @property
    def hidden_dim(self) -> int:
        return int(self.embed_dim * self.mlp_ratio)

    @model_validator(mode="after")
    def _check(self) -> "Arch":
        if (self.numerator_order, self.denominator_order) != (5, 4):
            raise ValueError(
                f"rational orders ({self.numerator_order}, {self.denominator_order}): the "
                "rational initializations (upstream kat_rational/init.json, least-squares fits of "
                "swish/gelu) exist for orders (5, 4) only")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by num_heads "
                             f"{self.num_heads}")
        for what, width in (("embed_dim", self.embed_dim), ("GR-KAN hidden width (embed_dim * "
                                                            "mlp_ratio)", self.hidden_dim)):
            if width % self.rational_groups:
                raise ValueError(f"{what} {width} is not divisible by rational_groups "
                                 f"{self.rational_groups} (each group-rational splits its input "
                                 "channels into equal groups)")
        return self
