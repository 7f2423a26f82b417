"""The model API every zoo model has: timm's (pretrained_cfg, forward_features/forward_head,
get_classifier, reset_classifier), so zoo models drop into timm-based code unchanged."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from zoo.errors import InputShapeError


class ZooModel(nn.Module):
    """Base class of zoo's image classifiers.

    Subclasses set ``num_classes`` and ``num_features`` and implement ``forward_features``
    (image -> unpooled features), ``forward_head`` (features -> logits, or pooled features with
    ``pre_logits=True``), ``get_classifier`` and ``reset_classifier``.
    """

    num_classes: int
    num_features: int
    pretrained_cfg: dict[str, Any]

    def __init__(self) -> None:
        super().__init__()
        self.pretrained_cfg = {}

    @property
    def default_cfg(self) -> dict[str, Any]:
        """timm's legacy name for ``pretrained_cfg``."""
        return self.pretrained_cfg

    @default_cfg.setter
    def default_cfg(self, value: dict[str, Any]) -> None:
        self.pretrained_cfg = value

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        raise NotImplementedError

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        raise NotImplementedError

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        if enable:
            raise NotImplementedError(f"{type(self).__name__} has no gradient checkpointing")

    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        first = self.pretrained_cfg.get("first_conv", "")
        return {"stem": rf"^{first}" if first else r"^$", "blocks": r".*"}


class ClassifierHeadModel(ZooModel):
    """A ZooModel whose ``head`` is timm's :class:`~timm.layers.ClassifierHead` (global pooling,
    dropout, ``fc``): the CNN families' shared ``forward_head`` / ``get_classifier`` /
    ``reset_classifier``."""

    head: nn.Module

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def get_classifier(self) -> nn.Module:
        return self.head.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        self.head.reset(num_classes, pool_type=global_pool)


class FeatureExtractor(nn.Module):
    """timm's ``features_only`` for zoo models: the outputs of the modules a family declares in
    ``model.feature_info`` (``[{"module", "num_chs", "reduction"}, ...]``, shallow to deep),
    collected with forward hooks while ``forward_features`` runs; returns a list of tensors."""

    def __init__(self, model: nn.Module, out_indices: tuple[int, ...] | int | None = None) -> None:
        from timm.models._features import FeatureInfo

        super().__init__()
        info = [dict(d) for d in model.feature_info]
        if out_indices is None:
            out_indices = tuple(range(len(info)))
        elif isinstance(out_indices, int):  # timm: an int n means the last n levels
            out_indices = tuple(range(len(info) - out_indices, len(info)))
        out_indices = tuple(i % len(info) for i in out_indices)
        self.feature_info = FeatureInfo(info, out_indices)
        model.reset_classifier(0, "")
        self.model = model
        self._names = [info[i]["module"] for i in out_indices]
        self._captured: dict[str, torch.Tensor] = {}
        for name in set(self._names):
            model.get_submodule(name).register_forward_hook(self._hook(name))

    def _hook(self, name: str):
        def hook(module: nn.Module, args: Any, output: torch.Tensor) -> None:
            self._captured[name] = output
        return hook

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        self._captured.clear()
        try:
            self.model.forward_features(x)
            return [self._captured[n] for n in self._names]
        finally:
            self._captured = {}


def linear_or_identity(in_features: int, num_classes: int) -> nn.Module:
    """The classifier timm uses: a Linear, or Identity when ``num_classes == 0``."""
    return nn.Linear(in_features, num_classes) if num_classes > 0 else nn.Identity()


def check_input_size(x: torch.Tensor, expected: tuple[int, int], model: str) -> None:
    """Raise :class:`InputShapeError` unless ``x`` is (B, C, *expected)."""
    if x.ndim != 4 or tuple(x.shape[-2:]) != tuple(expected):
        raise InputShapeError(
            f"{model} takes inputs of size {expected[0]}x{expected[1]} only (its positional "
            f"embedding/token layout is fixed), got shape {tuple(x.shape)}. Resize the input to "
            f"{expected[0]}x{expected[1]} (timm.data.resolve_data_config(model=model) with "
            "create_transform does), or register a spec variant with that input size.")
