"""Single-Path NAS: the spec's arch strings build exactly timm's spnasnet_100 (same modules,
keys and outputs), under a zoo name that does not shadow the timm built-in."""
from __future__ import annotations

import copy

import pytest
import torch

import zoo
from zoo.errors import CheckpointError, SpecError
from zoo.measure import count_params

NAME = "singlepath_nas_100"


def test_listed_under_its_family_and_distinct_from_timm() -> None:
    import timm

    assert zoo.list_models(family="singlepath") == [NAME]
    assert timm.is_model("spnasnet_100") and NAME not in timm.list_models(module="efficientnet")
    spec = zoo.get_spec(NAME)
    assert spec.reported.top1 == 74.96 and spec.paper.arxiv == "1904.02877"
    from zoo.registry import registry

    rec = registry().records[f"{NAME}.rmsp_in1k"]
    assert rec.metrics.top1 == 74.09 and rec.hub is None


def test_same_network_as_timm_spnasnet_100() -> None:
    import timm

    torch.manual_seed(0)
    ref = timm.create_model("spnasnet_100").eval()
    model = zoo.create(NAME).eval()
    assert isinstance(model, zoo.model.ZooModel)
    ref_sd = ref.state_dict()
    assert [(k, v.shape) for k, v in model.state_dict().items()] == \
        [(k, v.shape) for k, v in ref_sd.items()]
    wrapped = {f"module.{k}": v for k, v in ref_sd.items()}  # a DataParallel save
    model.load_state_dict(zoo.convert_checkpoint(NAME, wrapped), strict=True)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), rtol=0, atol=0)
    assert count_params(model) == count_params(ref) == 4_421_616


def test_data_config_matches_timm_weights() -> None:
    import timm

    cfg = timm.models.get_pretrained_cfg("spnasnet_100.rmsp_in1k")
    d = zoo.get_spec(NAME).data
    assert (d.interpolation, d.crop_pct, d.mean, d.std) == (cfg.interpolation, cfg.crop_pct,
                                                            tuple(cfg.mean), tuple(cfg.std))


def test_channel_multiplier_override() -> None:
    half = zoo.create(NAME, channel_multiplier=0.5)
    assert half.conv_stem.out_channels == 16 and half.blocks[1][0].conv_pwl.out_channels == 16
    assert half.blocks[6][0].conv_pwl.out_channels == 160 and half.num_features == 1280
    assert count_params(half) < count_params(zoo.create(NAME))


def _raw() -> dict:
    from zoo.catalog import catalog

    return copy.deepcopy(catalog().resolve(NAME))


@pytest.mark.parametrize("stages,match", [
    ([["xx_r1_k3_s1_c16"]], "type 'xx'"),
    ([["ir_r1_k3_s1_e6"]], r"missing \['c'\]"),
    ([["ir_r1_k3_s1_c16"]], r"missing \['e'\]"),
    ([["ir_r1_k3_s1_e6_c16_zz9"]], "unknown option"),
    ([[]], "stage 0 has no blocks"),
])
def test_arch_string_errors(stages, match) -> None:
    from zoo.catalog import validate_spec

    raw = _raw()
    raw["arch"]["stages"] = stages
    with pytest.raises(SpecError, match=match):
        validate_spec(raw, source="test")


def test_convert_refuses_nested_checkpoints() -> None:
    with pytest.raises(CheckpointError, match="not tensors"):
        zoo.convert_checkpoint(NAME, {"state_dict": {"a": torch.zeros(1)}})


def test_published_timm_layout_loads_with_pretrained(publish) -> None:
    import timm

    torch.manual_seed(1)
    ref = timm.create_model("spnasnet_100").eval()
    publish(f"{NAME}.rmsp_in1k", ref.state_dict(), layout="original")
    model = zoo.create(f"{NAME}.rmsp_in1k", pretrained=True)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), rtol=0, atol=0)


def test_cli_list_and_info(capsys) -> None:
    """`zoo list --family singlepath` knows the model; `zoo info` prints the paper's 74.96
    next to timm's measured 74.09 for the rmsp_in1k weights, and the measured size."""
    from zoo.cli import main

    assert main(["list", "--family", "singlepath"]) == 0
    assert capsys.readouterr().out.split() == [NAME]
    assert main(["info", NAME]) == 0
    out = capsys.readouterr().out
    reported = next(line for line in out.splitlines() if line.startswith("reported top-1"))
    assert "74.96 / 92.21" in reported and "1904.02877" in out
    weights = next(line for line in out.splitlines() if f"{NAME}.rmsp_in1k" in line)
    assert "top-1 74.09" in weights and f"zoo fetch {NAME}.rmsp_in1k" in weights
    params = next(line for line in out.splitlines() if line.startswith("params:"))
    assert "4.42M" in params


def test_in_the_default_conformance_run() -> None:
    from tests import test_conformance
    from tests.conftest import heavy

    assert NAME in test_conformance.MODELS and not heavy(NAME)
