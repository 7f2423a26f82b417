"""A zoo model around a timm built-in architecture.

:class:`TimmArchModel` holds the timm model as its ``model`` submodule and delegates timm's model
API to it (``forward_features``, ``forward_head``, ``get_classifier``, ``reset_classifier``,
``num_features``), so every zoo spec of this family behaves like any other zoo model.  The
state-dict layout is timm's under the ``model.`` prefix; :func:`convert` maps an original
checkpoint of the timm architecture (optionally DataParallel-wrapped) onto it.
"""
from typing import Any, Dict, List, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from zoo.errors import CheckpointError, SpecError
from zoo.model import IndicesT, ZooModel

PREFIX = "model."


class TimmArchModel(ZooModel):
    """A timm model with zoo's metadata.  ``num_features`` are the channels ``forward_features``
    returns; ``head_hidden_size`` the width of the pooled pre-logits features (they differ for
    models with a conv head after pooling, e.g. MobileNetV3: 576 vs 1024)."""

    def __init__(self, model: nn.Module, in_chans: int = 3) -> None:
        super().__init__()
        self.model = model
        self.in_chans = in_chans
        self.num_classes = model.num_classes
        self.feature_info = _feature_info(model)
        self._sync()

    def _sync(self) -> None:
        """Widths and class count as the inner model has them now."""
        self.num_classes = self.model.num_classes
        self.num_features = self.model.num_features
        self.head_hidden_size = getattr(self.model, "head_hidden_size", self.num_features)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.model.forward_features(x)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        return self.model.forward_head(x, pre_logits=pre_logits)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.model.get_classifier()

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        if global_pool is None:
            self.model.reset_classifier(num_classes)
        else:
            self.model.reset_classifier(num_classes, global_pool)
        self._sync()

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable
        self.model.set_grad_checkpointing(enable)

    @torch.jit.ignore
    def forward_intermediates(
            self, x: Tensor, indices: IndicesT = None, norm: bool = False,
            stop_early: bool = False, output_fmt: str = "NCHW", intermediates_only: bool = False,
    ) -> Union[List[Tensor], Tuple[Tensor, List[Tensor]]]:
        """The timm model's own ``forward_intermediates`` (same levels as ``feature_info``)."""
        return self.model.forward_intermediates(
            x, indices=indices, norm=norm, stop_early=stop_early, output_fmt=output_fmt,
            intermediates_only=intermediates_only)

    @torch.jit.ignore
    def prune_intermediate_layers(self, indices: Union[int, List[int]] = 1,
                                  prune_norm: bool = False, prune_head: bool = True) -> List[int]:
        take = self.model.prune_intermediate_layers(indices, prune_norm=prune_norm,
                                                    prune_head=prune_head)
        self._sync()
        return take

    @torch.jit.ignore
    def no_weight_decay(self) -> set:
        inner = getattr(self.model, "no_weight_decay", None)
        return {PREFIX + n for n in inner()} if callable(inner) else set()

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict[str, Any]:
        """timm's matcher of the inner model, its patterns moved under the ``model.`` prefix."""
        def shift(pattern: Any) -> Any:
            if isinstance(pattern, str):  # (?:...) keeps alternations ("^conv1|bn1") anchored
                return r"^model\.(?:" + pattern.removeprefix("^") + ")"
            return [(shift(p[0]), p[1]) if isinstance(p, tuple) else shift(p) for p in pattern]

        return {k: shift(v) for k, v in self.model.group_matcher(coarse=coarse).items()}


def _feature_info(model: nn.Module) -> List[Dict]:
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

    from zoo.catalog import catalog

    name = spec.arch.timm_model
    if name in catalog().entries:
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
    extra = {k: getattr(arch, k) for k in ("global_pool", "output_stride")
             if getattr(arch, k) is not None}
    try:
        inner = timm.create_model(arch.timm_model, pretrained=False,
                                  num_classes=spec.data.num_classes, in_chans=spec.data.in_chans,
                                  drop_rate=arch.drop_rate, drop_path_rate=arch.drop_path_rate,
                                  **arch.model_args, **extra)
    except TypeError as e:
        raise SpecError(f"timm rejected the arguments of {arch.timm_model!r}: {e}",
                        model=spec.name) from None
    return TimmArchModel(inner, in_chans=spec.data.in_chans)


def convert(spec, state_dict: Dict[str, Tensor]) -> Dict[str, Tensor]:
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
