"""Where zoo's files live: the shipped data folders and zoo's own cache, and whether an output
can go where it is asked to.  No torch; nothing is read or written here."""
from __future__ import annotations

import os
from pathlib import Path

_HERE = Path(__file__).resolve().parent


def data_dir(kind: str) -> Path:
    """Folder of the shipped ``specs`` or ``registry`` files (wheel layout, then source tree)."""
    for cand in (_HERE / "_data" / kind, _HERE.parent / kind):
        if cand.is_dir():
            return cand
    raise FileNotFoundError(f"zoo's {kind}/ folder is missing: reinstall zoo")


def zoo_cache_dir() -> Path:
    """zoo's own cache (converted checkpoints, measurements): ``$ZOO_CACHE``, else
    ``$XDG_CACHE_HOME/zoo``, else ``~/.cache/zoo``."""
    env = os.environ.get("ZOO_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "zoo"


def unwritable_parent(path: Path) -> str | None:
    """Why ``path`` cannot be created (None: it can): the nearest existing ancestor of its folder
    must be a folder this process may write in (missing folders below it get made)."""
    parent = path.parent
    while not parent.exists():  # False below a regular file too ("afile/x.onnx")
        parent = parent.parent
    if not parent.is_dir():
        return (f"{parent} is a file, not a folder; give a path whose folders are folders "
                "(missing ones are made)")
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"no permission to write in {parent}; give a folder you may write in"
    return None
