"""Where zoo's files live: the shipped data folders and zoo's own cache.  No torch, no I/O."""
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
