"""Quantizers for quantization-aware models: LSQ and StatsQ, plus the learnable shift.

- :class:`LSQQuantizer` -- *Learned Step size Quantization* (Esser et al., ICLR 2020, arXiv
  1902.08153, Sec. 2): ``q(x) = round(clamp(x / s, Q_N, Q_P)) * s`` with a learnable step ``s``
  (one per slice along one axis, or one per tensor) and the gradient scale ``g = 1/sqrt(Q_P *
  n)`` of Sec. 2.2 (``n``: elements per step).  Used for activations and 8-bit weights.
- :class:`StatsQuantizer` -- OFQ's *statistical weight quantization* (Liu, Liu & Cheng, ICML
  2023, arXiv 2302.02210, Sec. 4.1): the scale of each weight row is the statistic
  ``2 * mean|W_row|`` (never learned, so it cannot oscillate), and the levels form a zero-free
  half-integer grid ``(k + 1/2) / 2^(b-1)``, ``k in [-2^(b-1), 2^(b-1) - 1]``.
- :class:`LearnableBias` -- the learnable per-channel shift OFQ puts before and after each
  activation quantizer (from ReActNet's RSign/RPReLU shifts, arXiv 2003.03488, Sec. 3.2).

Every forward here gives the same result with and without autograd: the straight-through
estimators add an exact zero (``v.detach() + (g - g.detach())``) instead of the usual
``(v - x).detach() + x``, whose float rounding differs from ``v``.  That is what lets a deployed
model built from integer codes (:meth:`WeightQuantizer.codes` / :meth:`~WeightQuantizer.dequantize`)
reproduce the training-time forward bit for bit.

The quantizers are scriptable (TorchScript) and are graph leaves for ``torch.fx`` (timm's
``register_notrace_module``): their forward branches on the input's values in training (LSQ's
sign detection) and computes gradient scales from its size, which a symbolic trace cannot follow.
"""
import math
from typing import Optional, Tuple, Union

import torch
from timm.layers import register_notrace_module
from torch import nn

__all__ = ["LSQQuantizer", "LSQWeightQuantizer", "StatsQuantizer", "LearnableBias", "WeightQuantizer",
           "lsq_bounds", "round_ste", "grad_scale", "LSQ_EPS", "statsq_dequantize", "lsq_dequantize",
           "dequantize_weight", "weight_code_range", "make_weight_quantizer"]

#: LSQ clamps its step from below at float32(1e-5) (upstream ``clip(alpha, 1e-5)``).
LSQ_EPS = float(torch.tensor(1e-5, dtype=torch.float32, device="cpu"))


def _needs_grad(t: torch.Tensor) -> bool:
    return torch.is_grad_enabled() and t.requires_grad


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """``round(x)`` (half to even) in the forward, identity gradient (straight-through)."""
    y = torch.round(x)
    if not _needs_grad(x):
        return y
    return y.detach() + (x - x.detach())


def grad_scale(x: torch.Tensor, scale: float) -> torch.Tensor:
    """``x`` in the forward, gradient multiplied by ``scale`` (LSQ Sec. 2.2)."""
    if not _needs_grad(x):
        return x
    xs = x * scale
    return x.detach() + (xs - xs.detach())


def _clip_step(alpha: torch.Tensor, eps: float = LSQ_EPS) -> torch.Tensor:
    """``max(alpha, eps)`` in the forward, identity gradient to ``alpha`` (upstream ``clip``)."""
    clipped = alpha.clamp_min(eps)
    if not _needs_grad(alpha):
        return clipped
    return clipped.detach() + (alpha - alpha.detach())


def lsq_bounds(bits: int, signed: bool) -> Tuple[int, int]:
    """Integer range ``(Q_N, Q_P)`` of a ``bits``-bit LSQ quantizer (LSQ Sec. 2)."""
    if signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def _check_bits(bits: int) -> None:  # noqa: D103
    if not isinstance(bits, int) or not 2 <= bits <= 8:
        raise ValueError(f"quantizer bits must be an integer in 2..8, got {bits!r}")


