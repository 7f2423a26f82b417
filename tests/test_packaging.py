"""`pip install .` (a real wheel, not only editable) ships the specs, the registry and the
sample image, and the installed package works away from the source tree."""
from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _installed_files() -> set[str]:
    try:
        files = metadata.distribution("zoo").files or []
    except metadata.PackageNotFoundError:
        pytest.skip("zoo is not installed (running from the source tree only)")
    names = {str(f).replace("\\", "/") for f in files}
    if not any(n.startswith("zoo/") for n in names):
        pytest.skip("zoo is installed in editable mode; the wheel layout is checked in CI")
    return names


def test_wheel_ships_specs_registry_and_assets() -> None:
    names = _installed_files()
    for kind in ("specs", "registry"):
        for path in sorted((ROOT / kind).rglob("*.yaml")):
            rel = path.relative_to(ROOT / kind).as_posix()
            assert f"zoo/_data/{kind}/{rel}" in names, f"{kind}/{rel} not installed"
    assert "zoo/assets/sample.png" in names
    for asset in (ROOT / "zoo" / "site" / "assets").iterdir():  # the catalog site's script and style
        assert f"zoo/site/assets/{asset.name}" in names, f"site asset {asset.name} not installed"


def test_installed_package_works_outside_the_source_tree(tmp_path) -> None:
    _installed_files()
    code = ("import zoo, pathlib; from zoo.paths import data_dir; "
            "print(pathlib.Path(zoo.__file__).parent.parent.name, data_dir('specs').parent.name, "
            "len(zoo.list_models()))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    site, data_parent, count = out.stdout.split()
    assert site == "site-packages" and data_parent == "_data"
    # The source tree's own catalog, in a fresh interpreter (this process's catalog can hold
    # specs that other tests registered).
    src = subprocess.run([sys.executable, "-c", "import zoo; print(len(zoo.list_models()))"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert src.returncode == 0, src.stderr
    assert int(count) == int(src.stdout) > 0
