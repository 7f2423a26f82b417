"""A zoo model around a timm built-in architecture.

:class:`TimmArchModel` holds the timm model as its ``model`` submodule and delegates timm's model
API to it (:class:`zoo.layers.timm_model.TimmModel`), so every zoo spec of this family behaves
like any other zoo model.  The state-dict layout is timm's under the ``model.`` prefix;
:func:`convert` maps an original checkpoint onto it: the timm architecture's own state dict
(optionally DataParallel-wrapped, optionally holding the blocks a second time under per-stage
containers: ``arch.stage_alias``), or an OpenMMLab classifier's (``arch.checkpoint_layout``,
through the shared mm -> timm key mapping :mod:`zoo.layers.mm_layout`).
"""
from __future__ import annotations

import re

import torch
from torch import Tensor, nn

from zoo.errors import CheckpointError, SpecError
from zoo.families.contract import FamilyHooks
from zoo.layers import mm_layout
from zoo.layers.timm_model import PREFIX, TimmModel, create_timm


class TimmArchModel(TimmModel):
    """A timm model with zoo's metadata (see :class:`~zoo.layers.timm_model.TimmModel`)."""


def build(spec) -> TimmArchModel:
    arch = spec.arch
    inner = create_timm(spec, num_classes=spec.data.num_classes, drop_rate=arch.drop_rate)
    if arch.layer_norm_eps is not None:
        _set_layer_norm_eps(inner, arch.layer_norm_eps, spec.name)
    _check_fixed_size(inner, spec)
    if arch.stage_alias is not None:
        _check_stage_depths(inner, arch.stage_alias, spec.name)
    return TimmArchModel(inner, in_chans=spec.data.in_chans)


def _set_layer_norm_eps(model: nn.Module, eps: float, name: str) -> None:
    """Give every LayerNorm of the timm model the original's eps (timm's constructors fix it)."""
    norms = [m for m in model.modules() if isinstance(m, nn.LayerNorm)]
    if not norms:
        raise SpecError(f"arch.layer_norm_eps is set, but {type(model).__name__} has no "
                        "LayerNorm; remove the field", model=name)
    for m in norms:
        m.eps = eps


def _check_fixed_size(model: nn.Module, spec) -> None:
    """A patch-embedding model built for one image size must be declared at that size."""
    img_size = getattr(getattr(model, "patch_embed", None), "img_size", None)
    if img_size is None or getattr(model, "dynamic_img_size", False):
        return
    if tuple(img_size) != tuple(spec.data.input_size[1:]):
        raise SpecError(f"{spec.arch.timm_model} is built for {tuple(img_size)} images but "
                        f"data.input_size is {tuple(spec.data.input_size)}; set model_args "
                        "img_size (or name the timm variant of that size)", model=spec.name)
    if not spec.data.fixed_input_size:
        raise SpecError(f"{spec.arch.timm_model} takes {tuple(img_size)} images only: declare "
                        "data.fixed_input_size: true", model=spec.name)


def _check_stage_depths(model: nn.Module, alias, name: str) -> None:
    blocks = getattr(model, alias.blocks, None)
    if not isinstance(blocks, nn.Sequential | nn.ModuleList):
        raise SpecError(f"arch.stage_alias.blocks {alias.blocks!r} is not a block list of "
                        f"{type(model).__name__}", model=name)
    if sum(alias.depths) != len(blocks):
        raise SpecError(f"arch.stage_alias.depths {list(alias.depths)} add up to "
                        f"{sum(alias.depths)} blocks, but the model has {len(blocks)}",
                        model=name)


def convert(spec, state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """An original checkpoint -> zoo.  Layout ``timm``: strips the ``module.`` prefix of
    ``torch.nn.DataParallel`` (MEAL V2 saves its students wrapped) and adds ``model.``.  An mm
    layout: maps ``backbone.*``/``head.*`` to the timm keys (a cls_KD distiller checkpoint is
    reduced to its ``student.`` entries first).  Per-stage aliases (``arch.stage_alias``) are
    folded onto timm's keys."""
    layout = spec.arch.checkpoint_layout
    if layout != "timm":
        classifier = spec.data.classifiers[0].removeprefix(PREFIX)
        return {PREFIX + k: v for k, v in
                mm_layout.to_timm(state_dict, layout, classifier, spec.name).items()}
    if any(k.startswith(PREFIX) for k in state_dict) and not any(
            k.startswith("module.") for k in state_dict):
        raise CheckpointError(f"{spec.name}: keys already start with {PREFIX!r}: this looks like "
                              "a zoo-layout state dict, which needs no conversion")
    sd = {k.removeprefix("module."): v for k, v in state_dict.items()}
    if spec.arch.stage_alias is not None:
        sd = fold_stage_aliases(sd, spec.arch.stage_alias, spec.name)
    return {PREFIX + k: v for k, v in sd.items()}


def fold_stage_aliases(state_dict: dict[str, Tensor], alias, name: str) -> dict[str, Tensor]:
    """``<container>.<i>.<blocks>.<j>.*`` -> ``<blocks>.<offset_i + j>.*`` and
    ``<container>.<i>.<name>`` -> ``<name>`` (see :class:`~.schema.StageAlias`).  Where the
    checkpoint has both copies (the full model's state dict) they must be equal; where it has
    only the per-stage ones (the stages' own state dicts), they are moved."""
    stage_key = re.compile(rf"^{alias.container}\.(\d+)\.(.+)$")
    block_key = re.compile(rf"^{alias.blocks}\.(\d+)\.(.+)$")
    offsets = [sum(alias.depths[:i]) for i in range(len(alias.depths))]
    out = {k: v for k, v in state_dict.items() if not stage_key.match(k)}
    for key, value in state_dict.items():
        m = stage_key.match(key)
        if m is None:
            continue
        stage, rest = int(m.group(1)), m.group(2)
        if stage >= len(alias.depths):
            raise CheckpointError(f"{name}: {key!r} names stage {stage}, but the spec declares "
                                  f"{len(alias.depths)} stages (arch.stage_alias.depths)")
        b = block_key.match(rest)
        if b is not None:
            j = int(b.group(1))
            if j >= alias.depths[stage]:
                raise CheckpointError(f"{name}: {key!r}: stage {stage} has "
                                      f"{alias.depths[stage]} blocks (arch.stage_alias.depths)")
            rest = f"{alias.blocks}.{offsets[stage] + j}.{b.group(2)}"
        if rest in out:
            if not (out[rest].shape == value.shape and torch.equal(out[rest], value)):
                raise CheckpointError(f"{name}: {key!r} should be an alias of {rest!r} (the "
                                      "same tensor), but the values differ: the checkpoint is "
                                      "inconsistent or its stage depths are not "
                                      f"{list(alias.depths)}")
        else:
            out[rest] = value
    return out


HOOKS = FamilyHooks(build=build, convert=convert)
