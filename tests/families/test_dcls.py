"""ConvNeXt-dcls (K-H-Ismail/ConvNeXt-dcls with the ``dcls`` package): the shipped variants, each
with a golden vector from upstream's code; parameter counts equal upstream's, MACs within 2% of
the README table; the DCLS kernel construction (bilinear placement, rows vs columns, the dilated
convolution as a special case, positions beyond the kernel); one positions tensor per stage; the
converter for upstream's checkpoint layout and the released files; the registry records.
Output parity with upstream is in tests/test_golden.py."""
from __future__ import annotations

import argparse
import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import zoo
from tests import golden as G
from zoo.catalog import catalog
from zoo.paths import data_dir
from zoo.errors import CheckpointError, SpecError, WeightsNotPublishedError
from zoo.families.dcls.model import ConstructKernel2d, Dcls2d
from zoo.measure import count_macs, count_params

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "golden"
UPSTREAM = "https://github.com/K-H-Ismail/ConvNeXt-dcls"


def _shipped() -> list[str]:
    path = str(data_dir("specs") / "dcls.yaml")
    return sorted(n for n in zoo.list_models(family="dcls") if catalog().entries[n].source == path)


SHIPPED = _shipped()
TINY = min(SHIPPED, key=lambda n: zoo.get_spec(n).reported.macs_m)


def _meta(name: str, **overrides) -> torch.nn.Module:
    spec = zoo.get_spec(name)
    if overrides:
        spec = spec.with_overrides(**overrides)
    from zoo.families import get_family

    with torch.device("meta"):
        return get_family("dcls").build(spec)


def _golden(name: str) -> dict:
    return G.load(GOLDEN_DIR / f"{name}.json")


@pytest.fixture(scope="module")
def tiny_golden() -> dict:
    return _golden(TINY)


# -- catalog, counts ---------------------------------------------------------------------------

def test_the_three_released_variants_each_with_an_upstream_golden_vector() -> None:
    assert len(SHIPPED) == 3
    for name in SHIPPED:
        g = _golden(name)
        assert g["model"] == name
        assert g["reference"]["repo"] == UPSTREAM
        assert g["reference"]["dcls_package"]["version"] == "0.1.1"


@pytest.mark.parametrize("name", SHIPPED)
def test_params_equal_upstream(name: str) -> None:
    """Upstream's count (its parameters(), each stage's shared positions once) is recorded in the
    golden file; the README rounds it to whole millions."""
    params = count_params(_meta(name))
    assert params == _golden(name)["num_params"]
    assert abs(params / 1e6 - zoo.get_spec(name).reported.params_m) < 1


@pytest.mark.parametrize("name", SHIPPED)
def test_macs_within_two_percent_of_the_readme(name: str) -> None:
    spec = zoo.get_spec(name)
    macs = count_macs(_meta(name), spec.data.input_size)
    assert abs(macs / 1e6 - spec.reported.macs_m) / spec.reported.macs_m < 0.02


