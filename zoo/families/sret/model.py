"""SReT: Sliced Recursive Transformer (Shen, Liu, Xing, ECCV 2022, arXiv:2111.05297).

Faithful to the original code (https://github.com/szq0214/SReT, ``SReT.py`` and
``SReT_wo_slice.py``), with the weight sharing made explicit: each stage holds its unique
transformer blocks once (``stages.N.blocks``) plus its unshared non-linear projection layers
(``stages.N.nlls``), and :class:`SReTStage` applies them in upstream's order

    block0, nll0, block0, nll1, block1, nll2, block1, nll3, ...

(each unique block ``applications`` times in a row, an NLL after every application).  Upstream
instead lists the shared block object once per application, so its ``state_dict`` (and any
checkpoint ``torch.save``'d from it) holds every shared tensor twice; :func:`convert` checks that
the copies are identical and keeps one.
"""
import re
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp, register_notrace_function, trunc_normal_
from timm.models import checkpoint
from timm.models._features import feature_take_indices
from torch import Tensor, nn

from zoo.families.contract import FamilyHooks
from zoo.errors import CheckpointError, InputShapeError, SpecError
from zoo.model import (IndicesT, ZooModel, check_image, check_input_size, check_output_fmt,
                       linear_or_identity)

from .schema import Arch, Stage

NORM_EPS = 1e-6  # every LayerNorm of the original (partial(nn.LayerNorm, eps=1e-6))
STEM_STRIDE = 8  # three stride-2 convs


@register_notrace_function
def permutation_generator(seeded: bool, seed: int, x: Tensor) -> Optional[torch.Generator]:
    """Where the recursive pass draws its token permutations from (``Arch.token_permutation``).

    None (``global_rng``, the original behaviour): ``torch.randperm(n)`` on torch's global CPU
    generator.  Seeded: a private CPU generator seeded once per forward, so the draws are
    reproducible and leave the global RNG untouched.  Permutations are drawn on the CPU, as
    upstream does, so a model on an accelerator draws the same numbers.

    ``x`` (the forward's input, unused) makes the call a node of a ``torch.fx`` graph: a wrapped
    function with only constant arguments runs once, at trace time, and the graph would keep that
    one generator as a constant, its state carried from call to call (and copied per use when
    the graph is scripted).
    """
    if not seeded:
        return None
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


@register_notrace_function
def check_groups(num_tokens: int, num_groups: int) -> None:
    if num_tokens % num_groups:
        raise InputShapeError(f"{num_tokens} tokens cannot be sliced into {num_groups} equal "
                              "groups; choose an input size whose token count they divide")


@register_notrace_function
def add_pos_embed(x: Tensor, pos_embed: Tensor) -> Tensor:
    """``x + pos_embed``, the embedding bicubically resampled to ``x``'s grid if it differs."""
    if x.shape[-2:] != pos_embed.shape[-2:]:
        pos_embed = F.interpolate(pos_embed, size=(x.shape[-2], x.shape[-1]), mode="bicubic",
                                  align_corners=False)
    return x + pos_embed


for _fn in ("permutation_generator", "check_groups", "add_pos_embed", "check_input_size",
            "check_image"):
    torch.fx.wrap(_fn)  # graph leaves wherever this module's code calls them


class LearnableCoefficient(nn.Module):
    """A learnable scalar (initialized to 1) scaling one path of a residual sum: the paper's
    learnable residual connection (LRC), which replaces the fixed ``x + f(x)``."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.weight


class GroupAttention(nn.Module):
    """Multi-head self-attention within ``num_groups`` contiguous slices of the token sequence
    (the paper's sliced group self-attention, which approximates global MHSA; README figure
    imgs/slice.png).

    With ``permute=True`` (a block's recursive application) the tokens are randomly permuted
    first and restored after the attention, so the slices of the recursive pass mix tokens from
    all over the image (the permutation approximates global attention across recursions).
    ``num_groups == 1`` is ordinary global self-attention (and never permutes), which is what
    the models "without slicing" use everywhere.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, attn_drop: float = 0.0,
                 proj_drop: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: Tensor, num_groups: int = 1, permute: bool = False,
                generator: Optional[torch.Generator] = None) -> Tensor:
        B, N, C = x.shape
        if not torch.jit.is_scripting():
            check_groups(N, num_groups)
        inverse: Optional[Tensor] = None
        if permute and num_groups > 1:
            perm = torch.randperm(N, generator=generator).to(x.device)
            x = x[:, perm]
            inverse = torch.argsort(perm)
        # (B, N, 3C) -> 3 x (B, groups, heads, N / groups, head_dim): contiguous token slices
        qkv = self.qkv(x).reshape(B, num_groups, N // num_groups, 3, self.num_heads,
                                  self.head_dim).permute(3, 0, 1, 4, 2, 5)
        q, k, v = qkv.unbind(0)
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = self.attn_drop(attn.softmax(dim=-1))
        x = (attn @ v).permute(0, 1, 3, 2, 4).reshape(B, N, C)
        if inverse is not None:
            x = x[:, inverse]
        return self.proj_drop(self.proj(x))


