"""DeepMAD CNNs (Shen et al., CVPR 2023, arXiv 2303.02165), built from a spec.

The network is the TinyNAS deploy ``CnnNet`` (paper: "DeepMAD" design space): a stem
``ConvKXBNRELU``, super-blocks of residual blocks, an optional final 1x1 ``ConvKXBNRELU``,
global average pooling and a linear classifier.  Two block types:

- ``k1kxk1`` (ResNet-like, DeepMAD-R18/R34/R50): 1x1 -> dense kxk (stride) -> 1x1, each
  conv+BN, ReLU between; the shortcut is AvgPool2d(2) on stride 2, then a 1x1 conv+BN
  projection on the first block of every super-block (TinyNAS ``force_resproj``) or whenever
  the width changes; ReLU after the add.
- ``k1dwsek1`` (MobileNet-like with SE, DeepMAD-29M/50M/89M): 1x1 -> depthwise kxk (stride) ->
  squeeze-excite (conv+BN, SiLU, conv+BN, sigmoid) -> 1x1, SiLU between; an identity
  shortcut (AvgPool2d(2) on stride 2) only when ``in == out`` (never a projection); SiLU after
  the add, and also at the end of blocks without a shortcut.
"""
import re
from typing import Dict, List, Optional

import torch
from timm.layers import ClassifierHead, ConvNormAct, DropPath, create_act_layer
from torch import Tensor, nn

from zoo.families.contract import FamilyHooks
from zoo.errors import CheckpointError
from zoo.model import ClassifierHeadModel, StepChainModel

from .schema import Arch, ConvLayer, SuperBlock, se_channels


