"""EBV (Equiangular Basis Vectors): a timm backbone's L2-normalized embedding classified by fixed
basis vectors.  zoo's logits must rank exactly as upstream's evaluation scores
(``F.normalize(backbone(x)) @ F.normalize(d).t()``), the basis must come from upstream's pickle
unchanged (read without unpickling anything else), and fresh bases must be equiangular.
Parity with the original code: tests/golden/ebv_resnet50.json (tests/test_golden.py)."""
from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import zoo
from tests import golden as G
from tests.util import run_script
from zoo.errors import CheckpointError, SpecError, ZooError
from zoo.families.ebv.model import EquiangularBasisVectors, generate_basis_vectors
from zoo.measure import count_params
from zoo.weights.checkpoint import load_pickled_tensor

EBV = zoo.list_models(family="ebv")
GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def _upstream_checkpoint(name: str, seed: int = 0) -> tuple[dict, torch.Tensor, torch.nn.Module]:
    """Upstream's checkpoint (DataParallel(Net).state_dict(): module.backbone.*), its basis
    (pickle's tensor, unit rows up to rounding) and Net's backbone: timm.create_model(backbone,
    num_classes=dim)."""
    import timm

    spec = zoo.get_spec(name)
    torch.manual_seed(seed)
    backbone = timm.create_model(spec.arch.backbone, num_classes=spec.arch.dim).eval()
    with torch.no_grad():
        for m in backbone.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_var.uniform_(0.5, 1.5)
    basis = F.normalize(torch.randn(spec.data.num_classes, spec.arch.dim))
    return ({f"module.backbone.{k}": v for k, v in backbone.state_dict().items()}, basis,
            backbone)


@pytest.mark.parametrize("name", EBV)
def test_logits_rank_as_upstream_evaluation(name: str) -> None:
    sd, basis, backbone = _upstream_checkpoint(name)
    model = zoo.create(name).eval()
    model.load_state_dict(zoo.convert_checkpoint(name, {**sd, "basis": basis}), strict=True)
    x = torch.randn(4, 3, 96, 96, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        cosines = F.normalize(backbone(x)) @ F.normalize(basis).t()   # upstream test_one_epoch
        logits = model(x)
    assert torch.equal(logits.argmax(1), cosines.argmax(1))
    assert torch.equal(logits.argsort(1), cosines.argsort(1))
    torch.testing.assert_close(logits, cosines / zoo.get_spec(name).arch.temperature)


def test_golden_ranking_is_exact() -> None:
    """On the golden vector (upstream's own run), zoo's logits order the classes exactly as
    upstream's stored logits do."""
    g = G.load(GOLDEN / "ebv_resnet50.json")
    model = zoo.create(g["model"])
    model.load_state_dict(zoo.convert_checkpoint(g["model"], G.fill_state_dict(g)), strict=True)
    out = G.run(g, model)
    expected = torch.tensor(g["output"]["values"]).reshape(g["output"]["shape"])
    assert torch.equal(out.argsort(1), expected.argsort(1))


@pytest.mark.parametrize("name", EBV)
def test_params_equal_upstream_net(name: str) -> None:
    """Net's parameters are the backbone's (the basis is data, not a parameter)."""
    import timm

    from zoo.build import build_model

    spec = zoo.get_spec(name)
    with torch.device("meta"):
        expected = sum(p.numel() for p in timm.create_model(spec.arch.backbone,
                                                            num_classes=spec.arch.dim).parameters())
    model = build_model(spec, meta=True)
    assert count_params(model) == expected
    assert round(expected / 1e6, 2) == spec.reported.params_m
    assert "ebv.weight" in dict(model.named_buffers())


def test_data_config_is_upstream_evaluation() -> None:
    """presets.ClassificationPresetEval(crop_size=256, resize_size=256): bilinear, no crop."""
    d = zoo.get_spec("ebv_resnet50").data
    assert d.input_size == (3, 256, 256) and d.crop_pct == 1.0 and d.interpolation == "bilinear"


@pytest.mark.parametrize("num,dim,threshold", [(7, 7, 0.002), (10, 64, 0.002), (6, 5, 0.25)])
def test_generated_basis_is_equiangular(num: int, dim: int, threshold: float) -> None:
    torch.manual_seed(0)
    w = generate_basis_vectors(num, dim, threshold)
    assert w.shape == (num, dim)
    torch.testing.assert_close(w.norm(dim=1), torch.ones(num))
    cos = (w @ w.T).abs() - torch.eye(num)
    assert cos.max() <= threshold + 1e-4


def test_impossible_basis_is_an_error() -> None:
    """6 unit vectors in R^5 cannot have |cos| below the Welch bound 0.2."""
    with pytest.raises(ZooError, match="no 6 basis vectors"):
        generate_basis_vectors(6, 5, 0.01, steps=50)


def test_reset_classifier_keeps_the_embedding() -> None:
    model = zoo.create("ebv_resnet50").eval()
    fc = model.backbone.fc.weight.clone()
    x = torch.randn(2, 3, 64, 64)
    model.reset_classifier(10)
    assert isinstance(model.ebv, EquiangularBasisVectors) and model.ebv.weight.shape == (10, 1000)
    assert torch.equal(model.backbone.fc.weight, fc)
    model.reset_classifier(0)
    with torch.no_grad():
        z = model(x)
    assert z.shape == (2, 1000)
    torch.testing.assert_close(z.norm(dim=1), torch.ones(2))


def _pickle_like_upstream(tensor: torch.Tensor, path: Path) -> None:
    """Generate_EBV.py: pkl.dump(basis_vec.data, open(save_name, 'bw'))."""
    with path.open("wb") as f:
        pickle.dump(tensor, f)


def test_read_basis_reads_upstreams_pickle(tmp_path: Path) -> None:
    basis = F.normalize(torch.randn(12, 8))
    _pickle_like_upstream(basis, tmp_path / "eq_8_12.pkl")
    assert torch.equal(load_pickled_tensor(tmp_path / "eq_8_12.pkl"), basis)


class _Exploit:
    def __reduce__(self):
        import os

        return (os.getcwd, ())


@pytest.mark.parametrize("payload,match", [(_Exploit(), "os.getcwd|posix.getcwd"),
                                           ({"a": 1}, "expected one pickled tensor")])
def test_read_basis_refuses_other_pickles(tmp_path: Path, payload, match) -> None:
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(payload))
    with pytest.raises(CheckpointError, match=match):
        load_pickled_tensor(path)


