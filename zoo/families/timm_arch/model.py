"""A zoo model around a timm built-in architecture.

:class:`TimmArchModel` holds the timm model as its ``model`` submodule and delegates timm's model
API to it (``forward_features``, ``forward_head``, ``get_classifier``, ``reset_classifier``,
``num_features``), so every zoo spec of this family behaves like any other zoo model.  The
state-dict layout is timm's under the ``model.`` prefix; :func:`convert` maps an original
checkpoint of the timm architecture (optionally DataParallel-wrapped) onto it.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from zoo.families.contract import FamilyHooks
from zoo.errors import CheckpointError, SpecError
from zoo.model import ZooModel

PREFIX = "model."


class TimmArchModel(ZooModel):
    """A timm model with zoo's metadata.  ``num_features`` are the channels ``forward_features``
    returns; ``head_hidden_size`` the width of the pooled pre-logits features (they differ for
    models with a conv head after pooling, e.g. MobileNetV3: 576 vs 1024)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.num_classes = model.num_classes
        self.num_features = model.num_features
        self.head_hidden_size = getattr(model, "head_hidden_size", model.num_features)
        self.feature_info = _feature_info(model)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.model.forward_features(x)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        return self.model.forward_head(x, pre_logits=pre_logits)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def get_classifier(self) -> nn.Module:
        return self.model.get_classifier()

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        if global_pool is None:
            self.model.reset_classifier(num_classes)
        else:
            self.model.reset_classifier(num_classes, global_pool)
        self.num_classes = num_classes
        self.head_hidden_size = getattr(self.model, "head_hidden_size", self.num_features)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.model.set_grad_checkpointing(enable)

    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """timm's matcher of the inner model, its patterns moved under the ``model.`` prefix."""
        def shift(pattern: Any) -> Any:
            if isinstance(pattern, str):  # (?:...) keeps alternations ("^conv1|bn1") anchored
                return r"^model\.(?:" + pattern.removeprefix("^") + ")"
            return [(shift(p[0]), p[1]) if isinstance(p, tuple) else shift(p) for p in pattern]

        return {k: shift(v) for k, v in self.model.group_matcher(coarse=coarse).items()}


def _feature_info(model: nn.Module) -> list[dict]:
    """The timm model's own ``feature_info``, its module names under the ``model.`` prefix.
    Empty (no ``features_only``) when timm declares none, or when a level needs a pre-forward
    hook (timm's ``feature_location="bottleneck"``), which zoo's forward hooks cannot serve."""
    info = getattr(model, "feature_info", None) or []
    info = list(getattr(info, "info", info))  # a timm FeatureInfo object, or a list of dicts
    if any(d.get("hook_type", "forward") != "forward" for d in info):
        return []
    return [{"module": PREFIX + d["module"], "num_chs": d["num_chs"], "reduction": d["reduction"]}
            for d in info]


def _check_architecture(spec) -> None:
    import timm
    from timm.models import is_model_in_modules

    name = spec.arch.timm_model
    if is_model_in_modules(name, ["zoo"]):
        raise SpecError(f"arch.timm_model {name!r} names a zoo model, not a timm built-in "
                        "architecture", model=spec.name)
    if not timm.is_model(name):
        import difflib

        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        raise SpecError(f"arch.timm_model {name!r} is not a timm architecture (timm "
                        f"{timm.__version__})" + (f"; did you mean {', '.join(close)}?"
                                                  if close else ""), model=spec.name)


def build(spec) -> TimmArchModel:
    import timm

    _check_architecture(spec)
    arch = spec.arch
    try:
        inner = timm.create_model(arch.timm_model, pretrained=False,
                                  num_classes=spec.data.num_classes, in_chans=spec.data.in_chans,
                                  drop_rate=arch.drop_rate, drop_path_rate=arch.drop_path_rate,
                                  **arch.model_args)
    except TypeError as e:
        raise SpecError(f"timm rejected the arguments of {arch.timm_model!r}: {e}",
                        model=spec.name) from None
    return TimmArchModel(inner)


def convert(spec, state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """An original checkpoint of the timm architecture -> zoo: strips the ``module.`` prefix
    of ``torch.nn.DataParallel`` (MEAL V2 saves its students wrapped) and adds ``model.``."""
    bad = sorted(k for k, v in state_dict.items() if not isinstance(v, torch.Tensor))
    if bad:
        raise CheckpointError(f"{spec.name}: checkpoint entries {bad[:5]} are not tensors; pass "
                              "the model's state dict (zoo.checkpoint.load_original_checkpoint "
                              "unwraps training checkpoints)")
    if any(k.startswith(PREFIX) for k in state_dict) and not any(
            k.startswith("module.") for k in state_dict):
        raise CheckpointError(f"{spec.name}: keys already start with {PREFIX!r}: this looks like "
                              "a zoo-layout state dict, which needs no conversion")
    return {PREFIX + k.removeprefix("module."): v for k, v in state_dict.items()}


HOOKS = FamilyHooks(build=build, convert=convert)
