"""ConvNeXt-dcls (Khalfaoui-Hassani et al., ICLR 2023, arXiv 2112.03740), built from a spec.

A ConvNeXt (Liu et al. 2022) whose depthwise 7x7 convolutions are DCLS convolutions (paper
Sec. 3): each channel's kernel is ``kernel_count`` weights placed at learnable real-valued
positions inside a ``dilated_kernel_size`` square, spread onto the integer grid by bilinear
interpolation (:class:`ConstructKernel2d`), then applied as an ordinary depthwise convolution.
As in upstream ``ConvNeXt_dcls``, one positions tensor per stage is shared by all the stage's
blocks (paper Sec. 4, learning techniques); each block has its own weights.

Everything else is a plain ConvNeXt, built from timm's pieces (``LayerNorm2d``/``LayerNorm``,
``Mlp``, ``DropPath``, ``NormMlpClassifierHead``) in timm's ConvNeXt layout (``stem``,
``stages.i.downsample``, ``stages.i.blocks.j.{conv_dw,norm,mlp,gamma}``, ``head.{norm,fc}``).
:func:`convert` maps upstream's layout (``downsample_layers``, ``stages.i.j.dwconv.P`` per block)
onto it.
"""
from __future__ import annotations

import re
from typing import List

import torch
import torch.nn.functional as F
from timm.layers import DropPath, LayerNorm, LayerNorm2d, Mlp, NormMlpClassifierHead, trunc_normal_
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from zoo.errors import CheckpointError
from zoo.families.contract import FamilyHooks
from zoo.model import ClassifierHeadModel, StepChainModel

from .schema import Arch


class ConstructKernel2d(nn.Module):
    """DCLS kernel construction, bilinear interpolation (paper Sec. 3; upstream ``dcls``
    ``ConstructKernel2d``, ``version="v0"``, the form of the released ConvNeXt-dcls weights).

    For channel ``c`` with weights ``w[c, k]`` and positions ``p1[c, k]`` (rows), ``p2[c, k]``
    (columns), measured from the kernel centre ``lim = dilated_kernel_size // 2``::

        K[c, i, j] = sum_k w[c, k] * h(i - lim - p1[c, k]) * h(j - lim - p2[c, k]),
        h(x) = max(0, 1 - |x|)

    i.e. each weight is split over the four grid cells around its position with the bilinear
    coefficients ``(1-r1)(1-r2), (1-r1) r2, r1 (1-r2), r1 r2`` (``r`` the fractional parts), which
    is how it is computed here: four scatter-adds per element.  Cells outside the kernel are
    dropped, as upstream's ``v0`` does; training keeps positions in ``[-lim, lim]``
    (``ConvNeXtDcls.clamp_parameters``), where every cell that receives weight lies inside.  The
    construction is the same for every image and has no matmul, so, as in the paper's FLOPs,
    zoo's MAC count holds only the convolution itself.
    """

    def __init__(self, dilated_kernel_size: int) -> None:
        super().__init__()
        self.dilated_kernel_size = dilated_kernel_size

    def forward(self, weight: Tensor, positions: Tensor) -> Tensor:
        """``weight`` (C_out, C_in/groups, kernel_count), ``positions`` (2, C_out, C_in/groups,
        kernel_count) -> kernel (C_out, C_in/groups, dilated_kernel_size, dilated_kernel_size)."""
        size = self.dilated_kernel_size
        centred = positions + size // 2
        cell = centred.floor()
        rest = centred - cell  # the gradient of the positions flows through the rests
        c_out, c_in = weight.shape[0], weight.shape[1]
        kernel = weight.new_zeros((c_out, c_in, size * size))
        for dr in (0, 1):
            row, share_r = cell[0] + dr, rest[0] if dr == 1 else 1 - rest[0]
            for dc in (0, 1):
                col, share_c = cell[1] + dc, rest[1] if dc == 1 else 1 - rest[1]
                inside = (row >= 0) & (row < size) & (col >= 0) & (col < size)
                # cells outside get index 0 and a zero share (no clamp: ONNX export of it breaks)
                index = torch.where(inside, row * size + col, torch.zeros_like(row)).long()
                kernel = kernel.scatter_add(-1, index, weight * share_r * share_c * inside)
        return kernel.view(c_out, c_in, size, size)

    def extra_repr(self) -> str:
        return f"dilated_kernel_size={self.dilated_kernel_size}, interpolation=bilinear"


