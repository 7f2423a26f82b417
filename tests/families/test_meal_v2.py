"""MEAL V2 specs (family timm_arch): the students are the timm architectures upstream trained
(checked in its hubconf.py / README), checkpoints as upstream saves them load strictly and
compute exactly what the timm model computes."""
from __future__ import annotations

import copy

import pytest
import torch

import zoo
from zoo.errors import CheckpointError, SpecError, StateDictMismatchError
from zoo.measure import count_macs, count_params

MEAL = zoo.list_models("meal_v2_*")
# The timm architecture of each MEAL V2 student, from upstream's hubconf.py `mapping`.
UPSTREAM_ARCH = {
    "meal_v2_resnet50": "resnet50", "meal_v2_resnet50_380": "resnet50",
    "meal_v2_mobilenetv3_small_075": "tf_mobilenetv3_small_075",
    "meal_v2_mobilenetv3_small_100": "tf_mobilenetv3_small_100",
    "meal_v2_mobilenetv3_large_100": "tf_mobilenetv3_large_100",
    "meal_v2_efficientnet_b0": "tf_efficientnet_b0",
}


def test_every_upstream_student_has_a_spec() -> None:
    assert sorted(MEAL) == sorted(UPSTREAM_ARCH)
    assert set(MEAL) <= set(zoo.list_models(family="timm_arch"))
    assert {zoo.get_spec(n).paper.arxiv for n in MEAL} == {"2009.08453"}
    assert all(zoo.get_spec(n).arch.checkpoint_layout == "timm" for n in MEAL)
    for name, arch in UPSTREAM_ARCH.items():
        assert zoo.get_spec(name).arch.timm_model == arch


def upstream_checkpoint(name: str, seed: int = 0) -> tuple[dict, torch.nn.Module]:
    """A MEAL V2 .pth as upstream writes it: the timm student's state dict saved through
    torch.nn.DataParallel (every key prefixed `module.`), with random values."""
    import timm

    torch.manual_seed(seed)
    student = timm.create_model(UPSTREAM_ARCH[name]).eval()
    with torch.no_grad():
        for m in student.modules():
            if isinstance(m, torch.nn.BatchNorm2d):  # non-trivial running statistics
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return {f"module.{k}": v for k, v in student.state_dict().items()}, student


@pytest.mark.parametrize("name", MEAL)
def test_upstream_checkpoint_loads_and_matches_timm(name) -> None:
    sd, student = upstream_checkpoint(name)
    model = zoo.create(name).eval()
    model.load_state_dict(zoo.convert_checkpoint(name, sd), strict=True)
    x = torch.randn(1, *zoo.get_spec(name).data.input_size)
    with torch.no_grad():
        torch.testing.assert_close(model(x), student(x), rtol=0, atol=0)


def test_tf_ports_are_what_the_weights_need() -> None:
    """tf_mobilenetv3 and mobilenetv3 share the key layout, so the wrong one would load
    silently: only the TF port ("same" padding, BN eps 1e-3) reproduces the student."""
    import timm

    name = "meal_v2_mobilenetv3_small_075"
    sd, student = upstream_checkpoint(name)
    plain = timm.create_model("mobilenetv3_small_075").eval()
    plain.load_state_dict({k.removeprefix("module."): v for k, v in sd.items()}, strict=True)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert not torch.allclose(plain(x), student(x), atol=1e-3)


@pytest.mark.parametrize("name", MEAL)
def test_params_and_macs_match_reported(name) -> None:
    import timm

    from zoo.build import build_model

    spec = zoo.get_spec(name)
    model = build_model(spec, meta=True)
    n = count_params(model)
    with torch.device("meta"):
        assert n == count_params(timm.create_model(spec.arch.timm_model))
    # README "#Parameters": 2 decimals below 10M, 1 above
    assert round(n / 1e6, 2 if n < 1e7 else 1) == spec.reported.params_m
    if spec.reported.macs_m is not None:
        macs = count_macs(model, tuple(spec.data.input_size)) / 1e6
        assert abs(macs - spec.reported.macs_m) / spec.reported.macs_m < 0.02, macs


def test_data_config_is_meal_v2_evaluation() -> None:
    """upstream inference.py: Resize(int(256/224*res)) + CenterCrop(res), torchvision bilinear,
    ImageNet mean/std for every student (also the tf_* ones, whose timm default is 0.5/0.5)."""
    for name in MEAL:
        d = zoo.get_spec(name).data
        res = d.input_size[1]
        assert int(res / d.crop_pct) == int(256 / 224 * res)
        assert d.interpolation == "bilinear"
        assert d.mean == (0.485, 0.456, 0.406) and d.std == (0.229, 0.224, 0.225)


def test_pooled_features_of_a_conv_head_model() -> None:
    model = zoo.create("meal_v2_mobilenetv3_small_100").eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert model.forward_features(x).shape == (2, 576, 7, 7) and model.num_features == 576
        assert model.forward_head(model.forward_features(x), pre_logits=True).shape == (2, 1024)
        assert model.head_hidden_size == 1024
        model.reset_classifier(7)
        assert model(x).shape == (2, 7) and model.num_classes == 7


