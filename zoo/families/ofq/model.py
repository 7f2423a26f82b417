"""OFQ quantized DeiT (Liu, Liu & Cheng, "Oscillation-free Quantization for Low-bit Vision
Transformers", ICML 2023, arXiv 2302.02210; code https://github.com/nbasyl/OFQ).

A distilled DeiT whose modules named by the spec's ``quantization.rules`` are replaced by
quantized ones (upstream ``replace_module_by_qmodule_deit`` with ``qk_reparam_type=0``):

- :class:`QuantConv2d` (patch embedding; upstream ``LSQ_QConv2d``) and :class:`QuantLinear`
  (attention output projection, MLP, heads; upstream ``QLinear`` / ``LSQ_QLinear4head``):
  weights through a StatsQ (Sec. 4.1) or LSQ quantizer, input through ``shift -> LSQ -> shift``;
- :class:`QKRAttention` (Sec. 4.3, query-key reparameterization; upstream
  ``QAttention_qkreparam``): the per-head product ``W_qk^h = W_q^h^T W_k^h`` is quantized as one
  ``(heads*C, C)`` matrix, the scores are ``x Q(W_qk^h) x^T`` with ``Q(W_qk^h) x`` quantized per
  (token, head) and ``x`` per token; q/k biases are dropped, the value bias kept; softmax
  probabilities are quantized unsigned per query token, values per channel;
- LayerNorm, tokens, positional embedding, biases, softmax and GELU stay full precision; at
  inference the output is the mean of the class-token and distillation-token heads.

The state dict keeps upstream's key layout (so :func:`convert` only unwraps).  All LSQ steps
exist from construction with their final shapes (loading is strict) and are never initialized
from data at inference (:func:`calibrate_` does upstream's data-driven initialization, for
training only).

Deployable form: :meth:`OFQDeiT.packed_state_dict` stores each quantized weight as packed integer
codes (``bits`` bits each, :mod:`.packing`) plus one scale per row; :func:`load_packed` builds the
model around them.  Its forward is bit-identical to the latent-weight model's: both compute the
weight as ``dequantize(codes, scale)`` with the same operations.  In eval mode the quantized
weights are computed once and cached (keyed on the tensors' storage and version counters;
``train()``/``eval()`` clear the cache) instead of being re-quantized on every forward.
"""
import math
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Optional, Tuple

import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp, PatchEmbed, trunc_normal_
from timm.models.vision_transformer import Attention
from torch import nn
from torch.fx._symbolic_trace import is_fx_symbolic_tracing

from zoo.families.contract import FamilyHooks
from zoo.loading import load_into, parameters_on_meta
from zoo.layers.quant import (LearnableBias, LSQQuantizer, LSQWeightQuantizer, StatsQuantizer,
                              WeightQuantizer, dequantize_weight, make_weight_quantizer,
                              weight_code_range)
from zoo.layers.vit_head import TokenHeadModel, check_global_pool, pool_tokens, vit_feature_info
from zoo.model import check_input_size, linear_or_identity, replace_module

torch.fx.wrap("check_input_size")  # a graph leaf wherever this module's code calls it

from .packing import pack_bits, packed_numel, unpack_bits
from .schema import Arch, QuantRule

__all__ = ["OFQDeiT", "QuantLinear", "QuantConv2d", "QKRAttention", "QuantMlp", "PackedWeight",
           "build", "convert", "load_packed", "quant_summary", "info", "calibrate_"]

_QUANTIZER_ATTR = {"statsq": "statsq_fn", "lsq": "lsqw_fn"}  # upstream attribute names


# --------------------------------------------------------------------------------------------
# cached quantized weights
# --------------------------------------------------------------------------------------------
class _CachedWeights(nn.Module):
    """Base of modules that turn stored tensors into quantized weights.

    ``_cached(name, sources, fn)`` returns ``fn()``, reusing the last result while the module is
    in eval mode, autograd does not need a graph, and every source tensor is still the same
    storage at the same version (in-place updates bump the version; ``p.data = ...`` swaps the
    storage).  Writes through ``p.data`` bypass the version counter: call ``eval()`` again after
    such edits.
    """

    def __init__(self) -> None:
        super().__init__()
        self._qcache: Dict[str, Tuple[List[Tuple[torch.Tensor, int]], torch.Tensor]] = {}

    @torch.jit.ignore
    def _cached(self, name: str, sources: Iterable[torch.Tensor],
                fn: Callable[[], torch.Tensor]) -> torch.Tensor:
        if is_fx_symbolic_tracing() or torch.compiler.is_compiling() or torch.compiler.is_exporting():
            return fn()  # traced/compiled graphs recompute (they cannot hold this cache)
        sources = list(sources)
        if self.training or any(t.is_meta for t in sources) or (
                torch.is_grad_enabled() and any(t.requires_grad for t in sources)):
            return fn()
        try:
            key = [(t.detach(), t._version) for t in sources]
        except RuntimeError:  # inference tensors have no version counter
            return fn()
        hit = self._qcache.get(name)
        if hit is not None and len(hit[0]) == len(key) and all(
                a.data_ptr() == b.data_ptr() and a.dtype == b.dtype and a.device == b.device
                and a.shape == b.shape and va == vb for (a, va), (b, vb) in zip(hit[0], key)):
            return hit[1]
        value = fn()
        self._qcache[name] = (key, value)
        return value

    def clear_quant_cache(self) -> None:
        self._qcache.clear()

    def train(self, mode: bool = True):
        self._qcache.clear()
        return super().train(mode)

    def __getstate__(self) -> Dict[str, Any]:  # copies and pickles never carry the cache
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__
        state = dict(state)
        state["_qcache"] = {}
        return state


