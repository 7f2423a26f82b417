"""A zoo model around a timm built-in architecture.

:class:`TimmArchModel` holds the timm model as its ``model`` submodule and delegates timm's model
API to it (:class:`zoo.layers.timm_model.TimmModel`), so every zoo spec of this family behaves
like any other zoo model.  The state-dict layout is timm's under the ``model.`` prefix;
:func:`convert` maps an original checkpoint onto it: the timm architecture's own state dict
(optionally DataParallel-wrapped), or an OpenMMLab classifier's (``arch.checkpoint_layout``,
through the shared mm -> timm key mapping :mod:`zoo.layers.mm_layout`).
"""
from __future__ import annotations

import torch
from torch import Tensor

from zoo.errors import CheckpointError
from zoo.families.contract import FamilyHooks
from zoo.layers import mm_layout
from zoo.layers.timm_model import PREFIX, TimmModel, create_timm


class TimmArchModel(TimmModel):
    """A timm model with zoo's metadata (see :class:`~zoo.layers.timm_model.TimmModel`)."""


def build(spec) -> TimmArchModel:
    return TimmArchModel(create_timm(spec, num_classes=spec.data.num_classes,
                                     drop_rate=spec.arch.drop_rate))


def convert(spec, state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """An original checkpoint -> zoo.  Layout ``timm``: strips the ``module.`` prefix of
    ``torch.nn.DataParallel`` (MEAL V2 saves its students wrapped) and adds ``model.``.  An mm
    layout: maps ``backbone.*``/``head.*`` to the timm keys (a cls_KD distiller checkpoint is
    reduced to its ``student.`` entries first)."""
    bad = sorted(k for k, v in state_dict.items() if not isinstance(v, torch.Tensor))
    if bad:
        raise CheckpointError(f"{spec.name}: checkpoint entries {bad[:5]} are not tensors; pass "
                              "the model's state dict (zoo.weights.checkpoint.load_original_checkpoint "
                              "unwraps training checkpoints)")
    layout = spec.arch.checkpoint_layout
    if layout != "timm":
        classifier = spec.data.classifiers[0].removeprefix(PREFIX)
        return {PREFIX + k: v for k, v in
                mm_layout.to_timm(state_dict, layout, classifier, spec.name).items()}
    if any(k.startswith(PREFIX) for k in state_dict) and not any(
            k.startswith("module.") for k in state_dict):
        raise CheckpointError(f"{spec.name}: keys already start with {PREFIX!r}: this looks like "
                              "a zoo-layout state dict, which needs no conversion")
    return {PREFIX + k.removeprefix("module."): v for k, v in state_dict.items()}


HOOKS = FamilyHooks(build=build, convert=convert)