def test_convert_errors() -> None:
    name = "ebv_resnet50"
    sd, basis, _ = _upstream_checkpoint(name)
    with pytest.raises(CheckpointError, match="--tensor basis="):
        zoo.convert_checkpoint(name, sd)
    with pytest.raises(CheckpointError, match="wrong EBV pkl"):
        zoo.convert_checkpoint(name, {**sd, "basis": basis[:, :100]})
    with pytest.raises(CheckpointError, match="unexpected keys"):
        zoo.convert_checkpoint(name, {**sd, "basis": basis, "module.head.weight": basis})
    converted = zoo.convert_checkpoint(name, {**sd, "basis": basis})
    with pytest.raises(CheckpointError, match="zoo-layout"):
        zoo.convert_checkpoint(name, converted)


def test_spec_errors() -> None:
    import copy

    from zoo.catalog import catalog
    from zoo.families.ebv.model import build
    from zoo.catalog import validate_spec

    raw = copy.deepcopy(catalog().resolve("ebv_resnet50"))
    raw["arch"]["backbone"] = "vit_tiny_patch16_224"
    with pytest.raises(SpecError, match="global_pool"):
        build(validate_spec(raw, source="test"))
    raw["arch"]["backbone"] = "resnet5o"
    with pytest.raises(SpecError, match="not a timm architecture"):
        build(validate_spec(raw, source="test"))
    raw["arch"].update(backbone="resnet50", temperature=0.0)
    with pytest.raises(SpecError, match="temperature"):
        validate_spec(raw, source="test")


def test_merge_and_convert_script_round_trip(tmp_path: Path) -> None:
    """Upstream's two files (golden weights) -> scripts/convert_ebv.py --tensor basis=PKL ->
    a folder that reproduces upstream's logits; `zoo convert` takes the same option."""
    g = G.load(GOLDEN / "ebv_resnet50.json")
    sd = G.fill_state_dict(g)
    basis = sd.pop("basis")
    torch.save(sd, tmp_path / "EBV_ResNet_dim1000_SGD_epoch605.pth")
    _pickle_like_upstream(basis, tmp_path / "eq_1000_1000.pkl")
    pth, pkl = tmp_path / "EBV_ResNet_dim1000_SGD_epoch605.pth", tmp_path / "eq_1000_1000.pkl"
    assert run_script("convert_ebv.py", "ebv_resnet50.in1k", pth, "--tensor", f"basis={pkl}",
                      "--out", tmp_path / "hub") == 0
    G.assert_matches(g, G.run(g, zoo.create("ebv_resnet50", weights=tmp_path / "hub")))
    from zoo.cli import main

    assert main(["convert", "ebv_resnet50.in1k", str(pth), "--tensor", f"basis={pkl}",
                 "--out", str(tmp_path / "cli")]) == 0
    G.assert_matches(g, G.run(g, zoo.create("ebv_resnet50", weights=tmp_path / "cli")))


def test_registry_record() -> None:
    from zoo.registry import registry

    rec = registry().get("ebv_resnet50.in1k")
    assert rec.hub is None and rec.source.format == "pickle"
    assert rec.source.url.endswith("/EBV_ResNet_dim1000_SGD_epoch605.pth")
    assert rec.metrics.img_size == zoo.get_spec("ebv_resnet50").data.input_size[1]
    assert rec.metrics.top1 == zoo.get_spec("ebv_resnet50").reported.top1
