"""The contract between zoo's core and a model family.

A family is a package ``zoo/families/<name>/`` (or a third-party package announced through the
``zoo.families`` entry-point group) with:

- ``schema.py``: ``Arch``, a :class:`zoo.spec.ArchBase` subclass (no torch import);
- ``model.py``: ``HOOKS``, a :class:`FamilyHooks` naming its ``build`` and ``convert`` functions
  and any optional hooks;
- optionally ``cli.py`` with ``register(subparsers)`` adding ``zoo`` commands (no torch import
  there; like all family code it imports nothing above the families layer) and ``api.py``, the
  family's public functions (``zoo.<family>``).

The core calls a family only through :class:`zoo.families.Family`, which reads these.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

    from zoo.spec import SpecBase

StateDict = dict[str, "torch.Tensor"]


@dataclass(frozen=True)
class FamilyHooks:
    """What a family's ``model.py`` gives the core.

    Attributes:
        build: ``spec -> nn.Module``; the model must build with its parameters on the meta
            device (zoo builds that way before loading weights).
        convert: ``(spec, original_state_dict) -> state_dict``: the original implementation's
            checkpoint layout to the module's.
        load_packed: ``(spec, packed_state_dict) -> nn.Module``: the deployable form of a
            quantized model, for weights recorded with ``layout: packed``.
        info: ``model -> {label: text}``: extra lines for ``zoo info``.
        calibrate: ``(model, batches, num_batches) -> batches used``: re-estimate statistics
            (e.g. BatchNorm of a supernet child) in place; ``zoo calibrate`` runs it.
        export_tolerance: the largest relative difference between an exported program's
            outputs and eager PyTorch that ``zoo export`` accepts for this family (default 1e-4),
            with ``export_note`` saying why a family needs more.
        export_refusal: ``model -> reason or None``: why no exported program can reproduce this
            model (``zoo export`` says so before exporting; None: try).
    """

    build: Callable[[SpecBase], nn.Module]
    convert: Callable[[SpecBase, StateDict], StateDict]
    load_packed: Callable[[SpecBase, StateDict], nn.Module] | None = None
    info: Callable[[nn.Module], Mapping[str, str]] | None = None
    calibrate: Callable[[nn.Module, Iterable[Any], int], int] | None = None
    export_tolerance: float = 1e-4
    export_note: str = ""
    export_refusal: Callable[[nn.Module], str | None] | None = None
