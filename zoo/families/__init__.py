"""Model families.

A family is a package ``zoo/families/<name>/`` (or a third-party package announced through the
``zoo.families`` entry-point group, ``name = "package.path"``) holding two modules:

- ``schema.py`` defines ``Arch``, a :class:`zoo.spec.ArchBase` subclass: the family's
  architecture fields.  It must not import torch (listing and validation stay cheap).
- ``model.py`` defines ``build(spec) -> nn.Module`` and ``convert(spec, state_dict) ->
  state_dict`` (the original implementation's checkpoint layout to zoo's).

The core never names a family: it discovers them here.
"""
from __future__ import annotations

import functools
import importlib
import pkgutil
from dataclasses import dataclass
from importlib.metadata import entry_points
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zoo.spec import ArchBase


@dataclass(frozen=True)
class Family:
    name: str
    package: str

    @functools.cached_property
    def arch(self) -> type["ArchBase"]:
        return importlib.import_module(f"{self.package}.schema").Arch

    @property
    def model(self) -> ModuleType:
        """The builder module (imports torch)."""
        return importlib.import_module(f"{self.package}.model")

    def build(self, spec: Any):
        return self.model.build(spec)

    def convert(self, spec: Any, state_dict: dict) -> dict:
        return self.model.convert(spec, state_dict)

    def module(self, name: str) -> ModuleType | None:
        """An optional extra module of the family (``cli``, ...), or None."""
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
            raise ImportError(f"entry point zoo.families:{ep.name} shadows zoo's own family")
        found[ep.name] = Family(ep.name, ep.value)
    return dict(sorted(found.items()))


def family_names() -> list[str]:
    return list(_families())


def get_family(name: str) -> Family:
    try:
        return _families()[name]
    except KeyError:
        from zoo.errors import UnknownModelError

        raise UnknownModelError(name, _families(), what="family") from None


def list_families() -> list[str]:
    """Names of all model families (zoo's own and those from installed plug-ins)."""
    return family_names()