class PackedWeight(_CachedWeights):
    """A deployed quantized weight: ``codes`` (``bits``-bit unsigned codes ``k - k_min``, bit
    packed into uint8) and one ``scale`` per row; ``forward()`` returns the weight."""

    def __init__(self, kind: str, bits: int, shape: Tuple[int, ...]) -> None:
        super().__init__()
        self.kind, self.bits, self.shape = kind, bits, tuple(shape)
        self.k_min = weight_code_range(kind, bits)[0]
        self.register_buffer("codes", torch.zeros(packed_numel(math.prod(shape), bits),
                                                  dtype=torch.uint8))
        self.register_buffer("scale", torch.ones(shape[0]))
        self.codes: torch.Tensor
        self.scale: torch.Tensor

    @staticmethod
    def pack(kind: str, bits: int, k: torch.Tensor, scale: torch.Tensor) -> Dict[str, torch.Tensor]:
        """State of a PackedWeight from integer codes ``k`` and (broadcastable) per-row scales."""
        k_min = weight_code_range(kind, bits)[0]
        return {"codes": pack_bits(k - k_min, bits),
                "scale": scale.detach().reshape(-1).clone()}

    def _dequantize(self) -> torch.Tensor:
        numel = 1
        for d in self.shape:
            numel *= d
        k = unpack_bits(self.codes, self.bits, numel) + self.k_min
        k = k.to(self.scale.dtype).view(self.shape)
        scale = self.scale.view([-1] + [1] * (len(self.shape) - 1))
        return dequantize_weight(self.kind, self.bits, k, scale)

    def forward(self) -> torch.Tensor:
        if torch.jit.is_scripting():
            w = self._dequantize()
        elif self.codes.is_meta:
            w = torch.empty(self.shape, dtype=self.scale.dtype, device="meta")
        else:
            w = self._cached("w", [self.codes, self.scale], self._dequantize)
        return w

    def extra_repr(self) -> str:
        return f"{self.kind}, bits={self.bits}, shape={self.shape}"


class _QuantWeightLayer(_CachedWeights):
    """A layer with one quantized weight: latent (``weight`` + ``statsq_fn``/``lsqw_fn``) or
    packed (``weight_q``), plus the OFQ input path ``move_b4 -> LSQ -> move_aft``."""

    if TYPE_CHECKING:  # for the type checker only (never run, so TorchScript does not see them)
        statsq_fn: StatsQuantizer  # the latent weight's quantizer: one of the two, by weight_kind
        lsqw_fn: LSQWeightQuantizer
        input_quant_fn: LSQQuantizer  # the input path, set by the subclasses
        move_b4: LearnableBias
        move_aft: LearnableBias

    def _init_weight(self, shape: Tuple[int, ...], rule: QuantRule, packed: bool) -> None:
        self.weight_kind, self.weight_bits, self.act_bits = (rule.weight.quantizer, rule.weight.bits,
                                                             rule.act.bits)
        self.packed = packed
        self.weight_shape = shape
        if packed:
            self.weight_q = PackedWeight(self.weight_kind, self.weight_bits, shape)
        else:
            self.weight = nn.Parameter(torch.empty(shape))
            setattr(self, _QUANTIZER_ATTR[self.weight_kind],
                    make_weight_quantizer(self.weight_kind, self.weight_bits, shape[0]))
        self.bias = nn.Parameter(torch.zeros(shape[0]))

    __jit_unused_properties__ = ["weight_quantizer"]

    @property
    def weight_quantizer(self) -> WeightQuantizer:
        return getattr(self, _QUANTIZER_ATTR[self.weight_kind])

    def _quantize(self) -> torch.Tensor:
        """The weight as the forward uses it (``hasattr`` picks the form; TorchScript evaluates
        it when compiling, so only the present modules are compiled)."""
        if hasattr(self, "weight_q"):
            w = self.weight_q()
        elif hasattr(self, "statsq_fn"):
            w = self.statsq_fn(self.weight)
        else:
            w = self.lsqw_fn(self.weight)
        return w

    def quantized_weight(self) -> torch.Tensor:
        if torch.jit.is_scripting():
            w = self._quantize()
        elif self.packed:
            w = self.weight_q()
        else:
            w = self._cached("w", [self.weight], self._quantize)
        return w

    @torch.jit.ignore
    def pack(self) -> Tuple[List[str], Dict[str, torch.Tensor]]:
        """(latent keys this layer drops, packed entries it adds), relative to the layer."""
        quantizer = self.weight_quantizer
        k, scale = quantizer.codes(self.weight)
        attr = _QUANTIZER_ATTR[self.weight_kind]
        dropped = ["weight", *(f"{attr}.{n}" for n in quantizer.state_dict())]
        added = {f"weight_q.{n}": t for n, t in
                 PackedWeight.pack(self.weight_kind, self.weight_bits, k, scale).items()}
        return dropped, added

    def _reset_quantizers(self) -> None:
        if not self.packed and isinstance(self.weight_quantizer, LSQWeightQuantizer):
            self.weight_quantizer.init_from_weight(self.weight)
        with torch.no_grad():
            if not self.packed and isinstance(self.weight_quantizer, StatsQuantizer):
                self.weight_quantizer.clip_val.fill_(2.0)
            self.input_quant_fn.s.fill_(1.0)
            self.move_b4.bias.zero_()
            self.move_aft.bias.zero_()

    def _quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        return self.move_aft(self.input_quant_fn(self.move_b4(x)))


