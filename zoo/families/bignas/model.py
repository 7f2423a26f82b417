"""BigNAS-style children as standalone networks, and supernet-weight slicing.

A child (BigNAS, arXiv:2003.11142, Table 1; AttentiveNAS, arXiv:2011.09011) is a
MobileNetV3-like network: a strided 3x3 stem, stages of inverted-residual blocks (MBConv,
MobileNetV2 Sec. 3.3) with optional squeeze-and-excitation, and a head.  Its weights are
*slices* of the shared supernet weights (BigNAS Sec. 3; AttentiveNAS'
``get_active_subnet``):

- width: the first ``c`` output (and input) channels of every conv, BN and linear layer,
- kernel: the centre ``k x k`` crop of the largest depthwise kernel,
- depth: the first ``d`` blocks of every stage,
- expansion: ``mid = make_divisible(round(c_in * t), 8)`` channels; SE squeezes to
  ``make_divisible(mid // 4, 8)``.

Semantics kept from AttentiveNAS' code: every block has a shortcut, identity when shapes agree,
else a 2x2 average pool (when the block strides) and/or a 1x1 conv without BN (when the width
changes); swish activations; SE with ReLU and hard sigmoid; the "v3" head; the input is
bicubic-resized to the child's resolution before the stem.
"""
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch
import torch.nn.functional as F
from timm.layers import (DropPath, SelectAdaptivePool2d, SEModule, create_act_layer,
                         register_notrace_function)
from torch import nn

from zoo.families.contract import FamilyHooks
from zoo.layers.batchnorm import recalibrate_bn
from zoo.errors import CheckpointError, StateDictMismatchError
from zoo.model import StepChainModel, linear_or_identity

from .schema import Arch, SearchSpace, Subnet, make_divisible

_ACTS = {"swish": "silu", "relu": "relu", "relu6": "relu6", "hard_swish": "hard_swish"}
SE_REDUCTION = 4


# -- the plan: a child's layer shapes, computed once from (space, subnet) ------------------------

@dataclass(frozen=True)
class BlockPlan:
    """Shapes of one block of a child, and where its weights sit in the supernet."""

    stage: int
    index: int             # position in the stage
    supernet_index: int    # AttentiveNAS' global block index (blocks.<i>)
    in_chs: int
    out_chs: int
    mid_chs: int
    kernel_size: int
    stride: int
    expands: bool
    se_chs: int            # 0: no SE
    act: str

    @property
    def has_identity(self) -> bool:
        return self.in_chs == self.out_chs and self.stride == 1


