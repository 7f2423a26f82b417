"""Where specs come from: zoo's shipped ``specs/`` folder and installed plug-ins (the
``zoo.specs`` entry-point group, each naming a package that holds ``*.yaml`` spec files).

Shipped spec files are named after their family: ``specs/<family>.yaml``, or
``specs/<family>/<paper>.yaml`` where one family serves several papers (``timm_arch``).
"""
from __future__ import annotations

import warnings
from importlib.metadata import entry_points
from pathlib import Path

from zoo.paths import data_dir


def spec_files(folder: Path) -> list[Path]:
    """The spec files of a folder: ``*.yaml`` and ``*/*.yaml``, sorted."""
    return sorted([*folder.glob("*.yaml"), *folder.glob("*/*.yaml")])


def file_family(path: Path, root: Path) -> str:
    """The family a shipped spec file must declare: its folder under ``root``, else its stem."""
    rel = path.relative_to(root)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def plugin_dirs() -> list[Path]:
    """Folders of the installed ``zoo.specs`` plug-ins.  A plug-in whose package cannot be
    imported is skipped with a warning naming it (one broken plug-in must not break zoo)."""
    from importlib.resources import files

    dirs = []
    for ep in entry_points(group="zoo.specs"):
        try:
            dirs.append(Path(str(files(ep.value))))
        except (ImportError, TypeError, ValueError) as e:
            warnings.warn(f"zoo: spec plug-in zoo.specs:{ep.name} -> {ep.value} skipped: "
                          f"{type(e).__name__}: {e} (is its package installed?)", stacklevel=2)
    return dirs


def shipped_and_plugin_files() -> list[Path]:
    return [p for folder in (data_dir("specs"), *plugin_dirs()) for p in spec_files(folder)]
