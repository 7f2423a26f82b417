"""``features_only`` (timm's multi-scale feature maps) of the CNN / hierarchical families: the
declared levels, the maps the hooks return, parity with timm's own ``feature_info`` where timm
has the same network, and ``timm.create_model(..., features_only=True)``."""
from __future__ import annotations

import pytest
import timm
import torch
from torch import nn

import zoo
from zoo.families import get_family


def _meta_model(name: str, **overrides) -> nn.Module:
    """The model built on the meta device: its feature_info without allocating weights."""
    spec = zoo.get_spec(name)
    if overrides:
        spec = spec.with_overrides(**overrides)
    with torch.device("meta"):
        return get_family(spec.family).build(spec)


def _levels(model: nn.Module) -> list[tuple[str, int, int]]:
    return [(d["module"], d["num_chs"], d["reduction"]) for d in model.feature_info]


def _run(name: str, **overrides) -> tuple[nn.Module, torch.Tensor, list, list]:
    """(extractor, input, its outputs, clones of the same hooked outputs taken when produced)."""
    spec = zoo.get_spec(name)
    torch.manual_seed(0)
    extractor = zoo.create(name, features_only=True, **overrides).eval()
    h = spec.data.input_size[1]
    x = torch.randn(1, spec.data.in_chans, h, h, generator=torch.Generator().manual_seed(0))
    clones: dict[str, torch.Tensor] = {}
    handles = [extractor.model.get_submodule(d["module"]).register_forward_hook(
        lambda m, a, out, n=d["module"]: clones.__setitem__(n, out.detach().clone()))
        for d in extractor.model.feature_info]
    with torch.no_grad():
        torch.manual_seed(0)
        outs = extractor(x)
    for handle in handles:
        handle.remove()
    return extractor, x, outs, [clones[d["module"]] for d in extractor.model.feature_info]


NO_RESIZE = {"resize_input": False}  # BigNAS: levels only when the input is not resized
# (model, arch overrides, expected reductions, expected channels): models of every family
LEVELS = [
    ("nasnet_a_mobile", {}, [2, 4, 8, 16, 32], [32, 44, 264, 528, 1056]),
    ("nasnet_a_cifar", {}, [1, 2, 4], [192, 384, 768]),
    ("darts_v2_imagenet", {}, [2, 4, 8, 16, 32], [24, 48, 192, 384, 768]),
    ("deepmad_r18", {}, [2, 4, 8, 16, 32], None),
    ("deepmad_29m_224", {}, [2, 4, 8, 16, 32], None),
    ("bignas_attentivenas_a0", NO_RESIZE, [2, 4, 8, 16, 32], None),
    ("sret_t", {}, [8, 16, 32], [64, 128, 256]),
    ("meal_v2_mobilenetv3_small_075", {}, [2, 4, 8, 16, 32], [16, 16, 24, 40, 432]),
    ("singlepath_nas_100", {}, [2, 4, 8, 16, 32], [16, 24, 40, 96, 320]),
]


@pytest.mark.parametrize("name,overrides,reductions,channels", LEVELS,
                         ids=[p[0] for p in LEVELS])
