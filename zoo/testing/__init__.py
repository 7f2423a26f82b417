"""Testing helpers that zoo users can import too (no torch at import time).

- :class:`zoo.testing.hub_emulator.HubEmulator`: a local Hugging Face Hub on 127.0.0.1 that
  ``huggingface_hub`` (and so zoo and timm) talks to through ``HF_ENDPOINT``, with fault knobs
  (corrupt bytes, dropped connections, delays) and a request log.
"""
from __future__ import annotations

from zoo.testing.hub_emulator import HubEmulator, LoggedRequest

__all__ = ["HubEmulator", "LoggedRequest"]
