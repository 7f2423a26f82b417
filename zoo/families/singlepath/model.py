"""Single-Path NAS (arXiv 1904.02877): the searched ConvNet, built by timm's EfficientNet
builder from the architecture strings of the spec.

The network (the paper's searched ConvNet for the Pixel 1) is a MobileNetV2-style stack: a 3x3
stride-2 stem, one depthwise-separable block, then mobile inverted-bottleneck (MBConv) blocks
whose kernel size (3 or 5) and expansion ratio (3 or 6) the single-path search chose per layer
(paper Sec. 3: one "superkernel" per layer encodes all candidate kernels), a 1x1 head conv to
1280 channels, global average pooling and a linear classifier.  :class:`SinglePathNAS` *is* a
timm ``EfficientNet`` (same modules and state-dict keys as timm's ``spnasnet_100``, so timm's
checkpoints load as they are) and a zoo model.
"""
from functools import partial
from typing import Dict

from timm.layers import get_act_layer
from timm.models._efficientnet_builder import decode_arch_def, round_channels
from timm.models.efficientnet import EfficientNet
from torch import Tensor, nn

from zoo.families.contract import FamilyHooks
from zoo.model import ZooModel

from .schema import Arch


class SinglePathNAS(EfficientNet, ZooModel):
    """timm's ``EfficientNet`` assembled from the spec (its timm model API is inherited:
    ``forward_features``, ``forward_head``, ``get_classifier``, ``reset_classifier``)."""

    def __init__(self, arch: Arch, num_classes: int = 1000, in_chans: int = 3) -> None:
        super().__init__(
            block_args=decode_arch_def([list(stage) for stage in arch.stages]),
            num_classes=num_classes, num_features=arch.num_features, in_chans=in_chans,
            stem_size=arch.stem_size,
            round_chs_fn=partial(round_channels, multiplier=arch.channel_multiplier),
            act_layer=get_act_layer(arch.act_layer),
            norm_layer=partial(nn.BatchNorm2d, eps=arch.bn_eps, momentum=arch.bn_momentum),
            drop_rate=arch.drop_rate, drop_path_rate=arch.drop_path_rate,
            global_pool=arch.global_pool, output_stride=arch.output_stride)
        self.in_chans = in_chans


def build(spec) -> SinglePathNAS:
    return SinglePathNAS(spec.arch, num_classes=spec.data.num_classes,
                         in_chans=spec.data.in_chans)


def convert(spec, state_dict: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """timm ``spnasnet_100`` checkpoint -> zoo: the layouts are identical; a DataParallel
    ``module.`` prefix is stripped."""
    return {k.removeprefix("module."): v for k, v in state_dict.items()}


HOOKS = FamilyHooks(build=build, convert=convert)