class Dcls2d(nn.Module):
    """Depthwise DCLS convolution (upstream ``Dcls2d(dim, dim, kernel_count, groups=dim,
    padding=dilated_kernel_size // 2)``): ``weight`` (C, 1, kernel_count) and ``bias`` (C) are the
    layer's own; the positions are passed in, since a stage's blocks share them."""

    def __init__(self, dim: int, kernel_count: int, dilated_kernel_size: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(dim, 1, kernel_count))
        self.bias = nn.Parameter(torch.empty(dim))
        self.construct_kernel = ConstructKernel2d(dilated_kernel_size)
        self.padding = dilated_kernel_size // 2

    def forward(self, x: Tensor, positions: Tensor) -> Tensor:
        kernel = self.construct_kernel(self.weight, positions)
        return F.conv2d(x, kernel, self.bias, padding=self.padding, groups=self.weight.shape[0])


class DclsConvNeXtBlock(nn.Module):
    """ConvNeXt block with a DCLS depthwise conv (upstream ``Block``): DCLS dw conv -> permute
    to NHWC -> LayerNorm -> Linear(4x) -> GELU -> Linear -> gamma (layer scale) -> permute back
    -> drop-path -> + input."""

    def __init__(self, dim: int, kernel_count: int, dilated_kernel_size: int,
                 ls_init_value: float, drop_path: float = 0.0) -> None:
        super().__init__()
        self.conv_dw = Dcls2d(dim, kernel_count, dilated_kernel_size)
        self.norm = LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, 4 * dim, act_layer=nn.GELU)
        self.gamma = nn.Parameter(torch.full((dim,), ls_init_value))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: Tensor, positions: Tensor) -> Tensor:
        shortcut = x
        x = self.conv_dw(x, positions).permute(0, 2, 3, 1)
        x = self.gamma * self.mlp(self.norm(x))
        return shortcut + self.drop_path(x.permute(0, 3, 1, 2))


class DclsConvNeXtStage(nn.Module):
    """A ConvNeXt stage (timm ``ConvNeXtStage`` layout): downsampling (LayerNorm + 2x2 stride-2
    conv; none in stage 0, which follows the stem), then ``depth`` blocks that all use the
    stage's ``positions`` (2, C, 1, kernel_count): upstream's ``P_stages[i]``, one tensor."""

    def __init__(self, in_chs: int, out_chs: int, depth: int, arch: Arch,
                 drop_path_rates: list[float], downsample: bool) -> None:
        super().__init__()
        self.grad_checkpointing = False
        self.downsample = (nn.Sequential(LayerNorm2d(in_chs, eps=1e-6),
                                         nn.Conv2d(in_chs, out_chs, kernel_size=2, stride=2))
                           if downsample else nn.Identity())
        self.positions = nn.Parameter(torch.empty(2, out_chs, 1, arch.kernel_count))
        self.blocks = nn.ModuleList(
            DclsConvNeXtBlock(out_chs, arch.kernel_count, arch.dilated_kernel_size,
                              arch.ls_init_value, drop_path=rate) for rate in drop_path_rates)
        self.lim = arch.dilated_kernel_size // 2

    def forward(self, x: Tensor) -> Tensor:
        x = self.downsample(x)
        for block in self.blocks:
            if self.grad_checkpointing and torch.is_grad_enabled() \
                    and not torch.jit.is_scripting():
                x = checkpoint(block, x, self.positions, use_reentrant=False)
            else:
                x = block(x, self.positions)
        return x

    def clamp_positions(self) -> None:
        """Clamp the positions to ``[-lim, lim]`` (upstream's ``clamp_parameters``, run after every
        optimizer step in its ``engine.py``), which keeps every element inside the kernel."""
        with torch.no_grad():
            self.positions.clamp_(-self.lim, self.lim)