class QuantLinear(_QuantWeightLayer):
    """OFQ quantized linear layer (upstream ``QLinear``; ``LSQ_QLinear4head`` for the heads).

    ``y = Q_a(x + b_1) + b_2`` then ``y Q_w(W)^T + bias``.  ``Q_a`` is LSQ with one step per token
    (``num_tokens`` steps; "per channel" in upstream's flags means per token of ``(B, N, C)``) or
    per tensor (``num_tokens=None``, the heads); ``signed=False`` for the input of ``fc2`` (after
    GELU).
    """

    def __init__(self, in_features: int, out_features: int, rule: QuantRule, *,
                 num_tokens: Optional[int], signed: bool = True, packed: bool = False) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self._init_weight((out_features, in_features), rule, packed)
        self.input_quant_fn = LSQQuantizer(rule.act.bits, signed=signed,
                                           num_steps=num_tokens or 1,
                                           dim=-2 if num_tokens else None)
        self.move_b4 = LearnableBias(in_features)
        self.move_aft = LearnableBias(in_features)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if not self.packed:
            trunc_normal_(self.weight, std=0.02)
        nn.init.zeros_(self.bias)
        self._reset_quantizers()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(self._quantize_input(x), self.quantized_weight())
        return out + self.bias

    def extra_repr(self) -> str:
        return (f"{self.in_features}, {self.out_features}, weight={self.weight_kind}/"
                f"{self.weight_bits}b, act=lsq/{self.act_bits}b, packed={self.packed}")


class QuantConv2d(_QuantWeightLayer):
    """OFQ quantized patch-embedding convolution (upstream ``LSQ_QConv2d``): the image goes through
    a per-pixel shift, LSQ with one step per input channel (signed once it has seen negative
    values: the ``signed`` buffer), and a second per-pixel shift; the kernel through the weight
    quantizer (upstream: 8-bit LSQ, one step per output channel)."""

    def __init__(self, in_chans: int, out_chans: int, kernel_size: int, img_size: int,
                 rule: QuantRule, *, packed: bool = False) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_chans, out_chans
        self.out_features = out_chans
        self.kernel_size = self.stride = (kernel_size, kernel_size)
        self._init_weight((out_chans, in_chans, kernel_size, kernel_size), rule, packed)
        self.input_quant_fn = LSQQuantizer(rule.act.bits, signed="buffer", num_steps=in_chans,
                                           dim=1)
        self.move_b4 = LearnableBias(img_size, img_size)
        self.move_aft = LearnableBias(img_size, img_size)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if not self.packed:
            nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        fan_in = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
        nn.init.uniform_(self.bias, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))
        self._reset_quantizers()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(self._quantize_input(x), self.quantized_weight(), self.bias,
                        stride=self.stride)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"weight={self.weight_kind}/{self.weight_bits}b, act=lsq/{self.act_bits}b, "
                f"packed={self.packed}")


class QuantMlp(nn.Module):
    """Transformer MLP with both linears quantized (upstream ``QMLP``); GELU in full precision.
    ``fc2``'s input quantizer is unsigned (post-GELU)."""

    def __init__(self, dim: int, hidden: int, rule: QuantRule, *, num_tokens: int,
                 drop: float = 0.0, packed: bool = False) -> None:
        super().__init__()
        self.fc1 = QuantLinear(dim, hidden, rule, num_tokens=num_tokens, packed=packed)
        self.act = nn.GELU()
        self.drop1 = nn.Dropout(drop)
        self.fc2 = QuantLinear(hidden, dim, rule, num_tokens=num_tokens, signed=False,
                               packed=packed)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))


