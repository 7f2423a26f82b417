"""KArAt: ViTs whose attention rows go through learnable Fourier Kolmogorov-Arnold units.

Maity, Hitsman, Li, Dutta, "Kolmogorov-Arnold Attention: Is Learnable Attention Better For Vision
Transformers?", arXiv:2503.10632 (v3).  Everything but the attention's row operator is timm's ViT
(``PatchEmbed``, ``Block``, ``Attention``'s projections, ``Mlp``, ``DropPath``), so the state-dict
layout is timm's ``VisionTransformer`` plus the operators' tensors.

The operator (paper Sec. 3, "Modular KArAt" with the Fourier basis)
------------------------------------------------------------------
For head ``i`` of block ``j`` let ``A = QK^T / sqrt(d)`` (N x N).  Softmax on each row
``a = A[k, :]`` is replaced by ``sigma(a) = W Phi(a)`` with ``Phi: R^N -> R^r`` a Kolmogorov-Arnold
layer of ``r x N`` learnable univariate units and ``W`` in ``R^{N x r}`` a learnable linear
projector back to ``N`` (``r << N``; ``r = 12`` in all of the paper's runs)::

    Phi(a)_p = sum_{q=1..N} phi_pq(a_q)                                         (p = 1..r)
    phi_pq(x) = b(x) + sum_{m} a_pqm cos(m x) + b_pqm sin(m x)                 (Fourier unit)
    sigma(a)_n = sum_{p=1..r} W_np Phi(a)_p                                    (n = 1..N)

Parameterization implied by the paper's tables.  The paper reports the operators' parameters
(r = 12, N = 197): ViT-Tiny + G3B adds 0.76M, + G3U 0.06M; ViT-Small + G3B 1.53M, + G3U 0.13M;
ViT-Base + G1B 1.70M, + G1U 0.14M, and totals 6.29M / 5.59M / 23.58M / 22.18M / 87.51M / 85.95M.
All twelve numbers are reproduced exactly (see the family tests) by ``2 r N (G + 1) + N r``
parameters per operator, i.e. ``2 x r x N x (G + 1)`` Fourier coefficients and the ``N x r``
matrix ``W`` (no bias).  The sum over harmonics therefore runs over ``m = 0..G``: the written
``m = 1..G`` terms plus the constant harmonic ``m = 0``, whose cosine coefficient ``a_pq0`` is a
learnable offset of unit ``phi_pq`` and whose sine coefficient ``b_pq0`` multiplies
``sin(0) = 0`` (kept, as the parameter count requires it, but it never affects the output and
its gradient is zero).  The alternative reading, harmonics ``m = 1..G+1``, matches the count too
but adds a frequency Eq. 2 does not have; zoo keeps Eq. 2's frequencies.  The tables' Tiny and
Base totals use a 10-class head (their vanilla ViT-Tiny/Base rows, 5.53M / 85.81M, are timm's
ViTs with 10 classes), Small a 1000-class head (22.05M); the specs keep ImageNet's 1000 classes
and the tests create Tiny/Base with ``num_classes=10``.

Initialization (paper, basis table): ``a_pqm, b_pqm ~ N(0, 1)``.  The paper does not state
``W``'s initialization; zoo uses timm's ViT rule for linear weights, ``trunc_normal_(std=.02)``
(assumption: W is a linear projector inside a timm ViT).

Defaults follow the paper's main configuration: zero base activation ``b(x) = 0`` (``silu`` and
``identity`` are offered), no softmax, and no l1 projection (offered as ``l1_projection``:
every activated row divided by its l1 norm; zoo's reading of the option).

Blockwise (``GnB``) and universal (``GnU``) configurations (paper Sec. 3): blockwise models
hold one :class:`FourierKArAt` (all heads) in every block's attention, ``blocks.j.attn.karat``;
universal models hold a single one, ``karat``, whose parameters are also those of every block's
``attn.karat`` (the same ``nn.Parameter`` objects: ``parameters()`` yields them once, gradients
accumulate in one tensor, and TorchScript / torch.fx see ordinary submodules).  State-dict hooks
store them once, under ``karat.*``: saving drops the blocks' aliases; loading (also
``assign=True`` loading of meta-built models) fills the aliases from ``karat.*`` and then ties
every block to ``karat``'s parameters again.

Efficiency.  A direct transcription evaluates every unit on every attention entry, a
``B x H x N x r x N x (G+1)`` tensor.  :class:`FourierKArAt` instead computes ``cos(m a_kq)``
and ``sin(m a_kq)`` of each entry once (two ``B x H x N x N x (G+1)`` tensors, independent of
``r``) and contracts them with the coefficients by matmuls over (key position, harmonic), then
applies ``W`` as one more matmul; nothing of size ``B x H x N x N x r`` or larger is created.
The contraction keeps the constant ``m = 0`` columns (``cos 0 = 1``, ``sin 0 = 0``) as stored,
so ``zoo.measure.count_macs`` counts ``N^2 r (2(G+1) + 1)`` MACs per head and block, within 2%
of the paper's GFLOPs table for all six models.  ``scripts/bench_karat.py`` compares zoo's
operator with the transcription (speed, peak memory, outputs).

Section/table references: the paper's v3 text was not readable in full offline; the equations,
initialization table, parameter/GFLOPs table and ImageNet results used here are the paper's as
reproduced on its project page (https://subhajitmaity.me/KArAt), cited by content.
"""
import re
from functools import partial
from typing import Any, Dict, List, Optional, Tuple, cast

