"""Cell-based networks assembled from a declared genotype: NASNet-A, DARTS and user cells.

Zoph et al., "Learning Transferable Architectures for Scalable Image Recognition" (arXiv
1707.07012): Sec. 3 and Fig. 2 (normal and reduction cells stacked N times per stage, filters
doubled at each reduction), Fig. 3 (a block: two hidden states, two operations, combined by
addition), Fig. 4 and Appendix A (NASNet-A).  The semantics follow TF-slim ``nasnet_utils.py``,
the reference implementation:

- a cell first maps ``h_(i-1)`` through ReLU-1x1 conv-BN; ``h_(i-2)`` goes through a
  *factorized reduction* when its spatial size is twice ``h_(i-1)``'s, a ReLU-1x1 conv-BN when
  its channels differ from the cell's filters, and unchanged otherwise (``_reduce_prev_layer``);
- in a reduction cell the operations applied to states 0 and 1 have stride 2;
- a separable operation is (ReLU, separable conv, BN) twice, the first one projecting to the
  cell's filters; pools and identities get a 1x1 conv-BN projection when channels differ;
- concatenated states whose shape differs from the blocks' are factorized-reduced
  (``_combine_unused_states``).

DARTS (Liu et al., arXiv 1806.09055, Sec. 2.1 and the official ``model.py``) is the same scheme
with a convolutional stem, symmetric padding, an h_(i-2) projection in every cell and no ReLU
before the head: those are spec fields, not code paths.
"""
import math
import re
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from timm.layers import DropPath, SelectAdaptivePool2d, SeparableConv2d
from timm.models import checkpoint
from timm.models._features import feature_take_indices
from torch import nn

from zoo.families.contract import FamilyHooks
from zoo.errors import CheckpointError, InputShapeError
from zoo.families.nasnet.schema import OPS, Arch, CellGenotype
from zoo.layers.padding import PaddingMode, conv2d, pool2d
from zoo.model import IndicesT, ZooModel, check_image, check_output_fmt, linear_or_identity

torch.fx.wrap("check_image")  # a graph leaf wherever this module's code calls it


def _timm_padding(mode: PaddingMode) -> str:
    return "" if mode == "symmetric" else "same"


# -- building blocks ---------------------------------------------------------------------------

