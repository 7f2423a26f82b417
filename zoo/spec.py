"""The spec schema: what a model *is*, as data (never how it is built).

A spec entry has the fields every family shares (:class:`SpecBase`: name, data config, paper
metadata, reported numbers) plus ``family`` and ``arch``, the family's own pydantic model
(:class:`ArchBase` subclass, defined in ``zoo/families/<family>/schema.py``).  This module knows
no family: :func:`family_spec_model` makes one family's spec model from its ``Arch``, and the
catalog joins them into one discriminated union.  Nothing here imports torch.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, create_model,
                      field_validator, model_validator)

from zoo.errors import SpecError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

NAME_PATTERN = r"^[a-z][a-z0-9_]*$"
MAX_CLASSES = 1_000_000  # bigger than any public label set: bounds a head before it is built
MAX_CHANNELS = 4096
MAX_SIDE = 16384
PositiveInt = Annotated[int, Field(gt=0)]
Probability = Annotated[float, Field(ge=0.0, lt=1.0)]


class StrictModel(BaseModel):
    """Base of every schema object: unknown keys are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ArchBase(StrictModel):
    """Base of a family's architecture schema.  Subclasses add the family's own fields."""


class DataConfig(StrictModel):
    """Input/output contract of a model, as timm's ``pretrained_cfg`` describes it."""

    input_size: tuple[Annotated[int, Field(gt=0, le=MAX_CHANNELS)],
                      Annotated[int, Field(gt=0, le=MAX_SIDE)],
                      Annotated[int, Field(gt=0, le=MAX_SIDE)]] = Field(
        description="(channels, height, width) the model was trained/evaluated at")
    fixed_input_size: bool = Field(False, description="the model only takes exactly input_size")
    crop_pct: float = Field(0.875, gt=0.0, le=1.0)
    crop_mode: Literal["center", "squash", "border"] = "center"
    interpolation: Literal["bilinear", "bicubic", "nearest"] = "bicubic"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)],
               Annotated[float, Field(gt=0)]] = IMAGENET_STD
    num_classes: int = Field(1000, ge=0, le=MAX_CLASSES,
                             description="0: no classifier (features only)")
    label_set: str = Field("imagenet-1k", description="the classes the head predicts")
    first_conv: str = Field(description="state-dict prefix of the input conv/projection")
    classifier: str | tuple[str, ...] = Field(description="state-dict prefix(es) of the classifier")

    @property
    def in_chans(self) -> int:
        return self.input_size[0]

    @property
    def classifiers(self) -> tuple[str, ...]:
        return (self.classifier,) if isinstance(self.classifier, str) else self.classifier


class Paper(StrictModel):
    """Where the architecture comes from."""

    title: str
    authors: str | None = None
    venue: str | None = None
    arxiv: str | None = Field(None, pattern=r"^\d{4}\.\d{4,5}$")
    code: str | None = Field(None, pattern=r"^https://")
    license: str | None = Field(None, description="license of the original code")


class Reported(StrictModel):
    """The paper's (or upstream README's) own numbers for this variant, with their source."""

    params_m: float | None = Field(None, gt=0, description="parameters, millions")
    macs_m: float | None = Field(None, gt=0, description="multiply-accumulates, millions "
                                 "(papers often call them FLOPs)")
    top1: float | None = Field(None, ge=0, le=100)
    top5: float | None = Field(None, ge=0, le=100)
    dataset: str = "imagenet-1k"
    source: str = Field(description="table/section the numbers come from, e.g. 'Table 2'")
    note: str | None = None


LOOKUP = "zoo.lookup"  # validation-context key: name -> validated spec (cross-spec references)
SpecLookup = Callable[[str], "SpecBase"]


class SpecBase(StrictModel):
    """Fields every spec has; a family's spec narrows ``family`` to a literal and ``arch`` to the
    family's ``Arch`` (:func:`family_spec_model`)."""

    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    data: DataConfig
    paper: Paper
    reported: Reported | None = None
    family: str
    arch: ArchBase

    _context: dict[str, Any] | None = PrivateAttr(default=None)

    def model_post_init(self, context: Any, /) -> None:
        # kept so that copies (with_overrides) resolve cross-spec references the same way
        self._context = context if isinstance(context, dict) else None

    def digest(self) -> str:
        """sha256 of the resolved spec's content (canonical JSON): identifies exactly the
        variant a file was made from."""
        import hashlib
        import json

        text = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def arch_fields(self) -> dict[str, Any]:
        return self.arch.model_dump()

    def with_overrides(self, *, num_classes: int | None = None, in_chans: int | None = None,
                       **arch: Any) -> "SpecBase":
        """A validated copy with data/arch fields replaced (``zoo.create``'s overrides)."""
        raw = self.model_dump()
        if num_classes is not None:
            raw["data"]["num_classes"] = num_classes
        if in_chans is not None:
            raw["data"]["input_size"] = [in_chans, *raw["data"]["input_size"][1:]]
        if arch:
            raw["arch"].update(arch)
        return validate_as(type(self), raw, source="overrides", context=self._context)


ModelSpec = SpecBase  # the public type name; concrete instances are per-family subclasses
S = TypeVar("S", bound=BaseModel)


def family_spec_model(family: str, arch: type[ArchBase]) -> type[SpecBase]:
    """The spec model of one family: ``SpecBase`` + ``family: Literal[family]`` + ``arch``."""
    family_type: Any = Literal[family]
    model: type[SpecBase] = create_model(
        f"{''.join(p.title() for p in family.split('_'))}Spec",
        __base__=SpecBase,
        family=(family_type, ...),
        arch=(arch, ...),
    )
    return model


def validation_problems(error: ValidationError) -> list[str]:
    """One readable line per pydantic error: field path, message, the offending value."""
    return [f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            + (f" (got {short_repr(err['input'])})" if err["type"] != "missing"
               and not isinstance(err["input"], (dict, list)) else "")
            for err in error.errors()]


def validate_as(model: type[S], raw: Any, *, source: str = "<dict>",
                context: dict[str, Any] | None = None) -> S:
    """Validate ``raw`` with ``model``; raise :class:`zoo.errors.SpecError` naming every problem."""
    name = raw.get("name") if isinstance(raw, dict) else None
    try:
        return model.model_validate(raw, context=context)
    except ValidationError as e:
        raise SpecError("invalid spec", source=source, model=name,
                        problems=validation_problems(e)) from None


def short_repr(value: Any, limit: int = 200) -> str:
    """repr() for error messages: bounded, and safe for integers beyond Python's str limit."""
    try:
        text = repr(value)
    except ValueError:
        text = f"<int of {value.bit_length()} bits>" if isinstance(value, int) \
            else f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit] + "..."


__all__ = ["ArchBase", "DataConfig", "LOOKUP", "ModelSpec", "Paper", "Reported", "SpecBase",
           "SpecLookup", "StrictModel", "family_spec_model", "validate_as", "validation_problems",
           "field_validator", "model_validator"]