class SqueezeExcite(nn.Module):
    """SE of ``k1dwsek1`` blocks (TinyNAS ``SE``): global avg-pool -> 1x1 conv+BN -> SiLU ->
    1x1 conv+BN -> sigmoid gate multiplying the input.  The convs have no bias (BN follows)."""

    def __init__(self, chs: int, rd_chs: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv_reduce = ConvNormAct(chs, rd_chs, 1, act_layer=nn.SiLU)
        self.conv_expand = ConvNormAct(rd_chs, chs, 1, apply_act=False)
        self.gate = create_act_layer("sigmoid")

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(self.conv_expand(self.conv_reduce(self.pool(x))))


class ResK1KXK1(nn.Module):
    """ResNet bottleneck block with a dense kxk conv (TinyNAS ``ResK1KXK1``)."""

    def __init__(self, in_chs: int, out_chs: int, btn_chs: int, kernel_size: int, stride: int,
                 force_proj: bool, drop_path: float = 0.0) -> None:
        super().__init__()
        self.conv1 = ConvNormAct(in_chs, btn_chs, 1)
        self.conv2 = ConvNormAct(btn_chs, btn_chs, kernel_size, stride=stride)
        self.conv3 = ConvNormAct(btn_chs, out_chs, 1, apply_act=False)
        self.shortcut_pool = nn.AvgPool2d(2, 2) if stride == 2 else nn.Identity()
        self.shortcut_proj = (ConvNormAct(in_chs, out_chs, 1, apply_act=False)
                              if force_proj or in_chs != out_chs else nn.Identity())
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        shortcut = self.shortcut_proj(self.shortcut_pool(x))
        x = self.conv3(self.conv2(self.conv1(x)))
        return self.act(self.drop_path(x) + shortcut)


class ResK1DWSEK1(nn.Module):
    """Inverted bottleneck with depthwise kxk conv and SE (TinyNAS ``ResK1DWSEK1``)."""

    def __init__(self, in_chs: int, out_chs: int, btn_chs: int, kernel_size: int, stride: int,
                 se_chs: int, drop_path: float = 0.0) -> None:
        super().__init__()
        self.conv1 = ConvNormAct(in_chs, btn_chs, 1, act_layer=nn.SiLU)
        self.conv2 = ConvNormAct(btn_chs, btn_chs, kernel_size, stride=stride, groups=btn_chs,
                                 act_layer=nn.SiLU)
        self.se = SqueezeExcite(btn_chs, se_chs)
        self.conv3 = ConvNormAct(btn_chs, out_chs, 1, apply_act=False)
        self.has_shortcut = in_chs == out_chs
        pooled, dropped = stride == 2 and self.has_shortcut, drop_path > 0 and self.has_shortcut
        self.shortcut_pool = nn.AvgPool2d(2, 2) if pooled else nn.Identity()
        self.drop_path = DropPath(drop_path) if dropped else nn.Identity()
        self.act = nn.SiLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv3(self.se(self.conv2(self.conv1(x))))
        if self.has_shortcut:
            out = self.drop_path(out) + self.shortcut_pool(x)
        return self.act(out)


def _make_stage(arch: Arch, sb: SuperBlock, dprs: List[float]) -> nn.Sequential:
    blocks: List[nn.Module] = []
    for i in range(sb.depth):
        in_chs, stride = (sb.in_chs, sb.stride) if i == 0 else (sb.out_chs, 1)
        if arch.block == "k1kxk1":
            blocks.append(ResK1KXK1(in_chs, sb.out_chs, sb.btn_chs, sb.kernel_size, stride,
                                    force_proj=i == 0, drop_path=dprs[i]))
        else:
            blocks.append(ResK1DWSEK1(in_chs, sb.out_chs, sb.btn_chs, sb.kernel_size, stride,
                                      se_channels(sb.btn_chs, arch.se_ratio, arch.se_divisor),
                                      drop_path=dprs[i]))
    return nn.Sequential(*blocks)


def _conv_layer(in_chs: int, layer: ConvLayer) -> ConvNormAct:
    return ConvNormAct(in_chs, layer.out_chs, layer.kernel_size, stride=layer.stride)


def _feature_info(arch: Arch) -> List[Dict]:
    """timm's ``feature_info``: per resolution, the last module producing it among the stem,
    the super-blocks (their last block's output) and the final 1x1 conv."""
    reduction: int = arch.stem.stride
    levels = {reduction: {"module": "stem", "num_chs": arch.stem.out_chs, "reduction": reduction}}
    for i, sb in enumerate(arch.stages):
        reduction *= sb.stride
        levels[reduction] = {"module": f"stages.{i}", "num_chs": sb.out_chs,
                             "reduction": reduction}
    if arch.final_conv is not None:
        reduction *= arch.final_conv.stride
        levels[reduction] = {"module": "final_conv", "num_chs": arch.final_conv.out_chs,
                             "reduction": reduction}
    return list(levels.values())


class DeepMAD(ClassifierHeadModel, StepChainModel):
    """A DeepMAD CNN: stem -> super-blocks -> [final 1x1] -> avg-pool -> fc.

    timm's feature API sees the chain stem, super-blocks, final 1x1 (gradient checkpointing
    recomputes block by block)."""

    def __init__(self, arch: Arch, num_classes: int = 1000, in_chans: int = 3) -> None:
        super().__init__()
        self.num_classes, self.in_chans = num_classes, in_chans
        self.drop_rate = arch.drop_rate
        self.stem = _conv_layer(in_chans, arch.stem)
        total = sum(sb.depth for sb in arch.stages)
        rates = [arch.drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        stages, start = [], 0
        for sb in arch.stages:
            stages.append(_make_stage(arch, sb, rates[start:start + sb.depth]))
            start += sb.depth
        self.stages = nn.Sequential(*stages)
        self.final_conv = (_conv_layer(arch.stages[-1].out_chs, arch.final_conv)
                           if arch.final_conv is not None else nn.Identity())
        self.num_features = self.head_hidden_size = arch.num_features
        self.feature_info = _feature_info(arch)
        self.head = ClassifierHead(self.num_features, num_classes, pool_type=arch.global_pool,
                                   drop_rate=arch.drop_rate)
        self.head_hidden_size = self.head.num_features
        self._steps = ["stem", *(f"stages.{i}" for i in range(len(arch.stages)))] + (
            ["final_conv"] if arch.final_conv is not None else [])

    def forward_features(self, x: Tensor) -> Tensor:
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return self.run_steps(x)
        return self.final_conv(self.stages(self.stem(x)))

    @torch.jit.ignore
    def feature_steps(self) -> List[str]:
        return list(self._steps)

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict:
        return {"stem": r"^stem", "blocks": r"^stages\.(\d+)" if coarse else
                [(r"^stages\.(\d+)\.(\d+)", None), (r"^final_conv", (99999,))]}


def build(spec) -> DeepMAD:
    return DeepMAD(spec.arch, num_classes=spec.data.num_classes, in_chans=spec.data.in_chans)


# --- checkpoint conversion ---------------------------------------------------------------------
# TinyNAS CnnNet keys: block_list.<i>.<...> (i = 0 stem, 1..n super-blocks, n+1 final 1x1),
# each ConvKXBN(RELU) holds conv1 (the conv) and bn1; the classifier is fc_linear.
_CONV = {"conv1": "conv", "bn1": "bn"}
_SE = {"conv1": "conv_reduce", "conv2": "conv_expand"}


def _conv_bn(rest: str) -> Optional[str]:
    m = re.fullmatch(r"(conv1|bn1)\.(.+)", rest)
    return f"{_CONV[m.group(1)]}.{m.group(2)}" if m else None


def _inner(rest: str) -> Optional[str]:
    m = re.fullmatch(r"(conv1|conv2|conv3)\.(.+)", rest)
    if m:
        sub = _conv_bn(m.group(2))
        return f"{m.group(1)}.{sub}" if sub else None
    m = re.fullmatch(r"se2\.(conv1|conv2)\.(.+)", rest)
    if m:
        sub = _conv_bn(m.group(2))
        return f"se.{_SE[m.group(1)]}.{sub}" if sub else None
    m = re.fullmatch(r"residual_proj\.(.+)", rest)
    if m:
        sub = _conv_bn(m.group(1))
        return f"shortcut_proj.{sub}" if sub else None
    return None


def convert(spec, state_dict: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """TinyNAS ``CnnNet`` state dict (``block_list.*``, ``fc_linear.*``; optionally wrapped by
    DataParallel's ``module.``) -> this module's layout.  Unknown keys raise CheckpointError."""
    n = len(spec.arch.stages)
    has_final = spec.arch.final_conv is not None
    out: Dict[str, Tensor] = {}
    unknown: List[str] = []
    for key, value in state_dict.items():
        k = key.removeprefix("module.")
        new: Optional[str] = None
        if m := re.fullmatch(r"fc_linear\.(weight|bias)", k):
            new = f"head.fc.{m.group(1)}"
        elif m := re.fullmatch(r"block_list\.(\d+)\.(.+)", k):
            idx, rest = int(m.group(1)), m.group(2)
            if idx == 0:
                sub = _conv_bn(rest)
                new = f"stem.{sub}" if sub else None
            elif 1 <= idx <= n and (mi := re.fullmatch(r"block_list\.(\d+)\.(.+)", rest)):
                sub = _inner(mi.group(2))
                new = f"stages.{idx - 1}.{mi.group(1)}.{sub}" if sub else None
            elif idx == n + 1 and has_final:
                sub = _conv_bn(rest)
                new = f"final_conv.{sub}" if sub else None
        if new is None:
            unknown.append(key)
        else:
            out[new] = value
    if unknown:
        more = f", ... ({len(unknown)} in all)" if len(unknown) > 8 else ""
        shown = ", ".join(unknown[:8]) + more
        raise CheckpointError(
            f"{spec.name}: keys that are not part of a TinyNAS CnnNet with {n} super-blocks"
            f"{' and a final 1x1 conv' if has_final else ''}: {shown}")
    return out


__all__ = ["DeepMAD", "ResK1DWSEK1", "ResK1KXK1", "SqueezeExcite", "build", "convert"]


HOOKS = FamilyHooks(build=build, convert=convert)
