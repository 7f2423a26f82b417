"""Testing helpers that zoo users can import too (no torch at import time).

- :class:`zoo.testing.hub_emulator.HubEmulator`: a local Hugging Face Hub on 127.0.0.1 that
  ``huggingface_hub`` (and so zoo and timm) talks to through ``HF_ENDPOINT``, with fault knobs
  (corrupt bytes, dropped connections, delays) and a request log.
- :class:`zoo.testing.source_emulator.SourceEmulator`: the hosts of original checkpoints
  (Google Drive with its confirmation page, GitHub releases, Zenodo, Dropbox, plain https) on
  127.0.0.1, reached through ``ZOO_SOURCE_REWRITE``, with faults (HTML instead of the file,
  wrong sizes, stalls, error codes, bad redirects).
"""
from __future__ import annotations

from zoo.testing.hub_emulator import HubEmulator, LoggedRequest
from zoo.testing.source_emulator import SourceEmulator, SourceRequest

__all__ = ["HubEmulator", "LoggedRequest", "SourceEmulator", "SourceRequest"]
