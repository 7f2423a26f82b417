"""A zoo model around a timm built-in architecture (families ``timm_arch`` and ``gcr``).

:class:`TimmModel` holds the timm model as its ``model`` submodule and delegates timm's model API
to it (``forward_features``, ``forward_head``, ``get_classifier``, ``reset_classifier``,
``num_features``), so the state-dict layout is timm's under the ``model.`` prefix.  One
convention differs from timm: zoo's 4-D features are channels-first, so for timm models whose
feature maps are NHWC (Swin: ``output_fmt == "NHWC"``) ``forward_features`` returns them
permuted to NCHW and ``forward_head`` permutes them back (views of the same memory: the head
computes exactly what timm's does).
"""
from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from zoo.errors import SpecError
from zoo.model import ZooModel

PREFIX = "model."


class TimmModel(ZooModel):
    """A timm model with zoo's metadata.  ``num_features`` are the channels ``forward_features``
    returns; ``head_hidden_size`` the width of the pooled pre-logits features (they differ for
    models with layers after pooling, e.g. MobileNetV3's conv head: 576 vs 1024, VGG's MLP:
    512 vs 4096)."""

    model: Any  # a timm model: its API (forward_features, num_features, ...) is not typed

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.nhwc = getattr(model, "output_fmt", "NCHW") == "NHWC"
        self.num_classes = int(self.model.num_classes)
        self.num_features = int(self.model.num_features)
        self.head_hidden_size = int(getattr(model, "head_hidden_size", self.num_features))
        # zoo's feature maps are NCHW: NHWC stages (Swin) and token sequences (ViT blocks, whose
        # timm models have num_prefix_tokens) are not exposed through forward hooks
        tokens = hasattr(model, "num_prefix_tokens")
        self.feature_info = [] if self.nhwc or tokens else timm_feature_info(model)
        if self.nhwc or tokens:
            what = "NHWC stage outputs" if self.nhwc else "token sequences"
            self.features_only_hint = (f"timm's {what} are not zoo's NCHW feature maps; use "
                                       "model.model.forward_intermediates()")

    def _to_nchw(self, x: Tensor) -> Tensor:
        return x.permute(0, 3, 1, 2) if self.nhwc and x.ndim == 4 else x

    def forward_features(self, x: Tensor) -> Tensor:
        return self._to_nchw(self.model.forward_features(x))

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        if self.nhwc and x.ndim == 4:
            x = x.permute(0, 2, 3, 1)
        return self._to_nchw(self.model.forward_head(x, pre_logits=pre_logits))

    def forward(self, x: Tensor) -> Tensor:
        return self._to_nchw(self.model(x))

    def get_classifier(self) -> nn.Module:
        return self.model.get_classifier()

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        if global_pool is None:
            self.model.reset_classifier(num_classes)
        else:
            self.model.reset_classifier(num_classes, global_pool)
        self.num_classes = num_classes
        self.head_hidden_size = int(getattr(self.model, "head_hidden_size", self.num_features))

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.model.set_grad_checkpointing(enable)

    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """timm's matcher of the inner model, its patterns moved under the ``model.`` prefix."""
        def shift(pattern: Any) -> Any:
            if isinstance(pattern, str):  # (?:...) keeps alternations ("^conv1|bn1") anchored
                return r"^model\.(?:" + pattern.removeprefix("^") + ")"
            return [(shift(p[0]), p[1]) if isinstance(p, tuple) else shift(p) for p in pattern]

        return {k: shift(v) for k, v in self.model.group_matcher(coarse=coarse).items()}


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
    # stochastic depth only where asked for: some architectures (VGG) have no such argument
    extra = {"drop_path_rate": arch.drop_path_rate} if arch.drop_path_rate else {}
    try:
        return timm.create_model(arch.timm_model, pretrained=False, num_classes=num_classes,
                                 in_chans=spec.data.in_chans, drop_rate=drop_rate,
                                 **extra, **arch.model_args)
    except TypeError as e:
        raise SpecError(f"timm rejected the arguments of {arch.timm_model!r}: {e}",
                        model=spec.name) from None