def test_levels(name: str, overrides: dict, reductions: list[int],
                channels: list[int] | None) -> None:
    """Declared reductions/channels, and maps of exactly those channels and strides that the
    network's later layers have not modified in place after the hook saw them."""
    extractor, x, outs, clones = _run(name, **overrides)
    info = extractor.feature_info
    assert info.reduction() == reductions
    if channels is not None:
        assert info.channels() == channels
    assert len(outs) == len(reductions)
    for out, clone, chs, red in zip(outs, clones, info.channels(), reductions):
        assert out.ndim == 4 and out.shape[1] == chs
        sizes = {x.shape[-1] // red, -(-x.shape[-1] // red)}
        if name.startswith("nasnet_a") and red == 2:  # the unpadded stem conv, see below
            sizes.add(x.shape[-1] // red - 1)
        assert out.shape[-1] in sizes
        assert torch.equal(out, clone), f"{name}: a level was modified in place after its hook"
    # one module per resolution, the deepest one: strictly increasing reductions
    assert all(a < b for a, b in zip(reductions, reductions[1:]))


@pytest.mark.parametrize("name", ["deepmad_r18", "sret_t", "meal_v2_mobilenetv3_small_075",
                                  "nasnet_a_cifar"])
def test_last_level_is_forward_features(name: str) -> None:
    """The deepest level is the unpooled map the head pools (NASNet: before its head ReLU).
    Not so for EfficientNet-style models (Single-Path NAS), whose forward_features ends with the
    1x1 head conv: like timm, their last level is the last block."""
    extractor, x, outs, _ = _run(name)
    model = extractor.model
    with torch.no_grad():
        torch.manual_seed(0)
        feats = model.forward_features(x)
    if getattr(model, "head_relu", False):
        outs[-1] = torch.relu(outs[-1])
    assert torch.equal(outs[-1], feats)


def test_nasnet_imagenet_stem_level_is_unpadded() -> None:
    """NASNet-A's stem conv is 3x3/2 VALID (TF-slim): its level has nominal reduction 2 but is
    floor((H - 3) / 2) + 1 wide, 111 at 224 (timm's nasnetalarge declares it the same way)."""
    _, _, outs, _ = _run("nasnet_a_mobile")
    assert [o.shape[-1] for o in outs] == [111, 56, 28, 14, 7]


def test_nasnet_large_matches_timm() -> None:
    """Same levels (channels, reductions) as timm's port of NASNet-A Large."""
    with torch.device("meta"):
        ref = timm.create_model("nasnetalarge").feature_info
    ours = _meta_model("nasnet_a_large").feature_info
    assert [(d["num_chs"], d["reduction"]) for d in ours] == \
        [(d["num_chs"], d["reduction"]) for d in ref]


@pytest.mark.parametrize("name,timm_name", [("singlepath_nas_100", "spnasnet_100"),
                                            ("meal_v2_resnet50", "resnet50")])
def test_timm_backed_match_timm(name: str, timm_name: str) -> None:
    """Models built by timm expose timm's own levels (timm_arch: under the ``model.`` prefix)."""
    with torch.device("meta"):
        ref = timm.create_model(timm_name).feature_info
    prefix = "model." if zoo.get_spec(name).family == "timm_arch" else ""
    assert _levels(_meta_model(name)) == [(prefix + d["module"], d["num_chs"], d["reduction"])
                                          for d in ref]


def test_bignas_levels_follow_subnet_and_head() -> None:
    """BigNAS levels: stem or the last stage at each resolution, then ``conv_head`` (the v3 head
    expands the last stage width; the plain head maps to ``num_features``)."""
    for name in ("bignas_attentivenas_a0", "bignas_supernet"):
        model = _meta_model(name, **NO_RESIZE)
        subnet, space = model.subnet, model.space
        levels = _levels(model)
        assert levels[-1][0] == "conv_head"
        expected = subnet.width[-2] * space.head.expand if space.head.v3 else subnet.width[-1]
        assert levels[-1][1] == expected
        for module, chs, _ in levels[:-1]:
            stage = int(module.split(".")[1]) if module.startswith("stages.") else -1
            assert chs == subnet.width[stage + 1]


def test_bignas_resizing_model_is_a_backbone_without_the_resize() -> None:
    """With ``resize_input`` (the default) the classifier resizes every image to the child's
    resolution (AttentiveNAS' forward), so its maps are at strides of that resolution;
    ``features_only`` builds the backbone without the resize: maps at strides of the caller's
    image, the same as a model built with ``resize_input=False``."""
    torch.manual_seed(0)
    model = zoo.create("bignas_attentivenas_a0").eval()
    assert model.resize_input and [d["reduction"] for d in model.feature_info] == \
        [2, 4, 8, 16, 32]
    torch.manual_seed(0)
    extractor = zoo.create("bignas_attentivenas_a0", features_only=True).eval()
    assert extractor.model.resize_input is False
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        outs = extractor(x)
        ref = model.forward_intermediates(x, intermediates_only=True)  # resized to 192 first
        model.resize_input = False
        direct = model.forward_intermediates(x, intermediates_only=True)
    assert [o.shape[-1] for o in outs] == [48, 24, 12, 6, 3]
    assert [o.shape[-1] for o in ref] == [96, 48, 24, 12, 6]
    for a, b in zip(outs, direct):
        torch.testing.assert_close(a, b)


def test_deepmad_levels_end_with_final_conv() -> None:
    for name in ("deepmad_29m_224", "deepmad_r18"):
        spec = zoo.get_spec(name)
        levels = _levels(_meta_model(name))
        last = ("final_conv" if spec.arch.final_conv is not None
                else f"stages.{len(spec.arch.stages) - 1}")
        assert levels[-1][0] == last and levels[-1][1] == spec.arch.num_features


def test_timm_arch_without_forward_hooks_declares_nothing() -> None:
    """A timm level needing a pre-forward hook (feature_location='bottleneck') cannot be served
    by zoo's forward hooks: the wrapper then declares no levels (features_only gives ZooError)."""
    from zoo.layers.timm_model import timm_feature_info as _feature_info

    inner = nn.Module()
    inner.feature_info = [{"module": "blocks.0", "num_chs": 16, "reduction": 2},
                          {"module": "blocks.1.0.conv_pwl", "num_chs": 72, "reduction": 4,
                           "hook_type": "forward_pre"}]
    assert _feature_info(inner) == []
    inner.feature_info = inner.feature_info[:1]
    assert _feature_info(inner) == [{"module": "model.blocks.0", "num_chs": 16, "reduction": 2}]


@pytest.mark.parametrize("name,overrides", [
    ("nasnet_a_cifar", {}), ("deepmad_r18", {}), ("bignas_attentivenas_a0", NO_RESIZE),
    ("sret_t", {}), ("meal_v2_mobilenetv3_small_075", {}), ("singlepath_nas_100", {})])
def test_timm_create_model_features_only(name: str, overrides: dict) -> None:
    spec = zoo.get_spec(name)
    model = timm.create_model(name, features_only=True, out_indices=(1, -1), **overrides).eval()
    levels = _levels(_meta_model(name, **overrides))
    assert model.feature_info.channels() == [levels[1][1], levels[-1][1]]
    x = torch.randn(1, *spec.data.input_size)
    with torch.no_grad():
        outs = model(x)
    assert isinstance(outs, list) and [o.shape[1] for o in outs] == model.feature_info.channels()


def test_out_indices_select_levels() -> None:
    torch.manual_seed(0)
    every = zoo.create("deepmad_r18", features_only=True).eval()
    torch.manual_seed(0)
    two = zoo.create("deepmad_r18", features_only=True, out_indices=(1, 3)).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a, b = every(x), two(x)
    assert len(b) == 2 and torch.equal(b[0], a[1]) and torch.equal(b[1], a[3])
