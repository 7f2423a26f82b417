"""GCR (family gcr) and its vector baselines (timm_arch, specs/gcr.yaml): the subspace head
computes the paper's logits (projection norms, invariant to the choice of basis), zoo ranks
classes exactly as the original code does (golden vectors), parameter counts and MACs follow
from the backbone, original checkpoints convert strictly and wrong ones fail clearly."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import zoo
from tests import golden as G
from tests.conftest import model_params
from zoo.errors import CheckpointError
from zoo.families.gcr.model import GrassmannClassHead
from zoo.measure import count_macs, count_params

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
PAPER = "2308.01547"
ALL = [n for n in zoo.list_models("gcr_*") if zoo.get_spec(n).paper.arxiv == PAPER]
GCR = [n for n in ALL if zoo.get_spec(n).family == "gcr"]
VECTOR = [n for n in ALL if zoo.get_spec(n).family == "timm_arch"]
GCR_GOLDEN = sorted(p for p in GOLDEN.glob("gcr_*.json"))


def baseline_of(name: str) -> str:
    """The paper's vector-class model on the same backbone (the one evaluated alike first)."""
    spec = zoo.get_spec(name)
    same = [v for v in VECTOR if zoo.get_spec(v).arch.timm_model == spec.arch.timm_model]
    assert same, f"no vector baseline for {name}"
    return sorted(same, key=lambda v: zoo.get_spec(v).data != spec.data)[0]


def test_families_and_baselines() -> None:
    assert GCR and VECTOR and len(GCR) + len(VECTOR) == len(ALL)
    for name in GCR:
        spec = zoo.get_spec(name)
        assert spec.data.classifier == "head" and spec.arch.gamma == 25.0
        assert spec.arch.checkpoint_layout.framework == "mmpretrain"
        b = zoo.get_spec(baseline_of(name))
        assert b.arch.checkpoint_layout == spec.arch.checkpoint_layout
        assert b.data.first_conv == spec.data.first_conv


# -- the head -----------------------------------------------------------------------------------

def _orthonormal_head(classes: int = 6, k: int = 3, features: int = 10) -> GrassmannClassHead:
    torch.manual_seed(0)
    return GrassmannClassHead(features, classes, k, gamma=25.0)


def test_init_gives_orthonormal_bases() -> None:
    head = _orthonormal_head()
    w = head.weight.detach().reshape(6, 3, 10)
    torch.testing.assert_close(w @ w.transpose(1, 2), torch.eye(3).expand(6, 3, 3),
                               atol=1e-5, rtol=0)


def test_logits_are_projection_norms() -> None:
    """l_i = gamma * ||P_i x|| / ||x|| with P_i = B_i^T B_i the orthogonal projector onto class
    i's subspace (computed here in float64, from the projector, not the head's formula)."""
    head = _orthonormal_head()
    x = torch.randn(4, 10)
    w = head.weight.detach().double().reshape(6, 3, 10)
    proj = w.transpose(1, 2) @ w                                   # (C, F, F) projectors
    xd = x.double()
    expected = 25.0 * torch.linalg.vector_norm(torch.einsum("cfg,bg->bcf", proj, xd), dim=-1) \
        / torch.linalg.vector_norm(xd, dim=-1, keepdim=True)
    out = head(x)
    torch.testing.assert_close(out.double(), expected, atol=1e-5, rtol=1e-5)
    assert torch.equal(out.argmax(1), expected.argmax(1))
    assert (out <= 25.0 + 1e-4).all() and (out >= 0).all()


def test_logits_depend_on_the_subspace_not_its_basis_nor_the_feature_scale() -> None:
    head = _orthonormal_head()
    x = torch.randn(4, 10)
    out = head(x)
    torch.testing.assert_close(head(3.5 * x), out, atol=1e-5, rtol=1e-5)
    q = torch.linalg.qr(torch.randn(6, 3, 3)).Q                    # a rotation per class
    with torch.no_grad():
        head.weight.copy_((q @ head.weight.reshape(6, 3, 10)).reshape(18, 10))
    torch.testing.assert_close(head(x), out, atol=1e-5, rtol=1e-5)


def test_head_follows_upstream_reshape() -> None:
    """Class i owns rows i*k..(i+1)*k of the weight (upstream reshape(-1, C, k))."""
    head = GrassmannClassHead(4, 3, 2, gamma=2.0)
    with torch.no_grad():
        head.weight.zero_()
        head.weight[2 * 1 + 0, 0] = 1.0                            # class 1: e0
        head.weight[2 * 2 + 1, 1] = 1.0                            # class 2: e1
    out = head(torch.tensor([[3.0, 4.0, 0.0, 0.0]]))
    torch.testing.assert_close(out, torch.tensor([[0.0, 2.0 * 0.6, 2.0 * 0.8]]))


