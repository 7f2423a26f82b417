"""Spec fields of models built on a timm built-in architecture (no torch import: schema.py files
of the families ``timm_arch`` and ``gcr`` derive from :class:`TimmArchFields`).

The architecture is named (``timm_model``) and its constructor arguments are plain data
(``model_args``: names and scalars, never a Python path); ``num_classes``/``in_chans`` come from
the spec's data section, and weights only ever come from zoo's registry.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from zoo.spec import ArchBase

Scalar = bool | int | float | str

# Arguments zoo sets itself (from the spec's data section) or that would load foreign weights.
RESERVED_ARGS = frozenset({"pretrained", "pretrained_cfg", "pretrained_cfg_overlay", "num_classes",
                           "in_chans", "checkpoint_path", "cache_dir", "drop_rate",
                           "drop_path_rate", "global_pool", "output_stride", "features_only", "scriptable", "exportable",
                           "no_jit", "pretrained_strict"})


class TimmArchFields(ArchBase):
    """Which timm built-in architecture, with which constructor arguments."""

    timm_model: str = Field(pattern=r"^[a-z][a-z0-9_]*$",
                            description="a timm built-in architecture name (timm.list_models()), "
                            "without pretrained tag")
    drop_path_rate: float = Field(0.0, ge=0.0, lt=1.0, description="stochastic depth")
    global_pool: str | None = Field(None, description="timm's global_pool argument of the "
                                    "architecture (None: its default; '' no pooling)")
    output_stride: Literal[8, 16, 32] | None = Field(
        None, description="timm's output_stride argument (dilated later stages), for "
        "architectures that take it; None: the architecture's own (32)")
    model_args: dict[str, Scalar] = Field(
        default_factory=dict, description="further keyword arguments of the timm constructor "
        "(e.g. act_layer); scalars only")

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
