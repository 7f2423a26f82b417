"""``zoo.ebv``: the EBV family's public helpers.

Upstream (aassxun/Equiangular-Basis-Vectors) stores the basis vectors apart from the weights
(``EBV_pkl/eq_<dim>_<classes>.pkl``, ``pickle.dump`` of one tensor); ``zoo convert`` takes that
file as an extra tensor of the original state dict (read by
``zoo.weights.checkpoint.load_pickled_tensor``, which unpickles nothing but one tensor)::

    zoo convert ebv_resnet50.in1k EBV_ResNet_dim1000_SGD_epoch605.pth --tensor basis=eq_1000_1000.pkl
"""
from __future__ import annotations

from zoo.families.ebv.model import BASIS_KEY, generate_basis_vectors

__all__ = ["BASIS_KEY", "generate_basis_vectors"]