import torch
from timm.layers import (Attention, PatchEmbed, create_act_layer, register_notrace_function,
                         trunc_normal_)
from timm.models.vision_transformer import Block
from torch import Tensor, nn

from zoo.families.contract import FamilyHooks
from zoo.errors import CheckpointError, InputShapeError, SpecError
from zoo.layers.vit_head import TokenHeadModel, vit_feature_info
from zoo.model import check_input_size, linear_or_identity

from .schema import Arch, KArAtConfig

NORM_EPS = 1e-6      # timm ViT LayerNorm eps
L1_EPS = 1e-12       # guards the l1 projection of an all-zero row


@register_notrace_function
def check_scores(attn: Tensor, num_heads: int, num_tokens: int) -> None:
    if attn.ndim != 4 or attn.shape[1] != num_heads or attn.shape[-1] != num_tokens:
        raise InputShapeError(
            f"Fourier-KArAt operator expects attention scores (B, {num_heads}, N_q, "
            f"{num_tokens}): its units are tied to the {num_tokens} key positions "
            f"the model was built for, got {tuple(attn.shape)}")


for _fn in ("check_scores", "check_input_size"):
    torch.fx.wrap(_fn)  # graph leaves wherever this module's code calls them


class FourierKArAt(nn.Module):
    """The learnable row operator ``sigma(a) = W Phi(a)`` of all ``num_heads`` heads.

    Parameters (per head; names from the paper):
        ``a``: (heads, r, N, G+1), cosine coefficients ``a_pqm`` for harmonics m = 0..G;
        ``b``: (heads, r, N, G+1), sine coefficients ``b_pqm``;
        ``w``: (heads, N, r), the projector ``W``.

    Takes attention scores (B, heads, N_queries, N) and returns the activated rows, same shape.
    Never materializes a tensor with both ``r`` and ``N x N`` dimensions (see module docstring).
    """

    def __init__(self, num_heads: int, num_tokens: int, rank: int, grid_size: int,
                 base_activation: str = "zero", l1_projection: bool = False) -> None:
        super().__init__()
        self.num_heads, self.num_tokens = num_heads, num_tokens
        self.rank, self.grid_size = rank, grid_size
        self.l1_projection = l1_projection
        self.l1_eps = L1_EPS
        self.base_act = None if base_activation == "zero" else create_act_layer(base_activation)
        harmonics = grid_size + 1  # m = 0..G
        self.a = nn.Parameter(torch.empty(num_heads, rank, num_tokens, harmonics))
        self.b = nn.Parameter(torch.empty(num_heads, rank, num_tokens, harmonics))
        self.w = nn.Parameter(torch.empty(num_heads, num_tokens, rank))
        self.register_buffer("m", torch.arange(harmonics, dtype=torch.float32), persistent=False)
        self.m: Tensor
        self.reset_parameters()

    @classmethod
    def from_config(cls, cfg: KArAtConfig, num_heads: int, num_tokens: int) -> "FourierKArAt":
        return cls(num_heads, num_tokens, cfg.rank, cfg.grid_size, cfg.base_activation,
                   cfg.l1_projection)

    def reset_parameters(self) -> None:
        """Paper's basis table: a, b ~ N(0, 1).  W: timm's linear init (assumption)."""
        nn.init.normal_(self.a)
        nn.init.normal_(self.b)
        trunc_normal_(self.w, std=0.02)

    @staticmethod
    def num_params_formula(num_tokens: int, rank: int, grid_size: int) -> int:
        """Parameters of one head's operator: ``2 r N (G + 1) + N r``."""
        return 2 * rank * num_tokens * (grid_size + 1) + num_tokens * rank

    def extra_repr(self) -> str:
        base = "zero" if self.base_act is None else type(self.base_act).__name__
        return (f"heads={self.num_heads}, N={self.num_tokens}, r={self.rank}, "
                f"G={self.grid_size}, base={base}, l1_projection={self.l1_projection}")

    @torch.jit.ignore
    def _check(self, attn: Tensor) -> None:
        check_scores(attn, self.num_heads, self.num_tokens)

    @staticmethod
    def _as_matrix(coeff: Tensor) -> Tensor:
        """(heads, r, N, G+1) -> (heads, N * (G+1), r), rows ordered (key position, harmonic)."""
        h, r, n, g1 = coeff.shape
        return coeff.permute(0, 2, 3, 1).reshape(h, n * g1, r)

    @torch.jit.ignore
    def tie_to(self, other: "FourierKArAt") -> None:
        """Use ``other``'s parameters (the same ``nn.Parameter`` objects)."""
        self.a, self.b, self.w = other.a, other.b, other.w

    def forward(self, attn: Tensor) -> Tensor:
        if not torch.jit.is_scripting():
            check_scores(attn, self.num_heads, self.num_tokens)
        # Harmonics m * a_kq of every score, (B, h, Nq, N, G+1) viewed as (B, h, Nq, N * (G+1));
        # Phi(a_k)_p = sum_{q,m} a_pqm cos(m a_kq) + b_pqm sin(m a_kq) is then two matmuls.
        x = (attn.unsqueeze(-1) * self.m.to(attn.dtype)).flatten(-2)
        phi = torch.cos(x) @ self._as_matrix(self.a)
        phi = phi + torch.sin(x) @ self._as_matrix(self.b)  # (B, h, Nq, r)
        if self.base_act is not None:  # sum_q b(a_q), the same for every p
            phi = phi + self.base_act(attn).sum(-1, keepdim=True)
        out = phi @ self.w.transpose(-1, -2)  # (B, h, Nq, N): W Phi(a)
        if self.l1_projection:
            out = out / out.abs().sum(-1, keepdim=True).clamp_min(self.l1_eps)
        return out


