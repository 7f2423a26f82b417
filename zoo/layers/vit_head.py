"""The classifier head of ViT-style models: check ``global_pool`` and pool the token sequence.

timm's ``VisionTransformer`` head is ``pool -> fc_norm -> head_drop -> head`` with the three
modules as attributes of the model itself, so checkpoints have ``fc_norm.weight`` and
``head.weight`` at the top level.  Wrapping them in a shared ``nn.Module`` would move those keys
(``<child>.head.weight``), so what families share here is behaviour, not a module:
:func:`check_global_pool` (the allowed values and their error message), :func:`pool_tokens`
(timm's :func:`~timm.layers.global_pool_nlc` restricted to them), and :class:`TokenHeadModel`,
a base class whose ``forward_head`` / ``reset_classifier`` use the model's own attributes
(KArAt, KAT; OFQ's distilled DeiT uses the two functions for its two-token head).
"""
from __future__ import annotations

from typing import Sequence

from timm.layers import global_pool_nlc
from torch import Tensor, nn

from zoo.model import ZooModel, linear_or_identity

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
    check_global_pool(global_pool)
    return global_pool_nlc(x, pool_type=global_pool, num_prefix_tokens=num_prefix_tokens)


class TokenHeadModel(ZooModel):
    """A ZooModel with timm ViT's head attributes (``global_pool``, ``num_prefix_tokens``,
    ``fc_norm``, ``head_drop``, ``head``, ``embed_dim``, ``pos_embed``, optional ``cls_token``):
    the shared ``forward_head`` / ``get_classifier`` / ``reset_classifier``."""

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = pool_tokens(x, self.global_pool, self.num_prefix_tokens)
        x = self.head_drop(self.fc_norm(x))
        return x if pre_logits else self.head(x)

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        if global_pool is not None:
            self.global_pool = check_global_pool(
                global_pool, class_token=getattr(self, "cls_token", None) is not None)
        self.num_classes = num_classes
        device = self.pos_embed.device
        self.head = linear_or_identity(self.embed_dim, num_classes).to(
            None if device.type == "meta" else device)


__all__ = ["TOKEN_POOLS", "TokenHeadModel", "check_global_pool", "pool_tokens"]
