"""scripts/: one converter per family that publishes original (pickled) checkpoints, each a thin
command line over zoo.publish.conversion.convert_and_check that really converts."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import zoo
from tests import golden as G
from zoo.registry import registry

ROOT = Path(__file__).resolve().parents[1]


def _family_of(tag: str) -> str:
    return zoo.get_spec(tag.split(".")[0]).family


def _script_family(path: Path) -> str | None:
    """The FAMILY constant of a converter script, read without running it."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and [t.id for t in node.targets
                                             if isinstance(t, ast.Name)] == ["FAMILY"]:
            return ast.literal_eval(node.value)
    return None


def test_every_family_with_convertible_sources_has_a_converter_script() -> None:
    families = {_family_of(tag) for tag, rec in registry().records.items()
                if rec.source is not None and rec.source.format == "pickle"}
    scripts = {_script_family(p): p for p in (ROOT / "scripts").glob("convert_*.py")}
    assert families, "the registry lists convertible sources"
    missing = sorted(f for f in families if f not in scripts)
    assert not missing, f"no scripts/convert_<family>.py for {missing}"
    for family in scripts:  # (MEAL V2's script converts models of the timm_arch family)
        assert family in zoo.list_families()


@pytest.mark.parametrize("name", ["simplenetv1_5m_m1", "deepmad_r18"])
def test_converter_script_round_trip(name: str, tmp_path: Path) -> None:
    """An original-layout .pth (golden weights) -> `python scripts/convert_<family>.py` ->
    a folder that zoo.create loads and that reproduces the original implementation's logits."""
    g = G.load(ROOT / "tests" / "golden" / f"{name}.json")
    pth = tmp_path / "original.pth"
    torch.save(G.fill_state_dict(g), pth)
    family = zoo.get_spec(name).family
    out = tmp_path / "hub"
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / f"convert_{family}.py"), name,
                          str(pth), "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                         timeout=600, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == 0, run.stderr
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    G.assert_matches(g, G.run(g, zoo.create(name, weights=out)))


def test_converter_script_reports_a_wrong_family(tmp_path: Path) -> None:
    pth = tmp_path / "x.pth"
    torch.save({"w": torch.zeros(1)}, pth)
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "convert_deepmad.py"),
                          "sret_t", str(pth), "--out", str(tmp_path / "o")], cwd=ROOT,
                         capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == 1 and "sret_t is not a deepmad model" in run.stderr
