"""SimpleNet (arXiv 1608.06037): conv-BN-ReLU stacks, max pools, global max pooling, one Linear.

The module layout follows upstream's ``features`` Sequential (so its checkpoints load after a
one-key rename of the classifier); the head is timm's ``ClassifierHead`` with max pooling.
"""
from typing import Dict, List, Optional, Tuple

import torch
from timm.layers import ClassifierHead
from torch import nn

from zoo.families.contract import FamilyHooks
from zoo.families.simplenet.schema import Arch, Conv
from zoo.model import ClassifierHeadModel, StepChainModel, replace_module


def _make_features(arch: Arch, in_chans: int
                   ) -> Tuple[nn.Sequential, int, List[Dict], List[Tuple[int, int, int]]]:
    """The ``features`` stack, its channels, its ``feature_info`` (the last module of each
    resolution) and the (kernel, stride, padding) of every spatial layer, in order."""
    layers: List[nn.Module] = []
    levels: Dict[int, Dict] = {}
    geometry: List[Tuple[int, int, int]] = []
    channels, reduction = in_chans, 1
    for idx, layer in enumerate(arch.layers):
        if isinstance(layer, Conv):
            stride = arch.strides.get(idx, 1)
            filters = arch.width(layer)
            layers += [nn.Conv2d(channels, filters, layer.kernel, stride, padding=layer.kernel // 2),
                       nn.BatchNorm2d(filters, eps=1e-5, momentum=0.05),
                       nn.ReLU(inplace=True)]
            geometry.append((layer.kernel, stride, layer.kernel // 2))
            channels = filters
        else:
            stride = arch.strides.get(idx, 2)
            layers.append(nn.MaxPool2d(kernel_size=2, stride=stride))
            geometry.append((2, stride, 0))
        if layer.dropout is not None:
            layers.append(nn.Dropout2d(p=layer.dropout))
        reduction *= stride
        levels[reduction] = {"module": f"features.{len(layers) - 1}", "num_chs": channels,
                             "reduction": reduction}
    return nn.Sequential(*layers), channels, list(levels.values()), geometry


class SimpleNet(ClassifierHeadModel, StepChainModel):
    """SimpleNet v1 (paper Sec. 3, Table 1): ``features`` -> global max pool -> Linear.

    timm's feature API sees ``features`` as a chain of resolution levels (the layers up to each
    level's last module), which gradient checkpointing recomputes one level at a time.
    """

    def __init__(self, arch: Arch, num_classes: int = 1000, in_chans: int = 3) -> None:
        super().__init__()
        self.num_classes, self.in_chans = num_classes, in_chans
        self.features, self.num_features, self.feature_info, self._geometry = \
            _make_features(arch, in_chans)
        self.head = ClassifierHead(self.num_features, num_classes, pool_type=arch.global_pool,
                                   drop_rate=arch.drop_rate)
        self.head_hidden_size = self.head.num_features
        for m in self.features.modules():
            if isinstance(m, nn.Conv2d):  # upstream's initialization
                nn.init.xavier_uniform_(m.weight, gain=nn.init.calculate_gain("relu"))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return self.run_steps(x)
        return self.features(x)

    # -- timm's feature API: the chain of resolution levels ----------------------------------------
    @torch.jit.ignore
    def feature_steps(self) -> List[str]:
        return [d["module"] for d in self.feature_info]

    @torch.jit.ignore
    def step_modules(self) -> List[nn.Module]:
        ends = [int(d["module"].split(".")[1]) for d in self.feature_info]
        starts = [0] + [e + 1 for e in ends[:-1]]
        return [nn.Sequential(*[self.features[k] for k in range(a, e + 1)])
                for a, e in zip(starts, ends)]

    @torch.jit.ignore
    def prune_steps_after(self, step: int) -> None:
        end = int(self.feature_info[step]["module"].split(".")[1])
        for k in range(end + 1, len(self.features)):
            replace_module(self, f"features.{k}", nn.Identity())

    @torch.jit.ignore
    def feature_map_size(self, img_size: Tuple[int, int]) -> Optional[Tuple[int, int]]:
        h, w = img_size
        for k, s, p in self._geometry:
            h, w = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        return h, w

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict:
        return {"stem": r"^features\.0\.", "blocks": r"^features\.(\d+)"}


def build(spec) -> SimpleNet:
    return SimpleNet(spec.arch, num_classes=spec.data.num_classes, in_chans=spec.data.in_chans)


def convert(spec, state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
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