def _feature_info(arch: Arch) -> list[dict]:
    return [{"module": f"stages.{i}", "num_chs": dim, "reduction": 4 * 2 ** i}
            for i, dim in enumerate(arch.dims)]


class ConvNeXtDcls(ClassifierHeadModel, StepChainModel):
    """ConvNeXt-dcls: patchify stem -> 4 DCLS stages -> avg-pool -> LayerNorm -> fc.  timm's
    feature API sees the chain stem, stages (a level at the end of each stage); gradient
    checkpointing is per block, as timm's ConvNeXt."""

    def __init__(self, arch: Arch, num_classes: int = 1000, in_chans: int = 3) -> None:
        super().__init__()
        self.num_classes, self.in_chans = num_classes, in_chans
        dims = arch.dims
        self.stem = nn.Sequential(nn.Conv2d(in_chans, dims[0], kernel_size=4, stride=4),
                                  LayerNorm2d(dims[0], eps=1e-6))
        total = sum(arch.depths)
        # upstream's dp_rates; on the CPU also inside a meta-device build
        rates = torch.linspace(0, arch.drop_path_rate, total, device="cpu").tolist()
        stages, start, prev = [], 0, dims[0]
        for i, (depth, dim) in enumerate(zip(arch.depths, dims)):
            stages.append(DclsConvNeXtStage(prev, dim, depth, arch, rates[start:start + depth],
                                            downsample=i > 0))
            start, prev = start + depth, dim
        self.stages = nn.Sequential(*stages)
        self.num_features = self.head_hidden_size = arch.num_features
        self.feature_info = _feature_info(arch)
        self.head = NormMlpClassifierHead(self.num_features, num_classes, pool_type=arch.global_pool,
                                          norm_layer=LayerNorm2d)
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        """Upstream's initialization: truncated normal (std 0.02) weights and zero biases for
        convs, linears and DCLS weights; positions N(0, 0.5) clamped to the kernel."""
        if isinstance(module, (nn.Conv2d, nn.Linear, Dcls2d)):
            trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, DclsConvNeXtStage):
            with torch.no_grad():
                nn.init.normal_(module.positions, 0.0, 0.5)
            module.clamp_positions()

    def forward_features(self, x: Tensor) -> Tensor:
        return self.stages(self.stem(x))

    @torch.jit.ignore
    def feature_steps(self) -> List[str]:
        return ["stem", *(f"stages.{i}" for i in range(len(self.stages)))]

    @torch.jit.ignore
    def prune_head_extras(self) -> None:
        """The head's norm is of the last stage's width: pruned with the stages after the kept
        level (timm's ConvNeXt prunes its head norm the same way)."""
        self.head.norm = nn.Identity()

    def _dcls_stages(self) -> List[DclsConvNeXtStage]:
        return [m for m in self.stages if isinstance(m, DclsConvNeXtStage)]  # not pruned ones

    def clamp_parameters(self) -> None:
        """Clamp every stage's positions into the kernel (upstream ``clamp_parameters``); call it
        after each optimizer step when training, as upstream does."""
        for stage in self._dcls_stages():
            stage.clamp_positions()

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        for stage in self._dcls_stages():
            stage.grad_checkpointing = enable

    def group_matcher(self, coarse: bool = False) -> dict:
        return {"stem": r"^stem", "blocks": r"^stages\.(\d+)" if coarse else [
            (r"^stages\.(\d+)\.(?:downsample|positions)", (0,)),
            (r"^stages\.(\d+)\.blocks\.(\d+)", None)]}


def build(spec) -> ConvNeXtDcls:
    return ConvNeXtDcls(spec.arch, num_classes=spec.data.num_classes, in_chans=spec.data.in_chans)


