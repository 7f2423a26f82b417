"""GCR models: a timm backbone (its pooled pre-logits features) + :class:`GrassmannClassHead`.

State-dict layout: the timm backbone under ``model.`` (built with ``num_classes=0``, so it holds
no classifier of its own) and the class subspaces as ``head.weight``.  :func:`convert` maps an
original mmpretrain checkpoint (``backbone.*`` in mm key names, ``head.fc.weight``) onto it with
the shared mm -> timm key mapping (:mod:`zoo.layers.mm_layout`).
"""
# no `from __future__ import annotations`: torch.fx copies forward's annotations into the code it
# generates, and TorchScript cannot read them as strings (timm's fx-then-script test)
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.errors import CheckpointError
from zoo.families.contract import FamilyHooks
from zoo.layers import mm_layout
from zoo.layers.timm_model import PREFIX, TimmModel, create_timm
from zoo.model import head_like


class GrassmannClassHead(nn.Module):
    """Logits from class subspaces (upstream ``GrassmannClsHead``).

    Class i is the subspace spanned by the ``subspace_dim`` rows of ``weight[i*k:(i+1)*k]`` (an
    orthonormal basis: the paper's point on the Grassmann manifold, kept orthonormal by its
    Riemannian SGD).  For a feature x the logit is ``gamma * ||W_i x / ||x|| ||``: the norm of
    the projection of the unit-length feature onto the subspace, scaled by gamma.
    ``out_features`` is the number of classes.
    """

    def __init__(self, in_features: int, num_classes: int, subspace_dim: int,
                 gamma: float) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, num_classes
        self.subspace_dim, self.gamma = subspace_dim, gamma
        self.weight = nn.Parameter(torch.empty(num_classes * subspace_dim, in_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """A random point on the Grassmannian per class: Gaussian rows orthonormalized by QR
        (upstream ``init_weights``)."""
        if self.weight.is_meta:
            return
        with torch.no_grad():
            w = torch.randn(self.out_features, self.in_features, self.subspace_dim,
                            device=self.weight.device)
            q = torch.linalg.qr(w).Q  # (C, F, k): orthonormal columns per class
            self.weight.copy_(q.transpose(1, 2).reshape(-1, self.in_features))

    def forward(self, x: Tensor) -> Tensor:
        # The upstream order of operations: normalize, project (bias-free linear), scale, norm.
        scores = self.gamma * F.linear(F.normalize(x, dim=-1), self.weight)
        return torch.linalg.vector_norm(
            scores.reshape(-1, self.out_features, self.subspace_dim), dim=-1)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, num_classes={self.out_features}, "
                f"subspace_dim={self.subspace_dim}, gamma={self.gamma}")


class GCRModel(TimmModel):
    """A timm backbone whose pooled features feed class subspaces instead of class vectors."""

    def __init__(self, backbone: nn.Module, num_classes: int, subspace_dim: int,
                 gamma: float) -> None:
        super().__init__(backbone)
        self.subspace_dim, self.gamma = subspace_dim, gamma
        self.num_classes = num_classes
        self.head = self._new_head(num_classes)

    def _new_head(self, num_classes: int) -> nn.Module:
        if num_classes == 0:
            return nn.Identity()
        return GrassmannClassHead(self.head_hidden_size, num_classes, self.subspace_dim,
                                  self.gamma)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.timm_head(x, pre_logits=True)
        return x if pre_logits else self.head(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        """A new (randomly initialized) subspace head for ``num_classes`` (0: none, the model
        returns pooled features; with ``global_pool=''`` unpooled ones)."""
        if global_pool is not None:
            self.model.reset_classifier(0, global_pool)
            self._sync_head_maps()
        self.head = head_like(self, lambda: self._new_head(num_classes))
        self.num_classes = num_classes


def build(spec) -> GCRModel:
    arch = spec.arch
    backbone = create_timm(spec, num_classes=0)
    return GCRModel(backbone, spec.data.num_classes, arch.subspace_dim, arch.gamma)


def convert(spec, state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """An upstream checkpoint (mmpretrain ``ImageClassifier`` with ``GrassmannClsHead``, or a
    cls_KD-style distiller wrapping one) -> zoo: the backbone through the shared mm -> timm
    mapping of ``arch.checkpoint_layout.backbone``, ``head.fc.weight`` -> ``head.weight``."""
    what = spec.name
    backbone, head = mm_layout.split(state_dict, what)
    out = {PREFIX + k: v for k, v in
           mm_layout.backbone_to_timm(spec.arch.checkpoint_layout.backbone, backbone,
                                      what).items()}
    if set(head) != {"fc.weight"}:
        raise CheckpointError(f"{what}: expected the GrassmannClsHead's single entry "
                              f"head.fc.weight, got head entries {sorted(head)[:5]}"
                              + (" (a vector-class LinearClsHead: use the paper's `_vector` "
                                 "baseline model instead)" if "fc.bias" in head else ""))
    weight = head["fc.weight"]
    k, classes = spec.arch.subspace_dim, spec.data.num_classes
    if weight.ndim != 2 or weight.shape[0] != classes * k:
        raise CheckpointError(f"{what}: head.fc.weight has shape {tuple(weight.shape)}, not "
                              f"({classes} classes x {k} subspace dimensions, features): the "
                              "checkpoint's subspace dimension or class count differs from "
                              "this model's")
    out["head.weight"] = weight
    return out


HOOKS = FamilyHooks(build=build, convert=convert)