class ConvBn(nn.Module):
    """1x1 conv + BN, no activation (TF-slim's pool projection and stride-1 ``path_conv``)."""

    def __init__(self, in_chs: int, out_chs: int, *, stride: int = 1, bn_eps: float) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, 1, stride=stride, bias=False)
        self.bn = nn.BatchNorm2d(out_chs, eps=bn_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class ReLUConvBn(ConvBn):
    """ReLU, 1x1 conv, BN: how a cell adapts its inputs (TF-slim ``1x1``/``prev_1x1``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(F.relu(x)))


class FactorizedReduction(nn.Module):
    """Halve the resolution without dropping pixels (arXiv 1707.07012, Appendix A.1).

    Two 1x1 convs on the even and on the odd (shifted by one, zero-padded at the end) pixel
    grids, concatenated and batch-normalized; the second path takes the extra channel when
    ``out_chs`` is odd (TF-slim ``factorized_reduction``).
    """

    def __init__(self, in_chs: int, out_chs: int, *, bn_eps: float, apply_act: bool = True) -> None:
        super().__init__()
        self.apply_act = apply_act
        self.path_1 = nn.Conv2d(in_chs, out_chs // 2, 1, stride=2, bias=False)
        self.path_2 = nn.Conv2d(in_chs, out_chs - out_chs // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(out_chs, eps=bn_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.apply_act:
            x = F.relu(x)
        shifted = F.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))
        return self.bn(torch.cat([self.path_1(x), self.path_2(shifted)], dim=1))


class SepConvStack(nn.Module):
    """(ReLU, separable conv, BN) x 2; only the first conv strides (TF-slim
    ``_stacked_separable_conv``, DARTS ``SepConv``)."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int, *, stride: int,
                 padding: PaddingMode, bn_eps: float) -> None:
        super().__init__()
        pad = _timm_padding(padding)
        self.sep_1 = SeparableConv2d(in_chs, out_chs, kernel_size, stride=stride, padding=pad)
        self.bn_1 = nn.BatchNorm2d(out_chs, eps=bn_eps)
        self.sep_2 = SeparableConv2d(out_chs, out_chs, kernel_size, stride=1, padding=pad)
        self.bn_2 = nn.BatchNorm2d(out_chs, eps=bn_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn_1(self.sep_1(F.relu(x)))
        return self.bn_2(self.sep_2(F.relu(x)))


class DilConv(nn.Module):
    """ReLU, dilated separable conv, BN (DARTS ``DilConv``)."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int, dilation: int, *, stride: int,
                 padding: PaddingMode, bn_eps: float) -> None:
        super().__init__()
        self.sep = SeparableConv2d(in_chs, out_chs, kernel_size, stride=stride, dilation=dilation,
                                   padding=_timm_padding(padding))
        self.bn = nn.BatchNorm2d(out_chs, eps=bn_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.sep(F.relu(x)))


class PoolBranch(nn.Module):
    """A 3x3 pool, then a 1x1 conv-BN projection if the input has other than ``out_chs``."""

    def __init__(self, kind: str, in_chs: int, out_chs: int, kernel_size: int, *, stride: int,
                 padding: PaddingMode, bn_eps: float) -> None:
        super().__init__()
        self.pool = pool2d(kind, kernel_size, stride=stride, mode=padding)  # type: ignore[arg-type]
        self.proj = ConvBn(in_chs, out_chs, bn_eps=bn_eps) if in_chs != out_chs else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(x)
        if self.proj is not None:
            x = self.proj(x)
        return x


class Zero(nn.Module):
    """The zero operation (DARTS 'none'): contributes nothing, with the right output shape."""

    def __init__(self, out_chs: int, stride: int) -> None:
        super().__init__()
        self.out_chs, self.stride = out_chs, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :1, ::self.stride, ::self.stride]
        return x.new_zeros([x.shape[0], self.out_chs, x.shape[-2], x.shape[-1]])


def create_op(name: str, in_chs: int, out_chs: int, *, stride: int, padding: PaddingMode,
              bn_eps: float) -> nn.Module:
    """The module of one genotype operation (vocabulary: ``schema.OPS``)."""
    kind, k, dilation = OPS[name]
    if kind == "sep_conv":
        return SepConvStack(in_chs, out_chs, k, stride=stride, padding=padding, bn_eps=bn_eps)
    if kind == "dil_conv":
        return DilConv(in_chs, out_chs, k, dilation, stride=stride, padding=padding, bn_eps=bn_eps)
    if kind in ("avg_pool", "max_pool"):
        return PoolBranch(kind.removesuffix("_pool"), in_chs, out_chs, k, stride=stride,
                          padding=padding, bn_eps=bn_eps)
    if kind == "zero":
        return Zero(out_chs, stride)
    if stride == 1 and in_chs == out_chs:
        return nn.Identity()
    if kind == "skip_connect" and stride > 1:
        return FactorizedReduction(in_chs, out_chs, bn_eps=bn_eps)
    # TF-slim 'none' (and a channel-changing skip): a strided/projecting ReLU-1x1 conv-BN
    return ReLUConvBn(in_chs, out_chs, stride=stride, bn_eps=bn_eps)


class Block(nn.Module):
    """One block of a cell (Fig. 3): two states, two operations, added.

    Drop path (training only) applies to each operation's output except identities: TF-slim
    exempts its 'none' (``identity``) even when it projects, DARTS every ``nn.Identity``.
    """

    def __init__(self, left: nn.Module, right: nn.Module, inputs: Tuple[int, int],
                 drop_path: float, exempt: Tuple[bool, bool] = (False, False)) -> None:
        super().__init__()
        self.left, self.right = left, right
        self.inputs = inputs
        self.exempt = tuple(e or isinstance(op, nn.Identity)
                            for e, op in zip(exempt, (left, right)))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, states: List[torch.Tensor]) -> torch.Tensor:
        i, j = self.inputs
        left, right = self.left(states[i]), self.right(states[j])
        if not self.exempt[0]:
            left = self.drop_path(left)
        if not self.exempt[1]:
            right = self.drop_path(right)
        return left + right

    def extra_repr(self) -> str:
        return f"inputs={self.inputs}"


class Cell(nn.Module):
    """A normal or reduction cell built from its genotype (Sec. 3, Fig. 3; TF-slim
    ``NasNetABaseCell``).

    Args:
        genotype: the blocks and the concatenated states.
        x_chs: channels of ``h_(i-1)``.
        prev_chs: channels of ``h_(i-2)``, or None when there is none (the first stem cell and
            the first CIFAR cell use ``h_(i-1)`` itself, unprojected, as state 0).
        filters: the cell's filters (channels of every block output).
        reduction: stride 2 on the operations applied to states 0 and 1.
        prev_reduced: ``h_(i-2)`` has twice the resolution of ``h_(i-1)``.
    """

    def __init__(self, genotype: CellGenotype, *, x_chs: int, prev_chs: Optional[int], filters: int,
                 reduction: bool, prev_reduced: bool, prev_projection: str, padding: PaddingMode,
                 bn_eps: float, drop_path: float = 0.0) -> None:
        super().__init__()
        self.reduction = reduction
        self.concat = list(genotype.concat)
        self.preprocess_x = ReLUConvBn(x_chs, filters, bn_eps=bn_eps)
        self.preprocess_prev: Optional[nn.Module]
        if prev_chs is None:
            self.preprocess_prev, state0_chs = None, x_chs
        elif prev_reduced:
            self.preprocess_prev = FactorizedReduction(prev_chs, filters, bn_eps=bn_eps)
            state0_chs = filters
        elif prev_chs != filters or prev_projection == "always":
            self.preprocess_prev, state0_chs = ReLUConvBn(prev_chs, filters, bn_eps=bn_eps), filters
        else:
            self.preprocess_prev, state0_chs = nn.Identity(), filters
        chs = [state0_chs, filters]
        self.blocks = nn.ModuleList()
        for (op_l, in_l), (op_r, in_r) in genotype.blocks:
            left, right = [create_op(op, chs[s], filters, stride=2 if reduction and s < 2 else 1,
                                     padding=padding, bn_eps=bn_eps)
                           for op, s in ((op_l, in_l), (op_r, in_r))]
            self.blocks.append(Block(left, right, inputs=(in_l, in_r), drop_path=drop_path,
                                     exempt=(op_l == "identity", op_r == "identity")))
            chs.append(filters)
        # concatenated states with another shape than the blocks' (TF-slim _combine_unused_states)
        self.adapt = nn.ModuleDict()
        for s in self.concat:
            strided = reduction and s < 2
            if strided:
                self.adapt[str(s)] = FactorizedReduction(chs[s], filters, bn_eps=bn_eps,
                                                         apply_act=False)
            elif chs[s] != filters:
                self.adapt[str(s)] = ConvBn(chs[s], filters, bn_eps=bn_eps)
        self.out_chs = len(self.concat) * filters

    def forward(self, x: torch.Tensor, prev: Optional[torch.Tensor]) -> torch.Tensor:
        state1 = self.preprocess_x(x)
        if self.preprocess_prev is None:
            state0 = x
        else:
            assert prev is not None, "this cell was built for two inputs but got no h_(i-2)"
            state0 = self.preprocess_prev(prev)
        states = [state0, state1]
        for block in self.blocks:
            states.append(block(states))
        out = [states[s] for s in self.concat]
        for key, adapt in self.adapt.items():  # states whose shape differs from the blocks'
            s = int(key)
            for pos in range(len(self.concat)):
                if self.concat[pos] == s:
                    out[pos] = adapt(states[s])
        return torch.cat(out, dim=1)


# -- stems -------------------------------------------------------------------------------------

class NasnetStem(nn.Module):
    """``conv`` + BN (+ ``cells``): TF-slim ``_imagenet_stem`` (3x3/2 VALID conv, then reduction
    cells at filter scalings rate^-num_cells .. rate^-1) or ``_cifar_stem`` (3x3 SAME conv).
    Returns the hidden states the first main cell reads."""

    def __init__(self, arch: Arch, in_chans: int, drop_paths: Sequence[float]) -> None:
        super().__init__()
        stem = arch.stem
        imagenet = stem.kind == "nasnet_imagenet"
        if imagenet:  # TF-slim pads this conv 'VALID' whatever the cells' convention
            self.conv: nn.Module = nn.Conv2d(in_chans, stem.filters, 3, stride=2, padding=0,
                                             bias=False)
        else:
            self.conv = conv2d(in_chans, stem.filters, 3, mode=arch.padding)
        self.bn = nn.BatchNorm2d(stem.filters, eps=arch.bn_eps)
        states: list[tuple[int, int]] = [(stem.filters, 1 if imagenet else 0)]
        self.cells = nn.ModuleList()
        for k in range(stem.cells):
            filters = int(arch.filters * arch.filter_scaling_rate ** (k - stem.cells))
            cell = _make_cell(arch, states, reduction=True, filters=filters, prev_offset=2,
                              drop_path=drop_paths[k])
            self.cells.append(cell)
            states.append((cell.out_chs, states[-1][1] + 1))
        self.out_states = states
        # (module, channels, resolution level) of every hidden state, for ``feature_info``
        self.feature_levels = [("bn", *states[0])] + [
            (f"cells.{k}", *state) for k, state in enumerate(states[1:])]

    def forward_levels(self, x: torch.Tensor) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """(hidden states the first main cell reads, outputs of ``feature_levels``)."""
        hs = [self.bn(self.conv(x))]
        for cell in self.cells:
            prev = hs[-2] if len(hs) >= 2 else None
            hs.append(cell(hs[-1], prev))
        return hs, hs

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        return self.forward_levels(x)[0]

    @torch.jit.ignore
    def prune_levels(self, keep: int) -> None:
        """Keep the first ``keep`` levels (the conv, then stem cells)."""
        self.cells = self.cells[:keep - 1]


class DartsStem(nn.Module):
    """DARTS ImageNet stem: ``stem0`` = conv3x3/2 (C/2)-BN-ReLU-conv3x3/2 (C)-BN and ``stem1`` =
    ReLU-conv3x3/2-BN; the first cell reads (stem0, stem1)."""

    def __init__(self, arch: Arch, in_chans: int) -> None:
        super().__init__()
        c, eps, pad = arch.stem.filters, arch.bn_eps, arch.padding
        self.conv = conv2d(in_chans, c // 2, 3, stride=2, mode=pad)
        self.bn = nn.BatchNorm2d(c // 2, eps=eps)
        self.conv_2 = conv2d(c // 2, c, 3, stride=2, mode=pad)
        self.bn_2: nn.Module = nn.BatchNorm2d(c, eps=eps)  # Identity once pruned
        self.conv_3 = conv2d(c, c, 3, stride=2, mode=pad)
        self.bn_3: nn.Module = nn.BatchNorm2d(c, eps=eps)
        self.out_states = [(c, 2), (c, 3)]
        self.feature_levels = [("bn", c // 2, 1), ("bn_2", c, 2), ("bn_3", c, 3)]
        self.depth = 3  # levels computed (prune_levels lowers it)

    def forward_levels(self, x: torch.Tensor) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """(hidden states the first main cell reads, outputs of ``feature_levels``)."""
        b = self.bn(self.conv(x))
        if self.depth == 1:
            return [b], [b]
        s0 = self.bn_2(self.conv_2(F.relu(b)))
        if self.depth == 2:
            return [s0], [b, s0]
        s1 = self.bn_3(self.conv_3(F.relu(s0)))
        return [s0, s1], [b, s0, s1]

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        return self.forward_levels(x)[0]

    @torch.jit.ignore
    def prune_levels(self, keep: int) -> None:
        """Keep the first ``keep`` levels; the layers after them become identities."""
        self.depth = keep
        if keep < 3:
            self.conv_3, self.bn_3 = nn.Identity(), nn.Identity()
        if keep < 2:
            self.conv_2, self.bn_2 = nn.Identity(), nn.Identity()


def _make_cell(arch: Arch, states: List[Tuple[int, int]], *, reduction: bool, filters: int,
               prev_offset: int, drop_path: float) -> Cell:
    """A cell reading ``h_(i-1) = states[-1]`` and ``h_(i-2) = states[-prev_offset]``."""
    x_chs, x_level = states[-1]
    prev = states[-prev_offset] if len(states) >= prev_offset else None
    if prev is not None and not 0 <= x_level - prev[1] <= 1:
        raise ValueError(f"h_(i-2) is {x_level - prev[1]} reductions away from h_(i-1); cells "
                         "handle at most one")
    genotype = arch.genotype.reduce if reduction else arch.genotype.normal
    return Cell(genotype, x_chs=x_chs, prev_chs=None if prev is None else prev[0], filters=filters,
                reduction=reduction, prev_reduced=prev is not None and prev[1] < x_level,
                prev_projection=arch.prev_projection, padding=arch.padding, bn_eps=arch.bn_eps,
                drop_path=drop_path)


def cell_plan(arch: Arch) -> List[Tuple[str, int]]:
    """The main cells in forward order as ``("normal", n)`` / ``("reduction", r)`` (n, r count
    each kind from 0): stages of ``depths[s]`` normal cells, a reduction cell between stages."""
    plan: List[Tuple[str, int]] = []
    n = 0
    for stage, depth in enumerate(arch.depths):
        if stage > 0:
            plan.append(("reduction", stage - 1))
        for _ in range(depth):
            plan.append(("normal", n))
            n += 1
    return plan


# -- the network -------------------------------------------------------------------------------

def _feature_info(stem_levels: Sequence[Tuple[str, int, int]],
                  cell_states: Sequence[Tuple[int, int]]) -> List[Dict]:
    """timm's ``feature_info``: per resolution (``reduction = 2 ** level``), the last stem state
    or main cell producing it, i.e. the hidden states h_i of Fig. 2 that end a resolution (stem,
    each stage's last normal cell, the final cell).  The maps are the cells' outputs, before the
    ReLU that the next cell (or the head) applies; timm's NASNet port hooks that ReLU instead."""
    levels: Dict[int, Dict] = {}
    entries = [(f"stem.{name}", chs, level) for name, chs, level in stem_levels]
    entries += [(f"cells.{k}", chs, level) for k, (chs, level) in enumerate(cell_states)]
    for module, chs, level in entries:
        levels[level] = {"module": module, "num_chs": chs, "reduction": 2 ** level}
    return list(levels.values())

class CellNet(ZooModel):
    """Stem, stages of normal cells with reduction cells between them, ReLU, global pool, linear
    (arXiv 1707.07012, Fig. 2; TF-slim ``_build_nasnet_base``)."""

    def __init__(self, arch: Arch, num_classes: int = 1000, in_chans: int = 3) -> None:
        super().__init__()
        self.arch = arch
        self.in_chans = in_chans
        # the nasnet_imagenet stem's first conv is unpadded: it needs 3 pixels
        self.min_size = 3 if arch.stem.kind == "nasnet_imagenet" else 1
        plan = cell_plan(arch)
        num_stem_cells = arch.stem.cells
        total = num_stem_cells + len(plan)
        drop_paths = [arch.drop_path_rate * (k + 1) / total for k in range(total)]
        self.stem: Union[DartsStem, NasnetStem]
        if arch.stem.kind == "darts_imagenet":
            self.stem = DartsStem(arch, in_chans)
        else:
            self.stem = NasnetStem(arch, in_chans, drop_paths[:num_stem_cells])
        states = list(self.stem.out_states)
        self.cells = nn.ModuleList()
        self.prev_offsets: list[int] = []
        filters = arch.filters
        after_reduction = False
        for k, (kind, _) in enumerate(plan):
            reduction = kind == "reduction"
            if reduction:
                filters *= arch.filter_scaling_rate
            offset = 3 if after_reduction and arch.skip_reduction_layer_input else 2
            cell = _make_cell(arch, states, reduction=reduction, filters=filters,
                              prev_offset=offset, drop_path=drop_paths[num_stem_cells + k])
            self.cells.append(cell)
            self.prev_offsets.append(offset)
            states.append((cell.out_chs, states[-1][1] + int(reduction)))
            after_reduction = reduction
        self.num_features = self.head_hidden_size = states[-1][0]
        self.feature_info = _feature_info(self.stem.feature_levels,
                                          states[len(self.stem.out_states):])
        # where each level comes from: ("stem", index in stem.feature_levels) or ("cell", k)
        stem_names = [f"stem.{name}" for name, _, _ in self.stem.feature_levels]
        self._taps = [("stem", stem_names.index(d["module"])) if d["module"] in stem_names
                      else ("cell", int(d["module"].split(".")[1])) for d in self.feature_info]
        self._first_level = self.stem.feature_levels[0][2]
        self._valid_stem = arch.stem.kind == "nasnet_imagenet"
        self.num_classes = num_classes
        self.head_relu = arch.head_relu
        self.global_pool = SelectAdaptivePool2d(pool_type=arch.global_pool,
                                                flatten=bool(arch.global_pool))
        self.head_hidden_size = self.num_features * self.global_pool.feat_mult()
        self.head_drop = nn.Dropout(arch.drop_rate)
        self.classifier = linear_or_identity(self.head_hidden_size, num_classes)

    def _cells(self, hs: List[torch.Tensor], stop: int) -> List[torch.Tensor]:
        """Run the main cells ``0 .. stop - 1`` on the stem's states; keeps the last 3.  Under
        gradient checkpointing every cell is recomputed in the backward pass."""
        for k, cell in enumerate(self.cells):
            if k < stop:
                offset = self.prev_offsets[k]
                prev = hs[-offset] if len(hs) >= offset else None
                if self.grad_checkpointing and not torch.jit.is_scripting():
                    hs.append(checkpoint(cell, hs[-1], prev))
                else:
                    hs.append(cell(hs[-1], prev))
                hs = hs[-3:]  # a cell reads at most 3 states back
        return hs

    @torch.jit.ignore
    def _cell(self, k: int, hs: List[torch.Tensor]) -> List[torch.Tensor]:
        """Run main cell ``k`` alone (as :meth:`_cells` does it)."""
        offset = self.prev_offsets[k]
        prev = hs[-offset] if len(hs) >= offset else None
        cell = self.cells[k]
        out = checkpoint(cell, hs[-1], prev) if self.grad_checkpointing else cell(hs[-1], prev)
        return (hs + [out])[-3:]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            check_image(x, self.in_chans, self.min_size)
        hs = self._cells(self.stem(x), len(self.cells))
        x = hs[-1]
        if self.head_relu:
            x = F.relu(x)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(self.global_pool(x))
        return x if pre_logits else self.classifier(x)

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        self.num_classes = num_classes
        if global_pool is not None:
            self.global_pool = SelectAdaptivePool2d(
                pool_type=global_pool, flatten=bool(global_pool)).train(self.training)
            self.head_hidden_size = self.num_features * self.global_pool.feat_mult()
        self.classifier = linear_or_identity(self.head_hidden_size, num_classes, self)

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict:
        return {"stem": r"^stem", "blocks": r"^cells\.(\d+)"}

    # -- timm's feature API ------------------------------------------------------------------------
    @torch.jit.ignore
    def forward_intermediates(
            self, x: torch.Tensor, indices: IndicesT = None, norm: bool = False,
            stop_early: bool = False, output_fmt: str = "NCHW", intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """The ``feature_info`` levels: hidden states h_i as the cells output them (before the
        ReLU the next cell or the head applies; ``norm=True`` applies it), and unless
        ``intermediates_only`` the ``forward_features`` output."""
        check_output_fmt(output_fmt, ("NCHW", "NHWC"))
        take, max_index = feature_take_indices(len(self.feature_info), indices)
        check_image(x, self.in_chans, self.min_size)
        hs, stem_levels = self.stem.forward_levels(x)
        last_kind, last_pos = self._taps[max_index]
        stop = len(self.cells)
        if stop_early or intermediates_only:
            stop = 0 if last_kind == "stem" else last_pos + 1
        cell_out: Dict[int, torch.Tensor] = {}
        for k in range(stop):
            hs = self._cell(k, hs)
            cell_out[k] = hs[-1]
        intermediates = []
        for i in take:
            kind, pos = self._taps[i]
            y = stem_levels[pos] if kind == "stem" else cell_out[pos]
            y = F.relu(y) if norm else y
            intermediates.append(y if output_fmt == "NCHW" else y.permute(0, 2, 3, 1))
        if intermediates_only:
            return intermediates
        x = hs[-1]
        return (F.relu(x) if self.head_relu else x), intermediates

    @torch.jit.ignore
    def prune_intermediate_layers(self, indices: Union[int, List[int]] = 1,
                                  prune_norm: bool = False, prune_head: bool = True) -> List[int]:
        """Keep the network up to the deepest level in ``indices``; ``prune_norm`` drops the
        head ReLU (the features then end at the level's map)."""
        take, max_index = feature_take_indices(len(self.feature_info), indices)
        kind, pos = self._taps[max_index]
        if kind == "stem":
            self.stem.prune_levels(pos + 1)
            self.cells = self.cells[:0]
        else:
            self.cells = self.cells[:pos + 1]
        self.prev_offsets = self.prev_offsets[:len(self.cells)]
        self.num_features = self.head_hidden_size = self.feature_info[max_index]["num_chs"]
        if prune_norm:
            self.head_relu = False
        if prune_head:
            self.reset_classifier(0, "")
        return take

    @torch.jit.ignore
    def feature_map_size(self, img_size: Tuple[int, int]) -> Optional[Tuple[int, int]]:
        """The stem conv of NASNet-A ImageNet is 3x3/2 unpadded; every later reduction (TF
        'SAME' or symmetric padding, factorized reductions) gives ``ceil(n / 2)``."""
        last = int(math.log2(self.feature_info[-1]["reduction"]))
        size = []
        for n in img_size:
            n = (n - 3) // 2 + 1 if self._valid_stem else math.ceil(n / 2 ** self._first_level)
            for _ in range(last - self._first_level):
                n = math.ceil(n / 2)
            size.append(n)
        return size[0], size[1]


def build(spec) -> CellNet:
    return CellNet(spec.arch, num_classes=spec.data.num_classes, in_chans=spec.data.in_chans)


# -- checkpoint conversion ---------------------------------------------------------------------

_ZOO_PREFIXES = ("stem.", "cells.", "classifier.")
_CELL_KEY = re.compile(r"^(cell_stem_(\d+)|cell_(\d+)|reduction_cell_(\d+))\.(.+)$")
_CELL_PARTS = [  # (TF-port name inside a cell, zoo name); ports of Cadene and timm agree
    (re.compile(r"^conv_1x1\.(conv|bn)\.(.+)$"), r"preprocess_x.\1.\2"),
    (re.compile(r"^conv_prev_1x1\.(conv|bn)\.(.+)$"), r"preprocess_prev.\1.\2"),
    (re.compile(r"^path_(1|2)\.conv\.(.+)$"), r"preprocess_prev.path_\1.\2"),
    (re.compile(r"^final_path_bn\.(.+)$"), r"preprocess_prev.bn.\1"),
    (re.compile(r"^comb_iter_(\d+)_(left|right)\.separable_(1|2)\.depthwise_conv2d\.(.+)$"),
     r"blocks.\1.\2.sep_\3.conv_dw.\4"),
    (re.compile(r"^comb_iter_(\d+)_(left|right)\.separable_(1|2)\.pointwise_conv2d\.(.+)$"),
     r"blocks.\1.\2.sep_\3.conv_pw.\4"),
    (re.compile(r"^comb_iter_(\d+)_(left|right)\.bn_sep_(1|2)\.(.+)$"), r"blocks.\1.\2.bn_\3.\4"),
]


def _convert_tf_port(arch: Arch, sd: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Cadene's / timm's NASNet-A key layout -> zoo's.

    Both number normal cells as TF-slim's NASNet-A *Large* does: 6 per stage, so Mobile (4 per
    stage) has gaps (cell_0..3, cell_6..9, cell_12..15).  Normal cells are therefore matched by
    rank within their stage, not by number; a stage's cells are those numbered between two
    reduction cells' positions.
    """
    plan = cell_plan(arch)
    normal_numbers = sorted({int(m.group(3)) for k in sd
                             if (m := _CELL_KEY.match(k)) and m.group(3)})
    if len(normal_numbers) != sum(arch.depths):
        raise CheckpointError(f"the checkpoint has {len(normal_numbers)} normal cells "
                              f"({normal_numbers}); this architecture has {sum(arch.depths)} "
                              f"(depths {list(arch.depths)})")
    normal_index = {num: rank for rank, num in enumerate(normal_numbers)}
    main_index = {kind_ord: k for k, kind_ord in enumerate(plan)}
    out: Dict[str, torch.Tensor] = {}
    unknown: List[str] = []
    for key, value in sd.items():
        new = None
        if key.startswith("conv0."):
            new = re.sub(r"^conv0\.(conv|bn)\.", lambda m: "stem.conv." if m.group(1) == "conv"
                         else "stem.bn.", key)
        elif key.startswith("last_linear."):
            new = "classifier." + key.removeprefix("last_linear.")
        elif m := _CELL_KEY.match(key):
            _, stem_i, normal_n, red_r, rest = m.groups()
            if stem_i is not None:
                prefix: Optional[str] = f"stem.cells.{stem_i}"
            elif normal_n is not None:
                prefix = f"cells.{main_index[('normal', normal_index[int(normal_n)])]}"
            else:
                k = main_index.get(("reduction", int(red_r)))
                prefix = f"cells.{k}" if k is not None else None
            for pattern, repl in _CELL_PARTS:
                if prefix is not None and pattern.match(rest):
                    new = f"{prefix}.{pattern.sub(repl, rest)}"
                    break
        if new is None:
            unknown.append(key)
        else:
            out[new] = value
    if unknown:
        raise CheckpointError(f"{len(unknown)} key(s) of this NASNet checkpoint have no place in "
                              f"zoo's layout, e.g. {unknown[:5]}")
    return out


def convert(spec, state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """An original checkpoint -> zoo's layout.

    Accepts the layout of Cadene's ``pretrainedmodels`` NASNet-A Mobile and of timm's
    ``nasnetalarge`` (also what ``timm/nasnetalarge.tf_in1k`` on the Hub holds), with or without
    a ``module.`` prefix, and zoo's own layout (returned unchanged).  BatchNorm layers without
    ``num_batches_tracked`` (a training counter some exports drop) get 0.
    """
    sd = {k.removeprefix("module."): v for k, v in state_dict.items()}
    if not sd:
        raise CheckpointError(f"{spec.name}: the checkpoint is empty")
    if not all(k.startswith(_ZOO_PREFIXES) for k in sd):
        if spec.arch.stem.kind != "nasnet_imagenet":
            raise CheckpointError(
                f"{spec.name}: only zoo's layout can be loaded for a {spec.arch.stem.kind} stem; "
                "the Cadene/timm NASNet-A layout needs the nasnet_imagenet stem")
        sd = _convert_tf_port(spec.arch, sd)
    for key in [k for k in sd if k.endswith(".running_mean")]:
        counter = key.removesuffix("running_mean") + "num_batches_tracked"
        sd.setdefault(counter, torch.zeros((), dtype=torch.long))
    return sd


HOOKS = FamilyHooks(build=build, convert=convert)
