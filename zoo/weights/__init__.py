"""Weights: from a reference (registry tag, ``hf-hub:`` repo, local folder or file) to verified
tensors, and back out to a folder.

- :mod:`.resolve`: which file a reference means -> :class:`WeightsSource` (downloaded, verified);
- :mod:`.hub`: downloads through huggingface_hub's cache, bounded in time;
- :mod:`.cache`: sha256 verification and stamps, locally converted checkpoints;
- :mod:`.reader`: safetensors files -> tensors (aligned, header validated);
- :mod:`.folder`, :mod:`.save`, :mod:`.card`: the weights folder format, writing it, its card;
- :mod:`.checkpoint`: original (pickled) checkpoints, read with ``weights_only`` only;
- :mod:`.sources`, :mod:`.download`, :mod:`.fetch`: original checkpoints from their hosts,
  checked, converted in a child process into zoo's cache (``zoo fetch``);
- :mod:`.remote`: self-describing Hub repos (the spec a repo's config.json carries).

Registry files are sha256-checked before anything reads them: a mismatching file is deleted
from the cache and never loaded.  Only safetensors files are ever read from the network.
Nothing here imports torch at import time.
"""
from __future__ import annotations

from zoo.paths import zoo_cache_dir
from zoo.weights.cache import (CONVERSION_RECORD, converted_path, read_conversion_record,
                               sha256_file, verify_file)
from zoo.weights.folder import CONFIG_NAME, WEIGHTS_NAME
from zoo.weights.hub import cached_hub_file, hub_download
from zoo.weights.reader import load_safetensors
from zoo.weights.remote import hub_model
from zoo.weights.resolve import WeightsSource, resolve_external, resolve_tag
from zoo.weights.save import save_pretrained

__all__ = ["CONFIG_NAME", "CONVERSION_RECORD", "WEIGHTS_NAME", "WeightsSource", "cached_hub_file",
           "converted_path", "hub_download", "hub_model", "load_safetensors",
           "read_conversion_record",
           "resolve_external", "resolve_tag", "save_pretrained", "sha256_file", "verify_file",
           "zoo_cache_dir"]
