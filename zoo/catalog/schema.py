"""Validation of spec entries: every family's spec model joined into one discriminated union on
``family``, and the JSON Schema of spec files for editors.  No torch."""
from __future__ import annotations

import functools
from typing import Annotated, Any, Union, cast

from pydantic import Field, TypeAdapter

from zoo.errors import SpecError
from zoo.families import family_names, get_family
from zoo.spec import NAME_PATTERN, SpecBase, short_repr, family_spec_model, validate_as


@functools.cache
def family_spec(family: str) -> type[SpecBase]:
    """The (cached) spec model of one family."""
    return family_spec_model(family, get_family(family).arch)


@functools.cache
def _adapter(families: tuple[str, ...]) -> TypeAdapter[Any]:
    members = tuple(family_spec(f) for f in families)
    union: Any = members[0] if len(members) == 1 else Union[members]
    return TypeAdapter(cast(Any, Annotated[union, Field(discriminator="family")]))


def spec_adapter() -> TypeAdapter[Any]:
    """The TypeAdapter of the discriminated union of all known families' specs."""
    return _adapter(tuple(family_names()))


def validate_spec(raw: Any, *, source: str = "<dict>",
                  context: dict[str, Any] | None = None) -> SpecBase:
    """Validate one resolved (``extends`` applied) spec dict; raise :class:`SpecError`.

    ``context`` carries :data:`zoo.spec.LOOKUP` for specs that refer to other specs (a BigNAS
    child names its supernet); the catalog passes its own lookup."""
    name = raw.get("name") if isinstance(raw, dict) else None
    if not isinstance(raw, dict):
        raise SpecError(f"a spec must be a mapping, not {type(raw).__name__}", source=source)
    family = raw.get("family")
    if family not in family_names():
        raise SpecError(f"unknown family {short_repr(family)}; known families: "
                        f"{', '.join(family_names())}", source=source, model=name)
    return validate_as(family_spec(family), raw, source=source, context=context)


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
