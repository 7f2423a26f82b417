"""DeepMAD's scores of a network, from its structure alone (no torch, no data).

Paper (arXiv 2303.02165): a CNN is viewed as an information-processing system; the
(differential) entropy of a layer's output grows with the log of its fan-in
``phi = c_in * k^2 / groups``.  With TinyNAS's implementation
(``tinynas/scores/compute_deepmad.py``, ``tinynas/models/cnnnet.py``, ``strategy.py``):

- a *unit* ``u`` is one ``ConvKXBNRELU`` or one residual block; its term is
  ``s_u = 1/2 * sum_{layers l of u} log phi_l``;
- the network is cut into *stages* at every stride-2 block after the stem; stage ``i`` has
  ``C_i`` (output channels of its last block) and ``r_i`` (its output resolution);
- stage entropy (the paper's weighted multi-scale entropy):
  ``H_i = (log C_i + 2 log r_i) * sum_{u up to the end of stage i} s_u``,
  ``entropy = sum_i w_i H_i`` with ``w = [1, 1, 1, 1, 8]``;
- the objective adds a depth-uniformity penalty: ``score = entropy - 10 * exp(std(L))`` over
  the super-block depths ``L``;
- the effectiveness is ``rho = max_i D_i / exp(sum_{layers up to stage i} log phi / D_i)``
  with ``D_i`` the number of conv layers up to the end of stage i (the geometric mean of the
  fan-in in the denominator); the designer requires ``rho <= rho0``.

``tinynas_compat=True`` reproduces TinyNAS's quirks: its SE reports an output resolution of
1, so every stage that ends in a ``k1dwsek1`` super-block has ``r_i = 1`` (the resolution term
vanishes); resolutions use floor division; and for ``k1kxk1`` networks the depth penalty only
covers the depths after the first two super-blocks.  (TinyNAS's compute_deepmad score, the
number its logs print, is ``entropy``; the search objective is ``score``.)

Costs are exact: :func:`macs` counts what ``zoo.measure.count_macs`` counts (convolutions and
the classifier; not BN, activations or pooling) and :func:`params` counts every parameter.
:func:`tinynas_flops` is TinyNAS's own cost (``CnnNet.get_flops``), the unit of its FLOPs budgets
and of the DeepMAD README's "FLOPs" column: conv multiply-accumulates plus 2 per BN output, 1 per
activation output, 1 per projected-shortcut output (the add) and 1 per average-pooled input
element, without SE and classifier, on real-valued resolutions (``res / stride``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import pstdev
from typing import Sequence

from .schema import Arch, se_channels

STAGE_WEIGHTS = (1.0, 1.0, 1.0, 1.0, 8.0)
DEPTH_PENALTY = 10.0


@dataclass(frozen=True)
class Layer:
    """One conv of the network as the scores see it."""

    in_chs: int
    out_chs: int
    kernel_size: int
    stride: int = 1
    groups: int = 1

    @property
    def log_fan_in(self) -> float:
        """log phi = log(c_in * k^2 / groups)."""
        return math.log(self.in_chs * self.kernel_size ** 2 / self.groups)


@dataclass(frozen=True)
class Unit:
    """A ConvKXBNRELU or one residual block: the layers the entropy counts, its stride."""

    layers: tuple[Layer, ...]
    out_chs: int
    stride: int
    has_se: bool = False

    @property
    def entropy(self) -> float:
        """s_u = 1/2 sum log phi."""
        return 0.5 * sum(layer.log_fan_in for layer in self.layers)


def units(arch: Arch, in_chans: int = 3) -> list[list[Unit]]:
    """The network's units, grouped by TinyNAS block: [stem], one list per super-block, [final]."""
    s = arch.stem
    out = [[Unit((Layer(in_chans, s.out_chs, s.kernel_size, s.stride),), s.out_chs, s.stride)]]
    for sb in arch.stages:
        group = []
        for i in range(sb.depth):
            cin, stride = (sb.in_chs, sb.stride) if i == 0 else (sb.out_chs, 1)
            b, k = sb.btn_chs, sb.kernel_size
            if arch.block == "k1kxk1":
                layers = (Layer(cin, b, 1), Layer(b, b, k, stride), Layer(b, sb.out_chs, 1))
            else:
                layers = (Layer(cin, b, 1), Layer(b, b, k, stride, groups=b),
                          Layer(b, sb.out_chs, 1))
            group.append(Unit(layers, sb.out_chs, stride, has_se=arch.block == "k1dwsek1"))
        out.append(group)
    if arch.final_conv is not None:
        f = arch.final_conv
        out.append([Unit((Layer(arch.stages[-1].out_chs, f.out_chs, f.kernel_size, f.stride),),
                         f.out_chs, f.stride)])
    return out


