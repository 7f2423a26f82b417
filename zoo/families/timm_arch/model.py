"""A zoo model around a timm built-in architecture.

:class:`TimmArchModel` holds the timm model as its ``model`` submodule and delegates timm's model
API to it (``forward_features``, ``forward_head``, ``get_classifier``, ``reset_classifier``,
``num_features``), so every zoo spec of this family behaves like any other zoo model.  The
state-dict layout is timm's under the ``model.`` prefix; :func:`convert` maps an original
checkpoint of the timm architecture (optionally DataParallel-wrapped, optionally holding the blocks
a second time under per-stage containers: ``arch.stage_alias``) onto it.
"""
from __future__ import annotations

import re
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
        if _is_token_model(model):
            self.features_only_hint = ("its blocks output token sequences; use "
                                       "model.model.forward_intermediates(x) for NCHW maps")

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
    Empty (no ``features_only``) when timm declares none, when a level needs a pre-forward
    hook (timm's ``feature_location="bottleneck"``), which zoo's forward hooks cannot serve, or
    when the levels are token sequences, not feature maps (ViT blocks: timm reshapes them in
    ``forward_intermediates``, not in the blocks)."""
    info = getattr(model, "feature_info", None) or []
    info = list(getattr(info, "info", info))  # a timm FeatureInfo object, or a list of dicts
    if any(d.get("hook_type", "forward") != "forward" for d in info) or _is_token_model(model):
        return []
    return [{"module": PREFIX + d["module"], "num_chs": d["num_chs"], "reduction": d["reduction"]}
            for d in info]


def _is_token_model(model: nn.Module) -> bool:
    """A ViT-style model: its blocks take and return (B, tokens, C) sequences."""
    from timm.models.vision_transformer import VisionTransformer

    return isinstance(model, VisionTransformer)


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
    if arch.layer_norm_eps is not None:
        _set_layer_norm_eps(inner, arch.layer_norm_eps, spec.name)
    _check_fixed_size(inner, spec)
    if arch.stage_alias is not None:
        _check_stage_depths(inner, arch.stage_alias, spec.name)
    return TimmArchModel(inner)


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
    """An original checkpoint of the timm architecture -> zoo: strips the ``module.`` prefix
    of ``torch.nn.DataParallel`` (MEAL V2 saves its students wrapped), folds per-stage aliases
    (``arch.stage_alias``) onto timm's keys, and adds ``model.``."""
    bad = sorted(k for k, v in state_dict.items() if not isinstance(v, torch.Tensor))
    if bad:
        raise CheckpointError(f"{spec.name}: checkpoint entries {bad[:5]} are not tensors; pass "
                              "the model's state dict (zoo.weights.checkpoint.load_original_checkpoint "
                              "unwraps training checkpoints)")
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
