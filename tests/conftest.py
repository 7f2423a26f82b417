"""Shared test set-up: deterministic threads, the Hub emulator fixtures, and model parameters."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

pytest_plugins = [f"tests.{name}" for name in ("hubfixtures", "sourcefixtures")
                  if (Path(__file__).parent / f"{name}.py").exists()]


def pytest_configure(config: pytest.Config) -> None:
    import torch

    # pytest-xdist workers share the machine's cores: one intra-op thread each avoids
    # oversubscription; a single process uses them all.
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)


def heavy(name: str) -> bool:
    """Whether a model is heavy enough for the `slow` group (from its spec's reported numbers,
    else its golden vector's parameter count, so collection builds nothing)."""
    import zoo

    rep = zoo.get_spec(name).reported
    params_m = rep.params_m if rep is not None else None
    if params_m is None:
        import json

        golden = Path(__file__).parent / "golden" / f"{name}.json"
        if golden.is_file():
            params_m = json.loads(golden.read_text()).get("num_params", 0) / 1e6
    return (params_m or 0) > 40 or (rep is not None and (rep.macs_m or 0) > 6000)


def model_params(names: list[str]) -> list:
    """One pytest param per model; under pytest-xdist (`--dist loadgroup`) all tests of one
    model run on the same worker, so each model is built once."""
    return [pytest.param(n, id=n, marks=[pytest.mark.xdist_group(n),
                                         *([pytest.mark.slow] if heavy(n) else [])])
            for n in names]
