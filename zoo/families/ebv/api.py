"""``zoo.ebv``: reading upstream's basis-vector files and preparing its checkpoints for
``zoo convert``.

Upstream (aassxun/Equiangular-Basis-Vectors) stores the basis vectors apart from the weights:
``EBV_pkl/eq_<dim>_<classes>.pkl`` is ``pickle.dump(tensor)`` of a CUDA tensor (the pickle calls
``torch._utils._rebuild_tensor_v2`` on ``torch.storage._load_from_bytes(<a legacy torch.save
file>)``).  :func:`read_basis` reads it without unpickling anything else: a restricted unpickler
allows exactly those two functions (the inner bytes go through ``torch.load(weights_only=True,
map_location="cpu")``) and ``collections.OrderedDict`` (its empty hook dict).
"""
from __future__ import annotations

import collections
import io
import pickle
from pathlib import Path

import torch
from torch import Tensor

from zoo.errors import CheckpointError
from zoo.families.ebv.model import BASIS_KEY, generate_basis_vectors

__all__ = ["BASIS_KEY", "generate_basis_vectors", "merge_basis", "read_basis"]


def _storage_from_bytes(data: bytes):
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


class _BasisUnpickler(pickle.Unpickler):
    ALLOWED = {
        ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
        ("torch.storage", "_load_from_bytes"): _storage_from_bytes,
        ("collections", "OrderedDict"): collections.OrderedDict,
    }

    def find_class(self, module: str, name: str):
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused global {module}.{name}") from None


def read_basis(path: str | Path) -> Tensor:
    """The basis vectors of an upstream ``eq_<dim>_<classes>.pkl`` (a [classes, dim] float
    tensor, on the CPU), read without executing code from the file."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            obj = _BasisUnpickler(f).load()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except (pickle.UnpicklingError, EOFError, RuntimeError, ValueError, TypeError,
            AttributeError) as e:
        raise CheckpointError(f"{path}: not an EBV basis pickle as upstream writes it "
                              f"(pickle.dump of one tensor): {e}") from None
    if not isinstance(obj, Tensor) or obj.ndim != 2 or not obj.is_floating_point():
        shape = tuple(obj.shape) if isinstance(obj, Tensor) else ""
        raise CheckpointError(f"{path}: expected one 2-D float tensor, got "
                              f"{type(obj).__name__}{shape}")
    return obj.detach().contiguous()


def merge_basis(checkpoint: str | Path, basis: str | Path, out: str | Path) -> Path:
    """Write upstream's checkpoint (``torch.save(model.state_dict())`` of ``DataParallel(Net)``)
    together with its basis vectors (``basis``, read by :func:`read_basis`) as one safetensors
    file, the original layout ``zoo convert`` takes for EBV models."""
    from safetensors.torch import save_file

    from zoo.checkpoint import load_original_checkpoint

    state_dict = load_original_checkpoint(checkpoint)
    if BASIS_KEY in state_dict:
        raise CheckpointError(f"{checkpoint} already holds a '{BASIS_KEY}' entry")
    state_dict[BASIS_KEY] = read_basis(basis)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state_dict.items()}, str(out))
    return out