@register_notrace_module
class LSQQuantizer(nn.Module):
    """LSQ fake-quantizer with one learnable step per slice of axis ``dim`` (or per tensor).

    Args:
        bits: bit width (2..8).
        signed: range ``[-2^(b-1), 2^(b-1)-1]``; unsigned ``[0, 2^b-1]``.  With
            ``signed="buffer"`` the choice is a persistent 0/1 buffer ``signed`` instead (upstream
            ``LsqQuantizer4img``): it starts at 0 and a training-mode forward that sees a value
            below ``-1e-5`` sets it to 1 for good.  At inference it is read, never changed.
        num_steps: number of steps ``s`` (1 = per tensor).
        dim: the axis of the input the steps run along (ignored when ``num_steps == 1``), e.g.
            ``-2`` for one step per token of a ``(B, N, C)`` input.

    The steps are created at build time with their final shape, so checkpoints load strictly;
    they are never re-initialized from data here (see :meth:`init_from_data` for training).
    """

    buffer_signed: torch.jit.Final[bool]
    fixed_signed: torch.jit.Final[bool]

    def __init__(self, bits: int, *, signed: Union[bool, str] = True, num_steps: int = 1,
                 dim: Optional[int] = None) -> None:
        super().__init__()
        _check_bits(bits)
        if num_steps > 1 and dim is None:
            raise ValueError("LSQQuantizer: a per-slice step needs `dim`")
        if signed not in (True, False, "buffer"):
            raise ValueError(f"LSQQuantizer: signed must be True, False or 'buffer', got {signed!r}")
        self.bits = bits
        self.dim = dim if num_steps > 1 else None
        self.signed_mode = signed
        self.buffer_signed = signed == "buffer"
        self.fixed_signed = signed is True
        self.s = nn.Parameter(torch.ones(num_steps))
        if signed == "buffer":
            self.register_buffer("signed", torch.zeros(1))
            self.signed: torch.Tensor

    # -- range ---------------------------------------------------------------------------------
    def _buffer_bounds(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Tensor bounds of ``signed="buffer"`` (no host sync): signed -> [-2^(b-1), 2^(b-1)-1],
        else [0, 2^b-1]."""
        sgn = self.signed.to(x.dtype)
        half = 1 << (self.bits - 1)
        return -half * sgn, (half - 1) * sgn + ((1 << self.bits) - 1) * (1 - sgn)

    @torch.jit.ignore
    def _bounds(self, x: torch.Tensor) -> Tuple[Union[torch.Tensor, int], Union[torch.Tensor, int]]:
        if self.buffer_signed:
            return self._buffer_bounds(x)
        return lsq_bounds(self.bits, self.fixed_signed)

    def is_signed(self) -> bool:
        if self.buffer_signed:
            if self.signed.device.type == "meta":  # shapes only: any answer will do
                return True
            return bool(self.signed.item() != 0)
        return self.fixed_signed

    def _step_view(self, x: torch.Tensor) -> torch.Tensor:
        d = self.dim
        if d is None:
            return self.s
        dim = d % x.dim()
        if x.shape[dim] != self.s.numel() and not torch.jit.is_scripting():
            raise ValueError(f"LSQQuantizer has {self.s.numel()} steps along dim {self.dim}, but "
                             f"the input has {x.shape[dim]} there (shape {tuple(x.shape)})")
        shape = [1] * x.dim()
        shape[dim] = -1
        return self.s.view(shape)

    # -- forward -------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.buffer_signed and self.training and x.device.type != "meta":
            with torch.no_grad():
                if bool(x.min() < -1e-5):
                    self.signed.fill_(1.0)
        step = _clip_step(self._step_view(x))
        if self.buffer_signed:
            lo, hi = self._buffer_bounds(x)
            if _needs_grad(step):  # Q_P is the tensor bound: no host sync, traceable
                per_step = float(x.numel() / self.s.numel())
                scale = (1.0 / torch.sqrt(hi.to(torch.float64) * per_step)).to(step.dtype)
                scaled = step * scale.squeeze()  # grad_scale with a tensor factor
                step = step.detach() + (scaled - scaled.detach())
            return round_ste(torch.clamp(x / step, lo, hi)) * step
        if _needs_grad(step):
            q_p = lsq_bounds(self.bits, self.fixed_signed)[1]
            step = grad_scale(step, 1.0 / math.sqrt(q_p * x.numel() / self.s.numel()))
        lo_i, hi_i = lsq_bounds(self.bits, self.fixed_signed)
        return round_ste(torch.clamp(x / step, lo_i, hi_i)) * step

    @torch.jit.ignore
    def codes(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Integer codes ``round(clamp(x / s))`` (as floats) and the effective steps, broadcastable."""
        lo, hi = self._bounds(x)
        step = self._step_view(x).detach().clamp_min(LSQ_EPS)
        return torch.round(torch.clamp(x.detach() / step, lo, hi)), step

    @torch.jit.ignore
    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor) -> None:
        """LSQ's data-driven initialization ``s = 2 <|x|> / sqrt(Q_P)`` (``4 <|x|>`` unsigned),
        the mean taken over every axis but ``dim`` -- what upstream does on its first forward.
        A training tool (calibration); inference never calls it."""
        if self.signed_mode == "buffer" and x.min() < -1e-5:
            self.signed.fill_(1.0)
        signed = self.is_signed()
        q_p = lsq_bounds(self.bits, signed)[1]
        a = x.detach().abs()
        if self.dim is None:
            mean = a.mean().reshape(1)
        else:
            dim = self.dim % x.ndim
            mean = a.transpose(0, dim).reshape(x.shape[dim], -1).mean(dim=1)
        self.s.copy_((2.0 if signed else 4.0) * mean / q_p ** 0.5)

    def extra_repr(self) -> str:
        signed = "buffer" if self.signed_mode == "buffer" else self.signed_mode
        return f"bits={self.bits}, signed={signed}, steps={self.s.numel()}, dim={self.dim}"


