"""Equiangular Basis Vectors (paper Sec. 3): a timm backbone maps an image to an embedding
``f(x)`` in R^dim (upstream: ``timm.create_model(model_name, num_classes=dim)``, i.e. the
backbone's own ``fc``), which is L2-normalized; the classifier is a fixed set of N unit vectors
("EBVs", pairwise |cos| <= threshold), and the logits are the cosine similarities to them,
divided by a temperature (upstream's training logits ``F.normalize(f(x)) @ d.t() / 0.07``; its
evaluation takes the argmax of the cosines, which ranks the same).

State-dict layout: ``backbone.*`` is the timm model's (its ``fc`` is the embedding layer) and
``ebv.weight`` the N x dim basis vectors (a buffer, never trained).  Upstream keeps the basis out
of its checkpoint (``EBV_pkl/eq_<dim>_<N>.pkl``, loaded and normalized at run time): the
original layout :func:`convert` takes is the checkpoint's keys plus ``basis`` (the pkl's tensor;
``zoo convert NAME.TAG CKPT --tensor basis=PKL`` adds it).
"""
from __future__ import annotations

from typing import Any, List, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.errors import CheckpointError, SpecError, ZooError
from zoo.families.contract import FamilyHooks
from zoo.layers.timm_model import timm_feature_info, timm_group_matcher, timm_no_weight_decay
from zoo.model import IndicesT, ZooModel, head_like

BASIS_KEY = "basis"
BACKBONE = "backbone."


def generate_basis_vectors(num: int, dim: int, threshold: float = 0.002, *,
                           steps: int = 100_000, lr: float = 1e-3,
                           device: torch.device | str | None = None) -> Tensor:
    """N unit vectors in R^dim whose pairwise |cos| is at most ``threshold`` (paper Sec. 3.2).

    ``num <= dim``: an orthonormal set (|cos| = 0, the criterion met exactly; QR of a Gaussian
    matrix).  ``num > dim``: upstream's procedure (Generate_EBV.py): start from normalized
    Gaussian vectors and minimize ``sum(relu(|cos_ij| - threshold))`` by SGD, re-normalizing
    every step, until ``max |cos_ij| <= threshold + 1e-4``.  Draws from torch's global RNG.
    """
    if num <= dim:
        q, _ = torch.linalg.qr(torch.randn(dim, num, device=device))
        return q.T.contiguous()
    basis = nn.Parameter(F.normalize(torch.randn(num, dim, device=device)))
    optim = torch.optim.SGD([basis], lr=lr)
    eye = torch.eye(num, device=device)
    with torch.enable_grad():
        for _ in range(steps):
            with torch.no_grad():
                basis.copy_(F.normalize(basis))
            m = (basis @ basis.T).abs() - eye
            if m.max().item() <= threshold + 1e-4:
                return basis.detach().clone()
            F.relu(m - threshold).sum().backward()
            optim.step()
            optim.zero_grad()
    raise ZooError(f"no {num} basis vectors in R^{dim} with |cos| <= {threshold} after {steps} "
                   "steps; raise arch.threshold or dim")


class EquiangularBasisVectors(nn.Module):
    """The EBV classifier (paper Sec. 3): ``weight`` holds N fixed unit vectors (rows; a
    persistent buffer, never trained); ``forward(z) = z @ weight.T / temperature`` for
    L2-normalized embeddings ``z``: cosine similarities, scaled as upstream's training logits.
    The prediction, ``argmax``, is the nearest basis vector."""

    def __init__(self, dim: int, num_classes: int, temperature: float,
                 threshold: float = 0.002) -> None:
        super().__init__()
        self.in_features, self.out_features = dim, num_classes
        self.temperature, self.threshold = temperature, threshold
        self.register_buffer("weight", torch.empty(num_classes, dim))
        self.weight: Tensor
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """A fresh set of basis vectors (:func:`generate_basis_vectors`); none on meta."""
        if self.weight.is_meta:
            return
        with torch.no_grad():
            self.weight.copy_(generate_basis_vectors(self.out_features, self.in_features,
                                                     self.threshold, device=self.weight.device))

    def forward(self, z: Tensor) -> Tensor:
        # (B, dim) or, unpooled, (B, dim, H, W): every position classified (for 2-d input the
        # moves are identities; no branch on the rank keeps fx tracing and export simple)
        return (z.movedim(1, -1) @ self.weight.t() / self.temperature).movedim(-1, 1)

    def extra_repr(self) -> str:
        return (f"dim={self.in_features}, num_classes={self.out_features}, "
                f"temperature={self.temperature}")