def test_head_builds_on_meta() -> None:
    with torch.device("meta"):
        head = GrassmannClassHead(8, 5, 2, gamma=25.0)
    assert head.weight.is_meta


# -- parity with the original -------------------------------------------------------------------

def _golden_params():
    return [pytest.param(p, id=p.stem, marks=[pytest.mark.slow] if json.loads(
        p.read_text()).get("num_params", 0) > 40_000_000 else []) for p in GCR_GOLDEN]


def test_every_architecture_has_a_golden_vector() -> None:
    """One vector per distinct architecture (specs differing only in data config share it)."""
    have = {p.stem for p in GCR_GOLDEN}
    for name in ALL:
        spec = zoo.get_spec(name)
        twins = [n for n in ALL if zoo.get_spec(n).arch == spec.arch
                 and zoo.get_spec(n).family == spec.family]
        assert have & set(twins), f"no golden vector for {name}'s architecture"


@pytest.mark.parametrize("path", _golden_params())
def test_ranks_exactly_as_the_original(path: Path) -> None:
    """zoo's logits order the classes as the original's do: every class zoo ranks above
    another is above it in the original's logits too, up to the vector's tolerance."""
    g = G.load(path)
    model = zoo.create(g["model"])
    model.load_state_dict(zoo.convert_checkpoint(g["model"], G.fill_state_dict(g)), strict=True)
    out = G.run(g, model)
    expected = torch.tensor(g["output"]["values"]).reshape(g["output"]["shape"])
    tol = g["tolerance"]["atol"]
    assert torch.equal(out.argmax(1), expected.argmax(1))
    ranked = expected.gather(1, out.argsort(dim=1, descending=True))
    assert (ranked[:, 1:] - ranked[:, :-1]).max().item() <= 2 * tol
    assert count_params(model) == g["num_params"]


# -- sizes --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", model_params(GCR))
def test_params_are_the_baselines_with_subspaces_instead_of_vectors(name: str) -> None:
    from zoo.build import build_model

    spec = zoo.get_spec(name)
    base = build_model(zoo.get_spec(baseline_of(name)), meta=True)
    model = build_model(spec, meta=True)
    classes, k = spec.data.num_classes, spec.arch.subspace_dim
    width = model.head_hidden_size
    assert count_params(model) == count_params(base) - classes * (width + 1) + k * classes * width
    assert model.head.weight.shape == (classes * k, width)


@pytest.mark.parametrize("name", model_params(ALL))
def test_macs_within_two_percent_of_the_table(name: str) -> None:
    """Vector baselines against their cited table; a GCR model against its baseline's (the
    GCR head adds k x 1000 x F multiply-adds, at most 1.5% of these backbones at k=32)."""
    from zoo.build import build_model

    spec = zoo.get_spec(name)
    ref = spec if spec.family == "timm_arch" else zoo.get_spec(baseline_of(name))
    model = build_model(spec, meta=True)
    macs = count_macs(model, tuple(spec.data.input_size)) / 1e6
    assert abs(macs - ref.reported.macs_m) / ref.reported.macs_m < 0.02, macs
    if spec.family == "timm_arch":
        # the tables round params to 0.01 M
        assert round(count_params(model) / 1e6, 2) == spec.reported.params_m


# -- conversion ---------------------------------------------------------------------------------

def _golden(name: str) -> dict:
    return G.load(GOLDEN / f"{name}.json")


def test_vector_checkpoint_into_a_gcr_model_is_refused() -> None:
    sd = G.fill_state_dict(_golden("gcr_resnet50d_vector"))
    with pytest.raises(CheckpointError, match="_vector"):
        zoo.convert_checkpoint("gcr_resnet50d_d8", sd)


def test_wrong_subspace_dimension_is_refused() -> None:
    sd = G.fill_state_dict(_golden("gcr_resnet50d_d8"))
    with pytest.raises(CheckpointError, match="subspace dimension"):
        zoo.convert_checkpoint("gcr_resnet50d_d16", sd)


def test_converted_checkpoint_of_a_twin_spec_loads() -> None:
    """RSB / FixRes specs share the architecture of gcr_resnet50d_d8 (only evaluation differs)."""
    sd = zoo.convert_checkpoint("gcr_resnet50d_d8_rsb_fixres",
                                G.fill_state_dict(_golden("gcr_resnet50d_d8")))
    model = zoo.create("gcr_resnet50d_d8_rsb_fixres")
    model.load_state_dict(sd, strict=True)


