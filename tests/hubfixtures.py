"""pytest fixtures for tests that talk to a Hub: a local :class:`HubEmulator` and ``publish``.

``hub``: a running emulator; ``HF_ENDPOINT`` points at it, ``HF_HOME``/``HF_HUB_CACHE`` and
``ZOO_CACHE`` are fresh temporary folders, ``HF_HUB_OFFLINE`` and ``HF_TOKEN`` are unset (and
no stored token file is visible), both in ``os.environ`` (for subprocesses) and in
``huggingface_hub.constants`` (read once at import, so patched too).  Fault knobs and the
request log are the emulator's own (``hub.corrupt``, ``hub.drop_connection``, ``hub.delay``,
``hub.count``).

``publish(tag, state_dict, *, layout="zoo", repo_id=None, filename="model.safetensors",
num_classes=None) -> WeightsRecord``: writes the state dict as safetensors, commits it to the
emulator and adds a registry record (real commit sha, sha256, size) for the test's duration.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from zoo.testing.hub_emulator import HubEmulator

if TYPE_CHECKING:
    import torch

    from zoo.registry import WeightsRecord

TEST_SOURCE_URL = "https://zoo.invalid/test-weights/"  # .invalid: never resolvable (RFC 2606)


def hub_settings(hub: HubEmulator, root: Path) -> dict[str, str]:
    """Environment variables pointing huggingface_hub and zoo at ``hub``, caches in ``root``."""
    return {"HF_ENDPOINT": hub.endpoint, "HF_HOME": str(root / "hf"),
            "HF_HUB_CACHE": str(root / "hf" / "hub"), "ZOO_CACHE": str(root / "zoo"),
            "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}


def patch_hf_constants(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    """Apply ``env`` to an already imported huggingface_hub (its constants are import-time)."""
    from huggingface_hub import constants

    endpoint = env["HF_ENDPOINT"].rstrip("/")
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                        endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HOME", env["HF_HOME"])
    monkeypatch.setattr(constants, "HF_HUB_CACHE", env["HF_HUB_CACHE"])
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    # no stored user token travels to the emulator (tests set HF_TOKEN when they need one)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(Path(env["HF_HOME"]) / "token"))
    if hasattr(constants, "HF_STORED_TOKENS_PATH"):
        monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH",
                            str(Path(env["HF_HOME"]) / "stored_tokens"))
    if hasattr(constants, "HF_XET_CACHE"):
        monkeypatch.setattr(constants, "HF_XET_CACHE", str(Path(env["HF_HOME"]) / "xet"))
    if hasattr(constants, "HF_ASSETS_CACHE"):
        monkeypatch.setattr(constants, "HF_ASSETS_CACHE", str(Path(env["HF_HOME"]) / "assets"))


@pytest.fixture
def hub(tmp_path_factory: pytest.TempPathFactory,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[HubEmulator]:
    """A running Hub emulator that huggingface_hub, zoo and timm use, with empty caches."""
    root = tmp_path_factory.mktemp("hub")
    with HubEmulator() as emulator:
        env = hub_settings(emulator, root)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_ETAG_TIMEOUT",
                    "HF_HUB_DOWNLOAD_TIMEOUT", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
            monkeypatch.delenv(key, raising=False)
        patch_hf_constants(monkeypatch, env)
        yield emulator


def safetensors_bytes(state_dict: dict[str, "torch.Tensor"],
                      metadata: dict[str, str] | None = None) -> bytes:
    from safetensors.torch import save

    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    return save(tensors, metadata={"format": "pt", **(metadata or {})})


@pytest.fixture
def publish(hub: HubEmulator, monkeypatch: pytest.MonkeyPatch) -> Callable[..., "WeightsRecord"]:
    """Publish a state dict on the emulator and register it under ``tag`` for this test."""
    from zoo.registry import TAG_PATTERN, WeightsRecord, registry

    def _publish(tag: str, state_dict: dict[str, "torch.Tensor"], *, layout: str = "zoo",
                 repo_id: str | None = None, filename: str = "model.safetensors",
                 num_classes: int | None = None) -> WeightsRecord:
        if not re.match(TAG_PATTERN, tag):
            raise ValueError(f"publish: {tag!r} is not a MODEL.TAG name")
        if layout not in ("zoo", "original", "packed"):
            raise ValueError(f"publish: layout must be 'zoo', 'original' or 'packed', not {layout!r}")
        metadata: dict[str, Any] = {"zoo_layout": layout}
        if layout != "original":
            metadata["zoo_architecture"] = tag.split(".", 1)[0]
        data = safetensors_bytes(state_dict, metadata)
        repo_id = repo_id or f"zoo-test/{tag}"
        commit = hub.add_file(repo_id, filename, data, message=f"publish {tag}")
        record = WeightsRecord.model_validate({
            "hub": {"repo_id": repo_id, "revision": commit, "filename": filename,
                    "sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
                    "layout": layout},
            "source": {"url": TEST_SOURCE_URL + tag, "format": "safetensors",
                       "converter": "tests.hubfixtures.publish"},
            "license": "MIT",
            **({"num_classes": num_classes} if num_classes is not None else {})})
        monkeypatch.setitem(registry().records, tag, record)
        return record

    return _publish