class QKRAttention(_CachedWeights):
    """Self-attention with query-key reparameterization (OFQ Sec. 4.3, upstream
    ``QAttention_qkreparam``).

    With ``x_q`` the quantized input (per-token LSQ between two shifts):

    - values: ``v = Q_a(x_q Q_w(W_v)^T + b_v)`` (per-channel LSQ between shifts);
    - scores: ``A_h = x_q (Q_a(Q_w(W_qk)^h x_q^T))`` with ``W_qk^h = W_q^h^T W_k^h`` for every
      head ``h``, quantized as one ``(heads*C, C)`` matrix (one scale per row), and ``Q_a`` with one
      step per (token, head) between shifts of size ``heads*C``; q/k biases do not exist;
    - ``softmax(A_h / sqrt(C/heads))`` quantized unsigned with one step per query token, times v,
      then the quantized output projection.
    """

    def __init__(self, dim: int, num_heads: int, rule: QuantRule, *, num_tokens: int,
                 attn_drop: float = 0.0, proj_drop: float = 0.0, packed: bool = False) -> None:
        super().__init__()
        self.dim, self.num_heads, self.num_tokens = dim, num_heads, num_tokens
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.weight_kind, self.weight_bits = rule.weight.quantizer, rule.weight.bits
        self.act_bits = rule.act.bits
        self.packed = packed
        bits = rule.act.bits
        self.quant_x_4_qkv = _QuantInput(dim, bits, num_tokens)
        if packed:
            self.qk_q = PackedWeight(self.weight_kind, self.weight_bits, (num_heads * dim, dim))
            self.v_q = PackedWeight(self.weight_kind, self.weight_bits, (dim, dim))
            self.v_bias = nn.Parameter(torch.zeros(dim))
        else:
            self.q = nn.Linear(dim, dim, bias=False)
            self.k = nn.Linear(dim, dim, bias=False)
            self.v = nn.Linear(dim, dim)
            self.qk_quant = make_weight_quantizer(self.weight_kind, self.weight_bits,
                                                  num_heads * dim)
            self.v_quant = make_weight_quantizer(self.weight_kind, self.weight_bits, dim)
        self.proj = QuantLinear(dim, dim, rule, num_tokens=num_tokens, packed=packed)
        self.quan_a_qkx_fn = LSQQuantizer(bits, signed=True, num_steps=num_tokens * num_heads,
                                          dim=-2)
        self.quan_a_v_fn = LSQQuantizer(bits, signed=True, num_steps=dim, dim=-1)
        self.move_qkx_b4 = LearnableBias(num_heads * dim)
        self.move_qkx_aft = LearnableBias(num_heads * dim)
        self.move_v_b4 = LearnableBias(dim)
        self.move_v_aft = LearnableBias(dim)
        self.quan_a_softmax_fn = LSQQuantizer(bits, signed=False, num_steps=num_tokens, dim=-2)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj_drop = nn.Dropout(proj_drop)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if not self.packed:
            for lin in (self.q, self.k, self.v):
                trunc_normal_(lin.weight, std=0.02)
            nn.init.zeros_(self.v.bias)
            for quant, w in ((self.qk_quant, self.fused_qk()), (self.v_quant, self.v.weight)):
                if isinstance(quant, LSQWeightQuantizer):
                    quant.init_from_weight(w)
        else:
            nn.init.zeros_(self.v_bias)
        with torch.no_grad():
            for q in (self.quan_a_qkx_fn, self.quan_a_v_fn, self.quan_a_softmax_fn):
                q.s.fill_(1.0)
            for b in (self.move_qkx_b4, self.move_qkx_aft, self.move_v_b4, self.move_v_aft):
                b.bias.zero_()

    def fused_qk(self) -> torch.Tensor:
        """``W_qk``: per head ``W_q^h^T W_k^h`` (C x C), stacked to ``(heads*C, C)``."""
        h, d, c = self.num_heads, self.head_dim, self.dim
        wq = self.q.weight.reshape(h, d, c)
        wk = self.k.weight.reshape(h, d, c)
        return (wq.transpose(-2, -1) @ wk).reshape(h * c, c)

    def _quantize_qk(self) -> torch.Tensor:
        if hasattr(self, "qk_q"):
            w = self.qk_q()
        else:
            w = self.qk_quant(self.fused_qk())
        return w

    def _quantize_v(self) -> torch.Tensor:
        if hasattr(self, "v_q"):
            w = self.v_q()
        else:
            w = self.v_quant(self.v.weight)
        return w

    def quantized_weights(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(Q(W_qk), Q(W_v))``."""
        if torch.jit.is_scripting():
            qk, v = self._quantize_qk(), self._quantize_v()
        elif self.packed:
            qk, v = self.qk_q(), self.v_q()
        else:
            qk = self._cached("qk", [self.q.weight, self.k.weight], self._quantize_qk)
            v = self._cached("v", [self.v.weight], self._quantize_v)
        return qk, v

    def _value_bias(self) -> torch.Tensor:
        if hasattr(self, "v_bias"):
            b = self.v_bias
        else:
            b = self.v.bias
        return b

    __jit_unused_properties__ = ["value_bias"]

    @property
    def value_bias(self) -> torch.Tensor:
        return self._value_bias()

    @torch.jit.ignore
    def pack(self) -> Tuple[List[str], Dict[str, torch.Tensor]]:
        dropped = ["q.weight", "k.weight", "v.weight", "v.bias",
                   *(f"qk_quant.{n}" for n in self.qk_quant.state_dict()),
                   *(f"v_quant.{n}" for n in self.v_quant.state_dict())]
        added: Dict[str, torch.Tensor] = {"v_bias": self.v.bias.detach().clone()}
        for name, quant, w in (("qk_q", self.qk_quant, self.fused_qk()),
                               ("v_q", self.v_quant, self.v.weight)):
            k, scale = quant.codes(w)
            for n, t in PackedWeight.pack(self.weight_kind, self.weight_bits, k, scale).items():
                added[f"{name}.{n}"] = t
        return dropped, added

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        H = self.num_heads
        w_qk, w_v = self.quantized_weights()
        x = self.quant_x_4_qkv(x)
        v = F.linear(x, w_v) + self._value_bias()
        v = self.move_v_aft(self.quan_a_v_fn(self.move_v_b4(v)))
        v = v.reshape(B, N, H, C // H).transpose(1, 2)                    # B, H, N, C/H
        qkx = self.move_qkx_b4(F.linear(x, w_qk))                         # B, N, H*C: W_qk^h x_n
        qkx = self.quan_a_qkx_fn(qkx.reshape(B, N * H, C)).reshape(B, N, H * C)
        qkx = self.move_qkx_aft(qkx).reshape(B, N, H, C).permute(0, 2, 3, 1)  # B, H, C, N
        attn = (x.unsqueeze(1) @ qkx) * self.scale                       # B, H, N, N
        attn = self.quan_a_softmax_fn(attn.softmax(dim=-1))
        attn = self.attn_drop(attn)
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj_drop(self.proj(x))


class _QuantInput(nn.Module):
    """``shift -> per-token LSQ -> shift`` (upstream ``LSQ_input``)."""

    def __init__(self, dim: int, bits: int, num_tokens: int) -> None:
        super().__init__()
        self.input_quant_fn = LSQQuantizer(bits, signed=True, num_steps=num_tokens, dim=-2)
        self.move_b4 = LearnableBias(dim)
        self.move_aft = LearnableBias(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.move_aft(self.input_quant_fn(self.move_b4(x)))


class Block(nn.Module):
    """Pre-norm transformer block; ``attn``/``mlp`` quantized or full precision per the spec."""

    def __init__(self, arch: Arch, attn_rule: Optional[QuantRule],
                 mlp_rule: Optional[QuantRule], drop_path: float, packed: bool) -> None:
        super().__init__()
        dim, n = arch.embed_dim, arch.num_tokens
        self.norm1 = nn.LayerNorm(dim, eps=arch.norm_eps)
        if attn_rule is not None:
            self.attn: nn.Module = QKRAttention(dim, arch.num_heads, attn_rule, num_tokens=n,
                                                attn_drop=arch.attn_drop_rate,
                                                proj_drop=arch.drop_rate, packed=packed)
        else:
            self.attn = Attention(dim, arch.num_heads, qkv_bias=arch.qkv_bias,
                                  attn_drop=arch.attn_drop_rate, proj_drop=arch.drop_rate)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=arch.norm_eps)
        if mlp_rule is not None:
            self.mlp: nn.Module = QuantMlp(dim, arch.mlp_hidden, mlp_rule, num_tokens=n,
                                           drop=arch.drop_rate, packed=packed)
        else:
            self.mlp = Mlp(dim, arch.mlp_hidden, act_layer=nn.GELU, drop=arch.drop_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


# --------------------------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------------------------
class OFQDeiT(TokenHeadModel):
    """OFQ quantized (distilled) DeiT (arXiv 2302.02210 Sec. 4; base: DeiT arXiv 2012.12877).

    ``packed=True`` builds the deployable form (quantized weights as packed integer codes); use
    :func:`load_packed` to get one with weights.  timm ViT's feature API comes from
    :class:`~zoo.layers.vit_head.TokenHeadModel` (prefix tokens: class and distillation token).
    """

    def __init__(self, arch: Arch, num_classes: int = 1000, in_chans: int = 3, *,
                 packed: bool = False, name: str = "ofq_deit") -> None:
        super().__init__()
        self.arch, self.name, self.packed = arch, name, packed
        self.num_classes = num_classes
        self.num_features = self.head_hidden_size = self.embed_dim = arch.embed_dim
        self.in_chans = in_chans
        self.img_size = (arch.img_size, arch.img_size)
        self.global_pool = arch.global_pool
        self.num_prefix_tokens = 2 if arch.distilled else 1
        self.distilled_training = False
        self.feature_info = vit_feature_info(arch.depth, arch.embed_dim, arch.patch_size)
        self.rules = arch.quantized_modules()
        dim, img = arch.embed_dim, arch.img_size
        self.patch_embed = PatchEmbed(img_size=img, patch_size=arch.patch_size, in_chans=in_chans,
                                      embed_dim=dim)
        rule = self.rules.get("patch_embed.proj")
        if rule is not None:
            replace_module(self, "patch_embed.proj",
                           QuantConv2d(in_chans, dim, arch.patch_size, img, rule, packed=packed))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, dim)) if arch.distilled else None
        self.pos_embed = nn.Parameter(torch.zeros(1, arch.num_tokens, dim))
        self.pos_drop = nn.Dropout(arch.drop_rate)
        dpr = torch.linspace(0, arch.drop_path_rate, arch.depth, device="cpu").tolist()
        self.blocks = nn.Sequential(*[
            Block(arch, self.rules.get(f"blocks.{i}.attn"), self.rules.get(f"blocks.{i}.mlp"),
                  dpr[i], packed) for i in range(arch.depth)])
        self.norm = nn.LayerNorm(dim, eps=arch.norm_eps)
        self.fc_norm = nn.Identity()
        self.head = self._make_head("head", num_classes)
        self.head_dist = self._make_head("head_dist", num_classes) if arch.distilled else None
        self._check_paths()
        for t in (self.cls_token, self.dist_token, self.pos_embed):
            if t is not None:
                trunc_normal_(t, std=0.02)
        for m in self.modules():  # full-precision linears (the quantized ones init themselves)
            if isinstance(m, (Attention, Mlp)) or m is self.head or m is self.head_dist:
                for lin in m.modules():
                    if type(lin) is nn.Linear:
                        trunc_normal_(lin.weight, std=0.02)
                        if lin.bias is not None:
                            nn.init.zeros_(lin.bias)

    def _make_head(self, path: str, num_classes: int, parent: Optional[nn.Module] = None
                   ) -> nn.Module:
        """A (quantized, if the spec says so) head; with ``parent``, on its device, in its dtype
        and train/eval mode."""
        rule = self.rules.get(path)
        if num_classes <= 0 or rule is None:
            return linear_or_identity(self.embed_dim, num_classes, parent)
        head = QuantLinear(self.embed_dim, num_classes, rule, num_tokens=None,
                           packed=self.packed)
        if parent is not None:
            ref = next(parent.parameters())
            head = head.to(device=ref.device, dtype=ref.dtype).train(parent.training)
        return head

    def _check_paths(self) -> None:
        """Every quantized path of the spec must be a quantized module of the built model."""
        for path in self.rules:
            try:
                module = self.get_submodule(path)
            except AttributeError:
                raise ValueError(f"{self.name}: the spec quantizes {path!r}, which the built "
                                 "model does not have") from None
            if path.startswith("head") and self.num_classes <= 0:
                continue
            if not isinstance(module, (_QuantWeightLayer, QKRAttention, QuantMlp)):
                raise ValueError(f"{self.name}: {path!r} should be quantized but is a "
                                 f"{type(module).__name__}")

    # -- timm API ---------------------------------------------------------------------------
    @torch.jit.ignore
    def no_weight_decay(self) -> set:
        return {"pos_embed", "cls_token", "dist_token"}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict[str, Any]:
        return {"stem": r"^cls_token|^dist_token|^pos_embed|^patch_embed",
                "blocks": [(r"^blocks\.(\d+)", None), (r"^norm", (99999,))]}

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        if global_pool is not None:
            self.global_pool = check_global_pool(global_pool, allowed=("token", ""))
        self.num_classes = num_classes
        self.head = self._make_head("head", num_classes, self)
        if self.arch.distilled:
            self.head_dist = self._make_head("head_dist", num_classes, self)

    @torch.jit.ignore
    def prune_intermediate_layers(self, indices=1, prune_norm: bool = False,
                                  prune_head: bool = True) -> List[int]:
        take = super().prune_intermediate_layers(indices, prune_norm, prune_head)
        if prune_head and self.head_dist is not None:
            self.head_dist = nn.Identity()
        return take

    def set_distilled_training(self, enable: bool = True) -> None:
        """Training with a distillation loss: ``forward`` returns both heads' logits."""
        self.distilled_training = enable

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            check_input_size(x, self.img_size, self.name)
        x = self.patch_embed(x)
        tokens = [self.cls_token.expand(x.shape[0], -1, -1)]
        if self.dist_token is not None:
            tokens.append(self.dist_token.expand(x.shape[0], -1, -1))
        tokens.append(x)
        return self.pos_drop(torch.cat(tokens, dim=1) + self.pos_embed)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Class-token logits; distilled: the mean of the class- and distillation-token heads
        (both heads' logits while :meth:`set_distilled_training` is on in training mode).
        ``global_pool=''`` gives both heads the whole token sequence."""
        cls = pool_tokens(x, self.global_pool)
        if self.dist_token is None or self.head_dist is None:
            out = cls if pre_logits else self.head(cls)
        else:
            dist = x[:, 1] if self.global_pool == "token" else x
            if pre_logits:
                out = cls if self.global_pool == "" else (cls + dist) / 2
            else:
                cls, dist = self.head(cls), self.head_dist(dist)
                if self.distilled_training and self.training and not torch.jit.is_scripting():
                    return cls, dist  # type: ignore[return-value]
                out = (cls + dist) / 2
        return out

    # -- deployable form ----------------------------------------------------------------------
    @torch.jit.ignore
    def packed_state_dict(self) -> Dict[str, torch.Tensor]:
        """The deployable state dict: every quantized weight as packed integer codes plus per-row
        scales (``<layer>.weight_q.codes``/``.scale``; QKR: ``attn.qk_q``, ``attn.v_q``,
        ``attn.v_bias``), everything else as in :meth:`state_dict`.  Load with
        :func:`load_packed`."""
        if self.packed:
            return {k: v.detach().clone() for k, v in self.state_dict().items()}
        sd = {k: v.detach() for k, v in self.state_dict().items()}
        with torch.no_grad():
            for name, module in self.named_modules():
                if isinstance(module, (_QuantWeightLayer, QKRAttention)):
                    dropped, added = module.pack()
                    for k in dropped:
                        del sd[f"{name}.{k}"]
                    sd.update({f"{name}.{k}": v for k, v in added.items()})
        return sd


# --------------------------------------------------------------------------------------------
# family API
# --------------------------------------------------------------------------------------------
def _check_data(spec) -> None:
    size = spec.data.input_size
    if size[1] != spec.arch.img_size or size[2] != spec.arch.img_size:
        raise ValueError(f"{spec.name}: data.input_size {tuple(size)} disagrees with arch.img_size "
                         f"{spec.arch.img_size} (the model takes exactly that size)")


def build(spec, *, packed: bool = False) -> OFQDeiT:
    """The latent-weight model of ``spec`` (``packed=True``: the deployable form)."""
    try:
        _check_data(spec)
        return OFQDeiT(spec.arch, num_classes=spec.data.num_classes, in_chans=spec.data.in_chans,
                       packed=packed, name=spec.name)
    except ValueError as e:
        from zoo.errors import SpecError

        raise SpecError(str(e), model=spec.name) from None


def convert(spec, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Upstream checkpoint (``state_dict`` of ``replace_module_by_qmodule_deit(...)``, possibly
    saved from DistributedDataParallel) -> zoo's layout, which is upstream's: strip ``module.``."""
    out = {}
    for key, value in state_dict.items():
        key = key[len("module."):] if key.startswith("module.") else key
        if key in out:
            raise ValueError(f"{spec.name}: checkpoint key {key!r} appears twice")
        out[key] = value
    return out


def load_packed(spec, state_dict: dict[str, torch.Tensor]) -> OFQDeiT:
    """Build the deployable model of ``spec`` around a :meth:`OFQDeiT.packed_state_dict` (strict:
    :class:`zoo.errors.StateDictMismatchError` when it does not fit).  The model takes the
    floating dtype of the state dict, so the scales load bit-exact.  Returned in eval mode."""
    dtypes = {t.dtype for t in state_dict.values() if t.is_floating_point()}
    if len(dtypes) > 1:
        raise ValueError(f"packed weights of {spec.name} mix floating dtypes {sorted(map(str, dtypes))}")
    with parameters_on_meta():
        model = build(spec, packed=True)
    if dtypes:
        model = model.to(dtypes.pop())
    load_into(model, dict(state_dict), f"packed weights of {spec.name}")
    return model.eval()


def _twin(model: OFQDeiT, packed: bool) -> OFQDeiT:
    """The same architecture in the other form, parameters on meta (for sizes/shapes only)."""
    if model.packed == packed:
        return model
    with parameters_on_meta():
        return OFQDeiT(model.arch, num_classes=model.num_classes, in_chans=model.in_chans,
                       packed=packed, name=model.name)


def _payload_bytes(model: nn.Module) -> int:
    """Bytes of the model's state dict stored with float32 floats (safetensors payload)."""
    return sum(t.numel() * (4 if t.is_floating_point() else t.element_size())
               for t in model.state_dict(keep_vars=True).values())


def quant_summary(model: nn.Module) -> dict[str, Any]:
    """What ``zoo info`` shows for an OFQ model (latent or packed): the bit widths, every
    quantized module with its quantizers, the split of the parameters into quantized weights and
    full-precision tensors, and the size on disk of the fp32 latent file and of the packed file
    (tensor payload in bytes, from shapes only: a meta model works too)."""
    if not isinstance(model, OFQDeiT):
        raise TypeError(f"quant_summary expects an OFQDeiT, got {type(model).__name__}")
    latent = _twin(model, packed=False)
    layers: dict[str, dict[str, Any]] = {}
    quantized = 0
    for name, m in latent.named_modules():
        if isinstance(m, QKRAttention):
            shapes: dict[str, Tuple[int, ...]] = {"qk (fused W_q^T W_k)": (m.num_heads * m.dim, m.dim), "v": (m.dim, m.dim)}
            quantized += m.q.weight.numel() + m.k.weight.numel() + m.v.weight.numel()
        elif isinstance(m, _QuantWeightLayer):
            shapes = {"weight": m.weight_shape}
            quantized += m.weight.numel()
        else:
            continue
        layers[name] = {"module": type(m).__name__,
                        "weight": {"quantizer": m.weight_kind, "bits": m.weight_bits},
                        "act": {"quantizer": "lsq", "bits": m.act_bits},
                        "stored_weights": {k: list(v) for k, v in shapes.items()}}
    total = sum(p.numel() for p in latent.parameters())
    fp32, packed = _payload_bytes(latent), _payload_bytes(_twin(model, packed=True))
    return {
        "method": "OFQ (arXiv 2302.02210): StatsQ/LSQ weights, LSQ activations, QKR attention",
        "bits": {"weight": sorted({v["weight"]["bits"] for v in layers.values()}),
                 "act": sorted({v["act"]["bits"] for v in layers.values()})},
        "quantized_modules": layers,
        "full_precision_modules": [
            p for p in latent.arch.module_paths() if isinstance(
                latent.get_submodule(p), (nn.Linear, nn.Conv2d, Attention, Mlp))],
        "params": {"total": total, "quantized_weights": quantized,
                   "full_precision": total - quantized},
        "size_bytes": {"fp32": fp32, "packed": packed},
        "compression": round(fp32 / packed, 2),
    }


def info(model: nn.Module) -> dict[str, str]:
    """``zoo info`` lines for an OFQ model (a compact rendering of :func:`quant_summary`)."""
    s = quant_summary(model)
    layers = s["quantized_modules"].values()
    combos = sorted({(v["weight"]["quantizer"], v["weight"]["bits"], v["act"]["bits"]) for v in layers},
                    key=lambda c: (c[1], c[0]))
    p, size = s["params"], s["size_bytes"]
    return {
        "quant": ", ".join(f"{q} w{w}/lsq a{a}" for q, w, a in combos) or "none",
        "split": (f"{len(s['quantized_modules'])} quantized modules ({p['quantized_weights'] / 1e6:.2f}M "
                  f"weights), {p['full_precision'] / 1e6:.2f}M full-precision params; "
                  f"full-precision modules: {', '.join(s['full_precision_modules']) or 'none'}"),
        "size": (f"{size['fp32'] / 2**20:.1f} MiB fp32 latent, {size['packed'] / 2**20:.1f} MiB packed "
                 f"({s['compression']}x)"),
    }


@torch.no_grad()
def calibrate_(model: OFQDeiT, images: torch.Tensor) -> OFQDeiT:
    """Upstream's data-driven LSQ initialization (``eval.setup_alpha``), for quantization-aware
    training from a full-precision start: every LSQ activation step gets ``2<|x|>/sqrt(Q_P)``
    (``4<|x|>`` unsigned) from one forward of ``images``, every LSQ weight step
    ``2<|W_row|>/sqrt(Q_P)``.  Never needed for (nor called by) inference of trained weights."""
    hooks = []

    def pre_hook(mod: LSQQuantizer, args):
        mod.init_from_data(args[0])

    for m in model.modules():
        if isinstance(m, LSQWeightQuantizer):
            continue
        if isinstance(m, LSQQuantizer):
            hooks.append(m.register_forward_pre_hook(pre_hook))
    for m in model.modules():
        if isinstance(m, _QuantWeightLayer) and not m.packed \
                and isinstance(m.weight_quantizer, LSQWeightQuantizer):
            m.weight_quantizer.init_from_weight(m.weight)
        if isinstance(m, QKRAttention) and not m.packed:
            for quant, w in ((m.qk_quant, m.fused_qk()), (m.v_quant, m.v.weight)):
                if isinstance(quant, LSQWeightQuantizer):
                    quant.init_from_weight(w)
    was_training = model.training
    try:
        model.eval()
        model(images)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return model


EXPORT_NOTE = (
    "ofq: the exported graph keeps the fake quantization (LSQ/StatsQ weight and activation "
    "quantizers as round/clamp/scale float ops), so outputs match eager at the default 1e-4 "
    "bound; the file holds float weights. A runtime that stores the packed 2/3/4-bit codes "
    "(zoo's packed layout) must unpack them (bit shifts, zoo.families.ofq.packing.unpack_bits) "
    "and dequantize per output channel with the stored scales (zoo.layers.quant."
    "dequantize_weight) before each matmul, as PackedWeight does; no integer kernels are "
    "needed or used.")

HOOKS = FamilyHooks(build=build, convert=convert, load_packed=load_packed, info=info,
                    export_note=EXPORT_NOTE)
