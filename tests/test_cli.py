"""The command line, run as users run it (a subprocess per call)."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

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
    assert "simplenetv1_5m_m1.in1k" in out and "zoo fetch simplenetv1_5m_m1.in1k" in out


def test_info_json_is_the_resolved_spec() -> None:
    spec = json.loads(zoo_cli("info", "simplenetv1_small_m2_05", "--json").stdout)
    assert spec["arch"]["scale"] == 0.5 and spec["arch"]["strides"] == {"0": 2, "1": 2, "2": 1, "3": 2}


def test_schema_and_check() -> None:
    schema = json.loads(zoo_cli("schema").stdout)
    assert schema["title"] == "zoo spec file" and schema["required"] == ["models"]
    entry = json.loads(zoo_cli("schema", "--entry").stdout)
    assert entry["discriminator"]["propertyName"] == "family"
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


def test_list_pretrained_lists_only_published_weights() -> None:
    tags = zoo_cli("list", "--pretrained").stdout.split()
    code = "import zoo; print('\\n'.join(zoo.list_models(pretrained=True)))"
    api = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert tags and tags == api.stdout.split()
    assert all("." in t for t in tags)
    # SimpleNet's release files are convertible sources, not published weights
    assert not [t for t in tags if t.startswith("simplenet")]
    assert zoo_cli("list", "--pretrained", "simplenet*").stdout.split() == []
    nasnet = zoo_cli("list", "--pretrained", "--family", "nasnet").stdout.split()
    assert nasnet and set(nasnet) <= set(tags) and all(t.startswith("nasnet") for t in nasnet)


def test_info_measures_macs_next_to_params() -> None:
    import zoo
    from zoo.measure import count_macs

    out = zoo_cli("info", "simplenetv1_small_m2_05").stdout
    macs_line = next(line for line in out.splitlines() if line.startswith("MACs:"))
    macs = count_macs(zoo.create("simplenetv1_small_m2_05"), (3, 224, 224)) / 1e6
    assert macs_line.split()[1] == f"{macs:,.2f}M"
    assert "[README, ImageNet Result table]" in out


def test_ci_runs_the_readmes_test_command() -> None:
    """`.ci/run` is the README's second set-up command, verbatim (the one that runs the suite)."""
    root = Path(__file__).resolve().parents[1]
    blocks = re.findall(r"```bash\n(.*?)```", (root / "README.md").read_text(), re.S)
    setup = [b.strip() for b in blocks if "pip install" in b]
    assert len(setup) == 2 and "pytest" in setup[1] and "pytest" not in setup[0]
    ci = [line for line in (root / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.startswith(("#", "set ", "cd ", "export "))
          and not line.startswith("command -v chromium ")]  # system packages for browser tests
    assert ci == [setup[1]]