def statsq_dequantize(k: torch.Tensor, scale: torch.Tensor, bits: int) -> torch.Tensor:
    """StatsQ level of code ``k``: ``scale * (k + 1/2) / 2^(b-1)`` (OFQ Sec. 4.1)."""
    return scale * ((k + 0.5) / float(2 ** (bits - 1)))


def lsq_dequantize(k: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """LSQ level of code ``k``: ``k * s``."""
    return k * scale


def weight_code_range(kind: str, bits: int) -> Tuple[int, int]:
    """Smallest and largest integer code of a ``kind`` weight quantizer at ``bits`` bits."""
    if kind not in ("statsq", "lsq"):
        raise ValueError(f"unknown weight quantizer {kind!r}")
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def dequantize_weight(kind: str, bits: int, k: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """The weight a ``kind`` quantizer gives for codes ``k`` and per-row ``scale``."""
    if kind == "statsq":
        return statsq_dequantize(k, scale, bits)
    if kind == "lsq":
        return lsq_dequantize(k, scale)
    raise ValueError("unknown weight quantizer '" + kind + "'")


def make_weight_quantizer(kind: str, bits: int, out_features: int) -> "WeightQuantizer":
    """A ``statsq`` or ``lsq`` weight quantizer for a weight with ``out_features`` rows."""
    if kind == "statsq":
        return StatsQuantizer(bits)
    if kind == "lsq":
        return LSQWeightQuantizer(bits, out_features)
    raise ValueError(f"unknown weight quantizer {kind!r}")


class WeightQuantizer(nn.Module):  # noqa: B024 (interface)
    """Interface of a per-output-row weight quantizer (row = first axis of the weight).

    ``forward(w)`` is the fake-quantized weight; ``codes(w)`` gives integer codes ``k`` (as a
    float tensor) and the per-row scales; ``dequantize(k, scale)`` rebuilds exactly ``forward(w)``
    from them (the deployable form stores only ``k`` and ``scale``).
    """

    kind: str
    bits: int

    def code_range(self) -> Tuple[int, int]:
        raise NotImplementedError

    def codes(self, w: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def dequantize(self, k: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


@register_notrace_module
class StatsQuantizer(WeightQuantizer):
    """OFQ StatsQ (Sec. 4.1), per output row ``i`` of ``W`` (any rank; rows = axis 0):

        s_i = 2 * mean_j |W_ij|,   k = round(clamp(W / s_i, -c/2, c/2 - 1e-6) * 2^(b-1) - 1/2),
        Q(W) = s_i * (k + 1/2) / 2^(b-1),     k in [-2^(b-1), 2^(b-1) - 1]

    with ``c = clip_val = 2`` (upstream's frozen parameter; here a buffer under the same key, so
    checkpoints load unchanged and every parameter of the model trains), so the levels are the
    zero-free half-integer grid.  ``round`` is half-to-even: weights clamped
    to ``-c/2`` land on ``-2^(b-1) - 1/2`` and round to ``-2^(b-1)``.  The gradient to ``W`` is
    the identity (straight-through, upstream's ``q - w.detach() + w``); ``s`` is detached.
    """

    kind = "statsq"
    #: upstream's clip_val is a frozen nn.Parameter (zoo.measure.count_params(as_original=True))
    original_parameter_buffers = ("clip_val",)

    def __init__(self, bits: int) -> None:
        super().__init__()
        _check_bits(bits)
        self.bits = bits
        self.register_buffer("clip_val", torch.tensor([2.0]))
        self.clip_val: torch.Tensor

    def code_range(self) -> Tuple[int, int]:
        return weight_code_range("statsq", self.bits)

    def _scale(self, w: torch.Tensor) -> torch.Tensor:
        rows = w.detach().abs().reshape(w.shape[0], -1) if w.dim() != 2 else w.detach().abs()
        return (2 * torch.mean(rows, dim=1, keepdim=True)).reshape([-1] + [1] * (w.dim() - 1))

    def codes(self, w: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        scale = self._scale(w)
        n = float(2 ** (self.bits - 1))
        clipped = torch.clamp(w.detach() / scale, min=-self.clip_val / 2, max=self.clip_val / 2 - 1e-6)
        return torch.round(clipped * n - 0.5), scale

    def dequantize(self, k: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return statsq_dequantize(k, scale, self.bits)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        k, scale = self.codes(w)
        q = self.dequantize(k, scale)
        if not _needs_grad(w):
            return q
        return q + (w - w.detach())

    def extra_repr(self) -> str:
        return f"bits={self.bits}"


@register_notrace_module
class LSQWeightQuantizer(LSQQuantizer, WeightQuantizer):
    """LSQ for weights: one learnable step per output row, signed range (upstream
    ``LsqQuantizerWeight`` / ``LsqQuantizer4Conv2d``): ``Q(W) = round(clamp(W / s_i)) * s_i``."""

    kind = "lsq"

    def __init__(self, bits: int, out_features: int) -> None:
        super().__init__(bits, signed=True, num_steps=out_features, dim=0)
        self.dim = 0  # per row even for a single row

    def code_range(self) -> Tuple[int, int]:
        return weight_code_range("lsq", self.bits)

    def dequantize(self, k: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return lsq_dequantize(k, scale)

    @torch.no_grad()
    def init_from_weight(self, w: torch.Tensor) -> None:
        """LSQ's initialization from the weight itself, ``s_i = 2 <|W_i|> / sqrt(Q_P)``."""
        self.init_from_data(w)


class LearnableBias(nn.Module):
    """A learnable shift added to the input, broadcast over the trailing ``shape`` (ReActNet
    Sec. 3.2; OFQ puts one before and one after every activation quantizer).  Zero-initialized."""

    def __init__(self, *shape: int) -> None:
        super().__init__()
        self.shape = shape
        self.bias = nn.Parameter(torch.zeros(math.prod(shape)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bias.view(self.shape).expand_as(x)

    def extra_repr(self) -> str:
        return "x".join(map(str, self.shape))
