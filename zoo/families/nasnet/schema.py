"""Architecture schema of cell-based networks (NASNet-A, DARTS, user genotypes).  No torch here.

A network is a *stem*, then stages of normal cells separated by reduction cells (arXiv
1707.07012, Sec. 3 and Fig. 2).  A cell is data (a *genotype*, Sec. 3 and Fig. 3): it starts
from two hidden states, ``h_{i-2}`` (state 0) and ``h_{i-1}`` (state 1), and each of its B
blocks picks two earlier states, applies one operation to each and adds the results; the block's
output becomes state ``2 + b``.  The cell output is the concatenation of the ``concat`` states.

State numbering is chronological (the DARTS convention): 0 = ``h_{i-2}``, 1 = ``h_{i-1}``,
2.. = block outputs.  TF-slim's ``hiddenstate_indices`` number ``h_{i-1}`` as 0 and ``h_{i-2}``
as 1; the NASNet-A spec swaps them accordingly.
"""
from __future__ import annotations

import difflib
from typing import Literal

from pydantic import Field, field_validator, model_validator

from zoo.spec import ArchBase, StrictModel

# The operation vocabulary: name -> (kind, kernel size, dilation).  NASNet's TF names map as
# separable_KxK_2 -> sep_conv_KxK, 'none' -> identity; DARTS's names are used unchanged.
OPS: dict[str, tuple[str, int, int]] = {
    "sep_conv_3x3": ("sep_conv", 3, 1),   # (ReLU, separable conv, BN) x 2  (NASNet, DARTS)
    "sep_conv_5x5": ("sep_conv", 5, 1),
    "sep_conv_7x7": ("sep_conv", 7, 1),
    "dil_conv_3x3": ("dil_conv", 3, 2),   # ReLU, dilated separable conv, BN  (DARTS)
    "dil_conv_5x5": ("dil_conv", 5, 2),
    "avg_pool_3x3": ("avg_pool", 3, 1),
    "max_pool_3x3": ("max_pool", 3, 1),
    "identity": ("identity", 1, 1),       # NASNet 'none': ReLU-1x1 conv-BN if strided/projecting
    "skip_connect": ("skip_connect", 1, 1),  # DARTS: factorized reduction when strided
    "none": ("zero", 1, 1),               # DARTS 'none': the zero operation
}

OpName = str
Input = tuple[OpName, int]


class CellGenotype(StrictModel):
    """One cell type: ``blocks`` of two ``[op, input state]`` pairs, and the concatenated states."""

    blocks: tuple[tuple[Input, Input], ...] = Field(
        min_length=1,
        description="per block: [[op, state], [op, state]]; the two results are added")
    concat: tuple[int, ...] = Field(
        description="states concatenated into the cell output, in order")

    @model_validator(mode="after")
    def _check(self) -> "CellGenotype":
        problems = []
        num_states = 2 + len(self.blocks)
        for b, block in enumerate(self.blocks):
            for side, (op, state) in zip(("left", "right"), block):
                if op not in OPS:
                    close = difflib.get_close_matches(op, OPS, n=3)
                    hint = f"; did you mean {', '.join(close)}?" if close else ""
                    problems.append(f"block {b} ({side}): unknown op {op!r}{hint} "
                                    f"(known: {', '.join(OPS)})")
                if not 0 <= state < 2 + b:
                    problems.append(
                        f"block {b} ({side}): input state {state} is out of range; block {b} can "
                        f"take states 0..{1 + b} (0 = h_(i-2), 1 = h_(i-1), 2.. = earlier blocks)")
        if not self.concat:
            problems.append("concat is empty: list the states that form the cell output")
        for s in self.concat:
            if not 0 <= s < num_states:
                problems.append(f"concat state {s} is out of range 0..{num_states - 1}")
        dupes = sorted({s for s in self.concat if self.concat.count(s) > 1})
        if dupes:
            problems.append(f"concat lists state(s) {dupes} more than once")
        consumed = {state for block in self.blocks for _, state in block}
        for b in range(len(self.blocks)):
            s = 2 + b
            if s not in consumed and s not in self.concat:
                problems.append(f"the output of block {b} (state {s}) is never used: no later "
                                "block takes it and concat does not list it")
        if problems:
            raise ValueError("invalid cell genotype: " + "; ".join(problems))
        return self


