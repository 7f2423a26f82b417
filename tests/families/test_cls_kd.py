"""NKD students (cls_KD, family timm_arch, specs/cls_kd.yaml): timm architectures that compute
what cls_KD's mmcls models compute (golden vectors tests/golden/nkd_*.json), checkpoints in
either of upstream's forms (distiller, or pth_transfer.py's student) convert to the same model,
and sizes match the cited tables."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import zoo
from tests import golden as G
from tests.conftest import model_params
from zoo.errors import CheckpointError
from zoo.measure import count_macs, count_params

PAPER = "2303.13005"
NKD = [n for n in zoo.list_models() if zoo.get_spec(n).paper.arxiv == PAPER]
GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def test_students_are_timm_models_with_mmcls_checkpoints() -> None:
    assert NKD
    for name in NKD:
        spec = zoo.get_spec(name)
        assert spec.family == "timm_arch"
        assert spec.arch.checkpoint_layout.framework == "mmcls"
        assert (GOLDEN / f"{name}.json").is_file(), f"no golden vector for {name}"


@pytest.mark.parametrize("name", model_params(NKD))
def test_distiller_and_transferred_checkpoints_convert_alike(name: str) -> None:
    """cls_KD saves the ClassificationDistiller (student. + teacher. entries); its
    pth_transfer.py keeps `student.` stripped.  Both load strictly and reproduce the original."""
    g = G.load(GOLDEN / f"{name}.json")
    student = G.fill_state_dict(g)
    teacher = {"backbone.conv1.weight": torch.zeros(64, 3, 7, 7), "head.fc.bias": torch.zeros(1000)}
    distiller = {**{f"student.{k}": v for k, v in student.items()},
                 **{f"teacher.{k}": v for k, v in teacher.items()}}
    a = zoo.convert_checkpoint(name, student)
    b = zoo.convert_checkpoint(name, distiller)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    model = zoo.create(name)
    model.load_state_dict(b, strict=True)
    G.assert_matches(g, G.run(g, model))
    assert count_params(model) == g["num_params"]


@pytest.mark.parametrize("name", model_params(NKD))
def test_params_and_macs_match_the_tables(name: str) -> None:
    from zoo.build import build_model

    spec = zoo.get_spec(name)
    model = build_model(spec, meta=True)
    n = count_params(model) / 1e6
    # mmcls' table gives 2 decimals, the MobileNet paper 1
    decimals = len(str(spec.reported.params_m).split(".")[1])
    assert round(n, decimals) == spec.reported.params_m
    macs = count_macs(model, tuple(spec.data.input_size)) / 1e6
    assert abs(macs - spec.reported.macs_m) / spec.reported.macs_m < 0.02, macs


def test_mobilenet_v1_uses_relu_as_cls_kd() -> None:
    """cls_KD's MobileNetV1 uses nn.ReLU after every BN; timm's mobilenetv1_100 defaults to
    ReLU6, which the spec overrides (act_layer: relu)."""
    model = zoo.create("nkd_mobilenet_v1")
    acts = [m for m in model.modules() if isinstance(m, (nn.ReLU, nn.ReLU6))]
    assert len(acts) == 27 and all(type(m) is nn.ReLU for m in acts)
    assert zoo.get_spec("nkd_mobilenet_v1").arch.model_args == {"act_layer": "relu"}


def test_wrong_backbone_checkpoint_is_refused() -> None:
    g = G.load(GOLDEN / "nkd_resnet18.json")
    with pytest.raises(CheckpointError, match="cannot map"):
        zoo.convert_checkpoint("nkd_mobilenet_v1", G.fill_state_dict(g))


def test_registry_records_are_convertible_sources() -> None:
    from zoo.registry import registry

    tags = [t for t in registry().records if t.split(".")[0] in NKD]
    assert {t.split(".")[0] for t in tags} == set(NKD)
    for tag in tags:
        rec = registry().records[tag]
        assert rec.hub is None and rec.source.format == "pickle" and rec.source.sha256 is None
        assert rec.source.url.startswith("https://1drv.ms/") and "pan.baidu.com" in rec.source.note
        assert rec.metrics.top1 == zoo.get_spec(tag).reported.top1


def test_timm_plugin_and_zoo_list() -> None:
    import timm

    assert set(NKD) <= set(timm.list_models(module="zoo"))
    assert set(zoo.list_models("nkd_*")) == set(NKD)
    model = timm.create_model("nkd_resnet18", num_classes=5)
    assert model.get_classifier().out_features == 5


def test_convert_script_round_trip_from_a_distiller_checkpoint(tmp_path: Path) -> None:
    """cls_KD's training checkpoint ({'meta', 'state_dict'} of the ClassificationDistiller) ->
    scripts/convert_cls_kd.py -> a folder that reproduces the original student's logits."""
    from tests.util import run_script

    g = G.load(GOLDEN / "nkd_mobilenet_v1.json")
    sd = {f"student.{k}": v for k, v in G.fill_state_dict(g).items()}
    sd["teacher.head.fc.weight"] = torch.zeros(1000, 2048)
    src = tmp_path / "res50_distill_mv1.pth"
    torch.save({"meta": {"epoch": 100, "CLASSES": ["tench", "goldfish"]}, "state_dict": sd}, src)
    out = tmp_path / "hub"
    assert run_script("convert_cls_kd.py", "nkd_mobilenet_v1.in1k", src, "--out", out) == 0
    G.assert_matches(g, G.run(g, zoo.create("nkd_mobilenet_v1", weights=out)))