class KArAtAttention(Attention):
    """timm's multi-head self-attention with the softmax replaced by a :class:`FourierKArAt`.

    The projections (``qkv``, ``q_norm``/``k_norm``, ``proj``) and dropouts are timm's.  The
    operator is bound after construction with :meth:`bind` as the submodule ``karat`` (its own,
    blockwise, or one tied to the model's shared parameters, universal).
    """

    __jit_unused_properties__ = ["operator"]

    def bind(self, operator: FourierKArAt, *, shared: bool = False) -> None:
        """Use ``operator`` (``shared``: the model's universal one; this attention gets its own
        module holding the same parameters)."""
        if operator.num_heads != self.num_heads:
            raise ValueError(f"operator has {operator.num_heads} heads, attention {self.num_heads}")
        if shared:
            alias = FourierKArAt(operator.num_heads, operator.num_tokens, operator.rank,
                                 operator.grid_size, l1_projection=operator.l1_projection)
            alias.base_act = operator.base_act
            alias.tie_to(operator)
            operator = alias
        self.karat = operator

    @property
    def operator(self) -> FourierKArAt:
        op = self._modules.get("karat")
        if op is None:
            raise RuntimeError("KArAtAttention has no operator: call bind() first")
        return op  # type: ignore[return-value]

    def forward(self, x: Tensor, attn_mask: Optional[Tensor] = None,
                is_causal: bool = False) -> Tensor:
        if attn_mask is not None or is_causal:
            raise ValueError("KArAt attention has no masking: every row holds all N key positions")
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        attn = (q * self.scale) @ k.transpose(-2, -1)  # A = QK^T / sqrt(d)
        attn = self.attn_drop(self.karat(attn))
        x = (attn @ v).transpose(1, 2).reshape(B, N, self.attn_dim)
        x = self.norm(x)
        return self.proj_drop(self.proj(x))