# --- checkpoint conversion ---------------------------------------------------------------------
# Upstream ConvNeXt_dcls keys: downsample_layers.0 = stem (conv, LayerNorm), downsample_layers.1-3
# = (LayerNorm, conv); stages.i.j.{dwconv.weight, dwconv.bias, dwconv.P, norm.*, pwconv1.*,
# pwconv2.*, gamma}; norm.* (after pooling); head.*.  dwconv.P is one tensor per stage registered
# in every block, so the state dict repeats it under each block's key.
_BLOCK = {"dwconv.weight": "conv_dw.weight", "dwconv.bias": "conv_dw.bias",
          "norm.weight": "norm.weight", "norm.bias": "norm.bias",
          "pwconv1.weight": "mlp.fc1.weight", "pwconv1.bias": "mlp.fc1.bias",
          "pwconv2.weight": "mlp.fc2.weight", "pwconv2.bias": "mlp.fc2.bias", "gamma": "gamma"}


def _rename(key: str, depths: tuple[int, ...]) -> str | None:
    if m := re.fullmatch(r"downsample_layers\.0\.([01])\.(weight|bias)", key):
        return f"stem.{m[1]}.{m[2]}"
    if m := re.fullmatch(r"downsample_layers\.([123])\.([01])\.(weight|bias)", key):
        return f"stages.{m[1]}.downsample.{m[2]}.{m[3]}"
    if m := re.fullmatch(r"stages\.(\d+)\.(\d+)\.(.+)", key):
        stage, block = int(m[1]), int(m[2])
        if stage < len(depths) and block < depths[stage] and m[3] in _BLOCK:
            return f"stages.{stage}.blocks.{block}.{_BLOCK[m[3]]}"
        return None
    if m := re.fullmatch(r"norm\.(weight|bias)", key):
        return f"head.norm.{m[1]}"
    if m := re.fullmatch(r"head\.(weight|bias)", key):
        return f"head.fc.{m[1]}"
    return None


def convert(spec, state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Upstream ``ConvNeXt_dcls`` state dict (the released ``*_ema.pth`` hold it under ``'model'``,
    which :func:`zoo.checkpoint.load_original_checkpoint` unwraps; DataParallel's ``module.``
    prefix is stripped) -> this module's layout.  The per-block copies of a stage's positions
    (``stages.i.j.dwconv.P``) must be equal and become ``stages.i.positions``; unknown keys raise
    :class:`CheckpointError`."""
    depths = spec.arch.depths
    out: dict[str, Tensor] = {}
    positions: dict[int, dict[int, Tensor]] = {}
    unknown: list[str] = []
    for key, value in state_dict.items():
        k = key.removeprefix("module.")
        if (m := re.fullmatch(r"stages\.(\d+)\.(\d+)\.dwconv\.P", k)) and \
                int(m[1]) < len(depths) and int(m[2]) < depths[int(m[1])]:
            positions.setdefault(int(m[1]), {})[int(m[2])] = value
        elif (new := _rename(k, depths)) is not None:
            out[new] = value
        else:
            unknown.append(key)
    if unknown:
        if any(k.startswith(("stem.", "head.fc.")) or ".blocks." in k for k in unknown):
            raise CheckpointError(f"{spec.name}: keys such as {unknown[0]!r} are zoo's layout, "
                                  "which needs no conversion (load it directly)")
        more = f", ... ({len(unknown)} in all)" if len(unknown) > 8 else ""
        raise CheckpointError(
            f"{spec.name}: keys that are not part of an upstream ConvNeXt_dcls with depths "
            f"{list(depths)}: {', '.join(unknown[:8])}{more}")
    for stage, copies in sorted(positions.items()):
        first_block, first = min(copies.items())
        differ = [b for b, t in sorted(copies.items())
                  if t.shape != first.shape or not torch.equal(t, first)]
        if differ:
            raise CheckpointError(
                f"{spec.name}: stage {stage}'s positions differ between blocks {first_block} and "
                f"{differ[0]} (stages.{stage}.{differ[0]}.dwconv.P); upstream ConvNeXt_dcls "
                "shares one positions tensor per stage, so a checkpoint it saved holds equal "
                "copies. This file was not saved by that model.")
        out[f"stages.{stage}.positions"] = first
    return out


__all__ = ["ConstructKernel2d", "ConvNeXtDcls", "Dcls2d", "DclsConvNeXtBlock", "DclsConvNeXtStage",
           "build", "convert"]


HOOKS = FamilyHooks(build=build, convert=convert)