class EBVNet(ZooModel):
    """A timm backbone with the EBV head: global pool -> ``fc`` (the embedding) -> L2 norm ->
    :class:`EquiangularBasisVectors`.  ``num_features`` is the backbone's width;
    ``head_hidden_size`` (the pre-logits features) is the normalized embedding's ``dim``."""

    def __init__(self, backbone: nn.Module, dim: int, num_classes: int, temperature: float,
                 threshold: float) -> None:
        super().__init__()
        # a timm model: its API (num_features, forward_features, global_pool, fc, ...) is timm's
        # and untyped (nn.Module.__getattr__ would type every such attribute Tensor | Module)
        timm_model: Any = backbone
        self.backbone: Any = timm_model
        self.temperature, self.threshold = temperature, threshold
        self.num_features = timm_model.num_features
        self.head_hidden_size = dim
        self.drop_rate = float(getattr(timm_model, "drop_rate", 0.0))
        self.in_chans = int(getattr(timm_model, "in_chans", 3))
        self.feature_info = timm_feature_info(backbone, prefix=BACKBONE)
        self.num_classes = num_classes
        # where the backbone's parameters are: on meta when building for weights, so the
        # basis (a persistent buffer the weights carry) is not drawn at random for nothing
        self.ebv = head_like(self, lambda: self._classifier(num_classes))

    def _classifier(self, num_classes: int) -> nn.Module:
        if num_classes <= 0:
            return nn.Identity()
        return EquiangularBasisVectors(self.head_hidden_size, num_classes, self.temperature,
                                       self.threshold)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.backbone.forward_features(x)

    def embed(self, x: Tensor) -> Tensor:
        """Backbone features -> L2-normalized embedding (upstream ``F.normalize(backbone(x))``);
        unpooled features (``global_pool=''``) are embedded at every position."""
        x = self.backbone.global_pool(x)
        if self.drop_rate > 0.0:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        fc = self.backbone.fc
        if isinstance(fc, nn.Linear):  # pooled (B, C) or, unpooled, (B, C, H, W) features
            x = F.linear(x.movedim(1, -1), fc.weight, fc.bias).movedim(-1, 1)
        else:  # pruned: no embedding layer
            x = fc(x)
        return F.normalize(x, dim=1)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.embed(x)
        return x if pre_logits else self.ebv(x)

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.ebv

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """New basis vectors for ``num_classes`` (0: none, forward returns the embedding); the
        embedding layer is kept.  ``global_pool=''`` embeds every position (no pooling)."""
        if global_pool is not None:
            from timm.layers import SelectAdaptivePool2d

            self.backbone.global_pool = SelectAdaptivePool2d(
                pool_type=global_pool, flatten=bool(global_pool)).train(self.training)
        self.num_classes = num_classes
        self.ebv = head_like(self, lambda: self._classifier(num_classes))

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable
        self.backbone.set_grad_checkpointing(enable)

    @torch.jit.ignore
    def forward_intermediates(
            self, x: Tensor, indices: IndicesT = None, norm: bool = False,
            stop_early: bool = False, output_fmt: str = "NCHW", intermediates_only: bool = False,
    ) -> Union[List[Tensor], Tuple[Tensor, List[Tensor]]]:
        """The backbone's own ``forward_intermediates`` (same levels as ``feature_info``)."""
        return self.backbone.forward_intermediates(
            x, indices=indices, norm=norm, stop_early=stop_early, output_fmt=output_fmt,
            intermediates_only=intermediates_only)

    @torch.jit.ignore
    def prune_intermediate_layers(self, indices: Union[int, List[int]] = 1,
                                  prune_norm: bool = False, prune_head: bool = True) -> List[int]:
        """The backbone's pruning; ``prune_head`` also drops the embedding layer (the backbone's
        ``fc``) and the basis vectors."""
        take = self.backbone.prune_intermediate_layers(indices, prune_norm=prune_norm,
                                                       prune_head=prune_head)
        self.num_features = int(self.backbone.num_features)
        if prune_head:
            self.num_classes, self.ebv = 0, nn.Identity()
            self.head_hidden_size = self.num_features
        return take

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        return timm_no_weight_decay(self.backbone, prefix=BACKBONE)

    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """timm's matcher of the backbone, its patterns moved under ``backbone.``."""
        return timm_group_matcher(self.backbone, coarse, prefix=BACKBONE)