@dataclass(frozen=True)
class Evaluation:
    """Scores and costs of one architecture at one resolution."""

    entropy: float
    depth_penalty: float
    score: float
    rho: float
    stage_entropy: tuple[float, ...]
    stage_rho: tuple[float, ...]
    stage_channels: tuple[int, ...]
    stage_resolution: tuple[int, ...]
    macs: int
    params: int = field(metadata={"doc": "without the classifier"})
    classifier_params: int
    layers: int
    tinynas_flops: float = field(metadata={"doc": "TinyNAS's cost (see tinynas_flops)"})

    @property
    def params_total(self) -> int:
        return self.params + self.classifier_params


def _out_res(r: int, k: int, s: int) -> int:
    return (r + 2 * ((k - 1) // 2) - k) // s + 1


def evaluate(arch: Arch, resolution: int, *, tinynas_compat: bool = False,
             stage_weights: Sequence[float] = STAGE_WEIGHTS, depth_penalty: float = DEPTH_PENALTY,
             num_classes: int = 1000, in_chans: int = 3) -> Evaluation:
    """DeepMAD entropy, depth penalty, score and rho of ``arch`` at ``resolution`` (square),
    with its exact MACs and parameter count (see the module docstring)."""
    groups = units(arch, in_chans)
    blocks_stride = [g[0].stride for g in groups]
    ends = [i - 1 for i in range(1, len(groups)) if blocks_stride[i] == 2] + [len(groups) - 1]
    if len(ends) != len(stage_weights):
        raise ValueError(
            f"the network has {len(ends)} stages (cut at every stride-2 block after the stem) but "
            f"{len(stage_weights)} stage weights were given; DeepMAD's weights [1, 1, 1, 1, 8] "
            "need exactly 4 stride-2 super-blocks")
    # per TinyNAS block: cumulative entropy sum, layer count, output channels / resolution
    cum_s, cum_d, res_true, res_compat = 0.0, 0, resolution, resolution
    per_block = []
    for group in groups:
        for u in group:
            cum_s += u.entropy
            cum_d += len(u.layers)
            for layer in u.layers:
                res_true = _out_res(res_true, layer.kernel_size, layer.stride)
                res_compat = res_compat // layer.stride
            if u.has_se:
                res_compat = 1  # TinyNAS SE.get_output_resolution returns 1
        res = res_compat if tinynas_compat else res_true
        per_block.append((cum_s, cum_d, group[-1].out_chs, res))
    stage_h, stage_rho, chans, resos = [], [], [], []
    for w, e in zip(stage_weights, ends):
        s_sum, d, c, r = per_block[e]
        stage_h.append(w * (math.log(c) + math.log(r ** 2)) * s_sum)
        stage_rho.append(d / math.exp(2.0 * s_sum / d))  # sum log phi = 2 * sum s_u
        chans.append(c)
        resos.append(r)
    depths = [sb.depth for sb in arch.stages]
    if tinynas_compat and arch.block == "k1kxk1":
        depths = depths[2:]
    penalty = depth_penalty * math.exp(pstdev(depths)) if depths else 0.0
    entropy = float(sum(stage_h))
    return Evaluation(
        entropy=entropy, depth_penalty=penalty, score=entropy - penalty, rho=max(stage_rho),
        stage_entropy=tuple(stage_h), stage_rho=tuple(stage_rho), stage_channels=tuple(chans),
        stage_resolution=tuple(resos), macs=macs(arch, resolution, num_classes, in_chans),
        params=params(arch, in_chans),
        classifier_params=(arch.num_features + 1) * num_classes if num_classes > 0 else 0,
        layers=per_block[-1][1], tinynas_flops=tinynas_flops(arch, resolution, in_chans))


def macs(arch: Arch, resolution: int, num_classes: int = 1000, in_chans: int = 3) -> int:
    """Multiply-accumulates of one forward pass (convs incl. SE and shortcut projections, and the
    classifier), exactly as ``zoo.measure.count_macs`` counts them."""
    total, r = 0, resolution

    def conv(cin: int, cout: int, k: int, s: int, g: int, r_in: int) -> tuple[int, int]:
        r_out = _out_res(r_in, k, s)
        return r_out * r_out * cout * (cin // g) * k * k, r_out

    s = arch.stem
    m, r = conv(in_chans, s.out_chs, s.kernel_size, s.stride, 1, r)
    total += m
    for sb in arch.stages:
        b, k = sb.btn_chs, sb.kernel_size
        for i in range(sb.depth):
            cin, stride = (sb.in_chs, sb.stride) if i == 0 else (sb.out_chs, 1)
            m1, _ = conv(cin, b, 1, 1, 1, r)
            dw = arch.block == "k1dwsek1"
            m2, r2 = conv(b, b, k, stride, b if dw else 1, r)
            m3, _ = conv(b, sb.out_chs, 1, 1, 1, r2)
            total += m1 + m2 + m3
            if dw:
                total += 2 * b * se_channels(b, arch.se_ratio, arch.se_divisor)
            elif i == 0 or cin != sb.out_chs:
                total += r2 * r2 * cin * sb.out_chs  # 1x1 projection after the avg-pool
            r = r2
    if arch.final_conv is not None:
        f = arch.final_conv
        m, r = conv(arch.stages[-1].out_chs, f.out_chs, f.kernel_size, f.stride, 1, r)
        total += m
    return total + arch.num_features * num_classes


def tinynas_flops(arch: Arch, resolution: int, in_chans: int = 3) -> float:
    """TinyNAS's cost of ``arch`` at ``resolution``, as ``CnnNet.get_flops(resolution)`` computes
    it from its blocks' ``flops`` fields (``blocks_basic.py``, ``super_res_k1kxk1.py``,
    ``super_res_k1dwsek1.py``): per conv ``c_in c_out k^2 / (g s^2) + 2 c_out / s^2`` (BN) per
    input pixel, ``+ c_out / s^2`` per ReLU and per projected shortcut's add, ``+ c_in`` for the
    avg-pool of a stride-2 shortcut; SE and the classifier are not counted; resolutions are
    divided, not floored."""

    def conv(cin: float, cout: float, k: int, s: int = 1, g: float = 1.0) -> float:
        return (cin * cout * k * k / g + 2 * cout) / s ** 2  # ConvKXBN

    st = arch.stem
    r = float(resolution)
    total = r * r * (conv(in_chans, st.out_chs, st.kernel_size, st.stride)
                     + st.out_chs / st.stride ** 2)  # ConvKXBNRELU
    r /= st.stride
    dw = arch.block == "k1dwsek1"
    for sb in arch.stages:
        b, c, k = sb.btn_chs, sb.out_chs, sb.kernel_size
        for i in range(sb.depth):
            cin, s = (sb.in_chs, sb.stride) if i == 0 else (c, 1)
            f = (conv(cin, b, 1) + conv(b, b, k, s, b if dw else 1) + conv(b, c, 1) / s ** 2
                 + b + b / s ** 2 + c / s ** 2)  # three ConvKXBN, three ReLUs
            # k1kxk1: a shortcut everywhere, projected where widths differ and on every
            # super-block's first block (force_resproj); k1dwsek1: identity shortcut only
            shortcut = not dw or cin == c
            if not dw and (i == 0 or cin != c):
                f += conv(cin, c, 1) / s ** 2 + c / s ** 2  # projection + its add
            if shortcut and s == 2:
                f += cin
            total += r * r * f
            r /= s
    if arch.final_conv is not None:
        fc = arch.final_conv
        total += r * r * (conv(arch.stages[-1].out_chs, fc.out_chs, fc.kernel_size, fc.stride)
                          + fc.out_chs / fc.stride ** 2)
    return total


def params(arch: Arch, in_chans: int = 3) -> int:
    """Parameters without the classifier (conv weights and BN affine parameters)."""

    def conv_bn(cin: int, cout: int, k: int, g: int = 1) -> int:
        return cout * (cin // g) * k * k + 2 * cout

    s = arch.stem
    total = conv_bn(in_chans, s.out_chs, s.kernel_size)
    for sb in arch.stages:
        b, k = sb.btn_chs, sb.kernel_size
        for i in range(sb.depth):
            cin = sb.in_chs if i == 0 else sb.out_chs
            if arch.block == "k1dwsek1":
                se = se_channels(b, arch.se_ratio, arch.se_divisor)
                total += conv_bn(cin, b, 1) + conv_bn(b, b, k, b) + conv_bn(b, se, 1) \
                    + conv_bn(se, b, 1) + conv_bn(b, sb.out_chs, 1)
            else:
                total += conv_bn(cin, b, 1) + conv_bn(b, b, k) + conv_bn(b, sb.out_chs, 1)
                if i == 0 or cin != sb.out_chs:
                    total += conv_bn(cin, sb.out_chs, 1)
    if arch.final_conv is not None:
        f = arch.final_conv
        total += conv_bn(arch.stages[-1].out_chs, f.out_chs, f.kernel_size)
    return total


__all__ = ["DEPTH_PENALTY", "STAGE_WEIGHTS", "Evaluation", "Layer", "Unit", "evaluate", "macs",
           "params", "tinynas_flops", "units"]
