"""Self-describing Hub repos: a folder written by zoo carries its validated spec (config.json
``zoo.spec`` + ``zoo.spec_schema``), so ``zoo.create("hf-hub:org/repo")`` and, after ``import
zoo``, ``timm.create_model("hf-hub:org/repo")`` build a model that is in no spec file.  The
config comes from a server: it is bounded, validated, and never shadows a catalog model."""
from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import zoo
from tests.util import random_eval_model
from zoo.catalog import catalog
from zoo.cli import main
from zoo.errors import SpecError, WeightsError
from zoo.weights.folder import SPEC_SCHEMA

ROOT = Path(__file__).resolve().parents[1]
BASE = "simplenetv1_small_m1_05"


def _variant(name: str, **arch) -> dict:
    """A spec in no spec file: a catalog spec, renamed, with other architecture fields."""
    raw = copy.deepcopy(catalog().resolve(BASE))
    raw["name"] = name
    raw["arch"] = {**raw["arch"], **arch}
    raw["data"] = {**raw["data"], "input_size": [3, 64, 64], "num_classes": 10}
    raw.pop("reported", None)
    return raw


SAVE = """
import json, sys, torch, zoo
from tests.util import random_eval_model
for raw in json.loads(sys.argv[2]):
    zoo.register_specs(raw)
    model = random_eval_model(raw["name"])
    folder = zoo.save_pretrained(model, f"{sys.argv[1]}/{raw['name']}")
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.save({"y": model(x), "sd": model.state_dict()}, folder / "expected.pt")
"""
VARIANTS = {"my_simplenet_quarter": {"scale": 0.25}, "my_simplenet_third": {"scale": 0.33}}


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    """Folders saved by another process from specs registered there only: this process's
    catalog (and timm) never hear of them."""
    root = tmp_path_factory.mktemp("saved")
    specs = json.dumps([_variant(name, **arch) for name, arch in VARIANTS.items()])
    subprocess.run([sys.executable, "-c", SAVE, str(root), specs], cwd=ROOT, check=True,
                   timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    return root


def _serve(hub, repo: str, folder: Path, edit=None) -> str:
    files = {name: (folder / name).read_bytes()
             for name in ("model.safetensors", "config.json", "README.md")}
    if edit is not None:
        config = json.loads(files["config.json"])
        edit(config)
        files["config.json"] = json.dumps(config).encode()
    return hub.commit(repo, files)


def _x() -> torch.Tensor:
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))


FRESH = """
import sys, torch, zoo, timm
ref, out = sys.argv[1], sys.argv[2]
assert {name!r} not in zoo.list_models()  # in no spec file
x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
a = zoo.create(ref, pretrained=True)
b = timm.create_model(ref, pretrained=True)
with torch.no_grad():
    ya, yb = a(x), b(x)
assert type(a) is type(b) and a.pretrained_cfg["architecture"] == {name!r}
assert {name!r} not in zoo.list_models()  # still not in zoo's catalog
torch.save({{"zoo": ya, "timm": yb, "sd": b.state_dict()}}, out)
"""


