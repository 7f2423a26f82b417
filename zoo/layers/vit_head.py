"""The classifier head of ViT-style models: check ``global_pool`` and pool the token sequence.

timm's ``VisionTransformer`` head is ``pool -> fc_norm -> head_drop -> head`` with the three
modules as attributes of the model itself, so checkpoints have ``fc_norm.weight`` and
``head.weight`` at the top level.  Wrapping them in a shared ``nn.Module`` would move those keys
(``<child>.head.weight``), so what families share here is behaviour, not a module:
:func:`check_global_pool` (the allowed values and their error message), :func:`pool_tokens`
(timm's :func:`~timm.layers.global_pool_nlc` restricted to them), and :class:`TokenHeadModel`,
a base class whose ``forward_head`` / ``reset_classifier`` use the model's own attributes
(KArAt, KAT; OFQ's distilled DeiT uses the two functions for its two-token head).  The base
class also gives them timm ViT's feature API: ``forward_intermediates`` (every block's output,
as tokens or as a map of the patch tokens), ``prune_intermediate_layers`` and block-wise
gradient checkpointing.
"""
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple, Union

import torch
from timm.layers import PatchEmbed, global_pool_nlc
from timm.models import checkpoint, checkpoint_seq
from timm.models._features import feature_take_indices
from torch import Tensor, nn

from zoo.model import IndicesT, ZooModel, check_output_fmt, linear_or_identity, tokens_to_map

TOKEN_POOLS: tuple[str, ...] = ("", "token", "avg")


def _alternatives(values: Sequence[str]) -> str:
    """``('', 'token', 'avg')`` -> ``"'', 'token' or 'avg'"``."""
    quoted = [repr(v) for v in values]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


def check_global_pool(global_pool: str, allowed: Sequence[str] = TOKEN_POOLS, *,
                      class_token: bool = True) -> str:
    """Return ``global_pool`` if it is one of ``allowed``, else raise ``ValueError``.

    Args:
        global_pool: ``'token'`` (the class token), ``'avg'`` (mean of the tokens after the
            prefix tokens) or ``''`` (no pooling: the whole sequence).
        allowed: the subset of :data:`TOKEN_POOLS` the model supports, in the order the error
            message lists them.
        class_token: whether the model has a class token; ``'token'`` needs one.
    """
    if global_pool not in allowed:
        raise ValueError(f"global_pool must be {_alternatives(allowed)}, got {global_pool!r}")
    if global_pool == "token" and not class_token:
        raise ValueError("global_pool 'token' needs a class token")
    return global_pool


def pool_tokens(x: Tensor, global_pool: str, num_prefix_tokens: int = 1) -> Tensor:
    """Pool (B, N, C) tokens as ``global_pool`` says: (B, C) for ``'token'`` (token 0) and
    ``'avg'`` (mean over tokens ``num_prefix_tokens:``), ``x`` itself for ``''``."""
    if not torch.jit.is_scripting():
        check_global_pool(global_pool)
    return global_pool_nlc(x, pool_type=global_pool, num_prefix_tokens=num_prefix_tokens)


def vit_feature_info(depth: int, dim: int, patch_size: int) -> List[Dict]:
    """timm ViT's ``feature_info``: every block, at the patch stride."""
    return [{"module": f"blocks.{i}", "num_chs": dim, "reduction": patch_size}
            for i in range(depth)]


class TokenHeadModel(ZooModel):
    """A ZooModel with timm ViT's layout: ``patch_embed``, ``blocks`` (an ``nn.Sequential``),
    ``norm`` and the head attributes (``global_pool``, ``num_prefix_tokens``, ``fc_norm``,
    ``head_drop``, ``head``, ``embed_dim``, ``pos_embed``, optional ``cls_token``): the shared
    ``forward_features`` (:meth:`embed`, the blocks, the norm), ``forward_head`` /
    ``get_classifier`` / ``reset_classifier`` and timm ViT's feature API.  Subclasses implement
    :meth:`embed` (image -> tokens with prefix tokens and positions)."""

    default_out_indices = 3  # features_only: the last 3 blocks, as timm's ViTs

    if TYPE_CHECKING:  # for the type checker only (never run, so TorchScript does not see them)
        patch_embed: PatchEmbed
        blocks: nn.Sequential
        norm: nn.Module
        fc_norm: nn.Module
        head_drop: nn.Module
        head: nn.Module
        global_pool: str
        num_prefix_tokens: int
        embed_dim: int

    def embed(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def run_blocks(self, x: Tensor) -> Tensor:
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return checkpoint_seq(self.blocks, x)
        return self.blocks(x)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.norm(self.run_blocks(self.embed(x)))

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = pool_tokens(x, self.global_pool, self.num_prefix_tokens)
        x = self.head_drop(self.fc_norm(x))
        return x if pre_logits else self.head(x)

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        if global_pool is not None:
            self.global_pool = check_global_pool(
                global_pool, class_token=getattr(self, "cls_token", None) is not None)
        self.num_classes = num_classes
        self.head = linear_or_identity(self.embed_dim, num_classes, self)

    # -- timm ViT's feature API --------------------------------------------------------------------
    @torch.jit.ignore
    def forward_intermediates(
            self, x: Tensor, indices: IndicesT = None, norm: bool = False,
            stop_early: bool = False, output_fmt: str = "NCHW", intermediates_only: bool = False,
    ) -> Union[List[Tensor], Tuple[Tensor, List[Tensor]]]:
        """Outputs of the blocks in ``indices`` (all; the last ``n`` for an int; or those listed),
        after the final norm if ``norm``; as (B, C, H, W) maps of the patch tokens ('NCHW') or
        as the token sequence ('NLC'); and unless ``intermediates_only`` the
        ``forward_features`` output."""
        check_output_fmt(output_fmt, ("NCHW", "NLC"))
        take, max_index = feature_take_indices(len(self.blocks), indices)
        blocks = self.blocks if not (stop_early or intermediates_only) \
            else self.blocks[:max_index + 1]
        grid = self.patch_embed.grid_size
        x = self.embed(x)
        intermediates = []
        for i, block in enumerate(blocks):
            x = checkpoint(block, x) if self.grad_checkpointing else block(x)
            if i in take:
                y = self.norm(x) if norm else x
                intermediates.append(y if output_fmt == "NLC"
                                     else tokens_to_map(y, grid, self.num_prefix_tokens))
        if intermediates_only:
            return intermediates
        return self.norm(x), intermediates

    @torch.jit.ignore
    def prune_intermediate_layers(self, indices: Union[int, List[int]] = 1,
                                  prune_norm: bool = False, prune_head: bool = True) -> List[int]:
        """Keep the blocks up to the deepest one in ``indices`` (and the norm unless
        ``prune_norm``); returns the absolute indices."""
        take, max_index = feature_take_indices(len(self.blocks), indices)
        self.blocks = self.blocks[:max_index + 1]
        if prune_norm:
            self.norm = nn.Identity()
        if prune_head:
            self.fc_norm = nn.Identity()
            self.reset_classifier(0, "")
        return take

    @torch.jit.ignore
    def feature_map_size(self, img_size: Tuple[int, int]) -> Optional[Tuple[int, int]]:
        return None  # forward_features gives tokens


__all__ = ["TOKEN_POOLS", "TokenHeadModel", "check_global_pool", "pool_tokens",
           "vit_feature_info"]