class TransformerBlock(nn.Module):
    """Pre-norm transformer block with the paper's learnable residual connection (LRC):
    ``x = a1 * x + a2 * attn(norm1(x)); x = a3 * x + a4 * mlp(norm2(x))``.  Its weights are
    shared by all applications of the block within a stage."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, drop: float = 0.0,
                 attn_drop: float = 0.0, drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=NORM_EPS)
        self.attn = GroupAttention(dim, num_heads, qkv_bias=True, attn_drop=attn_drop,
                                   proj_drop=drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=NORM_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU, drop=drop)
        self.coef_skip1 = LearnableCoefficient()
        self.coef_attn = LearnableCoefficient()
        self.coef_skip2 = LearnableCoefficient()
        self.coef_mlp = LearnableCoefficient()

    def forward(self, x: Tensor, num_groups: int = 1, permute: bool = False,
                generator: Optional[torch.Generator] = None) -> Tensor:
        a = self.attn(self.norm1(x), num_groups, permute, generator)
        x = self.coef_skip1(x) + self.coef_attn(self.drop_path(a))
        x = self.coef_skip2(x) + self.coef_mlp(self.drop_path(self.mlp(self.norm2(x))))
        return x


class NonLinearProjection(nn.Module):
    """The paper's non-linear projection layer (NLL): an unshared pre-norm MLP with learnable
    residual coefficients after every block application, ``x = c1 * x + c2 * mlp(norm(x))``.
    It keeps consecutive applications of a shared block from collapsing into one another."""

    def __init__(self, dim: int, mlp_ratio: float, drop: float = 0.0) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=NORM_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU, drop=drop)
        self.coef_skip = LearnableCoefficient()
        self.coef_mlp = LearnableCoefficient()

    def forward(self, x: Tensor) -> Tensor:
        return self.coef_skip(x) + self.coef_mlp(self.mlp(self.norm(x)))


class ConvPool(nn.Module):
    """Between stages: a stride-2 3x3 conv grouped by input channel that widens the tokens
    (PiT's ``conv_head_pooling``, which SReT's code adopts)."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_dim, out_dim, kernel_size=3, stride=2, padding=1, groups=in_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class ConvStem(nn.Module):
    """Patch embedding: three stride-2 3x3 conv-BN-ReLU layers (width/2, width, width), i.e. a
    stride-8 token grid (upstream ``conv_embedding``)."""

    def __init__(self, in_chans: int, dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_chans, dim // 2, kernel_size=3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(dim // 2)
        self.conv2 = nn.Conv2d(dim // 2, dim, kernel_size=3, stride=2, padding=1)
        self.bn2 = nn.BatchNorm2d(dim)
        self.conv3 = nn.Conv2d(dim, dim, kernel_size=3, stride=2, padding=1)
        self.bn3 = nn.BatchNorm2d(dim)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.relu(self.bn3(self.conv3(x)))


class SReTStage(nn.Module):
    """[pool ->] recursive transformer stage (the paper's recursive operation; README
    figure imgs/recursion.png).

    Holds ``unique_blocks`` shared :class:`TransformerBlock`s once and ``unique_blocks *
    applications`` unshared :class:`NonLinearProjection`s; :meth:`schedule` gives the order they
    run in.  A block's first application attends within ``groups`` slices, its later
    (recursive) applications within ``recursive_groups`` slices of randomly permuted tokens.
    For the published two applications per block this is exactly upstream's rule (it marks
    layer ``i`` of its flat block list recursive when ``(i + 2) % 4 == 0``).
    """

    def __init__(self, cfg: Stage, in_dim: Optional[int], mlp_ratio: float, nll_mlp_ratio: float,
                 drop: float, attn_drop: float, drop_path: List[float]) -> None:
        super().__init__()
        self.groups, self.recursive_groups = cfg.groups, cfg.recursive_groups
        self.applications = cfg.applications
        self._schedule = [(b, a) for b in range(cfg.unique_blocks)
                          for a in range(cfg.applications)]
        self.downsample = ConvPool(in_dim, cfg.dim) if in_dim is not None else nn.Identity()
        self.blocks = nn.ModuleList(
            TransformerBlock(cfg.dim, cfg.num_heads, mlp_ratio, drop=drop, attn_drop=attn_drop,
                             drop_path=drop_path[b]) for b in range(cfg.unique_blocks))
        self.nlls = nn.ModuleList(
            NonLinearProjection(cfg.dim, nll_mlp_ratio, drop=drop) for _ in range(cfg.depth))

    def schedule(self) -> Iterator[Tuple[int, int]]:
        """(unique block index, application index) of every application, in order; the NLL
        after the ``k``-th application (0-based, over the stage) is ``nlls[k]``."""
        return iter(self._schedule)

    def forward(self, x: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
        x = self.downsample(x)
        B, C, H, W = x.shape
        x = x.flatten(2).transpose(1, 2)  # raster token order
        if torch.jit.is_scripting():
            x = self._applications_scripted(x, generator)
        else:
            for k, (b, a) in enumerate(self._schedule):
                groups = self.recursive_groups if a > 0 else self.groups
                x = self.blocks[b](x, groups, a > 0, generator)
                x = self.nlls[k](x)
        return x.transpose(1, 2).reshape(B, C, H, W)

    def _applications_scripted(self, x: Tensor, generator: Optional[torch.Generator]) -> Tensor:
        """The same schedule in a form TorchScript compiles (it indexes module lists only in
        loops over them): for application k, block k // applications, then NLL k."""
        for k, nll in enumerate(self.nlls):
            a = k % self.applications
            groups = self.recursive_groups if a > 0 else self.groups
            for b, block in enumerate(self.blocks):
                if b == k // self.applications:
                    x = block(x, groups, a > 0, generator)
            x = nll(x)
        return x


class SReT(ZooModel):
    """Sliced Recursive Transformer (and its variants without slicing, where every stage has
    ``groups == recursive_groups == 1``).

    ``forward_features`` returns the unpooled last-stage map (B, C, H/32, W/32); the head
    average-pools it, applies the final LayerNorm (upstream normalizes *after* pooling) and the
    linear classifier.
    """

    def __init__(self, arch: Arch, num_classes: int = 1000, in_chans: int = 3,
                 img_size: tuple[int, int] = (224, 224), name: str = "sret") -> None:
        super().__init__()
        self.arch = arch
        self.name = name
        self.num_classes, self.in_chans = num_classes, in_chans
        self.num_features = self.head_hidden_size = arch.num_features
        self.global_pool: str = arch.global_pool  # checked again by reset_classifier
        self.seeded = arch.token_permutation == "seeded"
        self.permutation_seed = arch.permutation_seed
        self.img_size = tuple(img_size)
        self.grid_size = (img_size[0] // STEM_STRIDE, img_size[1] // STEM_STRIDE)
        self.dynamic_img_size = arch.dynamic_img_size

        dim0 = arch.stages[0].dim
        self.patch_embed = ConvStem(in_chans, dim0)
        self.pos_embed = nn.Parameter(torch.zeros(1, dim0, *self.grid_size))
        self.pos_drop = nn.Dropout(arch.drop_rate)

        total = sum(s.depth for s in arch.stages)
        stages, start, in_dim = [], 0, None
        for cfg in arch.stages:
            rates = [arch.drop_path_rate * (start + b) / total for b in range(cfg.unique_blocks)]
            stages.append(SReTStage(cfg, in_dim, arch.mlp_ratio, arch.nll_mlp_ratio,
                                    arch.drop_rate, arch.attn_drop_rate, rates))
            start += cfg.depth
            in_dim = cfg.dim
        self.stages = nn.ModuleList(stages)
        # every stage returns a (B, C, H, W) map; stage i > 0 starts with a stride-2 ConvPool
        self.feature_info = [{"module": f"stages.{i}", "num_chs": cfg.dim,
                              "reduction": STEM_STRIDE * 2 ** i}
                             for i, cfg in enumerate(arch.stages)]

        self.norm: nn.Module = nn.LayerNorm(self.num_features, eps=NORM_EPS)  # Identity once pruned
        self.head = linear_or_identity(self.num_features, num_classes)
        trunc_normal_(self.pos_embed, std=0.02)

    # -- features -------------------------------------------------------------------------------
    def _stem(self, x: Tensor) -> Tensor:
        if not torch.jit.is_scripting():
            if self.dynamic_img_size:  # the stem and poolings halve the grid 5 times
                check_image(x, self.in_chans, 32, 32)
            else:
                check_input_size(x, self.img_size, self.name)
        return self.pos_drop(add_pos_embed(self.patch_embed(x), self.pos_embed))

    @torch.jit.ignore
    def _checkpointed_stage(self, stage: nn.Module, x: Tensor,
                            generator: Optional[torch.Generator]) -> Tensor:
        if generator is None:  # checkpoint restores the global RNG for the recomputation
            return checkpoint(stage, x, None)
        # a private generator: the recomputation must draw what the forward drew
        done: Dict[str, Tensor] = {}

        def run(x: Tensor, state: Tensor) -> Tensor:
            g = torch.Generator()
            g.set_state(state)
            out = stage(x, g)
            done["state"] = g.get_state()
            return out

        x = checkpoint(run, x, generator.get_state())
        generator.set_state(done["state"])
        return x

    def forward_features(self, x: Tensor) -> Tensor:
        x = self._stem(x)
        generator = permutation_generator(self.seeded, self.permutation_seed, x)
        for stage in self.stages:
            if self.grad_checkpointing and not torch.jit.is_scripting():
                x = self._checkpointed_stage(stage, x, generator)
            else:
                x = stage(x, generator)
        return x

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        if self.global_pool == "":
            return x
        x = self.norm(x.mean(dim=(2, 3)))
        return x if pre_logits else self.head(x)

    # -- timm API -------------------------------------------------------------------------------
    @torch.jit.ignore
    def set_input_size(self, img_size=None, patch_size=None) -> None:
        """Take ``img_size`` images from now on (multiples of 32 whose stage token counts the
        slices divide): the positional embedding grid is resampled bicubically, as
        ``dynamic_img_size`` does at every forward."""
        if patch_size is not None:
            raise ValueError("SReT's convolutional stem has no patch size to change")
        if img_size is None:
            return
        h, w = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        if h % 32 or w % 32:
            raise InputShapeError(f"{self.name}: input size {h}x{w} must be a multiple of 32 "
                                  "(stem stride 8, two stride-2 poolings)")
        for i, stage in enumerate(self.stages):
            n = (h // STEM_STRIDE >> i) * (w // STEM_STRIDE >> i)
            if n % stage.groups or n % stage.recursive_groups:
                raise InputShapeError(f"{self.name}: stage {i} slices its {n} tokens at {h}x{w} "
                                      f"into {stage.groups} / {stage.recursive_groups} groups, "
                                      "which must divide them")
        grid = (h // STEM_STRIDE, w // STEM_STRIDE)
        if grid != self.grid_size:
            with torch.no_grad():
                pos = F.interpolate(self.pos_embed, size=grid, mode="bicubic",
                                    align_corners=False)
            self.pos_embed = nn.Parameter(pos, requires_grad=self.pos_embed.requires_grad)
        self.img_size, self.grid_size = (h, w), grid
        self._input_size_changed(self.img_size)

    @torch.jit.ignore
    def forward_intermediates(
            self, x: Tensor, indices: IndicesT = None, norm: bool = False,
            stop_early: bool = False, output_fmt: str = "NCHW", intermediates_only: bool = False,
    ) -> Union[List[Tensor], Tuple[Tensor, List[Tensor]]]:
        """Every stage's output map (B, C, H, W); ``norm`` is accepted for timm's interface
        (SReT's only norm follows the pooling, in the head)."""
        check_output_fmt(output_fmt, ("NCHW", "NHWC"))
        take, max_index = feature_take_indices(len(self.stages), indices)
        stages = self.stages if not (stop_early or intermediates_only) \
            else self.stages[:max_index + 1]
        x = self._stem(x)
        generator = permutation_generator(self.seeded, self.permutation_seed, x)
        intermediates = []
        for i, stage in enumerate(stages):
            x = self._checkpointed_stage(stage, x, generator) if self.grad_checkpointing \
                else stage(x, generator)
            if i in take:
                intermediates.append(x if output_fmt == "NCHW" else x.permute(0, 2, 3, 1))
        if intermediates_only:
            return intermediates
        return x, intermediates

    @torch.jit.ignore
    def prune_intermediate_layers(self, indices: Union[int, List[int]] = 1,
                                  prune_norm: bool = False, prune_head: bool = True) -> List[int]:
        take, max_index = feature_take_indices(len(self.stages), indices)
        self.stages = self.stages[:max_index + 1]
        self.num_features = self.head_hidden_size = self.feature_info[max_index]["num_chs"]
        if prune_head:
            self.norm = nn.Identity()
            self.reset_classifier(0, "")
        return take

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        if global_pool is not None:
            if global_pool not in ("avg", ""):
                raise ValueError(f"{self.name}: global_pool must be 'avg' or '', got "
                                 f"{global_pool!r}")
            self.global_pool = global_pool
        self.num_classes = num_classes
        self.head = linear_or_identity(self.num_features, num_classes, self)

    @torch.jit.ignore
    def no_weight_decay(self) -> set:
        return {"pos_embed"}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict[str, Any]:
        return {"stem": r"^pos_embed|^patch_embed",
                "blocks": r"^stages\.(\d+)" if coarse else
                [(r"^stages\.(\d+)\.downsample", (0,)),
                 (r"^stages\.(\d+)\.(?:blocks|nlls)\.(\d+)", None),
                 (r"^norm", (99999,))]}


def _token_check(spec, arch: Arch) -> None:
    """Every stage's slices must divide its token count at the spec's input size."""
    h, w = spec.data.input_size[1:]
    if h % 32 or w % 32:
        raise SpecError(f"input size {h}x{w} must be a multiple of 32 (stem stride 8, two "
                        "stride-2 poolings)", model=spec.name)
    for i, st in enumerate(arch.stages):
        n = (h // STEM_STRIDE >> i) * (w // STEM_STRIDE >> i)
        for field in ("groups", "recursive_groups"):
            if n % getattr(st, field):
                raise SpecError(f"stages[{i}].{field}={getattr(st, field)} does not divide the "
                                f"stage's {n} tokens at input size {h}x{w}", model=spec.name)


def build(spec) -> SReT:
    arch: Arch = spec.arch
    _token_check(spec, arch)
    return SReT(arch, num_classes=spec.data.num_classes, in_chans=spec.data.in_chans,
                img_size=tuple(spec.data.input_size[1:]), name=spec.name)


# -- conversion ----------------------------------------------------------------------------------
_BLOCK_RENAMES = {"coefficient1.bias": "coef_skip1.weight", "coefficient2.bias": "coef_attn.weight",
                  "coefficient3.bias": "coef_skip2.weight", "coefficient4.bias": "coef_mlp.weight"}
_NLL_RENAMES = {"coefficient1.bias": "coef_skip.weight", "coefficient2.bias": "coef_mlp.weight"}
_UPSTREAM_LAYER = re.compile(r"^transformers\.(\d+)\.blocks\.(\d+)\.(.+)$")
_UPSTREAM_POOL = re.compile(r"^pools\.(\d+)\.(.+)$")


def _rename_nll(rest: str) -> str:
    if rest in _NLL_RENAMES:
        return _NLL_RENAMES[rest]
    return "norm." + rest[len("norm1."):] if rest.startswith("norm1.") else rest


def convert(spec, state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Upstream ``SReT`` / ``RecursiveTransformer`` state dict -> this module's layout.

    Upstream's stage ``s`` lists its layers flat, ``transformers.s.blocks.i``: even ``i`` are
    applications of the shared blocks (the same module object at several indices, so the state
    dict holds one copy per application), odd ``i`` the NLLs.  Application ``k = i // 2`` is
    application ``k % applications`` of unique block ``k // applications``.  The first
    application's copy becomes ``stages.s.blocks.b``; every other copy must be identical to it
    (:class:`CheckpointError` otherwise) and is dropped, as is a checkpoint that lacks them.
    ``pools.s`` becomes ``stages.(s+1).downsample``; the ``coefficientK.bias`` scalars are
    renamed after their role.  A state dict already in zoo's layout is returned unchanged.
    """
    sd = dict(state_dict)
    if sd and all(k.startswith("module.") for k in sd):  # saved from a DistributedDataParallel
        sd = {k[len("module."):]: v for k, v in sd.items()}
    if any(k.startswith("stages.") for k in sd):
        if any(k.startswith(("transformers.", "pools.")) for k in sd):
            raise CheckpointError(f"{spec.name}: the state dict mixes zoo's layout (stages.*) and "
                                  "the original one (transformers.*, pools.*)")
        return sd

    stages: tuple[Stage, ...] = spec.arch.stages
    out: dict[str, Tensor] = {}
    copies: dict[str, list[tuple[str, Tensor]]] = {}
    unknown: list[str] = []
    for key, value in sd.items():
        m = _UPSTREAM_LAYER.match(key)
        p = _UPSTREAM_POOL.match(key)
        if m:
            s, i, rest = int(m[1]), int(m[2]), m[3]
            if s >= len(stages) or i >= 2 * stages[s].depth:
                unknown.append(key)
                continue
            k = i // 2
            if i % 2:
                out[f"stages.{s}.nlls.{k}.{_rename_nll(rest)}"] = value
                continue
            b, a = divmod(k, stages[s].applications)
            new = f"stages.{s}.blocks.{b}.{_BLOCK_RENAMES.get(rest, rest)}"
            if a == 0:
                out[new] = value
            else:
                copies.setdefault(new, []).append((key, value))
        elif p:
            s = int(p[1])
            if s + 1 >= len(stages):
                unknown.append(key)
                continue
            out[f"stages.{s + 1}.downsample.{p[2]}"] = value
        elif key.startswith(("patch_embed.", "head.", "norm.")) or key == "pos_embed":
            out[key] = value
        else:
            unknown.append(key)
    if unknown:
        raise CheckpointError(
            f"{spec.name}: keys the original SReT layout does not have (or that this variant's "
            f"{len(stages)} stages cannot hold): {unknown[:8]}"
            + (f" ... ({len(unknown)} in all)" if len(unknown) > 8 else "")
            + ". Is this a checkpoint of another model?")

    for new, dupes in copies.items():
        if new not in out:
            raise CheckpointError(f"{spec.name}: {dupes[0][0]} is a recursive application of a "
                                  f"shared block whose first application (-> {new}) is missing")
        ref = out[new]
        for key, value in dupes:
            if value.shape != ref.shape or value.dtype != ref.dtype or not torch.equal(value, ref):
                detail = (f"max |diff| {(value.float() - ref.float()).abs().max().item():.3g}"
                          if value.shape == ref.shape else
                          f"shapes {tuple(value.shape)} vs {tuple(ref.shape)}")
                raise CheckpointError(
                    f"{spec.name}: {key} should be a copy of the shared block weight that becomes "
                    f"{new} (upstream applies one block object several times), but it differs "
                    f"({detail}). The checkpoint is not a faithful SReT checkpoint; nothing was "
                    "converted.")
    return out


def export_refusal(model: nn.Module) -> Optional[str]:
    """Sliced models permute their tokens at random before every recursive application's
    sliced group self-attention (``GroupAttention``): no exported program draws the same
    permutations."""
    arch = getattr(model, "arch", None)
    if not isinstance(arch, Arch) or all(st.recursive_groups == 1 for st in arch.stages):
        return None
    return ("its sliced group self-attention permutes the tokens with torch.randperm in every "
            "forward; ONNX has no random permutation operator and torch.export keeps no private "
            "generator (token_permutation='seeded' included), so no exported program can draw "
            "the eager model's permutations; the models without slicing (*_wo_slice) export")


HOOKS = FamilyHooks(build=build, convert=convert, export_refusal=export_refusal)