def plan_blocks(space: SearchSpace, subnet: Subnet) -> List[BlockPlan]:
    """The blocks of ``subnet`` in order (AttentiveNAS ``get_active_subnet``)."""
    plans, in_chs, offset = [], subnet.width[0], 0
    for s, st in enumerate(space.stages):
        out_chs, t, k = subnet.width[s + 1], subnet.expand_ratio[s], subnet.kernel_size[s]
        for j in range(subnet.depth[s]):
            mid = make_divisible(round(in_chs * t), 8) if st.expands else in_chs
            se = make_divisible(mid // SE_REDUCTION, 8) if st.se else 0
            plans.append(BlockPlan(s, j, offset + j, in_chs, out_chs, mid, k,
                                   st.stride if j == 0 else 1, st.expands, se, st.act))
            in_chs = out_chs
        offset += max(st.depth)
    return plans


# -- layers -------------------------------------------------------------------------------------

class ConvBnAct(nn.Sequential):
    """Conv (no bias, 'same' padding) + BatchNorm + optional activation."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 1, stride: int = 1,
                 groups: int = 1, act: Optional[str] = "swish", eps: float = 1e-5):
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride, kernel_size // 2,
                              groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_chs, eps=eps)
        self.act = create_act_layer(_ACTS[act], inplace=True) if act else nn.Identity()


class Shortcut(nn.Module):
    """AttentiveNAS' shortcut of a block whose shapes change: 2x2 average pooling when the
    block strides (padding 1 when the width is odd, so odd sizes round up like the strided
    conv), then a 1x1 conv without BN when the width changes."""

    def __init__(self, in_chs: int, out_chs: int, stride: int):
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv2d(in_chs, out_chs, 1, bias=False) if in_chs != out_chs else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = F.avg_pool2d(x, self.stride, padding=x.shape[-1] % 2)
        return self.conv(x) if self.conv is not None else x


class MBConvBlock(nn.Module):
    """Inverted residual block (MobileNetV2 Sec. 3.3) with optional SE (MobileNetV3 Sec. 5.3):
    1x1 expansion conv -> kxk depthwise conv -> SE -> 1x1 linear projection, plus shortcut."""

    def __init__(self, p: BlockPlan, eps: float = 1e-5, drop_path: float = 0.0):
        super().__init__()
        self.inverted_bottleneck = ConvBnAct(p.in_chs, p.mid_chs, 1, act=p.act, eps=eps) \
            if p.expands else None
        self.depth_conv = ConvBnAct(p.mid_chs, p.mid_chs, p.kernel_size, p.stride,
                                    groups=p.mid_chs, act=p.act, eps=eps)
        self.se = SEModule(p.mid_chs, rd_channels=p.se_chs, act_layer=nn.ReLU,
                           gate_layer="hard_sigmoid") if p.se_chs else nn.Identity()
        self.point_linear = ConvBnAct(p.mid_chs, p.out_chs, 1, act=None, eps=eps)
        self.shortcut = nn.Identity() if p.has_identity else Shortcut(p.in_chs, p.out_chs, p.stride)
        self.drop_path = DropPath(drop_path) if drop_path > 0 and p.has_identity else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.shortcut(x)
        if self.inverted_bottleneck is not None:
            x = self.inverted_bottleneck(x)
        x = self.point_linear(self.se(self.depth_conv(x)))
        return self.drop_path(x) + shortcut


# -- the network --------------------------------------------------------------------------------

def _feature_info(space: SearchSpace, subnet: Subnet) -> List[Dict]:
    """timm's ``feature_info``: per resolution, the last module producing it among the stem, the
    stages and ``conv_head`` (the last spatial map, ``forward_features``' output).  Reductions are
    relative to the image the stem sees: with ``resize_input`` that is the input resized to
    ``subnet.resolution``, not the caller's image (``features_only`` turns the resize off)."""
    reduction: int = space.stem.stride
    levels = {reduction: {"module": "stem", "num_chs": subnet.width[0], "reduction": reduction}}
    for s, st in enumerate(space.stages):
        reduction *= st.stride
        levels[reduction] = {"module": f"stages.{s}", "num_chs": subnet.width[s + 1],
                             "reduction": reduction}
    chs = subnet.width[-2] * space.head.expand if space.head.v3 else subnet.width[-1]
    levels[reduction] = {"module": "conv_head", "num_chs": chs, "reduction": reduction}
    return list(levels.values())


@register_notrace_function  # a graph leaf for torch.fx: the size test runs on real tensors
def resize_to(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """AttentiveNAS' input adapter: bicubic-resize to ``resolution`` unless already that size."""
    if x.shape[-2] != resolution or x.shape[-1] != resolution:
        x = F.interpolate(x, size=(resolution, resolution), mode="bicubic")
    return x


torch.fx.wrap("resize_to")


class BigNASNet(StepChainModel):
    """A standalone child of a BigNAS-style supernet (a supernet spec builds its largest child).

    ``forward_features`` ends with the last spatial layer ``conv_head``: BigNAS' 1x1 conv+BN+act
    to ``width``, or the first layer of AttentiveNAS' v3 head (MobileNetV3 Sec. 5.1 efficient last
    stage: 1x1 expansion conv+BN+act).  ``forward_head`` pools; the v3 head then mixes the pooled
    vector to ``width`` (``feature_mix``, a 1x1 conv + act: ``head_hidden_size``), as timm's
    MobileNetV3 does with its ``conv_head``; then dropout and the classifier.
    """

    def __init__(self, arch: Arch, num_classes: int = 1000, in_chans: int = 3):
        super().__init__()
        space, subnet = arch.resolved_space(), arch.resolved_subnet()
        self.space, self.subnet = space, subnet
        self.resolution = subnet.resolution
        self.resize_input = arch.resize_input
        self.num_classes, self.in_chans = num_classes, in_chans
        self.drop_rate = arch.drop_rate
        eps = arch.bn_eps

        self.stem = ConvBnAct(in_chans, subnet.width[0], 3, space.stem.stride, act=space.stem.act,
                              eps=eps)
        plans = plan_blocks(space, subnet)
        dpr = [arch.drop_path_rate * i / max(len(plans) - 1, 1) for i in range(len(plans))]
        self.stages = nn.Sequential(*[
            nn.Sequential(*[MBConvBlock(p, eps, dpr[n])
                            for n, p in enumerate(plans) if p.stage == s])
            for s in range(len(space.stages))])
        last = subnet.width[-2]
        head = space.head
        self.head_hidden_size = subnet.width[-1]
        self.feature_info = _feature_info(space, subnet)
        self.v3_head = head.v3
        if head.v3:
            # AttentiveNAS' `last_conv`: expand (here, the end of the features), pool, then mix
            # to `width` on the pooled vector (feature_mix, part of the head).
            self.num_features = last * head.expand
            self.conv_head = ConvBnAct(last, self.num_features, 1, act=head.act, eps=eps)
            self.feature_mix: nn.Module = nn.Sequential()  # Identity once pruned
            self.feature_mix.add_module("conv", nn.Conv2d(self.num_features,
                                                          self.head_hidden_size, 1, bias=False))
            self.feature_mix.add_module("act", create_act_layer(_ACTS[head.act], inplace=True))
        else:
            # BigNAS: a 1x1 conv+BN+act to `width`, pooled by the classifier head.
            self.num_features = self.head_hidden_size
            self.conv_head = ConvBnAct(last, self.num_features, 1, act=head.act, eps=eps)
            self.feature_mix = nn.Identity()
        self._set_pool(arch.global_pool)
        self.classifier = linear_or_identity(self.head_hidden_size, num_classes)

    def _set_pool(self, global_pool: str) -> None:
        pool = SelectAdaptivePool2d(pool_type=global_pool)
        if self.v3_head and pool.feat_mult() != 1:
            raise ValueError(f"global_pool {global_pool!r} concatenates poolings, but the v3 head "
                             "mixes the pooled features with a 1x1 conv of fixed width; use "
                             "'avg', 'max', 'avgmax' or ''")
        self.global_pool = pool.train(self.training)
        self.flatten = (nn.Flatten(1) if global_pool else nn.Identity()).train(self.training)
        if not self.v3_head:
            self.head_hidden_size = self.num_features * pool.feat_mult()

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        return resize_to(x, self.resolution) if self.resize_input else x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prepare_input(x)
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return self.run_steps(x)
        return self.conv_head(self.stages(self.stem(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.flatten(self.feature_mix(self.global_pool(x)))
        if pre_logits:
            return x
        if self.drop_rate > 0:
            x = F.dropout(x, self.drop_rate, self.training)
        return self.classifier(x)

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        self.num_classes = num_classes
        if global_pool is not None:
            self._set_pool(global_pool)
        self.classifier = linear_or_identity(self.head_hidden_size, num_classes, self)

    # -- timm's feature API ----------------------------------------------------------------------
    @torch.jit.ignore
    def feature_steps(self) -> List[str]:
        return ["stem", *(f"stages.{i}" for i in range(len(self.stages))), "conv_head"]

    @torch.jit.ignore
    def prune_head_extras(self) -> None:
        self.feature_mix = nn.Identity()
        self.v3_head = False

    @torch.jit.ignore
    def as_backbone(self) -> None:
        """A feature backbone sees the caller's image as it is (no resize to the resolution), so
        its maps are at the declared strides of that image."""
        self.resize_input = False

    @torch.jit.ignore
    def feature_map_size(self, img_size: Tuple[int, int]) -> Optional[Tuple[int, int]]:
        if self.resize_input:
            img_size = (self.resolution, self.resolution)
        return super().feature_map_size(img_size)

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict[str, Any]:
        return {"stem": r"^stem", "blocks": r"^stages\.(\d+)" if coarse else
                [(r"^stages\.(\d+)\.(\d+)", None), (r"^conv_head|^feature_mix", (99999,))]}


def info(model: nn.Module) -> Dict[str, str]:
    """Extra lines of ``zoo info``: the child's choices and the BN-calibration reminder."""
    if not isinstance(model, BigNASNet):
        raise TypeError(f"bignas info expects a BigNASNet, got {type(model).__name__}")
    sub = model.subnet
    return {"subnet": f"resolution {sub.resolution}, width {list(sub.width)}, depth "
                      f"{list(sub.depth)}, kernel {list(sub.kernel_size)}, expand "
                      f"{list(sub.expand_ratio)}",
            "note": "weights sliced from a supernet need `zoo calibrate` (BN statistics)"}


def build(spec) -> BigNASNet:
    return BigNASNet(spec.arch, num_classes=spec.data.num_classes, in_chans=spec.data.in_chans)


# -- supernet checkpoints -----------------------------------------------------------------------

_BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def supernet_layout(space: SearchSpace, num_classes: int = 1000,
                    in_chans: int = 3) -> Dict[str, Tuple[int, ...]]:
    """Every tensor of AttentiveNAS' ``AttentiveNasDynamicModel`` for ``space`` (its
    ``state_dict`` keys and shapes, ``bn_tracking`` buffers excluded): the largest widths,
    kernels and expansions, all ``max(depth)`` blocks of every stage."""
    out: Dict[str, Tuple[int, ...]] = {}

    def conv(prefix: str, o: int, i: int, k: int = 1) -> None:
        out[f"{prefix}.conv.conv.weight"] = (o, i, k, k)

    def bn(prefix: str, c: int) -> None:
        for n in _BN:
            out[f"{prefix}.bn.bn.{n}"] = () if n == "num_batches_tracked" else (c,)

    stem = max(space.stem.width)
    conv("first_conv", stem, in_chans, 3)
    bn("first_conv", stem)
    in_max, g = stem, 0
    for st in space.stages:
        out_max = max(st.width)
        for j in range(max(st.depth)):
            mid = round(in_max * max(st.expand_ratio))
            p = f"blocks.{g}.mobile_inverted_conv"
            if st.expands:
                conv(f"{p}.inverted_bottleneck", mid, in_max)
                bn(f"{p}.inverted_bottleneck", mid)
            k = max(st.kernel_size)
            out[f"{p}.depth_conv.conv.conv.weight"] = (mid, 1, k, k)
            bn(f"{p}.depth_conv", mid)
            if st.se:
                se = make_divisible(mid // SE_REDUCTION, 8)
                out[f"{p}.depth_conv.se.fc.reduce.weight"] = (se, mid, 1, 1)
                out[f"{p}.depth_conv.se.fc.reduce.bias"] = (se,)
                out[f"{p}.depth_conv.se.fc.expand.weight"] = (mid, se, 1, 1)
                out[f"{p}.depth_conv.se.fc.expand.bias"] = (mid,)
            conv(f"{p}.point_linear", out_max, mid)
            bn(f"{p}.point_linear", out_max)
            out[f"blocks.{g}.shortcut.conv.conv.weight"] = (out_max, in_max, 1, 1)
            in_max, g = out_max, g + 1
    head = max(space.head.width)
    if space.head.v3:
        expand = in_max * space.head.expand
        conv("last_conv.final_expand_layer", expand, in_max)
        bn("last_conv.final_expand_layer", expand)
        conv("last_conv.feature_mix_layer", head, expand)
    else:
        conv("last_conv", head, in_max)
        bn("last_conv", head)
    out["classifier.linear.linear.weight"] = (num_classes, head)
    out["classifier.linear.linear.bias"] = (num_classes,)
    return out


def _is_extra(key: str) -> bool:
    """Supernet buffers that no child uses (AttentiveNAS' min/max-net BN trackers)."""
    return ".bn_tracking." in key


def check_supernet_state_dict(spec, sd: Dict[str, torch.Tensor]) -> None:
    """Raise :class:`StateDictMismatchError` unless ``sd`` is a whole supernet checkpoint of
    ``spec``'s search space (keys and shapes of AttentiveNAS' dynamic model)."""
    space = spec.arch.resolved_space()
    layout = supernet_layout(space, spec.data.num_classes, spec.data.in_chans)
    missing = [k for k in layout if k not in sd]
    unexpected = [k for k in sd if k not in layout and not _is_extra(k)]
    wrong = [f"{k}: checkpoint {tuple(sd[k].shape)} vs supernet {layout[k]}" for k in layout
             if k in sd and tuple(sd[k].shape) != layout[k]]
    if missing or unexpected or wrong:
        parts = []
        for label, items in (("missing keys", missing), ("unexpected keys", unexpected),
                             ("wrong shapes", wrong)):
            if items:
                more = f", ... ({len(items)} in all)" if len(items) > 6 else ""
                shown = ", ".join(items[:6]) + more
                parts.append(f"{label}: {shown}")
        owner = spec.arch.supernet or spec.name
        raise StateDictMismatchError(
            f"{spec.name}: the checkpoint is not a supernet checkpoint of {owner}'s search space "
            "(AttentiveNAS/AlphaNet layout), nothing was converted:\n  " + "\n  ".join(parts))


def _center(weight: torch.Tensor, k: int) -> torch.Tensor:
    """Centre ``k x k`` crop of a square kernel (AttentiveNAS ``sub_filter_start_end``)."""
    start = (weight.shape[-1] - k) // 2
    return weight[..., start:start + k, start:start + k]


def _slice_supernet(spec, sd: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    space, subnet = spec.arch.resolved_space(), spec.arch.resolved_subnet()
    out: Dict[str, torch.Tensor] = {}

    def take(dst: str, src: str, *sizes: int) -> None:
        t = sd[src]
        for dim, n in enumerate(sizes):
            t = t.narrow(dim, 0, n)
        out[dst] = t.clone()

    def conv_bn(dst: str, src: str, o: int, i: int) -> None:
        take(f"{dst}.conv.weight", f"{src}.conv.conv.weight", o, i)
        for n in _BN:
            take(f"{dst}.bn.{n}", f"{src}.bn.bn.{n}", *(() if n == "num_batches_tracked" else (o,)))

    conv_bn("stem", "first_conv", subnet.width[0], spec.data.in_chans)
    for p in plan_blocks(space, subnet):
        dst, src = f"stages.{p.stage}.{p.index}", f"blocks.{p.supernet_index}"
        m = f"{src}.mobile_inverted_conv"
        if p.expands:
            conv_bn(f"{dst}.inverted_bottleneck", f"{m}.inverted_bottleneck", p.mid_chs, p.in_chs)
        dw = sd[f"{m}.depth_conv.conv.conv.weight"][:p.mid_chs]
        out[f"{dst}.depth_conv.conv.weight"] = _center(dw, p.kernel_size).clone()
        for n in _BN:
            take(f"{dst}.depth_conv.bn.{n}", f"{m}.depth_conv.bn.bn.{n}",
                 *(() if n == "num_batches_tracked" else (p.mid_chs,)))
        if p.se_chs:
            take(f"{dst}.se.fc1.weight", f"{m}.depth_conv.se.fc.reduce.weight", p.se_chs, p.mid_chs)
            take(f"{dst}.se.fc1.bias", f"{m}.depth_conv.se.fc.reduce.bias", p.se_chs)
            take(f"{dst}.se.fc2.weight", f"{m}.depth_conv.se.fc.expand.weight", p.mid_chs, p.se_chs)
            take(f"{dst}.se.fc2.bias", f"{m}.depth_conv.se.fc.expand.bias", p.mid_chs)
        conv_bn(f"{dst}.point_linear", f"{m}.point_linear", p.out_chs, p.mid_chs)
        if p.in_chs != p.out_chs:
            take(f"{dst}.shortcut.conv.weight", f"{src}.shortcut.conv.conv.weight",
                 p.out_chs, p.in_chs)
    last, width = subnet.width[-2], subnet.width[-1]
    if space.head.v3:
        expand = last * space.head.expand
        conv_bn("conv_head", "last_conv.final_expand_layer", expand, last)
        take("feature_mix.conv.weight", "last_conv.feature_mix_layer.conv.conv.weight",
             width, expand)
    else:
        conv_bn("conv_head", "last_conv", width, last)
    take("classifier.weight", "classifier.linear.linear.weight", spec.data.num_classes, width)
    take("classifier.bias", "classifier.linear.linear.bias", spec.data.num_classes)
    return out


def _own_shapes(spec) -> Dict[str, Tuple[int, ...]]:
    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in build(spec).state_dict().items()}


def convert(spec, state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """An AttentiveNAS/AlphaNet *supernet* checkpoint -> this child's weights.

    Accepts the supernet's state dict (``module.`` prefixes, as the released
    ``*_pretrained.pth.tar`` files hold them, are stripped) and slices it the BigNAS way: first
    ``d`` blocks per stage, first channels, centre-cropped depthwise kernels.  A state dict that
    already has this child's own layout is returned unchanged.  The BN statistics are the
    supernet's: recalibrate them for the child (``zoo calibrate``) before evaluating.
    """
    sd = {k.removeprefix("module."): v for k, v in state_dict.items()}
    if not sd:
        raise CheckpointError(f"{spec.name}: empty checkpoint")
    if "first_conv.conv.conv.weight" not in sd and f"{spec.data.first_conv}.weight" in sd:
        own = _own_shapes(spec)  # already this child's layout: check it, change nothing
        if {k: tuple(v.shape) for k, v in sd.items()} != own:
            raise StateDictMismatchError(
                f"{spec.name}: a zoo-layout state dict of another architecture; children are "
                "sliced from the original supernet checkpoint, not from another child")
        return sd
    check_supernet_state_dict(spec, sd)
    return _slice_supernet(spec, sd)


HOOKS = FamilyHooks(build=build, convert=convert, info=info, calibrate=recalibrate_bn)
