"""SReT's architecture fields (arXiv:2111.05297; upstream ``SReT.py`` / ``SReT_wo_slice.py``).

A model is a convolutional stem (three stride-2 3x3 conv-BN-ReLU) plus a learnable positional
embedding on the stride-8 token grid, then stages of *recursive* transformer blocks (the paper's
recursive operation): each stage holds ``unique_blocks`` transformer blocks whose weights are
shared across depth, every one applied ``applications`` times in a row, and after every
application one *unshared* non-linear projection layer (NLL).  A stage therefore runs
``unique_blocks * applications`` block applications and holds as many NLLs.  Blocks and NLLs use
learnable residual coefficients.  In the sliced models (the paper's sliced group self-attention)
self-attention runs within contiguous groups of the raster token order: ``groups`` slices on a
block's first application, ``recursive_groups`` slices on its recursive applications, where the
tokens are randomly permuted first.  Between stages a stride-2 conv grouped by input channel pools
the token grid (PiT-style).

The sharing is declared here, not hidden in code: the model holds each shared block once.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from zoo.spec import ArchBase, StrictModel


class Stage(StrictModel):
    """One stage: ``unique_blocks`` shared blocks, each applied ``applications`` times."""

    head_dim: int = Field(gt=0, description="channels per attention head (upstream base_dims)")
    num_heads: int = Field(gt=0, description="attention heads; width = head_dim * num_heads")
    unique_blocks: int = Field(gt=0, description="transformer blocks with their own weights "
                               "(upstream recursive_num)")
    applications: int = Field(2, gt=0, description="how many times each unique block is applied "
                              "in a row (upstream depth / recursive_num); one unshared NLL "
                              "follows every application")
    groups: int = Field(1, gt=0, description="attention slices on a block's first application "
                        "(upstream groups1; 1 = global self-attention)")
    recursive_groups: int = Field(1, gt=0, description="attention slices on the recursive "
                                  "applications, over randomly permuted tokens (upstream groups2; "
                                  "1 = global self-attention, no permutation)")

    @property
    def dim(self) -> int:
        return self.head_dim * self.num_heads

    @property
    def depth(self) -> int:
        """Block applications (= NLLs) of the stage: upstream's ``depth``."""
        return self.unique_blocks * self.applications

    @model_validator(mode="after")
    def _check(self) -> "Stage":
        if self.applications == 1 and self.recursive_groups != 1:
            raise ValueError("recursive_groups needs a recursive application (applications >= 2)")
        return self


class Arch(ArchBase):
    stages: tuple[Stage, ...] = Field(min_length=1)
    mlp_ratio: float = Field(gt=0, description="hidden width / width of the blocks' MLP")
    nll_mlp_ratio: float = Field(gt=0, description="hidden width / width of the NLLs' MLP "
                                 "(upstream np_mlp_ratio)")
    drop_rate: float = Field(0.0, ge=0.0, lt=1.0, description="dropout after the positional "
                             "embedding and in every MLP")
    attn_drop_rate: float = Field(0.0, ge=0.0, lt=1.0)
    drop_path_rate: float = Field(0.0, ge=0.0, lt=1.0, description="stochastic depth: unique "
                                  "block b of a stage starting at application index s gets "
                                  "drop_path_rate * (s + b) / total applications (upstream rule)")
    global_pool: Literal["avg", ""] = Field(
        "avg", description="average pooling of the last map before the norm and classifier "
        "('' none: the head returns the map)")
    token_permutation: Literal["global_rng", "seeded"] = Field(
        "global_rng",
        description="where the recursive pass's token permutations come from. 'global_rng' (the "
        "original): torch.randperm on torch's global CPU generator, one draw per sliced "
        "recursive application in forward order, in eval mode too, so outputs depend on the RNG "
        "state. 'seeded': a private generator seeded with permutation_seed at every forward "
        "(same input -> same output; the global RNG is neither read nor advanced)")
    permutation_seed: int = Field(0, ge=0, description="seed of token_permutation='seeded'")
    dynamic_img_size: bool = Field(
        False, description="accept other input sizes by bicubically resampling the positional "
        "embedding at every forward (timm's name for this). Upstream does not resample: with "
        "False (the original behaviour) any other size raises InputShapeError")

    @property
    def num_features(self) -> int:
        return self.stages[-1].dim

    @model_validator(mode="after")
    def _check(self) -> "Arch":
        if self.stages[0].dim < 2:
            raise ValueError("stages[0] width (head_dim * num_heads) must be >= 2: the stem's "
                             "first conv has width // 2 channels")
        for i, (a, b) in enumerate(zip(self.stages, self.stages[1:])):
            if b.dim % a.dim:
                raise ValueError(
                    f"stages[{i + 1}] width {b.dim} must be a multiple of stages[{i}] width "
                    f"{a.dim}: the pooling conv between them is grouped by input channel")
        return self