class KArAtVisionTransformer(TokenHeadModel):
    """ViT (patch embedding, class token, learned positions, pre-norm blocks) with KArAt."""

    def __init__(self, arch: Arch, num_classes: int = 1000, in_chans: int = 3,
                 img_size: tuple[int, int] = (224, 224), name: str = "karat") -> None:
        super().__init__()
        self.name, self.img_size = name, (img_size[0], img_size[1])
        self.num_classes, self.in_chans = num_classes, in_chans
        self.num_features = self.head_hidden_size = self.embed_dim = arch.embed_dim
        self.global_pool = arch.global_pool
        self.num_prefix_tokens = int(arch.class_token)
        self.mode = arch.karat.mode
        self.feature_info = vit_feature_info(arch.depth, arch.embed_dim, arch.patch_size)
        norm_layer = partial(nn.LayerNorm, eps=NORM_EPS)

        self.patch_embed = PatchEmbed(img_size=self.img_size, patch_size=arch.patch_size,
                                      in_chans=in_chans, embed_dim=arch.embed_dim)
        self.num_tokens = self.patch_embed.num_patches + self.num_prefix_tokens
        self.cls_token = nn.Parameter(torch.zeros(1, 1, arch.embed_dim)) if arch.class_token \
            else None
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_tokens, arch.embed_dim))
        self.pos_drop = nn.Dropout(arch.pos_drop_rate)

        make_operator = partial(FourierKArAt.from_config, arch.karat, arch.num_heads,
                                self.num_tokens)
        # Universal (GnU): the h operators live once, here; every block uses their parameters.
        self.karat = make_operator() if self.mode == "universal" else None
        dpr = torch.linspace(0, arch.drop_path_rate, arch.depth, device="cpu").tolist()
        blocks = []
        for i in range(arch.depth):
            # norm_layer: timm's annotation says type[Module], but timm takes any callable
            blk = Block(arch.embed_dim, arch.num_heads, mlp_ratio=arch.mlp_ratio,
                        qkv_bias=arch.qkv_bias, proj_drop=arch.proj_drop_rate,
                        attn_drop=arch.attn_drop_rate, drop_path=dpr[i],
                        norm_layer=norm_layer,  # type: ignore[arg-type]
                        attn_layer=KArAtAttention)
            attn = cast(KArAtAttention, blk.attn)  # built from attn_layer
            if self.karat is not None:
                attn.bind(self.karat, shared=True)
            else:
                attn.bind(make_operator(), shared=False)
            blocks.append(blk)
        self.blocks = nn.Sequential(*blocks)
        self.norm = norm_layer(arch.embed_dim)
        self.fc_norm = nn.Identity()
        self.head_drop = nn.Dropout(arch.drop_rate)
        self.head = linear_or_identity(arch.embed_dim, num_classes)
        self.init_weights()
        if self.karat is not None:
            self.register_state_dict_post_hook(_store_shared_once)
            self.register_load_state_dict_pre_hook(_load_shared)
            self.register_load_state_dict_post_hook(lambda module, keys: module.tie_operators())

    @torch.jit.ignore
    def tie_operators(self) -> None:
        """Universal models: every block's operator uses ``karat``'s parameters (again)."""
        if self.karat is not None:
            for blk in self.blocks:
                cast(KArAtAttention, blk.attn).karat.tie_to(self.karat)

    def init_weights(self) -> None:
        """timm's ViT init: positions trunc-normal(.02), class token N(0, 1e-6), linears
        trunc-normal(.02) with zero bias; operators as :meth:`FourierKArAt.reset_parameters`."""
        trunc_normal_(self.pos_embed, std=0.02)
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    @torch.jit.ignore
    def no_weight_decay(self) -> set:
        return {"pos_embed", "cls_token"}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict[str, Any]:
        return {"stem": r"^cls_token|^pos_embed|^patch_embed|^karat\.",
                "blocks": [(r"^blocks\.(\d+)", None), (r"^norm", (99999,))]}

    def operators(self) -> List[FourierKArAt]:
        """The operator each block uses, in block order (the same object for universal)."""
        return [cast(KArAtAttention, blk.attn).operator for blk in self.blocks]

    def embed(self, x: Tensor) -> Tensor:
        if not torch.jit.is_scripting():
            check_input_size(x, self.img_size, self.name)
        x = self.patch_embed(x)
        if self.cls_token is not None:
            x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        return self.pos_drop(x + self.pos_embed)


