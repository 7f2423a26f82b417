"""Model families: discovery, and the one place the core calls a family through.

A family is a package ``zoo/families/<name>/`` (zoo's own) or a third-party package announced
through the ``zoo.families`` entry-point group (``name = "package.path"``); what it must provide is
:mod:`zoo.families.contract`.  The core never names a family: it discovers them here and calls
them through :class:`Family`.
"""
from __future__ import annotations

import functools
import importlib
import importlib.util
import pkgutil
import warnings
from dataclasses import dataclass
from importlib.metadata import entry_points
from types import ModuleType
from typing import TYPE_CHECKING, Any

from zoo.errors import UnknownModelError, ZooError
from zoo.families.contract import FamilyHooks, StateDict
if TYPE_CHECKING:
    from collections.abc import Iterable

    from torch import nn

    from zoo.spec import ArchBase, SpecBase


class FamilyError(ZooError, TypeError):
    """A family package that does not fulfil :mod:`zoo.families.contract`."""


@dataclass(frozen=True)
class Family:
    """One model family, as the core sees it."""

    name: str
    package: str

    @functools.cached_property
    def arch(self) -> type[ArchBase]:
        """The family's architecture schema (``schema.Arch``; no torch import)."""
        from zoo.spec import ArchBase

        arch = getattr(importlib.import_module(f"{self.package}.schema"), "Arch", None)
        if not (isinstance(arch, type) and issubclass(arch, ArchBase)):
            raise FamilyError(f"family {self.name}: {self.package}.schema.Arch must be a "
                              "zoo.spec.ArchBase subclass")
        return arch

    @functools.cached_property
    def hooks(self) -> FamilyHooks:
        """The family's :class:`FamilyHooks` (``model.HOOKS``; imports torch)."""
        hooks = getattr(importlib.import_module(f"{self.package}.model"), "HOOKS", None)
        if not isinstance(hooks, FamilyHooks):
            raise FamilyError(f"family {self.name}: {self.package}.model.HOOKS must be a "
                              "zoo.families.contract.FamilyHooks")
        return hooks

    # -- required hooks ----------------------------------------------------------------------
    def build(self, spec: SpecBase) -> nn.Module:
        return self.hooks.build(spec)

    def convert(self, spec: SpecBase, state_dict: StateDict) -> StateDict:
        """The family's converter, on a flat ``{name: tensor}`` state dict (a training
        checkpoint's wrapper -- ``{"state_dict": ..., "epoch": ...}`` -- is refused here, for every
        family, naming the entries)."""
        import torch

        from zoo.errors import CheckpointError

        bad = sorted(str(k) for k, v in state_dict.items() if not isinstance(v, torch.Tensor))
        if bad:
            raise CheckpointError(f"{spec.name}: checkpoint entries {bad[:5]} are not tensors; "
                                  "pass the model's state dict "
                                  "(zoo.weights.checkpoint.load_original_checkpoint unwraps "
                                  "training checkpoints)")
        return self.hooks.convert(spec, dict(state_dict))

    # -- optional hooks ----------------------------------------------------------------------
    @property
    def supports_packed(self) -> bool:
        return self.hooks.load_packed is not None

    def load_packed(self, spec: SpecBase, state_dict: StateDict) -> nn.Module:
        if self.hooks.load_packed is None:
            raise FamilyError(f"the {self.name} family has no packed (deployable) weights layout")
        return self.hooks.load_packed(spec, state_dict)

    def info(self, model: nn.Module) -> dict[str, str]:
        return dict(self.hooks.info(model)) if self.hooks.info is not None else {}

    @property
    def supports_calibration(self) -> bool:
        return self.hooks.calibrate is not None

    def calibrate(self, model: nn.Module, batches: Iterable[Any], num_batches: int) -> int:
        if self.hooks.calibrate is None:
            raise FamilyError(f"the {self.name} family has nothing to calibrate")
        return self.hooks.calibrate(model, batches, num_batches)

    def export_refusal(self, model: nn.Module) -> str | None:
        """Why no exported program can reproduce ``model`` (None: nothing known against it)."""
        return self.hooks.export_refusal(model) if self.hooks.export_refusal is not None else None

    def register_commands(self, subparsers: Any) -> None:
        """Add the family's ``zoo`` commands (its optional ``cli.py``)."""
        cli = self.module("cli")
        if cli is not None:
            cli.register(subparsers)

    def module(self, name: str) -> ModuleType | None:
        """An optional extra module of the family (``cli``, ``api``), or None."""
        try:
            return importlib.import_module(f"{self.package}.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"{self.package}.{name}":
                return None
            raise


@functools.cache
def _families() -> dict[str, Family]:
    found = {m.name: Family(m.name, f"{__name__}.{m.name}")
             for m in pkgutil.iter_modules(__path__) if m.ispkg}
    for ep in entry_points(group="zoo.families"):
        if ep.name in found:
            warnings.warn(f"zoo: entry point zoo.families:{ep.name} ({ep.value}) shadows zoo's own "
                          "family of that name; ignored", stacklevel=2)
            continue
        if importlib.util.find_spec(ep.value.split(":")[0].split(".")[0]) is None:
            warnings.warn(f"zoo: family plug-in zoo.families:{ep.name} -> {ep.value} is not "
                          "importable (is its package installed?); skipped", stacklevel=2)
            continue
        found[ep.name] = Family(ep.name, ep.value)
    return dict(sorted(found.items()))


def family_names() -> list[str]:
    return list(_families())


def get_family(name: str) -> Family:
    try:
        return _families()[name]
    except KeyError:
        raise UnknownModelError(name, _families(), what="family") from None


def list_families() -> list[str]:
    """Names of all model families (zoo's own and those from installed plug-ins)."""
    return family_names()


__all__ = ["Family", "FamilyError", "FamilyHooks", "StateDict", "family_names",
           "get_family", "list_families"]
