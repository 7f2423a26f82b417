"""Padding conventions of convolutions and pools: TF "SAME" and PyTorch's symmetric padding.

TF "SAME" gives ``ceil(n / stride)`` outputs and pads ``total = (out - 1) * stride +
dilation * (k - 1) + 1 - n`` pixels, ``total // 2`` before and the rest after: with stride 2 and
an even input that is asymmetric, which symmetric PyTorch padding cannot express.  Convolutions
and max pools reuse timm's dynamic-padding layers (``create_conv2d``/``create_pool2d`` with
``padding='same'``); TF's average pool excludes the padding from each window's count, which
timm's ``AvgPool2dSame`` does not (it averages over the zero padding), so it is here:
:class:`AvgPool2dTfSame`.

Conventions (``mode``):

- ``tf_same``: exact TF "SAME" for every conv and pool;
- ``tf_same_count_pad``: like ``tf_same`` but strided average pools count the zero padding
  (timm's ``AvgPool2dSame``);
- ``symmetric``: PyTorch padding ``((stride - 1) + dilation * (k - 1)) // 2`` on both sides,
  average pools excluding the padding.
"""
from typing import Literal

import torch
import torch.nn.functional as F
from timm.layers import create_conv2d, create_pool2d, register_notrace_module
from timm.layers.padding import is_static_pad, pad_same_arg
from torch import nn

PaddingMode = Literal["tf_same", "tf_same_count_pad", "symmetric"]
PADDING_MODES: tuple[str, ...] = ("tf_same", "tf_same_count_pad", "symmetric")


def _check(mode: str) -> None:
    if mode not in PADDING_MODES:
        raise ValueError(f"unknown padding mode {mode!r}; known: {', '.join(PADDING_MODES)}")


def conv2d(in_chs: int, out_chs: int, kernel_size: int, *, stride: int = 1, dilation: int = 1,
           groups: int = 1, mode: PaddingMode = "symmetric", bias: bool = False) -> nn.Module:
    """A Conv2d padded per ``mode`` (TF "SAME" pads dynamically only where it must)."""
    _check(mode)
    return create_conv2d(in_chs, out_chs, kernel_size, stride=stride, dilation=dilation,
                         groups=groups, bias=bias, padding="same" if mode != "symmetric" else "")


@register_notrace_module  # a torch.fx leaf, as timm's own *Same layers: padding from the size
class AvgPool2dTfSame(nn.Module):
    """Average pooling with TF "SAME" padding whose windows average over real pixels only."""

    def __init__(self, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = [self.kernel_size, self.kernel_size], [self.stride, self.stride]
        pads = pad_same_arg([x.shape[-2], x.shape[-1]], k, s)
        if pads[0] == 0 and pads[1] == 0 and pads[2] == 0 and pads[3] == 0:
            return F.avg_pool2d(x, k, s)
        total = F.avg_pool2d(F.pad(x, pads), k, s, divisor_override=1)
        ones = torch.ones((1, 1, x.shape[-2], x.shape[-1]), dtype=x.dtype, device=x.device)
        count = F.avg_pool2d(F.pad(ones, pads), k, s, divisor_override=1)
        return total / count

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


def pool2d(kind: Literal["avg", "max"], kernel_size: int, *, stride: int = 1,
           mode: PaddingMode = "symmetric") -> nn.Module:
    """A max/average pool padded per ``mode``; output size ``ceil(n / stride)`` for odd kernels."""
    _check(mode)
    if kind not in ("avg", "max"):
        raise ValueError(f"pool kind must be 'avg' or 'max', not {kind!r}")
    if mode == "symmetric" or is_static_pad(kernel_size, stride):
        pad = ((stride - 1) + (kernel_size - 1)) // 2
        if kind == "max":
            return nn.MaxPool2d(kernel_size, stride, padding=pad)
        return nn.AvgPool2d(kernel_size, stride, padding=pad, count_include_pad=False)
    if kind == "avg" and mode == "tf_same":
        return AvgPool2dTfSame(kernel_size, stride)
    if kind == "max":
        return create_pool2d("max", kernel_size, stride, padding="same")
    return create_pool2d("avg", kernel_size, stride, padding="same", count_include_pad=False)
