"""SimpleNet (Coderx7/SimpleNet_Pytorch): every published variant, from the shipped spec file;
its stride modes and feature levels; the registry's honest record of the upstream release files;
schema checks specific to the family.  Output parity with upstream is in tests/test_golden.py."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import zoo
from tests.util import random_eval_model
from zoo.catalog import catalog
from zoo.paths import data_dir
from zoo.errors import SpecError
from zoo.registry import registry

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "golden"
RELEASE = "https://github.com/Coderx7/SimpleNet_Pytorch/releases/download/v1.0.0/"
# What upstream published (its README and v1.0.0 release): the oracle the shipped file is held to.
UPSTREAM = {"simplenetv1_small_m1_05", "simplenetv1_small_m2_05", "simplenetv1_small_m1_075",
            "simplenetv1_small_m2_075", "simplenetv1_5m_m1", "simplenetv1_5m_m2",
            "simplenetv1_9m_m1", "simplenetv1_9m_m2", "simplenet_cifar_5m"}


def _shipped(family: str) -> list[str]:
    """Models of the shipped spec file (other tests may register user specs of this family)."""
    path = str(data_dir("specs") / f"{family}.yaml")
    return [n for n in zoo.list_models(family=family) if catalog().entries[n].source == path]


PUBLISHED = _shipped("simplenet")  # every variant of specs/simplenet.yaml
IMAGENET = [n for n in PUBLISHED if zoo.get_spec(n).data.label_set == "imagenet-1k"]


def _meta(name: str, **overrides) -> nn.Module:
    spec = zoo.get_spec(name)
    if overrides:
        spec = spec.with_overrides(**overrides)
    from zoo.families import get_family

    with torch.device("meta"):
        return get_family("simplenet").build(spec)


def test_exactly_the_published_variants_each_with_an_upstream_golden_vector() -> None:
    assert set(PUBLISHED) == UPSTREAM
    for name in PUBLISHED:
        golden = json.loads((GOLDEN_DIR / f"{name}.json").read_text())
        assert golden["model"] == name
        assert golden["reference"]["repo"] == "Coderx7/SimpleNet_Pytorch"


@pytest.mark.parametrize("name", IMAGENET)
def test_params_match_the_upstream_readme(name: str) -> None:
    """Exact counts are checked against the reference model (test_golden); these are the
    README's rounded millions, which the spec cites."""
    model = _meta(name)
    spec = zoo.get_spec(name)
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 2) == spec.reported.params_m


# Upstream's `features` layout: conv-BN-ReLU-Dropout2d (4 modules), maxpool-Dropout2d (2), and
# 3 modules for a conv without dropout; a level is the last module at its resolution.
@pytest.mark.parametrize("name, modules, channels, reductions", [
    # stride mode 1: the first three convs stride 2
    ("simplenetv1_5m_m1", [3, 7, 23, 41, 55], [64, 128, 128, 512, 256], [2, 4, 8, 16, 32]),
    # stride mode 2: conv 2 keeps the resolution, conv 3 halves it
    ("simplenetv1_5m_m2", [3, 11, 23, 41, 55], [64, 128, 128, 512, 256], [2, 4, 8, 16, 32]),
    # CIFAR, stride mode 0: four max pools only; `dropout: null` layers have no Dropout module
    ("simplenet_cifar_5m", [14, 27, 36, 49, 54], [128, 256, 256, 256, 256], [1, 2, 4, 8, 16]),
])
def test_stride_modes_and_feature_levels(name: str, modules: list[int], channels: list[int],
                                         reductions: list[int]) -> None:
    model = _meta(name)
    info = model.feature_info
    assert [d["module"] for d in info] == [f"features.{i}" for i in modules]
    assert [d["num_chs"] for d in info] == channels
    assert [d["reduction"] for d in info] == reductions
    assert modules[-1] == len(model.features) - 1  # the deepest level is forward_features


def test_feature_maps_have_the_declared_resolutions() -> None:
    spec = zoo.get_spec("simplenet_cifar_5m")
    extractor = zoo.create("simplenet_cifar_5m", features_only=True).eval()
    with torch.no_grad():
        outs = extractor(torch.randn(1, *spec.data.input_size))
    assert [tuple(o.shape[1:]) for o in outs] == [(128, 32, 32), (256, 16, 16), (256, 8, 8),
                                                  (256, 4, 4), (256, 2, 2)]


