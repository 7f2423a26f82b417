"""SimpleNet (arXiv 1608.06037): conv-BN-ReLU stacks, max pools, global max pooling, one Linear.

The module layout follows upstream's ``features`` Sequential (so its checkpoints load after a
one-key rename of the classifier); the head is timm's ``ClassifierHead`` with max pooling.
"""
from __future__ import annotations

import torch
from timm.layers import ClassifierHead
from torch import nn

from zoo.families.contract import FamilyHooks
from zoo.families.simplenet.schema import Arch, Conv
from zoo.model import ClassifierHeadModel


def _make_features(arch: Arch, in_chans: int) -> tuple[nn.Sequential, int, list[dict]]:
    """The ``features`` stack and its ``feature_info``: the last module of each resolution."""
    layers: list[nn.Module] = []
    levels: dict[int, dict] = {}
    channels, reduction = in_chans, 1
    for idx, layer in enumerate(arch.layers):
        if isinstance(layer, Conv):
            stride = arch.strides.get(idx, 1)
            filters = arch.width(layer)
            layers += [nn.Conv2d(channels, filters, layer.kernel, stride, padding=layer.kernel // 2),
                       nn.BatchNorm2d(filters, eps=1e-5, momentum=0.05),
                       nn.ReLU(inplace=True)]
            channels = filters
        else:
            stride = arch.strides.get(idx, 2)
            layers.append(nn.MaxPool2d(kernel_size=2, stride=stride))
        if layer.dropout is not None:
            layers.append(nn.Dropout2d(p=layer.dropout))
        reduction *= stride
        levels[reduction] = {"module": f"features.{len(layers) - 1}", "num_chs": channels,
                             "reduction": reduction}
    return nn.Sequential(*layers), channels, list(levels.values())


class SimpleNet(ClassifierHeadModel):
    """SimpleNet v1 (paper Sec. 3, Table 1): ``features`` -> global max pool -> Linear."""

    def __init__(self, arch: Arch, num_classes: int = 1000, in_chans: int = 3) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.features, self.num_features, self.feature_info = _make_features(arch, in_chans)
        self.head = ClassifierHead(self.num_features, num_classes, pool_type="max",
                                   drop_rate=arch.drop_rate)
        for m in self.features.modules():
            if isinstance(m, nn.Conv2d):  # upstream's initialization
                nn.init.xavier_uniform_(m.weight, gain=nn.init.calculate_gain("relu"))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def build(spec) -> SimpleNet:
    return SimpleNet(spec.arch, num_classes=spec.data.num_classes, in_chans=spec.data.in_chans)


def convert(spec, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Upstream layout -> zoo: ``classifier.*`` becomes ``head.fc.*``; DataParallel's
    ``module.`` prefix is stripped."""
    out = {}
    for key, value in state_dict.items():
        key = key.removeprefix("module.")
        if key.startswith("classifier."):
            key = "head.fc." + key[len("classifier."):]
        out[key] = value
    return out


HOOKS = FamilyHooks(build=build, convert=convert)