def test_deit3_untrained_ln2_is_refused() -> None:
    sd = G.fill_state_dict(_golden("gcr_deit3_small_d8"))
    for k in sd:
        if ".ln2." in k:
            sd[k] = torch.ones_like(sd[k]) if k.endswith("weight") else torch.zeros_like(sd[k])
    with pytest.raises(CheckpointError, match="never trained"):
        zoo.convert_checkpoint("gcr_deit3_small_d8", sd)


def test_training_checkpoint_file_converts(tmp_path: Path) -> None:
    """An mmpretrain checkpoint file ({'meta': ..., 'state_dict': ...}) through zoo convert's
    reader (weights_only) and the family converter."""
    from zoo.weights.checkpoint import load_original_checkpoint

    g = _golden("gcr_resnet50d_d1")
    path = tmp_path / "ckpt.pth"
    torch.save({"meta": {"epoch": 100, "mmengine_version": "0.8.4", "dataset_meta": {
        "classes": ["tench"] * 3}}, "state_dict": G.fill_state_dict(g)}, path)
    sd = load_original_checkpoint(path)
    model = zoo.create("gcr_resnet50d_d1")
    model.load_state_dict(zoo.convert_checkpoint("gcr_resnet50d_d1", sd), strict=True)
    G.assert_matches(g, G.run(g, model))


# -- model API ----------------------------------------------------------------------------------

def test_swin_features_are_channels_first_and_logits_timms() -> None:
    import timm

    torch.manual_seed(0)
    model = zoo.create("gcr_swin_tiny_vector").eval()
    ref = timm.create_model("swin_tiny_patch4_window7_224").eval()
    ref.load_state_dict({k.removeprefix("model."): v for k, v in model.state_dict().items()})
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape == (1, 768, 7, 7)
        torch.testing.assert_close(model(x), ref(x), rtol=0, atol=0)
        torch.testing.assert_close(model.forward_head(feats), ref(x), rtol=0, atol=0)


def test_reset_classifier_keeps_the_subspace_dimension() -> None:
    model = zoo.create("gcr_resnet50d_d4").eval()
    model.reset_classifier(10)
    assert model.get_classifier().weight.shape == (40, 2048)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 10)
    model.reset_classifier(0)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 2048)


def test_vgg_gcr_head_sees_fc7() -> None:
    """GCR's VGG_ keeps fc6-ReLU-Dropout-fc7-ReLU: the subspaces live in the 4096-d fc7 output."""
    model = zoo.create("gcr_vgg13_bn_d8")
    assert model.num_features == 512 and model.head_hidden_size == 4096
    assert model.head.in_features == 4096


def test_registry_records() -> None:
    from zoo.registry import registry

    tags = [t for t in registry().records if t.split(".")[0] in ALL]
    assert {t.split(".")[0] for t in tags} == set(ALL)
    for tag in tags:
        rec = registry().records[tag]
        assert rec.hub is None and rec.source.format == "pickle" and rec.source.sha256 is None
        assert rec.source.url.startswith("https://drive.google.com/file/d/")
        assert rec.metrics.crop_pct == pytest.approx(zoo.get_spec(tag).data.crop_pct)
        assert math.floor(224 / rec.metrics.crop_pct) in (224, 232, 236, 256)


def test_zoo_info_shows_the_paper(capsys) -> None:
    from zoo.cli import main

    assert main(["info", "gcr_resnet50d_d8", "--no-measure"]) == 0
    out = capsys.readouterr().out
    assert "Grassmann Class Representation" in out and PAPER in out


def test_convert_script_round_trip(tmp_path: Path) -> None:
    """An mmpretrain checkpoint file -> scripts/convert_gcr.py -> a folder zoo.create loads and
    that reproduces the original's logits; a vector baseline is not this script's family."""
    from tests.util import run_script

    g = _golden("gcr_resnet50d_d1")
    src = tmp_path / "resnet50d_gcr1.pth"
    torch.save({"meta": {"epoch": 100}, "state_dict": G.fill_state_dict(g)}, src)
    out = tmp_path / "hub"
    assert run_script("convert_gcr.py", "gcr_resnet50d_d1.in1k", src, "--out", out) == 0
    G.assert_matches(g, G.run(g, zoo.create("gcr_resnet50d_d1", weights=out)))
    assert run_script("convert_gcr.py", "gcr_resnet50d_vector.in1k", src, "--out",
                      tmp_path / "other") == 1