def test_width_scale_rounds_per_layer_as_upstream() -> None:
    model = _meta("simplenetv1_small_m1_075")
    widths = [m.out_channels for m in model.features if isinstance(m, nn.Conv2d)]
    assert widths == [48, 96, 96, 96, 96, 96, 192, 192, 192, 384, 1536, 192, 192]
    assert model.get_classifier().in_features == model.num_features == 192
    assert all(m.padding == (m.kernel_size[0] // 2,) * 2
               for m in model.features if isinstance(m, nn.Conv2d))  # 1x1 convs: padding 0


def test_dropout_fields_map_to_modules() -> None:
    model = zoo.create("simplenetv1_small_m1_05", drop_rate=0.25, layers=[
        {"filters": 8, "dropout": 0.1}, {"pool": "max", "dropout": None}, {"filters": 16}],
        strides={})
    kinds = [type(m).__name__ for m in model.features]
    assert kinds == ["Conv2d", "BatchNorm2d", "ReLU", "Dropout2d", "MaxPool2d",
                     "Conv2d", "BatchNorm2d", "ReLU", "Dropout2d"]
    assert model.features[3].p == 0.1 and model.features[8].p == 0.0
    assert model.head.drop.p == 0.25
    assert model.head.global_pool.pool_type == "max"  # upstream pools with a global max


@pytest.mark.parametrize("arch, message", [
    ({"scale": 0.001}, "without channels"),
    ({"layers": [{"filters": 8}, {"pool": "max"}], "strides": {}}, "last layer must be a conv"),
    ({"layers": [{"filters": 8, "kernel": 5}], "strides": {}}, "arch.layers.0"),
    ({"layers": [{"filters": 8, "dropout": 1.0}], "strides": {}}, "arch.layers.0"),
    ({"layers": [{"pool": "avg"}, {"filters": 8}], "strides": {}}, "arch.layers.0"),
    ({"strides": {20: 2}}, "outside 0..14"),
])
def test_impossible_architectures_are_spec_errors(arch: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message) as info:
        zoo.get_spec("simplenetv1_5m_m1").with_overrides(**arch)
    assert "simplenetv1_5m_m1" in str(info.value)


def test_registry_lists_the_upstream_release_files_as_convertible_sources() -> None:
    """One `.in1k` record per ImageNet variant, pointing at the original repo's release file, as
    a convertible source (no Hub record: no safetensors copy is published); none for CIFAR."""
    for name in IMAGENET:
        assert registry().tags_of(name) == [f"{name}.in1k"]
        rec = registry().records[f"{name}.in1k"]
        assert rec.hub is None and not rec.pretrained
        assert rec.source.url.startswith(RELEASE + name + "-") and rec.source.url.endswith(".pth")
        assert rec.source.format == "pickle" and "zoo convert" in rec.source.converter
        assert rec.metrics.top1 == zoo.get_spec(name).reported.top1
    assert registry().tags_of("simplenet_cifar_5m") == []
    assert not [t for t in zoo.list_models(pretrained=True) if t.startswith("simplenet")]


def test_convert_maps_upstream_keys_and_strips_dataparallel() -> None:
    model = _meta("simplenetv1_small_m1_05")
    upstream = {("module." + k.replace("head.fc.", "classifier.")): v
                for k, v in model.state_dict().items()}
    converted = zoo.convert_checkpoint("simplenetv1_small_m1_05", upstream)
    assert list(converted) == list(model.state_dict())


def test_zoo_convert_turns_a_release_file_into_a_hub_folder(tmp_path, capsys) -> None:
    """The release files are bare state dicts in upstream's layout (``features.*``,
    ``classifier.*``): `zoo convert NAME.in1k FILE --out DIR` writes a folder that loads back
    with identical outputs."""
    from zoo.cli import main

    name = "simplenetv1_small_m2_05"
    model = random_eval_model(name)
    upstream = {k.replace("head.fc.", "classifier."): v for k, v in model.state_dict().items()}
    assert "classifier.weight" in upstream
    torch.save(upstream, tmp_path / f"{name}-00000000.pth")
    out = tmp_path / "hub"
    # the tag's release file name carries its sha256 prefix (torch.hub style): a file that is
    # not the published one is refused under the tag, before anything is unpickled
    from zoo.errors import SourceChecksumError
    from zoo.publish import convert, release_hash_prefix
    from zoo.registry import registry

    prefix = release_hash_prefix(registry().records[f"{name}.in1k"].source.url)
    assert prefix == "ca4b3e2b"
    with pytest.raises(SourceChecksumError, match="does not start with the published ca4b3e2b"):
        convert(f"{name}.in1k", tmp_path / f"{name}-00000000.pth", out=out)
    assert not out.exists()
    assert main(["convert", name, str(tmp_path / f"{name}-00000000.pth"),
                 "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip().endswith(str(out))
    assert json.loads((out / "config.json").read_text())["architecture"] == name
    again = zoo.create(name, weights=out)
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(),
                                                 model.state_dict().values()))
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():  # same weights; the kernels may order float sums differently
        torch.testing.assert_close(again(x), model(x), rtol=1e-5, atol=1e-6)