class Genotype(StrictModel):
    """The searched cells (arXiv 1707.07012, Fig. 4; arXiv 1806.09055, Fig. 4-5)."""

    normal: CellGenotype
    reduce: CellGenotype = Field(description="reduction cell: ops on states 0 and 1 use stride 2")


class Stem(StrictModel):
    """What turns the image into the first two hidden states."""

    kind: Literal["nasnet_imagenet", "nasnet_cifar", "darts_imagenet"] = Field(
        description="nasnet_imagenet: 3x3/2 VALID conv + BN, then `num_cells` reduction cells "
        "(TF-slim _imagenet_stem); nasnet_cifar: 3x3 conv + BN (TF-slim _cifar_stem); "
        "darts_imagenet: three 3x3/2 convs (DARTS NetworkImageNet stem0/stem1)")
    filters: int = Field(gt=0, description="channels of the stem convolution")
    num_cells: int | None = Field(None, ge=0, description="reduction cells of the nasnet_imagenet "
                                  "stem (default 2), at filter scalings rate^-num_cells .. rate^-1")

    @model_validator(mode="after")
    def _check(self) -> "Stem":
        if self.kind != "nasnet_imagenet" and self.num_cells is not None:
            raise ValueError(f"num_cells only applies to the nasnet_imagenet stem, not {self.kind}")
        if self.kind == "darts_imagenet" and self.filters % 2:
            raise ValueError("the darts_imagenet stem halves `filters` in its first conv: use an "
                             "even number")
        return self

    @property
    def cells(self) -> int:
        """Number of stem reduction cells (0 unless nasnet_imagenet, where it defaults to 2)."""
        if self.kind != "nasnet_imagenet":
            return 0
        return 2 if self.num_cells is None else self.num_cells


class Arch(ArchBase):
    """A cell-based network: genotype + stack + conventions of the implementation followed."""

    genotype: Genotype
    stem: Stem
    depths: tuple[int, ...] = Field(
        min_length=1, description="normal cells per stage (the paper's N); a reduction cell "
        "sits between consecutive stages and doubles the filters")
    filters: int = Field(gt=0, description="filters of the first stage's cells (TF-slim "
                         "num_conv_filters; penultimate filters = len(normal concat) x filters x "
                         "rate^(stages-1))")
    filter_scaling_rate: int = Field(2, ge=1)
    skip_reduction_layer_input: bool = Field(
        False, description="the normal cell after a reduction cell takes the reduction cell's "
        "h_(i-2) as its own h_(i-2) (TF-slim hparam; NASNet-A Large)")
    prev_projection: Literal["when_needed", "always"] = Field(
        "when_needed", description="h_(i-2) gets a ReLU-1x1 conv-BN: only when its channels "
        "differ from the cell's filters (TF-slim) or always (DARTS)")
    padding: Literal["tf_same", "tf_same_count_pad", "symmetric"] = Field(
        description="tf_same: TF 'SAME' (asymmetric where needed; pools exclude padding); "
        "tf_same_count_pad: the same, but stride-2 average pools count the zero padding (timm's "
        "nasnetalarge); symmetric: PyTorch padding k//2 (DARTS)")
    bn_eps: float = Field(1e-3, gt=0, lt=1)
    head_relu: bool = Field(True, description="ReLU before the global pool (NASNet), not DARTS")
    global_pool: Literal["avg", "max", "avgmax", "catavgmax", ""] = Field(
        "avg", description="pooling before the classifier ('' none: the head gets the map)")
    drop_rate: float = Field(0.0, ge=0, lt=1, description="dropout before the classifier")
    drop_path_rate: float = Field(0.0, ge=0, lt=1, description="drop path of the last cell's "
                                  "ops; cell k of K uses rate x (k+1)/K (TF-slim, without the "
                                  "training-step schedule)")

    @field_validator("depths")
    @classmethod
    def _depths(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(d < 1 for d in v):
            raise ValueError(f"every stage needs at least one normal cell, got {list(v)}")
        return v

    @model_validator(mode="after")
    def _check(self) -> "Arch":
        if self.stem.cells:
            smallest = int(self.filters * self.filter_scaling_rate ** -self.stem.cells)
            if smallest < 1:
                raise ValueError(f"filters={self.filters} scaled by {self.filter_scaling_rate}^-"
                                 f"{self.stem.cells} leaves no channels for the first stem cell")
        return self
