"""KAT: Kolmogorov-Arnold Transformer (Yang & Wang, ICLR 2025, arXiv 2409.10594).

A ViT (Dosovitskiy et al.) whose MLP is a GR-KAN layer (paper Sec. 4, "Group-Rational KAN"):

    x -> GroupRational(identity init) -> fc1 -> GroupRational(swish/gelu init) -> fc2

The group-rational (Sec. 4: the rational base function in its "safe Padé" form, shared per
channel group) splits the C channels
into G contiguous groups; every group g applies the same function

    F_g(x) = P(x) / Q_g(x),   P(x) = a_0 + a_1 x + ... + a_m x^m              (shared by all groups)
                              Q_g(x) = 1 + |b_g1| |x| + |b_g2| |x|^2 + ... + |b_gn| |x|^n

with m = 5, n = 4, G = 8.  This is exactly what upstream's CUDA and Triton kernels compute
(``rational_kat_cu``: ``src/rational_kernel_group.cu``, ``kat_rational/rational_triton.py``).
Upstream's pure-PyTorch fallback (``kat_1dgroup_torch.py``) instead evaluates
``1 + sum |b_i| x^i`` (signed powers of x) and therefore disagrees with the kernel for negative
inputs; zoo follows the kernel, which produced the released weights.  Here the function is plain
PyTorch (Horner's scheme, autograd for the backward), so it runs on any device; its gradients are
the kernel's, including d|b|/db = copysign(1, b) at b = 0 (the identity-initialized first
rational starts there).  At exactly x = 0 autograd's d|x|/dx is 0 where the kernel uses +1, which
only changes the input gradient of exact zeros.

The module tree and state-dict keys are upstream's (``KATVisionTransformer``), so its
checkpoints load after stripping a DataParallel ``module.`` prefix.
"""
import math
from functools import partial
from typing import Any, Dict, Optional, Tuple, Type

import torch
from timm.layers import (PatchEmbed, register_notrace_function, resample_abs_pos_embed,
                         to_2tuple, trunc_normal_)
from timm.models.vision_transformer import Block
from torch import Tensor, nn

from zoo.families.contract import FamilyHooks
from zoo.errors import CheckpointError, InputShapeError
from zoo.layers.vit_head import TokenHeadModel, vit_feature_info
from zoo.model import check_input_size, linear_or_identity

from .schema import Arch

NORM_EPS = 1e-6  # upstream's norm_layer: partial(nn.LayerNorm, eps=1e-6)

# Initial coefficients (a_0..a_5), (b_1..b_4) of the rationals (paper Sec. 4, variance-preserving
# initialization): least-squares fits of
# each function on [-3, 3], as published in upstream's kat_rational/init.json.  They matter only for
# training from scratch; pretrained weights overwrite them.
RATIONAL_INIT: Dict[str, Tuple[Tuple[float, ...], Tuple[float, ...]]] = {
    "identity": ((0.0, 1.0, 0.0, 0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 0.0)),
    "swish": ((3.054879741161051e-07, 0.5000007853744493, 0.24999783422824703,
               0.05326628273219478, 0.005803034571292244, 0.0002751961022402342),
              (-4.111554955950634e-06, 0.10652899335007572, -1.2690007399796238e-06,
               0.0005502331264140556)),
    "gelu": ((-0.00153969, 0.51692871, 0.44075827, 0.0972553, -0.00884418, -0.00378675),
             (-0.14171056, -0.06481231, -0.0444695, 0.01283776)),
}


