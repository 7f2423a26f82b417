"""The weights folder format zoo writes and reads (``save_pretrained``, ``zoo convert``, a Hub
repo): ``model.safetensors`` + timm-style ``config.json`` (with a ``zoo`` section: the full spec,
the weights layout and tag) + a model card ``README.md``."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from zoo.errors import CorruptWeightsError

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
CARD_NAME = "README.md"


def read_config(path: Path) -> dict[str, Any]:
    """A folder's ``config.json`` as a dict; :class:`CorruptWeightsError` if unreadable."""
    try:
        config = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise CorruptWeightsError(f"{path}: unreadable config.json ({e})") from None
    return config