def test_macs_count_the_dense_dilated_kernel() -> None:
    """The DCLS conv costs a dense 17x17 depthwise conv (what the README's FLOPs count): a
    larger dilated kernel costs more, a larger kernel count (more weights) costs nothing."""
    size = zoo.get_spec(TINY).data.input_size
    base = count_macs(_meta(TINY), size)
    assert count_macs(_meta(TINY, kernel_count=60), size) == base
    smaller = count_macs(_meta(TINY, dilated_kernel_size=7), size)
    arch = zoo.get_spec(TINY).arch
    area = [(size[1] // 4 // 2 ** i) ** 2 for i in range(4)]
    expected = sum(d * n * a for d, n, a in zip(arch.dims, arch.depths, area)) * (17 ** 2 - 7 ** 2)
    assert base - smaller == expected


# -- the kernel construction -------------------------------------------------------------------

def test_integer_positions_place_each_weight_on_one_cell() -> None:
    """positions[0] moves a weight along rows, positions[1] along columns, from the centre."""
    construct = ConstructKernel2d(7)
    w = torch.tensor([[[2.0, 3.0]]])
    p = torch.tensor([[[[-3.0, 1.0]]], [[[2.0, 0.0]]]])  # (2, C=1, 1, count=2)
    k = construct(w, p)
    expected = torch.zeros(1, 1, 7, 7)
    expected[0, 0, 0, 5] = 2.0  # row 3 - 3, column 3 + 2
    expected[0, 0, 4, 3] = 3.0  # row 3 + 1, column 3
    assert torch.equal(k, expected)


def test_fractional_positions_are_bilinear() -> None:
    construct = ConstructKernel2d(5)
    k = construct(torch.tensor([[[1.0]]]), torch.tensor([[[[0.25]]], [[[-0.5]]]]))[0, 0]
    # row 2.25, column 1.5: rows 2/3 get 0.75/0.25, columns 1/2 get 0.5/0.5
    expected = torch.zeros(5, 5)
    expected[2, 1] = expected[2, 2] = 0.375
    expected[3, 1] = expected[3, 2] = 0.125
    assert torch.allclose(k, expected, atol=1e-7)


def test_overlapping_elements_add_up() -> None:
    k = ConstructKernel2d(3)(torch.tensor([[[1.0, 2.0]]]), torch.zeros(2, 1, 1, 2))
    assert k[0, 0, 1, 1] == 3.0 and k.sum() == 3.0


def test_regular_positions_give_the_dilated_convolution() -> None:
    """Paper: the dilated convolution is DCLS with positions fixed on a regular grid."""
    torch.manual_seed(0)
    channels, dilation = 4, 3
    conv = Dcls2d(channels, kernel_count=9, dilated_kernel_size=2 * dilation + 1)
    with torch.no_grad():
        conv.weight.normal_()
        conv.bias.normal_()
    offsets = torch.tensor([-dilation, 0, dilation], dtype=torch.float32)
    rows, cols = torch.meshgrid(offsets, offsets, indexing="ij")
    positions = torch.stack([rows.reshape(-1), cols.reshape(-1)])[:, None, None, :]
    positions = positions.expand(2, channels, 1, 9)
    x = torch.randn(2, channels, 13, 11)
    dilated = F.conv2d(x, conv.weight.reshape(channels, 1, 3, 3), conv.bias, padding=dilation,
                       dilation=dilation, groups=channels)
    assert torch.allclose(conv(x, positions), dilated, atol=1e-5)


def test_positions_beyond_the_kernel_lose_their_weight_until_clamped() -> None:
    """Upstream ``v0``: interpolation cells outside the kernel are dropped; training clamps the
    positions to [-lim, lim] (``clamp_parameters``), where nothing is lost."""
    construct = ConstructKernel2d(5)
    w = torch.tensor([[[1.0, 1.0, 1.0]]])
    p = torch.tensor([[[[2.5, -2.0, 4.0]]], [[[0.0, -2.0, 0.0]]]])
    k = construct(w, p)
    assert k.sum().item() == pytest.approx(1.5)  # half of the first, all of the second, none
    assert k[0, 0, 4, 2] == 0.5 and k[0, 0, 0, 0] == 1.0
    assert construct(w, p.clamp(-2, 2)).sum().item() == pytest.approx(3.0)


def test_positions_get_gradients_from_every_block_of_their_stage() -> None:
    """One tensor shared by the stage's blocks: its gradient is the sum of what each block would
    give its own copy."""
    torch.manual_seed(0)
    stage = zoo.create(TINY, num_classes=10).stages[0]
    x = torch.randn(1, stage.positions.shape[1], 16, 16)
    copies = [stage.positions.detach().clone().requires_grad_(True) for _ in stage.blocks]
    y = x
    for block, p in zip(stage.blocks, copies):
        y = block(y, p)
    y.square().mean().backward()
    stage(x).square().mean().backward()
    assert all(p.grad.abs().sum() > 0 for p in copies)
    assert torch.allclose(stage.positions.grad, sum(p.grad for p in copies), rtol=1e-4, atol=1e-9)


# -- the model -------------------------------------------------------------------------------

def test_one_positions_tensor_per_stage() -> None:
    model = _meta(TINY)
    arch = zoo.get_spec(TINY).arch
    keys = [k for k in model.state_dict() if k.endswith("positions")]
    assert keys == [f"stages.{i}.positions" for i in range(4)]
    for i, stage in enumerate(model.stages):
        assert stage.positions.shape == (2, arch.dims[i], 1, arch.kernel_count)
        assert stage.blocks[0].conv_dw.weight.shape == (arch.dims[i], 1, arch.kernel_count)
    assert not [k for k in model.state_dict() if ".P" in k]


def test_initial_positions_lie_in_the_kernel_and_clamping_keeps_them_there() -> None:
    torch.manual_seed(0)
    model = zoo.create(TINY, num_classes=0)
    lim = zoo.get_spec(TINY).arch.dilated_kernel_size // 2
    for stage in model.stages:
        assert stage.positions.abs().max() <= lim
        assert 0.3 < stage.positions.std() < 0.7  # upstream: N(0, 0.5), clamped
    with torch.no_grad():
        model.stages[2].positions.mul_(100)
    model.clamp_parameters()
    assert model.stages[2].positions.abs().max() == lim


def test_feature_levels_and_unpooled_features() -> None:
    model = zoo.create(TINY).eval()
    arch = zoo.get_spec(TINY).arch
    assert [d["num_chs"] for d in model.feature_info] == list(arch.dims)
    assert [d["reduction"] for d in model.feature_info] == [4, 8, 16, 32]
    with torch.no_grad():
        x = torch.randn(1, 3, 64, 64)
        assert model.forward_features(x).shape == (1, arch.dims[-1], 2, 2)
        pooled = model.forward_head(model.forward_features(x), pre_logits=True)
        assert pooled.shape == (1, arch.dims[-1])


def test_gradient_checkpointing_gives_the_same_gradients() -> None:
    torch.manual_seed(0)
    model = zoo.create(TINY, num_classes=5)
    other = copy.deepcopy(model)
    other.set_grad_checkpointing(True)
    x = torch.randn(1, 3, 64, 64)
    for m in (model, other):
        m(x).square().sum().backward()
    for (name, a), b in zip(model.named_parameters(), other.parameters()):
        assert torch.allclose(a.grad, b.grad, rtol=1e-4, atol=1e-6), name


@pytest.mark.parametrize("change, match", [
    ({"dilated_kernel_size": 16}, "must be odd"),
    ({"kernel_count": 0}, "kernel_count"),
    ({"depths": [3, 3, 9]}, "depths"),
])
def test_spec_errors(change: dict, match: str) -> None:
    with pytest.raises(SpecError, match=match):
        zoo.get_spec(TINY).with_overrides(**change)


# -- conversion ------------------------------------------------------------------------------

def test_upstream_layout_converts_with_positions_once(tiny_golden) -> None:
    sd = G.fill_state_dict(tiny_golden)
    converted = zoo.convert_checkpoint(TINY, sd)
    assert set(converted) == set(_meta(TINY).state_dict())
    assert torch.equal(converted["stages.3.positions"], sd["stages.3.2.dwconv.P"])
    assert torch.equal(converted["stages.0.blocks.2.mlp.fc2.weight"],
                       sd["stages.0.2.pwconv2.weight"])
    assert torch.equal(converted["head.norm.weight"], sd["norm.weight"])
    assert torch.equal(converted["stem.1.bias"], sd["downsample_layers.0.1.bias"])
    prefixed = zoo.convert_checkpoint(TINY, {f"module.{k}": v for k, v in sd.items()})
    assert prefixed.keys() == converted.keys()


def test_unequal_position_copies_are_refused(tiny_golden) -> None:
    sd = G.fill_state_dict(tiny_golden)
    sd["stages.1.2.dwconv.P"] = sd["stages.1.2.dwconv.P"] + 1
    with pytest.raises(CheckpointError, match=r"stage 1's positions differ between blocks 0 and 2"):
        zoo.convert_checkpoint(TINY, sd)


@pytest.mark.parametrize("edit, match", [
    (lambda sd: sd.update({"stages.0.3.gamma": sd["stages.0.0.gamma"]}), "stages.0.3.gamma"),
    (lambda sd: sd.update({"stages.0.0.dwconv.SIG": sd["stages.0.0.dwconv.P"]}), "dwconv.SIG"),
    (lambda sd: sd.update({"epoch": 299}), "not tensors"),
])
def test_foreign_keys_are_refused(tiny_golden, edit, match: str) -> None:
    sd = G.fill_state_dict(tiny_golden)
    edit(sd)
    with pytest.raises(CheckpointError, match=match):
        zoo.convert_checkpoint(TINY, sd)


def test_zoo_layout_needs_no_conversion() -> None:
    sd = zoo.create(TINY, num_classes=10).state_dict()
    with pytest.raises(CheckpointError, match="zoo's layout"):
        zoo.convert_checkpoint(TINY, sd)


def test_training_checkpoint_with_ema_round_trip(tiny_golden, tmp_path) -> None:
    """A checkpoint as upstream's utils.save_model writes it ('model', 'model_ema', args) ->
    load_original_checkpoint(use_ema=True) -> convert -> strict load; the EMA weights win."""
    from zoo.build import build_model
    from zoo.loading import load_into
    from zoo.weights.checkpoint import load_original_checkpoint

    ema = G.fill_state_dict(tiny_golden)
    raw = {k: v + 1 for k, v in ema.items()}
    path = tmp_path / "checkpoint-best-ema.pth"
    torch.save({"model": raw, "model_ema": ema, "epoch": 299,
                "args": argparse.Namespace(model="convnext_dcls_tiny")}, path)
    model = build_model(zoo.get_spec(TINY), meta=True)
    load_into(model, zoo.convert_checkpoint(TINY, load_original_checkpoint(path, use_ema=True)),
              str(path))
    assert torch.equal(model.stages[2].positions, ema["stages.2.0.dwconv.P"])


def test_released_file_converts_into_the_cache_and_by_script(hub, tiny_golden, tmp_path) -> None:
    """The released *_ema.pth layout ({'model': state dict}, per-block position copies sharing
    one storage, as torch.save keeps them) -> `zoo convert` into the cache -> pretrained=True,
    and scripts/convert_dcls.py -> a folder that reproduces upstream's logits."""
    from tests.util import run_script
    from zoo import publish as P

    tag = f"{TINY}.in1k"
    src = tmp_path / "convnext_dcls_tiny_1k_224_ema.pth"
    torch.save({"model": G.fill_state_dict(tiny_golden)}, src)
    with pytest.raises(WeightsNotPublishedError, match=f"zoo convert {tag}"):
        zoo.create(tag, pretrained=True)
    P.convert(tag, src)
    cached = zoo.create(tag, pretrained=True)
    assert torch.equal(cached.stages[1].positions,
                       G.fill_state_dict(tiny_golden)["stages.1.0.dwconv.P"])
    folder = tmp_path / "hub_folder"
    assert run_script("convert_dcls.py", tag, src, "--out", folder) == 0
    G.assert_matches(tiny_golden, G.run(tiny_golden, zoo.create(TINY, weights=str(folder))))


# -- registry --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", SHIPPED)
def test_registry_records_the_zenodo_release(name: str) -> None:
    from zoo.registry import registry

    record = registry().records[f"{name}.in1k"]
    size = name.split("_")[1]  # tiny / small / base, as the released file names it
    assert record.hub is None and record.source.format == "pickle"
    assert record.source.url == ("https://zenodo.org/record/7112021/files/"
                                 f"convnext_dcls_{size}_1k_224_ema.pth")
    assert record.license == "MIT"
    assert round(record.metrics.top1, 1) == zoo.get_spec(name).reported.top1
