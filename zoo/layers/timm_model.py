"""A zoo model around a timm built-in architecture (families ``timm_arch`` and ``gcr``).

:class:`TimmModel` holds the timm model as its ``model`` submodule and delegates timm's model API
to it (``forward_features``, ``forward_head``, ``get_classifier``, ``reset_classifier``,
``num_features``), so the state-dict layout is timm's under the ``model.`` prefix.  One
convention differs from timm: zoo's 4-D features are channels-first, so for timm models whose
feature maps are NHWC (Swin: ``output_fmt == "NHWC"``) ``forward_features`` returns them
permuted to NCHW and ``forward_head`` permutes them back (views of the same memory: the head
computes exactly what timm's does).
"""
import re
from typing import Any, Dict, List, Optional, Set, Tuple, Union

import torch
from torch import Tensor, nn

from zoo.errors import SpecError
from zoo.model import IndicesT, ZooModel

PREFIX = "model."


class TimmModel(ZooModel):
    """A timm model with zoo's metadata.  ``num_features`` are the channels ``forward_features``
    returns; ``head_hidden_size`` the width of the pooled pre-logits features (they differ for
    models with layers after pooling, e.g. MobileNetV3's conv head: 576 vs 1024, VGG's MLP:
    512 vs 4096).  timm's feature API (``forward_intermediates``,
    ``prune_intermediate_layers``, gradient checkpointing, ``group_matcher``,
    ``no_weight_decay``) is the timm model's, its names under the ``model.`` prefix."""

    __jit_unused_properties__ = [*ZooModel.__jit_unused_properties__, "set_input_size"]

    def __init__(self, model: nn.Module, in_chans: int = 3) -> None:
        super().__init__()
        # a timm model: its API (num_classes, forward_features, reset_classifier, ...) is timm's
        # and untyped (nn.Module.__getattr__ would type every such attribute Tensor | Module)
        self.model: Any = model
        self.in_chans = in_chans
        self.nhwc = getattr(model, "output_fmt", "NCHW") == "NHWC"
        self._sync()
        self.feature_info = timm_feature_info(model)
        # what the levels' modules return: NHWC stages (Swin), token sequences (ViT blocks, whose
        # timm models have num_prefix_tokens); zoo's features_only gives NCHW maps of either
        # through timm's forward_intermediates (feature_cls='getter'), of NHWC ones also
        # through hooks and fx
        self.feature_fmt = "NLC" if hasattr(model, "num_prefix_tokens") else (
            "NHWC" if self.nhwc else "NCHW")

    def _sync(self) -> None:
        """Widths and class count as the inner model has them now."""
        self.num_classes = int(self.model.num_classes)
        self.num_features = int(self.model.num_features)
        self.head_hidden_size = int(getattr(self.model, "head_hidden_size", self.num_features))
        self._sync_head_maps()

    def _sync_head_maps(self) -> None:
        """Whether the timm head returns NHWC maps (an NHWC model built or reset with
        ``global_pool=''``): kept as a flag, so that no shape test runs in ``forward`` (fx
        tracing cannot branch on a traced tensor's rank)."""
        pool = getattr(getattr(self.model, "head", None), "global_pool", None)
        unpooled = getattr(pool, "is_identity", None)
        self.nhwc_head_maps = self.nhwc and callable(unpooled) and bool(unpooled())

    def feature_map_size(self, img_size: Tuple[int, int]) -> Optional[Tuple[int, int]]:
        """timm's ``pool_size``; None for token features (ViTs: ``forward_features`` returns
        the token sequence)."""
        if hasattr(self.model, "num_prefix_tokens"):
            return None
        return super().feature_map_size(img_size)

    def _features_nchw(self, x: Tensor) -> Tensor:
        """The timm model's features (4-D: NHWC maps for Swin) as zoo's NCHW."""
        return x.permute(0, 3, 1, 2) if self.nhwc else x

    def forward_features(self, x: Tensor) -> Tensor:
        return self._features_nchw(self.model.forward_features(x))

    def _head_out(self, x: Tensor) -> Tensor:
        return x.permute(0, 3, 1, 2) if self.nhwc_head_maps else x

    def timm_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """The timm model's ``forward_head`` on zoo's NCHW features (for subclasses: TorchScript
        compiles no ``super()`` call)."""
        if self.nhwc:  # zoo's NCHW features back to the timm model's NHWC
            x = x.permute(0, 2, 3, 1)
        return self._head_out(self.model.forward_head(x, pre_logits=pre_logits))

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        return self.timm_head(x, pre_logits=pre_logits)

    def forward(self, x: Tensor) -> Tensor:
        return self._head_out(self.model(x))

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.model.get_classifier()

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        if global_pool is None:
            self.model.reset_classifier(num_classes)
        else:
            self.model.reset_classifier(num_classes, global_pool)
        self._sync()

    @property
    def set_input_size(self) -> Any:
        """timm's ``set_input_size`` of the inner model (ViT, Swin: the positional embedding
        and attention windows resampled to the new patch grid).  Only models whose timm model
        has one have it (callers, timm's tests among them, look for the method to decide
        whether a model can be resized; a CNN takes any size as it is)."""
        if not callable(getattr(self.model, "set_input_size", None)):
            raise AttributeError(f"{type(self).__name__} of {type(self.model).__name__} has no "
                                 "'set_input_size': it takes any input size as it is")
        return self._set_input_size

    @torch.jit.ignore
    def _set_input_size(self, img_size: Optional[Tuple[int, int]] = None,
                        patch_size: Optional[Tuple[int, int]] = None) -> None:
        self.model.set_input_size(img_size=img_size, patch_size=patch_size)
        if img_size is not None:
            self._input_size_changed(tuple(img_size))

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
        out = self.model.forward_intermediates(
            x, indices=indices, norm=norm, stop_early=stop_early, output_fmt=output_fmt,
            intermediates_only=intermediates_only)
        if intermediates_only:
            return out
        final, intermediates = out
        return self._features_nchw(final), intermediates

    @torch.jit.ignore
    def prune_intermediate_layers(self, indices: Union[int, List[int]] = 1,
                                  prune_norm: bool = False, prune_head: bool = True) -> List[int]:
        take = self.model.prune_intermediate_layers(indices, prune_norm=prune_norm,
                                                    prune_head=prune_head)
        if prune_head:
            self.reset_classifier(0, "")  # also a subclass's own head (GCR's subspaces)
        self._sync()
        return take

    @torch.jit.ignore
    def no_weight_decay(self) -> Set[str]:
        return timm_no_weight_decay(self.model)

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict[str, Any]:
        """timm's matcher of the inner model, its patterns moved under the ``model.`` prefix."""
        return timm_group_matcher(self.model, coarse)


