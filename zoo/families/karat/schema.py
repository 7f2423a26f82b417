"""KArAt's architecture fields (arXiv:2503.10632 v3, Sec. 3 "Kolmogorov-Arnold Attention").

A KArAt model is a vanilla ViT (Dosovitskiy et al.: patch embedding, class token, learned
positional embedding, pre-norm blocks) in which the softmax applied to every row of each head's
attention matrix ``A = QK^T / sqrt(d)`` is replaced by a learnable operator ``W Phi`` built from
Fourier Kolmogorov-Arnold units (the paper's *Fourier-KArAt*, modular/low-rank form):

- ``karat.grid_size`` is the paper's grid size ``G`` (the ``n`` in its ``GnB`` / ``GnU`` names);
- ``karat.rank`` is the hidden dimension ``r`` of the low-rank operator (12 in all the paper's
  experiments);
- ``karat.mode`` is the paper's update configuration: ``blockwise`` (``GnB``, one operator per
  head in every block) or ``universal`` (``GnU``, one operator per head shared by all blocks).

The operator's units are tied to key positions, so the token count ``N`` (from the spec's input
size, the patch size and the class token) is part of the architecture: the model takes exactly
``data.input_size``.  No torch import here.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from zoo.spec import ArchBase, StrictModel


class KArAtConfig(StrictModel):
    """The learnable attention operator (paper Sec. 3: modular Fourier-KArAt, GnB / GnU)."""

    basis: Literal["fourier"] = Field(
        "fourier", description="basis of the learnable units; the paper's main configuration "
        "(and the only one zoo implements) is Fourier")
    grid_size: int = Field(gt=0, description="G: harmonics m = 1..G of every unit, plus the "
                           "m = 0 (constant) harmonic the paper's parameter count implies")
    rank: int = Field(12, gt=0, description="r: hidden dimension of the low-rank operator "
                      "W Phi (Phi: R^N -> R^r, W: R^r -> R^N); 12 in all of the paper's runs")
    mode: Literal["blockwise", "universal"] = Field(
        description="blockwise (GnB): every block has its own operator per head; universal (GnU): "
        "one operator per head, shared by all blocks (held once in the model)")
    base_activation: Literal["zero", "silu", "identity"] = Field(
        "zero", description="the base function b(x) added to every unit; 'zero' (no base "
        "activation) is the paper's main configuration")
    l1_projection: bool = Field(
        False, description="normalize every activated attention row to unit l1 norm (the "
        "paper's optional l1 projection, disabled in its experiments)")


class Arch(ArchBase):
    patch_size: int = Field(16, gt=0, description="side of the square, non-overlapping patches")
    embed_dim: int = Field(gt=0, description="token width")
    depth: int = Field(gt=0, description="number of transformer blocks (L)")
    num_heads: int = Field(gt=0, description="attention heads per block (h)")
    mlp_ratio: float = Field(4.0, gt=0, description="MLP hidden width / embed_dim")
    qkv_bias: bool = True
    class_token: bool = True
    global_pool: Literal["token", "avg", ""] = Field(
        "token", description="pooling before the head: the class token (ViT) or the mean of "
        "the patch tokens; '' none: the head gets every token")
    drop_rate: float = Field(0.0, ge=0.0, lt=1.0, description="dropout before the head")
    pos_drop_rate: float = Field(0.0, ge=0.0, lt=1.0)
    proj_drop_rate: float = Field(0.0, ge=0.0, lt=1.0)
    attn_drop_rate: float = Field(0.0, ge=0.0, lt=1.0, description="dropout on the activated "
                                  "attention rows")
    drop_path_rate: float = Field(0.0, ge=0.0, lt=1.0, description="stochastic depth, linearly "
                                  "increasing over the blocks (timm's rule)")
    karat: KArAtConfig

    @model_validator(mode="after")
    def _check(self) -> "Arch":
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} must be a multiple of num_heads "
                             f"{self.num_heads}")
        if self.global_pool == "token" and not self.class_token:
            raise ValueError("global_pool 'token' needs class_token: true")
        return self

    def num_tokens(self, img_size: tuple[int, int]) -> int:
        """N: the tokens one image gives (patches plus the class token)."""
        h, w = img_size
        return (h // self.patch_size) * (w // self.patch_size) + int(self.class_token)
