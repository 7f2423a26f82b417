"""Golden parity: every vector in tests/golden/ (made by running each family's ORIGINAL code
with deterministically filled weights) must be reproduced by zoo through
``zoo.convert_checkpoint`` + strict loading into ``zoo.create``."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import zoo
from tests import golden as G

GOLDEN_DIR = Path(__file__).parent / "golden"
# legacy/: earlier versions of vectors since regenerated in ../shared/golden (e.g. the SReT vectors
# that set every residual coefficient to 1.0): still reproduced, so a fix for the new vector
# cannot break what the old one checked.
LEGACY_DIR = GOLDEN_DIR / "legacy"
FILES = sorted(GOLDEN_DIR.glob("*.json")) + sorted(LEGACY_DIR.glob("*.json"))
# Vectors whose model costs more than a few seconds on 2 CPU cores run in the `slow` group.
HEAVY_PARAMS = 40_000_000


def _param(path: Path):
    import json

    head = json.loads(path.read_text())
    marks = [pytest.mark.slow] if head.get("num_params", 0) > HEAVY_PARAMS else []
    return pytest.param(path, id=path.relative_to(GOLDEN_DIR).with_suffix("").as_posix(),
                        marks=marks)


@pytest.mark.parametrize("path", [_param(p) for p in FILES])
def test_golden(path: Path) -> None:
    g = G.load(path)
    model = zoo.create(g["model"])
    sd = zoo.convert_checkpoint(g["model"], G.fill_state_dict(g))
    model.load_state_dict(sd, strict=True)
    diff = G.assert_matches(g, G.run(g, model))
    assert diff >= 0.0


@pytest.mark.parametrize("path", [_param(p) for p in FILES if p.parent == GOLDEN_DIR])
def test_golden_param_count(path: Path) -> None:
    """Parameter count equals the reference model's, where the reference model is the model
    itself (not where the vector feeds a larger checkpoint, e.g. a supernet, to a child)."""
    g = G.load(path)
    model = zoo.create(g["model"])
    aliases = g.get("aliases", {})
    reference_numel = sum(math.prod(shape) for key, shape, _ in g["state_dict"] if key not in aliases)
    converted = zoo.convert_checkpoint(g["model"], G.fill_state_dict(g))
    if sum(t.numel() for t in converted.values()) < reference_numel:
        pytest.skip(f"{g['model']}: the vector's reference checkpoint is a larger model "
                    "(e.g. a supernet); the child's own count is checked in its family tests")
    # as_original: also constant buffers the original holds as frozen parameters (OFQ clip_val)
    assert zoo.measure.count_params(model, as_original=True) == g["num_params"]


def test_every_shared_golden_file_is_copied() -> None:
    """Every vector in ../shared/golden is copied here unchanged: a new one must be added, a
    regenerated one must replace its copy (the old copy moves to legacy/ and keeps passing)."""
    # ../shared/golden beside the checkout (or beside a folder of git worktrees above it)
    found = [d / "shared" / "golden" for d in Path(__file__).resolve().parents[2:]
             if (d / "shared" / "golden").is_dir()]
    if not found:
        pytest.skip("no shared/golden beside this checkout")
    shared = found[0]
    missing = sorted(p.name for p in shared.glob("*.json") if not (GOLDEN_DIR / p.name).exists())
    assert not missing, f"copy these golden vectors into tests/golden/: {missing}"
    stale = sorted(p.name for p in shared.glob("*.json")
                   if (GOLDEN_DIR / p.name).read_bytes() != p.read_bytes())
    assert not stale, (f"these golden vectors were regenerated in {shared}: move the old copies "
                       f"to tests/golden/legacy/ and copy the new ones here: {stale}")


def test_legacy_vectors_are_superseded() -> None:
    """A legacy vector is an earlier version of a current one (same model, other content)."""
    for path in sorted(LEGACY_DIR.glob("*.json")):
        current = GOLDEN_DIR / path.name
        assert current.exists(), f"{path}: no current tests/golden/{path.name} supersedes it"
        assert G.load(path)["model"] == G.load(current)["model"], path
        assert path.read_bytes() != current.read_bytes(), f"{path} is identical to {current}"
