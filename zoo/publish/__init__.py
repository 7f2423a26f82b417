"""Publishing: original checkpoints converted to zoo weights folders (:mod:`.conversion`, and the
``scripts/convert_<family>.py`` command line in :mod:`.scripts`), folders pushed to the Hub with
their registry records (:mod:`.upload`), cached weights verified (:mod:`.verify`); the ``zoo``
commands for all of it in :mod:`.commands`.  Names are imported on first use (``convert`` imports
torch; the commands and ``push`` do not).
"""
from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "convert": "zoo.publish.conversion", "convert_and_check": "zoo.publish.conversion",
    "release_hash_prefix": "zoo.publish.conversion", "convert_script": "zoo.publish.scripts",
    "push": "zoo.publish.upload", "metrics_from_eval": "zoo.publish.upload",
    "verify_tag": "zoo.publish.verify", "register": "zoo.publish.commands",
}
__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'zoo.publish' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