@pytest.mark.slow
def test_a_variant_in_no_spec_file_builds_from_its_repo_in_a_fresh_process(hub, saved,
                                                                          tmp_path) -> None:
    name = "my_simplenet_quarter"
    folder = saved / name
    assert name not in zoo.list_models()
    config = json.loads((folder / "config.json").read_text())
    assert config["zoo"]["spec_schema"] == SPEC_SCHEMA and config["zoo"]["spec"]["name"] == name
    _serve(hub, "user/quarter-net", folder)
    out = tmp_path / "out.pt"
    proc = subprocess.run([sys.executable, "-c", FRESH.format(name=name), "hf-hub:user/quarter-net",
                           str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    got, expected = torch.load(out), torch.load(folder / "expected.pt")
    assert torch.equal(got["zoo"], got["timm"])  # one model, two front doors
    assert got["sd"].keys() == expected["sd"].keys()
    assert all(torch.equal(got["sd"][k], v) for k, v in expected["sd"].items())
    torch.testing.assert_close(got["zoo"], expected["y"], rtol=1e-5, atol=1e-5)


def test_zoo_info_of_a_repo(hub, saved, capsys) -> None:
    name = "my_simplenet_third"
    _serve(hub, "user/info-net", saved / name)
    assert main(["info", "hf-hub:user/info-net", "--no-measure"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{name}  [simplenet]") and "hf-hub:user/info-net@" in out
    assert main(["info", "hf-hub:user/info-net"]) == 0  # measured: it builds
    assert "params:" in capsys.readouterr().out
    assert main(["info", "hf-hub:user/info-net", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["arch"]["scale"] == 0.33
    assert name not in zoo.list_models()


def test_create_pins_the_snapshot_the_spec_came_from(hub, saved) -> None:
    folder = saved / "my_simplenet_quarter"
    first = _serve(hub, "user/moving", folder)
    _serve(hub, "user/moving", saved / "my_simplenet_third")  # main moves on
    built = zoo.create(f"hf-hub:user/moving@{first}", pretrained=True)
    expected = torch.load(folder / "expected.pt")
    with torch.no_grad():
        torch.testing.assert_close(built(_x()), expected["y"], rtol=1e-5, atol=1e-5)
    # unpinned: the head's spec and the head's weights, together
    head = zoo.create("hf-hub:user/moving", pretrained=True)
    assert head.pretrained_cfg["architecture"] == "my_simplenet_third"
    # without pretrained: the architecture only (timm's convention)
    bare = zoo.create(f"hf-hub:user/moving@{first}")
    assert [p.shape for p in bare.parameters()] == [p.shape for p in built.parameters()]
    assert hub.count("GET", "user/moving", "model.safetensors") == 2


def test_a_repo_never_shadows_a_catalog_model(hub, tmp_path) -> None:
    import timm

    # a repo whose spec takes a catalog model's name, with another architecture
    raw = _variant(BASE, scale=0.25)
    raw["name"] = BASE
    cat = zoo.get_spec(BASE)
    other = zoo.catalog.validate_spec(raw)
    assert other != cat
    model = random_eval_model(BASE)  # the catalog's model, for its keys
    folder = tmp_path / "out"
    zoo.save_pretrained(model, folder)
    spec_doc = other.model_dump(mode="json")
    _serve(hub, "user/impostor", folder, edit=lambda c: c["zoo"].update(spec=spec_doc))
    from_repo = zoo.create("hf-hub:user/impostor")  # the repo's own spec, 0.25 wide
    assert from_repo.num_classes == 10
    assert zoo.get_spec(BASE) is cat and zoo.create(BASE).num_classes == 1000
    timm_model = timm.create_model("hf-hub:user/impostor")
    assert timm_model.num_classes == 10
    assert timm.create_model(BASE).num_classes == 1000  # timm's BASE is still the catalog's
    assert "simplenetv1_small_m1_05__user_impostor" in timm.list_models(module="zoo_hub")
    assert "simplenetv1_small_m1_05__user_impostor" not in timm.list_models(module="zoo")
    # a repo with exactly the catalog's spec is simply the catalog model
    same = tmp_path / "same"
    zoo.save_pretrained(model, same)
    _serve(hub, "user/same", same)
    before = set(timm.list_models())
    loaded = timm.create_model("hf-hub:user/same", pretrained=True)
    assert set(timm.list_models()) == before
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("edit, error, message", [
    (lambda c: c["zoo"]["spec"].update(family="nosuchfamily"), SpecError,
     "family 'nosuchfamily', which is not installed"),
    (lambda c: c["zoo"].update(spec_schema=SPEC_SCHEMA + 1), WeightsError,
     f"newer zoo \\(spec schema {SPEC_SCHEMA + 1}"),
    (lambda c: c["zoo"].update(spec_schema="1"), WeightsError, "spec_schema"),
    (lambda c: c["zoo"]["spec"]["arch"].update(scale=1e9), SpecError, "arch.scale"),
    (lambda c: c["zoo"]["spec"].update(exec="import os"), SpecError, "exec"),
    (lambda c: c["zoo"]["spec"]["data"].update(num_classes=10**12), SpecError, "num_classes"),
    (lambda c: c.update(architecture="sret_s"), SpecError, "inconsistent"),
    (lambda c: c["zoo"].pop("spec"), WeightsError, "carries no zoo spec"),
    (lambda c: c.update(zoo=None), WeightsError, "carries no zoo spec"),
])
def test_a_hostile_or_foreign_spec_is_refused_before_building(hub, saved, edit, error,
                                                              message) -> None:
    import timm

    folder = saved / "my_simplenet_quarter"
    repo = "user/hostile-" + hashlib.sha1(repr(message).encode()).hexdigest()[:8]
    _serve(hub, repo, folder, edit=edit)
    with pytest.raises(error, match=message):
        zoo.create(f"hf-hub:{repo}", pretrained=True)
    if "no zoo spec" not in message:  # timm goes through the same checks
        with pytest.raises(error, match=message):
            timm.create_model(f"hf-hub:{repo}", pretrained=True)
    assert hub.count("GET", repo, "model.safetensors") == 0  # refused before any weights


def test_save_pretrained_is_byte_reproducible(tmp_path) -> None:
    """The same model saved in two processes gives the same bytes (safetensors writes its
    metadata map in a per-process order; zoo sorts the header), so a conversion's sha256 does
    not depend on the process that made it."""
    script = ("import sys, zoo, torch; torch.manual_seed(0); "
              f"zoo.save_pretrained(zoo.create({BASE!r}), sys.argv[1])")
    digests = set()
    for i in range(2):
        subprocess.run([sys.executable, "-c", script, str(tmp_path / str(i))], cwd=ROOT,
                       check=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
        digests.add(hashlib.sha256((tmp_path / str(i) / "model.safetensors").read_bytes())
                    .hexdigest())
    assert len(digests) == 1
    zoo.create(BASE, weights=tmp_path / "0")  # and the sorted header still loads
