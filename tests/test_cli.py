"""The command line, run as users run it (a subprocess per call)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest


def zoo_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "zoo", *args], capture_output=True, text=True,
                         timeout=600)
    if check:
        assert out.returncode == 0, out.stderr
    return out


def test_list_and_families() -> None:
    out = zoo_cli("list", "simplenetv1_5m*").stdout.split()
    assert out == ["simplenetv1_5m_m1", "simplenetv1_5m_m2"]
    assert "simplenet" in zoo_cli("families").stdout
    assert zoo_cli("list", "--family", "simplenet").stdout.split().count("simplenet_cifar_5m") == 1


def test_list_does_not_import_torch() -> None:
    code = ("import sys; from zoo.cli import main; main(['list']); main(['info', "
            "'simplenetv1_5m_m1', '--no-measure']); print('torch' in sys.modules, file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip().splitlines()[-1] == "False"


def test_info_measures_against_the_paper() -> None:
    out = zoo_cli("info", "simplenetv1_5m_m1").stdout
    assert "measured" in out and "reported" in out
    params_line = next(line for line in out.splitlines() if line.startswith("params:"))
    assert "5.75M" in params_line
    assert "simplenetv1_5m_m1.in1k" in out and "zoo convert" in out


def test_info_json_is_the_resolved_spec() -> None:
    spec = json.loads(zoo_cli("info", "simplenetv1_small_m2_05", "--json").stdout)
    assert spec["arch"]["scale"] == 0.5 and spec["arch"]["strides"] == {"0": 2, "1": 2, "2": 1, "3": 2}


def test_schema_and_check() -> None:
    schema = json.loads(zoo_cli("schema").stdout)
    assert schema["title"] == "zoo model spec"
    assert zoo_cli("check").stdout.startswith("ok:")


def test_unknown_name_is_a_clear_error() -> None:
    out = zoo_cli("info", "simplenetv1_5m_m3", check=False)
    assert out.returncode == 2
    assert "unknown model 'simplenetv1_5m_m3'" in out.stderr and "Did you mean" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.slow
def test_demo_runs_end_to_end() -> None:
    out = zoo_cli("demo", "simplenetv1_small_m1_05").stdout
    assert "params  1.507 M" in out and "sample.png" in out
    assert len([line for line in out.splitlines() if line.startswith("  ") and "%" in line]) == 5
