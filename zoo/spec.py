"""The spec schema: what a model *is*, as data (never how it is built).

A spec entry has the fields every family shares (:class:`SpecBase`: name, data config, paper
metadata, reported numbers) plus ``arch``, the family's own pydantic model (``ArchBase``
subclass, defined in ``zoo/families/<family>/schema.py``).  :func:`spec_adapter` joins all
families into one discriminated union on ``family``.  Nothing here imports torch.
"""
from __future__ import annotations

import functools
import re
from typing import Annotated, Any, Literal, Union

from pydantic import (BaseModel, ConfigDict, Field, TypeAdapter, create_model, field_validator,
                      model_validator)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

NAME_PATTERN = r"^[a-z][a-z0-9_]*$"
PositiveInt = Annotated[int, Field(gt=0)]
Probability = Annotated[float, Field(ge=0.0, lt=1.0)]


class StrictModel(BaseModel):
    """Base of every schema object: unknown keys are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ArchBase(StrictModel):
    """Base of a family's architecture schema.  Subclasses add the family's own fields."""


class DataConfig(StrictModel):
    """Input/output contract of a model, as timm's ``pretrained_cfg`` describes it."""

    input_size: tuple[PositiveInt, PositiveInt, PositiveInt] = Field(
        description="(channels, height, width) the model was trained/evaluated at")
    fixed_input_size: bool = Field(False, description="the model only takes exactly input_size")
    crop_pct: float = Field(0.875, gt=0.0, le=1.0)
    crop_mode: Literal["center", "squash", "border"] = "center"
    interpolation: Literal["bilinear", "bicubic", "nearest"] = "bicubic"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)],
               Annotated[float, Field(gt=0)]] = IMAGENET_STD
    num_classes: int = Field(1000, ge=0, description="0: no classifier (features only)")
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


class SpecBase(StrictModel):
    """Fields every spec has; a family's spec adds ``family`` (literal) and ``arch``."""

    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    data: DataConfig
    paper: Paper
    reported: Reported | None = None

    @property
    def arch_fields(self) -> dict[str, Any]:
        return self.arch.model_dump()  # type: ignore[attr-defined]

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
        return validate_spec(raw, source="overrides")


ModelSpec = SpecBase  # the public type name; concrete instances are per-family subclasses


def family_spec_model(family: str, arch: type[ArchBase]) -> type[SpecBase]:
    """The spec model of one family: ``SpecBase`` + ``family: Literal[family]`` + ``arch``."""
    return create_model(
        f"{''.join(p.title() for p in family.split('_'))}Spec",
        __base__=SpecBase,
        family=(Literal[family], ...),
        arch=(arch, ...),
    )


@functools.cache
def family_spec(family: str) -> type[SpecBase]:
    """The (cached) spec model of one family."""
    from zoo.families import get_family

    return family_spec_model(family, get_family(family).arch)


@functools.cache
def _adapter(families: tuple[str, ...]) -> TypeAdapter:
    members = tuple(family_spec(f) for f in families)
    union = members[0] if len(members) == 1 else Union[members]  # type: ignore[valid-type]
    return TypeAdapter(Annotated[union, Field(discriminator="family")])


def spec_adapter() -> TypeAdapter:
    """The TypeAdapter of the discriminated union of all known families' specs."""
    from zoo.families import family_names

    return _adapter(tuple(family_names()))


def validate_spec(raw: dict[str, Any], *, source: str = "<dict>") -> SpecBase:
    """Validate one resolved (extends applied) spec dict; raise :class:`zoo.errors.SpecError`."""
    from pydantic import ValidationError

    from zoo.errors import SpecError
    from zoo.families import family_names

    name = raw.get("name") if isinstance(raw, dict) else None
    if not isinstance(raw, dict):
        raise SpecError(f"a spec must be a mapping, not {type(raw).__name__}", source=source)
    family = raw.get("family")
    if family not in family_names():
        raise SpecError(f"unknown family {_short_repr(family)}; known families: "
                        f"{', '.join(family_names())}", source=source, model=name)
    try:
        return family_spec(family).model_validate(raw)
    except ValidationError as e:
        problems = [f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
                    + (f" (got {_short_repr(err['input'])})" if err["type"] != "missing"
                       and not isinstance(err["input"], (dict, list)) else "")
                    for err in e.errors()]
        raise SpecError("invalid spec", source=source, model=name, problems=problems) from None


def _short_repr(value: Any, limit: int = 200) -> str:
    """repr() for error messages: bounded, and safe for integers beyond Python's str limit."""
    try:
        text = repr(value)
    except ValueError:
        text = f"<int of {value.bit_length()} bits>" if isinstance(value, int) \
            else f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit] + "..."


def json_schema(kind: str = "file") -> dict[str, Any]:
    """JSON Schema for editors (`zoo schema > zoo-spec.schema.json`).

    ``kind="entry"``: one fully resolved spec (what :func:`validate_spec` checks: every required
    field, the family discriminator).  ``kind="file"``: a ``specs/*.yaml`` document as written,
    ``{defaults:, models: {name: entry}}``, where an entry may rely on ``defaults`` and
    ``extends`` for any field, so no field is required there and the family is not a
    discriminator; unknown keys and wrong types are still flagged everywhere."""
    entry = spec_adapter().json_schema()
    if kind == "entry":
        entry["title"] = "zoo model spec (one resolved entry)"
        return entry
    if kind != "file":
        raise ValueError(f"kind must be 'file' or 'entry', got {kind!r}")
    defs = _without_required(entry.pop("$defs"))
    variants = []
    for ref in entry["oneOf"]:
        name = ref["$ref"].rsplit("/", 1)[-1]
        variant = defs[name]
        variant["properties"].pop("name", None)  # the key under `models:` is the name
        variant["properties"]["extends"] = {"type": "string", "pattern": NAME_PATTERN,
                                            "description": "model whose fields this one starts from"}
        variants.append({"$ref": f"#/$defs/{name}"})
    partial = {"anyOf": variants}
    return {
        "title": "zoo spec file", "type": "object", "additionalProperties": False,
        "required": ["models"], "$defs": defs,
        "properties": {
            "defaults": {**partial, "description": "fields merged under every model of the file"},
            "models": {"type": "object", "minProperties": 1,
                       "propertyNames": {"pattern": NAME_PATTERN}, "additionalProperties": partial},
        },
    }


def _without_required(node: Any) -> Any:
    """A schema tree with every ``required`` list and discriminator dropped (partial entries)."""
    if isinstance(node, dict):
        return {k: _without_required(v) for k, v in node.items()
                if k not in ("required", "discriminator")}
    if isinstance(node, list):
        return [_without_required(v) for v in node]
    return node


_SNAKE = re.compile(NAME_PATTERN)


def is_valid_name(name: str) -> bool:
    return bool(_SNAKE.match(name))


__all__ = ["ArchBase", "DataConfig", "ModelSpec", "Paper", "Reported", "SpecBase", "StrictModel",
           "json_schema", "spec_adapter", "validate_spec", "field_validator", "model_validator"]
