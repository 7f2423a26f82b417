"""DeepMAD's architecture fields (the paper's CNN design space; TinyNAS ``CnnNet``).

A DeepMAD CNN is a stem ``ConvKXBNRELU``, a sequence of super-blocks (``L`` residual blocks of
one type: ``k1kxk1`` = 1x1 -> dense kxk -> 1x1 bottleneck, or ``k1dwsek1`` = 1x1 -> depthwise kxk
-> SE -> 1x1 inverted bottleneck) and an optional final 1x1 ``ConvKXBNRELU``, then global average
pooling and a linear classifier.  Only the first block of a super-block changes width or stride.

No torch here: the scores and the designer use these classes too.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from zoo.spec import ArchBase, PositiveInt, Probability, StrictModel

BlockType = Literal["k1kxk1", "k1dwsek1"]


def se_channels(btn_chs: int, ratio: float = 0.25, divisor: int = 8) -> int:
    """Squeeze-excite width of a ``k1dwsek1`` block: ``max(1, round(btn * ratio) // divisor)
    * divisor`` (TinyNAS ``SE``; Python's ``round``)."""
    return max(1, round(btn_chs * ratio) // divisor) * divisor


def _odd(k: int) -> int:
    if k % 2 != 1:
        raise ValueError(f"kernel_size must be odd (padding (k-1)//2 keeps the size), got {k}")
    return k


OddKernel = Annotated[int, Field(gt=0), AfterValidator(_odd)]


class ConvLayer(StrictModel):
    """``ConvKXBNRELU``: conv(k x k, stride, padding (k-1)//2, no bias) -> BN -> ReLU."""

    out_chs: PositiveInt
    kernel_size: OddKernel = 3
    stride: Literal[1, 2] = 1


class SuperBlock(StrictModel):
    """``depth`` residual blocks; block 0 maps ``in_chs -> out_chs`` with ``stride``, the others
    ``out_chs -> out_chs`` with stride 1 (TinyNAS ``BaseSuperBlock``; paper's c, b, k, L)."""

    in_chs: PositiveInt
    out_chs: PositiveInt
    kernel_size: OddKernel = Field(description="k of the kxk (dense or depthwise) conv")
    stride: Literal[1, 2] = 1
    depth: PositiveInt = Field(description="L: number of residual blocks")
    btn_chs: PositiveInt = Field(description="b: bottleneck (k1kxk1) / expanded (k1dwsek1) width")


class Budget(StrictModel):
    """The budgets a designed network was made for (``zoo design deepmad``)."""

    macs: float | None = Field(None, gt=0,
                               description="MACs of one forward pass, classifier included")
    macs_count: Literal["zoo", "tinynas"] = Field(
        "zoo", description="what `macs` bounds: zoo.measure MACs, or TinyNAS's get_flops cost")
    params: float | None = Field(None, gt=0, description="parameters without the classifier")
    rho: float = Field(gt=0, description="rho0: bound on the effectiveness rho")
    layers: int | None = Field(None, gt=0, description="bound on the number of conv layers")
    resolution: PositiveInt


class DesignRecord(StrictModel):
    """Provenance of a designer-made spec: its budgets and what the designer measured."""

    budget: Budget
    tinynas_compat: bool
    score: float = Field(description="objective: weighted entropy minus depth penalty")
    entropy: float = Field(description="sum_i w_i H_i (TinyNAS compute_deepmad score)")
    rho: float
    macs: int
    tinynas_flops: float | None = Field(None, description="TinyNAS's get_flops cost")
    params: int = Field(description="parameters without the classifier")
    stage_weights: tuple[float, ...]
    solver: str
    seconds: float = Field(ge=0)


class Arch(ArchBase):
    block: BlockType = Field(description="inner block type of every super-block")
    stem: ConvLayer
    stages: tuple[SuperBlock, ...] = Field(min_length=1, description="the super-blocks in order")
    final_conv: ConvLayer | None = Field(None, description="1x1 ConvKXBNRELU before the pooling")
    se_ratio: float = Field(0.25, gt=0, le=1, description="SE width / btn_chs (k1dwsek1)")
    se_divisor: PositiveInt = Field(8, description="SE width is a multiple of this (k1dwsek1)")
    drop_rate: Probability = Field(0.0, description="dropout before the classifier")
    drop_path_rate: Probability = Field(
        0.0, description="stochastic depth on residual branches, linear over blocks (zoo addition; "
                         "the published networks were trained without it)")
    global_pool: Literal["avg", "max", "avgmax", "catavgmax", ""] = Field(
        "avg", description="pooling before the classifier (TinyNAS: average; '' none)")
    design: DesignRecord | None = Field(None, description="set on specs made by the designer")
    search_budget: Budget | None = Field(
        None, description="the budgets of the search that found a published network (DeepMAD's "
        "own configs), which `zoo design deepmad` can be run against")

    @model_validator(mode="after")
    def _chain(self) -> "Arch":
        prev = self.stem.out_chs
        for i, sb in enumerate(self.stages):
            if sb.in_chs != prev:
                raise ValueError(f"stages[{i}].in_chs is {sb.in_chs} but the layer before it "
                                 f"outputs {prev} channels")
            prev = sb.out_chs
        if self.final_conv is not None and self.final_conv.stride != 1:
            raise ValueError("final_conv must have stride 1 (it is the 1x1 layer before pooling)")
        return self

    @property
    def num_features(self) -> int:
        return self.final_conv.out_chs if self.final_conv is not None else self.stages[-1].out_chs

    def structure(self, in_chans: int = 3) -> list[dict[str, Any]]:
        """The TinyNAS ``structure_info`` list of this architecture (``best_structures[0]``)."""
        inner = {"k1kxk1": "ResK1KXK1", "k1dwsek1": "ResK1DWSEK1"}[self.block]
        stem = self.stem
        out: list[dict[str, Any]] = [{"class": "ConvKXBNRELU", "in": in_chans, "out": stem.out_chs,
                                      "k": stem.kernel_size, "s": stem.stride}]
        for sb in self.stages:
            out.append({"class": "Super" + inner, "inner_class": inner, "in": sb.in_chs,
                        "out": sb.out_chs, "k": sb.kernel_size, "s": sb.stride, "L": sb.depth,
                        "btn": sb.btn_chs})
        if self.final_conv is not None:
            fc = self.final_conv
            out.append({"class": "ConvKXBNRELU", "in": self.stages[-1].out_chs, "out": fc.out_chs,
                        "k": fc.kernel_size, "s": fc.stride})
        return out