def timm_no_weight_decay(model: nn.Module, prefix: str = PREFIX) -> Set[str]:
    """The timm model's ``no_weight_decay`` names under ``prefix`` (its attribute's name)."""
    inner = getattr(model, "no_weight_decay", None)
    return {prefix + n for n in inner()} if callable(inner) else set()


def timm_group_matcher(model: Any, coarse: bool = False, prefix: str = PREFIX) -> Dict[str, Any]:
    """The timm model's ``group_matcher``, its patterns moved under ``prefix``."""
    head = "^" + re.escape(prefix)

    def shift(pattern: Any) -> Any:
        if isinstance(pattern, str):  # (?:...) keeps alternations ("^conv1|bn1") anchored
            return head + "(?:" + pattern.removeprefix("^") + ")"
        return [(shift(p[0]), p[1]) if isinstance(p, tuple) else shift(p) for p in pattern]

    return {k: shift(v) for k, v in model.group_matcher(coarse=coarse).items()}


def timm_feature_info(model: nn.Module, prefix: str = PREFIX) -> list[dict]:
    """The timm model's own ``feature_info``, its module names under ``prefix`` (the wrapper's
    attribute holding the timm model).
    Empty (no ``features_only``) when timm declares none, or when a level needs a pre-forward
    hook (timm's ``feature_location="bottleneck"``), which zoo's forward hooks cannot serve."""
    info = getattr(model, "feature_info", None) or []
    info = list(getattr(info, "info", info))  # a timm FeatureInfo object, or a list of dicts
    if any(d.get("hook_type", "forward") != "forward" for d in info):
        return []
    return [{"module": prefix + d["module"], "num_chs": d["num_chs"], "reduction": d["reduction"]}
            for d in info]


def check_timm_architecture(name: str, model: str) -> None:
    """Raise :class:`SpecError` unless ``name`` is a timm built-in architecture (not a zoo model
    registered in timm by zoo's plug-in)."""
    import timm
    from timm.models import is_model_in_modules

    if is_model_in_modules(name, ["zoo"]):
        raise SpecError(f"arch.timm_model {name!r} names a zoo model, not a timm built-in "
                        "architecture", model=model)
    if not timm.is_model(name):
        import difflib

        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        raise SpecError(f"arch.timm_model {name!r} is not a timm architecture (timm "
                        f"{timm.__version__})" + (f"; did you mean {', '.join(close)}?"
                                                  if close else ""), model=model)


def create_timm(spec, *, num_classes: int, drop_rate: float = 0.0) -> nn.Module:
    """``timm.create_model`` of the spec's ``arch.timm_model`` with its ``model_args``, random
    init (weights come from zoo's registry); timm's rejection of an argument is a SpecError."""
    import timm

    arch = spec.arch
    check_timm_architecture(arch.timm_model, spec.name)
    # stochastic depth, pooling and dilation only where asked for: some architectures (VGG)
    # have no such argument
    extra = {k: getattr(arch, k) for k in ("drop_path_rate", "global_pool", "output_stride")
             if getattr(arch, k) not in (None, 0.0)}
    try:
        return timm.create_model(arch.timm_model, pretrained=False, num_classes=num_classes,
                                 in_chans=spec.data.in_chans, drop_rate=drop_rate,
                                 **extra, **arch.model_args)
    except TypeError as e:
        raise SpecError(f"timm rejected the arguments of {arch.timm_model!r}: {e}",
                        model=spec.name) from None