def build(spec) -> EBVNet:
    import timm

    arch = spec.arch
    if not timm.is_model(arch.backbone):
        raise SpecError(f"arch.backbone {arch.backbone!r} is not a timm architecture "
                        f"(timm {timm.__version__})", model=spec.name)
    backbone = timm.create_model(arch.backbone, pretrained=False, num_classes=arch.dim,
                                 in_chans=spec.data.in_chans, drop_rate=arch.drop_rate,
                                 drop_path_rate=arch.drop_path_rate,
                                 **({} if arch.global_pool is None
                                    else {"global_pool": arch.global_pool}))
    if not isinstance(getattr(backbone, "fc", None), nn.Linear) or not hasattr(backbone,
                                                                               "global_pool"):
        raise SpecError(f"arch.backbone {arch.backbone!r} has no `global_pool` + Linear `fc` "
                        "head (the embedding layer EBV needs, as timm's ResNets)",
                        model=spec.name)
    return EBVNet(backbone, arch.dim, spec.data.num_classes, arch.temperature, arch.threshold)


def convert(spec, state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Upstream's layout -> zoo's: ``module.backbone.*`` (its ``nn.DataParallel(Net)`` state
    dict) -> ``backbone.*``; ``basis`` (the EBV pkl's tensor, which upstream keeps beside the
    checkpoint) -> ``ebv.weight``, row-normalized as upstream does at load time
    (``d = F.normalize(pkl.load(...))``)."""
    if "ebv.weight" in state_dict:
        raise CheckpointError(f"{spec.name}: the state dict holds 'ebv.weight': this looks like "
                              "a zoo-layout state dict, which needs no conversion")
    sd = {k.removeprefix("module."): v for k, v in state_dict.items()}
    basis = sd.pop(BASIS_KEY, None)
    if basis is None:
        raise CheckpointError(
            f"{spec.name}: no '{BASIS_KEY}' entry. Upstream keeps the basis vectors out of its "
            "checkpoint (EBV_pkl/eq_<dim>_<classes>.pkl in aassxun/Equiangular-Basis-Vectors); "
            "give it to the conversion: zoo convert NAME.TAG CHECKPOINT --tensor "
            f"{BASIS_KEY}=eq_<dim>_<classes>.pkl")
    want = (spec.data.num_classes, spec.arch.dim)
    if tuple(basis.shape) != want:
        raise CheckpointError(f"{spec.name}: '{BASIS_KEY}' has shape {tuple(basis.shape)}, "
                              f"expected (num_classes, dim) = {want}: wrong EBV pkl?")
    stray = sorted(k for k in sd if not k.startswith(BACKBONE))
    if stray:
        raise CheckpointError(f"{spec.name}: unexpected keys {stray[:5]}: expected upstream "
                              "Net's `backbone.*` (optionally under `module.`) and "
                              f"'{BASIS_KEY}'")
    sd["ebv.weight"] = F.normalize(basis.float(), dim=1)
    return sd


HOOKS = FamilyHooks(build=build, convert=convert)