_ALIAS = re.compile(r"blocks\.\d+\.attn\.karat\.")


def _store_shared_once(module: nn.Module, state_dict: Dict[str, Any], prefix: str,
                       local_metadata: Any) -> None:
    """Universal models: the blocks' ``attn.karat.*`` entries alias ``karat.*``; drop them."""
    for key in [k for k in state_dict if k.startswith(prefix)
                and _ALIAS.match(k, len(prefix))]:
        del state_dict[key]


def _load_shared(module: "KArAtVisionTransformer", state_dict: Dict[str, Any], prefix: str,
                 local_metadata: Any, strict: bool, missing_keys: List[str],
                 unexpected_keys: List[str], error_msgs: List[str]) -> None:
    """Universal models: give every block's alias the stored ``karat.*`` tensor."""
    for name, tensor in [(k[len(prefix) + len("karat."):], v) for k, v in state_dict.items()
                         if k.startswith(prefix + "karat.")]:
        for i in range(len(module.blocks)):
            state_dict.setdefault(f"{prefix}blocks.{i}.attn.karat.{name}", tensor)


def _img_size(spec) -> Tuple[int, int]:
    arch: Arch = spec.arch
    _, h, w = spec.data.input_size
    if h % arch.patch_size or w % arch.patch_size:
        raise SpecError(f"input size {h}x{w} is not a multiple of patch_size {arch.patch_size}",
                        model=spec.name)
    if not spec.data.fixed_input_size:
        raise SpecError("KArAt's operators are tied to the token count: data.fixed_input_size "
                        "must be true", model=spec.name)
    return h, w


def build(spec) -> KArAtVisionTransformer:
    return KArAtVisionTransformer(spec.arch, num_classes=spec.data.num_classes,
                                  in_chans=spec.data.in_chans, img_size=_img_size(spec),
                                  name=spec.name)


def convert(spec, state_dict: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """A KArAt checkpoint saved from a (possibly DDP-wrapped) zoo model -> zoo's layout.

    There are no original KArAt weights (the paper's code was not available to zoo), so the
    only layout accepted is zoo's own, with an optional ``module.`` prefix.  A checkpoint
    without the operators (e.g. a vanilla ViT's) is refused: it cannot initialize KArAt.
    """
    sd = {k.removeprefix("module."): v for k, v in state_dict.items()}
    universal = spec.arch.karat.mode == "universal"
    expected = ("karat.a",) if universal else tuple(
        f"blocks.{i}.attn.karat.a" for i in range(spec.arch.depth))
    missing = [k for k in expected if k not in sd]
    if missing:
        raise CheckpointError(
            f"{spec.name}: not a {spec.arch.karat.mode} KArAt checkpoint, missing the operator "
            f"tensor(s) {missing[:3]}{' ...' if len(missing) > 3 else ''} (a vanilla ViT "
            "checkpoint has no learnable attention operator)")
    return sd


__all__ = ["FourierKArAt", "KArAtAttention", "KArAtVisionTransformer", "build", "convert"]


HOOKS = FamilyHooks(build=build, convert=convert)
