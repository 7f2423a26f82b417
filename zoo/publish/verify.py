"""Cached weights re-hashed against the registry (``zoo verify``); no network."""
from __future__ import annotations

from pathlib import Path

from zoo.errors import ChecksumMismatchError, CorruptWeightsError
from zoo.registry import registry
from zoo.weights import (cached_hub_file, converted_path, load_safetensors, read_conversion_record,
                         verify_file)


def verify_tag(tag: str) -> tuple[str, str]:
    """(status, detail) of one registry tag's local file, re-hashed; no network.

    status: ``ok``, ``missing``, ``corrupt`` (the bad file is removed) or ``unverified`` (a
    converted file without a conversion record; its safetensors header is valid).
    """
    record = registry().get(tag)
    if record.hub is not None:
        hub = record.hub
        path = cached_hub_file(hub.repo_id, hub.filename, hub.revision)
        if path is None:
            return "missing", f"not cached (fetch with `zoo download {tag}`)"
        sha, size, where = hub.sha256, hub.size, path
    else:
        path = converted_path(tag)
        if not path.exists():
            return "missing", f"not converted (run `zoo convert {tag} <checkpoint>`)"
        try:
            stamp = read_conversion_record(tag)
        except CorruptWeightsError as e:
            return "corrupt", str(e)
        if stamp is None:
            try:
                load_safetensors(path, tag)
            except CorruptWeightsError as e:
                return "corrupt", str(e)
            return "unverified", f"{path} (readable; no conversion record to check it against)"
        sha, size, where = stamp["sha256"], stamp["size"], path
    try:
        verify_file(Path(where), sha, size, tag, trust_stamp=False)
    except ChecksumMismatchError as e:
        return "corrupt", f"{e}"
    except OSError as e:
        return "corrupt", f"{where}: unreadable ({e})"
    return "ok", str(Path(where))
