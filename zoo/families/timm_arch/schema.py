"""Architecture fields of a timm-backed model: which timm built-in architecture, and the
constructor arguments given to ``timm.create_model`` (plain data: names and scalars, never a
Python path).  ``num_classes``/``in_chans`` come from the spec's data section.

Where an original differs from timm's architecture only in a detail timm's constructor cannot
express, or saves its weights under extra names, that is declared here too, as data:
``layer_norm_eps`` (the eps of every LayerNorm) and ``stage_alias`` (a checkpoint that holds the
blocks a second time under per-stage containers, e.g. Deep Model Assembling's ``stages``).
"""
from __future__ import annotations

from pydantic import Field, field_validator

from zoo.spec import ArchBase, PositiveInt, StrictModel

Scalar = bool | int | float | str
IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"

# Arguments zoo sets itself (from the spec's data section) or that would load foreign weights.
RESERVED_ARGS = frozenset({"pretrained", "pretrained_cfg", "pretrained_cfg_overlay", "num_classes",
                           "in_chans", "checkpoint_path", "cache_dir", "drop_rate",
                           "drop_path_rate", "features_only", "scriptable", "exportable",
                           "no_jit", "pretrained_strict"})


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


class Arch(ArchBase):
    timm_model: str = Field(pattern=r"^[a-z][a-z0-9_]*$",
                            description="a timm built-in architecture name (timm.list_models()), "
                            "without pretrained tag")
    drop_rate: float = Field(0.0, ge=0.0, lt=1.0, description="dropout before the classifier")
    drop_path_rate: float = Field(0.0, ge=0.0, lt=1.0, description="stochastic depth")
    model_args: dict[str, Scalar] = Field(
        default_factory=dict, description="further keyword arguments of the timm constructor "
        "(e.g. global_pool); scalars only")
    layer_norm_eps: float | None = Field(
        None, gt=0.0, lt=1.0, description="eps of every LayerNorm of the timm model, where the "
        "original's differs from timm's (timm's ViTs: 1e-6; torch's nn.LayerNorm default: 1e-5)")
    stage_alias: StageAlias | None = Field(
        None, description="the original checkpoint also holds the blocks under per-stage "
        "containers (folded onto timm's keys by convert)")

    @field_validator("model_args")
    @classmethod
    def _args(cls, v: dict[str, Scalar]) -> dict[str, Scalar]:
        reserved = sorted(set(v) & RESERVED_ARGS)
        if reserved:
            raise ValueError(f"model_args {reserved} are set by zoo (num_classes/in_chans from "
                             "`data`, drop rates from their own fields, weights from the "
                             "registry); remove them")
        bad = sorted(k for k in v if not k.isidentifier())
        if bad:
            raise ValueError(f"model_args keys must be Python identifiers, got {bad}")
        return v
