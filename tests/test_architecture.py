"""The core's shape holds: imports only go down the layers (import-linter, counting imports
inside functions), every family fulfils the contract, shipped files are named after their
family, and the type checker passes on zoo/.  See docs/architecture.md."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import zoo
from zoo.catalog import catalog
from zoo.catalog.discovery import file_family, spec_files
from zoo.families import FamilyHooks, family_names, get_family
from zoo.paths import data_dir
from zoo.registry import registry, registry_files

ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str) -> str:
    path = shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        pytest.fail(f"{name} is not installed (it is in the `test` extra)")
    return path


def test_imports_only_go_down_the_layers() -> None:
    proc = subprocess.run([_tool("lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "BROKEN" not in proc.stdout and "0 broken" in proc.stdout


def test_the_layer_check_sees_imports_inside_functions(tmp_path) -> None:
    """A lower layer importing the build layer inside a function breaks the contract (so the
    check above can fail)."""
    tree = tmp_path / "tree"
    shutil.copytree(ROOT / "zoo", tree / "zoo", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    with open(tree / "zoo" / "registry.py", "a") as f:
        f.write("\n\ndef _upward():\n    from zoo.build import create\n    return create\n")
    proc = subprocess.run([_tool("lint-imports"), "--no-cache"], cwd=tree, capture_output=True,
                          text=True, timeout=600, env={"PYTHONPATH": str(tree), "PATH": ""})
    assert proc.returncode != 0
    assert "zoo.registry -> zoo.build" in proc.stdout


@pytest.mark.slow
def test_type_checker_passes_on_zoo(tmp_path) -> None:
    proc = subprocess.run([_tool("mypy"), "--cache-dir", str(tmp_path / "cache")], cwd=ROOT,
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-6000:]


@pytest.mark.parametrize("family", family_names())
def test_every_family_fulfils_the_contract(family: str) -> None:
    fam = get_family(family)
    assert isinstance(fam.hooks, FamilyHooks)
    assert "torch" not in (fam.arch.__module__ or "")
    names = zoo.list_models(family=family)
    assert names, f"family {family} has no spec"
    model = fam.build(zoo.get_spec(names[0]))
    assert sum(p.numel() for p in model.parameters()) > 0


def test_shipped_files_are_named_after_their_family() -> None:
    root = data_dir("specs")
    for name, entry in catalog().entries.items():
        path = Path(entry.source)
        if path.is_relative_to(root):
            assert catalog().family_of(name) == file_family(path, root), (name, path)
    assert {file_family(p, root) for p in spec_files(root)} <= set(family_names())
    reg_root = data_dir("registry")
    assert set(registry().sources.values()) == set(registry_files(reg_root))
    for tag, path in registry().sources.items():
        model = tag.rsplit(".", 1)[0]
        assert catalog().family_of(model) == file_family(path, reg_root), (tag, path)


def test_zoo_check_reports_a_misplaced_file(tmp_path, monkeypatch, capsys) -> None:
    """`zoo check` names a spec that sits in another family's file."""
    from zoo.cli import main

    entry = next(iter(catalog().entries.values()))
    monkeypatch.setattr(entry, "source", str(data_dir("specs") / "not_its_family.yaml"))
    assert main(["check"]) == 1
    assert entry.name in capsys.readouterr().err


def test_the_documented_layers_are_the_contract() -> None:
    """docs/architecture.md's diagram names exactly the modules of the layers contract, row by
    row in the contract's order (a row may hold several of its layers)."""
    import re
    import tomllib

    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in contracts["contracts"] if c["type"] == "layers")["layers"]
    diagram = (ROOT / "docs" / "architecture.md").read_text().split("```\n", 2)[1]
    rows: list[str] = []
    for line in diagram.splitlines():  # "<label>  item · item ...", continued on indented lines
        if line.startswith(" ") and rows:
            rows[-1] += " " + line.strip()
        else:
            rows.append(line[15:])
    row_of = {}
    for i, row in enumerate(rows):
        for item in row.split("·"):
            name = re.match(r"\s*(\w+)", item)
            assert name, f"a diagram item without a module name: {item!r}"
            row_of[name.group(1)] = i
    modules = [[m.strip() for m in re.split(r"[|:]", layer)] for layer in layers]
    assert set(row_of) == {m for layer in modules for m in layer}
    order = [max(row_of[m] for m in layer) for layer in modules]
    assert order == sorted(order) and all(min(row_of[m] for m in layer) == o
                                          for layer, o in zip(modules, order)), order


def test_no_module_outside_a_family_imports_it() -> None:
    """The core (and every other family) reaches a family only through ``zoo.families.Family``,
    which loads it by name: no import statement anywhere else, inside functions included, names a
    family's package or its modules."""
    import grimp

    graph = grimp.build_graph("zoo", cache_dir=None)
    for family in family_names():
        package = get_family(family).package
        own = {package} | graph.find_descendants(package)
        outside = {m for mod in own for m in graph.find_modules_that_directly_import(mod)} - own
        assert not outside, f"{sorted(outside)} import the {family} family directly"