@register_notrace_function  # a graph leaf for torch.fx (it branches on the input's shape/dtype)
def group_rational(x: Tensor, numerator: Tensor, denominator: Tensor, num_groups: int) -> Tensor:
    """Apply the group-rational function along the last (channel) dimension of ``x``.

    Args:
        x: (..., C) input, C divisible by ``num_groups``; group g holds channels
            ``[g * C / G, (g + 1) * C / G)`` (upstream's kernel indexing).
        numerator: (1, m + 1) shared coefficients a_0..a_m, or (G, m + 1) per group.
        denominator: (G, n) coefficients b_1..b_n; only their absolute values are used.
        num_groups: G.

    Returns ``P(x) / (1 + sum_i |b_gi| |x|^i)`` in the dtype of ``x`` (half-precision inputs are
    evaluated in float32, as upstream's kernel casts them).
    """
    channels = x.shape[-1]
    if channels % num_groups and not torch.jit.is_scripting():
        raise InputShapeError(f"group-rational with {num_groups} groups needs a channel count "
                              f"divisible by {num_groups} in the last dimension, got shape "
                              f"{tuple(x.shape)}")
    out_dtype = x.dtype
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    xg = x.unflatten(-1, [num_groups, channels // num_groups])  # (..., G, C/G)
    a = numerator.to(x.dtype).expand(num_groups, -1)             # (G, m + 1)
    b = denominator.to(x.dtype)                                  # (G, n)
    # |b| whose gradient is copysign(1, b) as in the kernel: also 1 at b = +0, so the denominators
    # of identity-initialized rationals (b = 0) train; torch.abs would give them zero gradient.
    b = b * torch.where(torch.signbit(b), -1.0, 1.0).to(b.dtype)
    p = a[:, -1:]
    for i in range(a.shape[1] - 2, -1, -1):                      # Horner: a_m x^m + ... + a_0
        p = p * xg + a[:, i:i + 1]
    ax = xg.abs()
    q = b[:, -1:]
    for i in range(b.shape[1] - 2, -1, -1):                      # Horner in |x|, then * |x| + 1
        q = q * ax + b[:, i:i + 1]
    q = q * ax + 1.0
    return (p / q).flatten(-2).to(out_dtype)


for _fn in ("group_rational", "check_input_size"):
    torch.fx.wrap(_fn)  # graph leaves wherever this module's code calls them


class GroupRational(nn.Module):
    """Learnable group-rational activation (paper Sec. 4, GR-KAN; upstream ``KAT_Group``).

    Parameters ``weight_numerator`` (1, m + 1), shared by all groups, and
    ``weight_denominator`` (G, n), one row per group.
    """

    def __init__(self, num_groups: int = 8, init: str = "identity", *,
                 device: Optional[torch.device] = None, dtype: Optional[torch.dtype] = None
                 ) -> None:
        super().__init__()
        if init not in RATIONAL_INIT:
            raise ValueError(f"unknown rational initialization {init!r}; known: "
                             f"{sorted(RATIONAL_INIT)}")
        num, den = RATIONAL_INIT[init]
        self.num_groups = num_groups
        self.init = init
        self.weight_numerator = nn.Parameter(
            torch.tensor(num, device=device, dtype=dtype or torch.float32).view(1, -1))
        self.weight_denominator = nn.Parameter(
            torch.tensor(den, device=device, dtype=dtype or torch.float32).repeat(num_groups, 1))

    @property
    @torch.jit.unused
    def order(self) -> Tuple[int, int]:
        return self.weight_numerator.shape[1] - 1, self.weight_denominator.shape[1]

    def forward(self, x: Tensor) -> Tensor:
        return group_rational(x, self.weight_numerator, self.weight_denominator, self.num_groups)

    def extra_repr(self) -> str:
        return f"num_groups={self.num_groups}, order={self.order}, init={self.init}"


class GRKAN(nn.Module):
    """Group-Rational KAN layer (paper Sec. 4): ``act1 -> fc1 -> act2 -> fc2`` with dropouts,
    where act1 starts as the identity and act2 as ``act_init`` (variance-preserving init).

    Takes timm's ``Block`` MLP arguments, so it plugs in as ``mlp_layer``; ``act_layer`` and
    ``norm_layer`` must be None (the activations are the rationals, there is no hidden norm).
    """

    def __init__(self, in_features: int, hidden_features: Optional[int] = None,
                 out_features: Optional[int] = None, act_layer: Optional[Type[nn.Module]] = None,
                 norm_layer: Optional[Type[nn.Module]] = None, bias: bool = True,
                 drop: float = 0.0, *, act_init: str = "swish", num_groups: int = 8,
                 device: Optional[torch.device] = None, dtype: Optional[torch.dtype] = None
                 ) -> None:
        super().__init__()
        if act_layer is not None or norm_layer is not None:
            raise ValueError("GRKAN's activations are group-rationals and it has no hidden norm: "
                             "act_layer and norm_layer must be None")
        dd: Dict[str, Any] = {"device": device, "dtype": dtype}
        hidden_features = hidden_features or in_features
        out_features = out_features or in_features
        self.act1 = GroupRational(num_groups, "identity", **dd)
        self.drop1 = nn.Dropout(drop)
        self.fc1 = nn.Linear(in_features, hidden_features, bias=bias, **dd)
        self.act2 = GroupRational(num_groups, act_init, **dd)
        self.drop2 = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden_features, out_features, bias=bias, **dd)

    def forward(self, x: Tensor) -> Tensor:
        x = self.fc1(self.drop1(self.act1(x)))
        return self.fc2(self.drop2(self.act2(x)))


class KAT(TokenHeadModel):
    """Kolmogorov-Arnold Transformer: ViT with GR-KAN channel mixers (paper Sec. 4; KAT-T/S/B are
    ViT-Ti/S/B with every MLP replaced, ImageNet-1k results in Sec. 5)."""

    def __init__(self, arch: Arch, num_classes: int = 1000, in_chans: int = 3,
                 img_size: Tuple[int, int] = (224, 224), name: str = "kat") -> None:
        super().__init__()
        self.num_classes, self.in_chans = num_classes, in_chans
        self.num_features = self.head_hidden_size = self.embed_dim = arch.embed_dim
        self.global_pool = arch.global_pool
        self.num_prefix_tokens = 1
        self.img_size = tuple(img_size)
        self.name = name
        self.feature_info = vit_feature_info(arch.depth, arch.embed_dim, arch.patch_size)
        norm_layer = partial(nn.LayerNorm, eps=NORM_EPS)

        self.patch_embed = PatchEmbed(img_size=img_size, patch_size=arch.patch_size,
                                      in_chans=in_chans, embed_dim=arch.embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, arch.embed_dim))
        self.pos_embed = nn.Parameter(
            torch.zeros(1, self.patch_embed.num_patches + self.num_prefix_tokens, arch.embed_dim))
        self.pos_drop = nn.Dropout(arch.pos_drop_rate)
        dpr = [x.item() for x in torch.linspace(0, arch.drop_path_rate, arch.depth, device="cpu")]
        mlp_layer = partial(GRKAN, act_init=arch.act_init, num_groups=arch.rational_groups)
        self.blocks = nn.Sequential(*[
            Block(dim=arch.embed_dim, num_heads=arch.num_heads, mlp_ratio=arch.mlp_ratio,
                  qkv_bias=arch.qkv_bias, proj_drop=arch.proj_drop_rate,
                  attn_drop=arch.attn_drop_rate, drop_path=dpr[i],
                  # timm annotates these type[Module], but takes None and any callable (partials)
                  act_layer=None,  # type: ignore[arg-type]
                  norm_layer=norm_layer, mlp_layer=mlp_layer)  # type: ignore[arg-type]
            for i in range(arch.depth)])
        use_fc_norm = arch.global_pool == "avg"
        self.norm = norm_layer(arch.embed_dim) if not use_fc_norm else nn.Identity()
        self.fc_norm = norm_layer(arch.embed_dim) if use_fc_norm else nn.Identity()
        self.head_drop = nn.Dropout(arch.drop_rate)
        self.head = linear_or_identity(arch.embed_dim, num_classes)
        self.init_weights()

    def init_weights(self) -> None:
        """ViT initialization as upstream's ``weight_init='kan'`` ends up applying it: positional
        embedding trunc-normal(0.02), class token normal(1e-6), qkv uniform per q/k/v block
        (Glorot over one third of the rows), other Linears trunc-normal(0.02), zero biases.

        Upstream's extra "mimetic" attention initialization (random orthogonal-like Q/K/V via
        SVD) is a training-from-scratch recipe and is not reproduced.
        """
        trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear):
                if name.endswith("attn.qkv"):
                    bound = math.sqrt(6.0 / (module.weight.shape[0] // 3 + module.weight.shape[1]))
                    nn.init.uniform_(module.weight, -bound, bound)
                else:
                    trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    @torch.jit.ignore
    def no_weight_decay(self) -> set:
        return {"pos_embed", "cls_token"}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict:
        return {"stem": r"^cls_token|pos_embed|patch_embed",
                "blocks": [(r"^blocks\.(\d+)", None), (r"^norm", (99999,))]}

    @torch.jit.ignore
    def set_input_size(self, img_size=None, patch_size=None) -> None:
        """Take ``img_size`` images from now on: the positional embedding is resampled
        (bicubic, timm's ``resample_abs_pos_embed``) to the new patch grid."""
        if patch_size is not None and to_2tuple(patch_size) != self.patch_embed.patch_size:
            raise ValueError("KAT's patch size is fixed by its weights; only img_size can change")
        if img_size is None:
            return
        old = list(self.patch_embed.grid_size)
        self.patch_embed.set_input_size(img_size=to_2tuple(img_size))
        new = list(self.patch_embed.grid_size)
        if new != old:
            with torch.no_grad():
                pos = resample_abs_pos_embed(self.pos_embed, new, old,
                                             num_prefix_tokens=self.num_prefix_tokens)
            self.pos_embed = nn.Parameter(pos, requires_grad=self.pos_embed.requires_grad)
        self.img_size = tuple(self.patch_embed.img_size)
        self._input_size_changed(self.img_size)

    def embed(self, x: Tensor) -> Tensor:
        """(B, C, H, W) image at the model's size -> (B, 1 + N, D) tokens with positions."""
        if not torch.jit.is_scripting():
            check_input_size(x, self.img_size, self.name)
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        return self.pos_drop(x)


def build(spec) -> KAT:
    return KAT(spec.arch, num_classes=spec.data.num_classes, in_chans=spec.data.in_chans,
               img_size=tuple(spec.data.input_size[1:]), name=spec.name)


def convert(spec, state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Upstream ``KATVisionTransformer`` state dict (Hub ``pytorch_model.bin`` or a GitHub
    release checkpoint, already unwrapped) -> zoo.  The key layouts are the same; a
    DataParallel ``module.`` prefix is stripped.  Raises :class:`CheckpointError` for a
    checkpoint that is not a KAT (e.g. a plain ViT without rational coefficients)."""
    out = {k.removeprefix("module."): v for k, v in state_dict.items()}
    has_kan = any(k.endswith("mlp.act1.weight_numerator") for k in out)
    if not has_kan and any(".mlp.fc1." in k for k in out):
        raise CheckpointError(f"{spec.name}: the checkpoint has MLP weights but no rational "
                              "coefficients (mlp.act1/act2): it is a plain ViT, not a KAT")
    return out


HOOKS = FamilyHooks(build=build, convert=convert)