def test_group_matcher_targets_the_wrapped_model() -> None:
    from timm.models import group_parameters

    model = zoo.create("meal_v2_resnet50")
    groups = group_parameters(model, model.group_matcher())
    first = next(iter(groups.values()))
    assert "model.conv1.weight" in first and "model.bn1.weight" in first
    assert sum(len(v) for v in groups.values()) == len(list(model.named_parameters()))


def test_convert_errors() -> None:
    name = "meal_v2_mobilenetv3_small_075"
    sd, _ = upstream_checkpoint(name)
    with pytest.raises(CheckpointError, match="not tensors"):
        zoo.convert_checkpoint(name, {"state_dict": sd})
    zoo_layout = zoo.convert_checkpoint(name, sd)
    with pytest.raises(CheckpointError, match="zoo-layout"):
        zoo.convert_checkpoint(name, zoo_layout)
    from zoo.build import build_model
    from zoo.loading import load_into

    wrong, _ = upstream_checkpoint("meal_v2_mobilenetv3_small_100")
    with pytest.raises(StateDictMismatchError):
        load_into(build_model(zoo.get_spec(name), meta=True),
                  zoo.convert_checkpoint(name, wrong), "test")


def _raw(name: str) -> dict:
    from zoo.catalog import catalog

    return copy.deepcopy(catalog().resolve(name))


@pytest.mark.parametrize("change,match", [
    ({"model_args": {"num_classes": 10}}, "set by zoo"),
    ({"model_args": {"act_layer": ["relu"]}}, "model_args"),
    ({"timm_model": "timm/resnet50"}, "timm_model"),
])
def test_spec_errors_at_validation(change, match) -> None:
    from zoo.catalog import validate_spec

    raw = _raw("meal_v2_resnet50")
    raw["arch"].update(change)
    with pytest.raises(SpecError, match=match):
        validate_spec(raw, source="test")


@pytest.mark.parametrize("change,match", [
    ({"timm_model": "resnet5o"}, "not a timm architecture"),
    ({"timm_model": "meal_v2_resnet50"}, "zoo model"),
    ({"model_args": {"no_such_argument": 1}}, "rejected the arguments"),
])
def test_spec_errors_at_build(change, match) -> None:
    from zoo.families.timm_arch.model import build
    from zoo.catalog import validate_spec

    raw = _raw("meal_v2_resnet50")
    raw["arch"].update(change)
    with pytest.raises(SpecError, match=match):
        build(validate_spec(raw, source="test"))


def test_registry_records_are_convertible_sources() -> None:
    from zoo.registry import registry

    tags = [t for t in registry().records if t.startswith("meal_v2_")]
    assert len(tags) == 7
    for tag in tags:
        rec = registry().records[tag]
        assert rec.hub is None and rec.source.format == "pickle"
        assert rec.source.url.startswith("https://github.com/szq0214/MEAL-V2/releases/download/")


def test_published_original_layout_loads_with_pretrained(publish) -> None:
    name = "meal_v2_mobilenetv3_small_075"
    sd, student = upstream_checkpoint(name, seed=1)
    publish(f"{name}.in1k", {k.removeprefix("module."): v for k, v in sd.items()},
            layout="original")
    model = zoo.create(f"{name}.in1k", pretrained=True)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model(x), student(x), rtol=0, atol=0)


# MEAL V2 README "Results & Models": top-1 of each published student (tag -> top-1).
README_TOP1 = {
    "meal_v2_resnet50.in1k": 80.67, "meal_v2_resnet50.in1k_cutmix": 80.98,
    "meal_v2_resnet50_380.in1k": 81.72, "meal_v2_mobilenetv3_small_075.in1k": 67.60,
    "meal_v2_mobilenetv3_small_100.in1k": 69.65, "meal_v2_mobilenetv3_large_100.in1k": 76.92,
    "meal_v2_efficientnet_b0.in1k": 78.29,
}


def test_reported_top1_is_the_readme_table() -> None:
    """Each tag's record and each spec's reported number are the README's (the cutmix tag
    shares meal_v2_resnet50's spec, which reports the plain run)."""
    from zoo.registry import registry

    records = {t: r for t, r in registry().records.items() if t.startswith("meal_v2_")}
    assert {t: r.metrics.top1 for t, r in records.items()} == README_TOP1
    for tag, top1 in README_TOP1.items():
        if not tag.endswith("_cutmix"):
            assert zoo.get_spec(tag.split(".")[0]).reported.top1 == top1


def test_in_the_default_conformance_run() -> None:
    """tests/test_conformance.py covers every registered model; the MEAL V2 students are light
    enough to be in its default (not `slow`) group."""
    from tests import test_conformance
    from tests.conftest import heavy

    assert set(MEAL) <= set(test_conformance.MODELS)
    assert not [name for name in MEAL if heavy(name)]
