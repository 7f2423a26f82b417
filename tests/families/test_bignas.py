"""BigNAS family: search spaces, children as specs, supernet slicing, BN calibration.

Reference numbers:
- UPSTREAM_PARAMS: parameter counts of the standalone children that AttentiveNAS' own code builds
  (``AttentiveNasDynamicModel(supernet_config).set_active_subnet(**pareto_models.X)
  .get_active_subnet()``, facebookresearch/AttentiveNAS c4c16f1, AlphaNet's eval config for the
  AlphaNet archs), counted by running that code.  A0 and A6 agree with the golden vectors'
  cross-check notes (9064648, 15441448).  Upstream's static ShortcutLayer always allocates a 1x1
  conv, also where the shortcut is an identity (or pooling only) and the conv is never used; zoo
  holds no unused parameters, so ours are upstream's minus exactly those convs.
- MFLOPs: the READMEs' tables (spec ``reported.macs_m``); AttentiveNAS' MFLOPs are MACs.
"""
from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import zoo
from tests import golden as G
from zoo.errors import SpecError, StateDictMismatchError
from zoo.catalog import validate_spec

UPSTREAM_PARAMS = {
    "bignas_attentivenas_a0": 9064648, "bignas_attentivenas_a1": 9563336,
    "bignas_attentivenas_a2": 11306560, "bignas_attentivenas_a3": 12999072,
    "bignas_attentivenas_a4": 11997928, "bignas_attentivenas_a5": 12833240,
    "bignas_attentivenas_a6": 15441448,
    "bignas_alphanet_a0": 9064648, "bignas_alphanet_a1": 9563336, "bignas_alphanet_a2": 11306560,
    "bignas_alphanet_a3": 12999072, "bignas_alphanet_a4": 11997928,
    "bignas_alphanet_a5": 13196944, "bignas_alphanet_a5_1": 12602440,
    "bignas_alphanet_a6": 15441448,
}
SUPERNET_PARAMS = 23934704  # AttentiveNasDynamicModel(supernet_config), golden num_params
CHILDREN = [n for n in zoo.list_models(family="bignas") if zoo.get_spec(n).arch.supernet]
SUPERNETS = [n for n in zoo.list_models(family="bignas") if zoo.get_spec(n).arch.space]


def _meta(name: str, **overrides):
    from zoo.build import build_model

    spec = zoo.get_spec(name)
    if overrides:
        spec = spec.with_overrides(**overrides)
    return spec, build_model(spec, meta=True)


# -- specs --------------------------------------------------------------------------------------

def test_family_lists_supernets_and_children() -> None:
    names = zoo.list_models("bignas*")
    assert set(names) == set(CHILDREN) | set(SUPERNETS) and len(SUPERNETS) == 2
    assert set(CHILDREN) == set(UPSTREAM_PARAMS)  # every child has its upstream parameter count
    for name in CHILDREN:
        arch = zoo.get_spec(name).arch
        assert arch.supernet == "bignas_attentivenas_supernet" and arch.space is None
        assert arch.resolved_space() == zoo.get_spec(arch.supernet).arch.space
    for name in SUPERNETS:
        arch = zoo.get_spec(name).arch
        assert arch.subnet is None and arch.resolved_subnet() == arch.space.largest()


def test_license_recorded_in_specs_and_registry() -> None:
    from zoo.registry import registry

    for name in CHILDREN + ["bignas_attentivenas_supernet"]:
        assert zoo.get_spec(name).paper.license == "CC-BY-NC-4.0"
    tags = [t for t in registry().records if t.startswith("bignas_")]
    assert len(tags) == len(CHILDREN) + 2
    for tag in tags:
        rec = registry().records[tag]
        assert rec.license == "CC-BY-NC-4.0" and rec.hub is None  # convertible sources only
        assert rec.source.url.startswith("https://drive.google.com/")


def test_zoo_info_shows_the_licenses(capsys) -> None:
    from zoo.cli import main

    assert main(["info", "bignas_attentivenas_a0", "--no-measure"]) == 0
    out = capsys.readouterr().out
    assert "CC-BY-NC-4.0" in out and "bignas_attentivenas_a0.in1k" in out


def _child_raw(**subnet):
    from zoo.catalog import catalog

    raw = copy.deepcopy(catalog().resolve("bignas_attentivenas_a0"))
    raw["arch"]["subnet"].update(subnet)
    return raw


@pytest.mark.parametrize("subnet, expected", [
    ({"width": [16, 16, 24, 48, 64, 112, 192, 216, 1792]}, ["mb3", "width 48", "[32, 40]"]),
    ({"kernel_size": [3, 3, 3, 7, 3, 3, 3]}, ["mb4", "kernel_size 7", "[3, 5]"]),
    ({"depth": [1, 3, 3, 3, 3, 9, 1]}, ["mb6", "depth 9", "[3, 4, 5, 6, 7, 8]"]),
    ({"expand_ratio": [1, 4, 4, 4, 4, 4, 6]}, ["mb6", "expand_ratio 4", "[6]"]),
    ({"resolution": 200}, ["resolution 200", "[192, 224, 256, 288]"]),
    ({"width": [8, 16, 24, 32, 64, 112, 192, 216, 1792]}, ["stem", "width 8", "[16, 24]"]),
    ({"width": [16, 16, 24, 32, 64, 112, 192, 216, 1000]}, ["head", "width 1000", "[1792, 1984]"]),
    ({"depth": [1, 3, 3]}, ["subnet.depth has 3 entries", "mb1, mb2"]),
])
def test_choice_outside_the_space_names_stage_and_allowed(subnet, expected) -> None:
    with pytest.raises(SpecError) as e:
        validate_spec(_child_raw(**subnet), source="test")
    for text in expected:
        assert text in str(e.value)


@pytest.mark.parametrize("arch, expected", [
    ({"supernet": "no_such_supernet"}, "no_such_supernet"),
    ({"supernet": "bignas_attentivenas_a1"}, "is itself a child"),
    ({"supernet": "bignas_attentivenas_supernet", "subnet": None}, "needs `subnet`"),
    ({"space": "<bignas_supernet's>"}, "exactly one of"),
])
def test_bad_supernet_references(arch, expected) -> None:
    from zoo.catalog import catalog

    raw = _child_raw()
    if "space" in arch:
        arch = {"space": copy.deepcopy(catalog().resolve("bignas_supernet")["arch"]["space"])}
    raw["arch"].update(arch)
    with pytest.raises(SpecError, match=expected):
        validate_spec(raw, source="test")


def test_space_rules() -> None:
    from zoo.catalog import catalog

    raw = copy.deepcopy(catalog().resolve("bignas_supernet"))
    raw["arch"]["space"]["stages"][2]["kernel_size"] = [5, 3]
    with pytest.raises(SpecError, match="strictly increasing"):
        validate_spec(raw, source="test")
    raw = copy.deepcopy(catalog().resolve("bignas_supernet"))
    raw["arch"]["space"]["stages"][3]["kernel_size"] = [3, 4]
    with pytest.raises(SpecError, match="odd"):
        validate_spec(raw, source="test")
    raw = copy.deepcopy(catalog().resolve("bignas_supernet"))
    raw["arch"]["space"]["stem"]["width"] = [30, 40]  # mb1 has no expansion conv: input must be x8
    with pytest.raises(SpecError, match="multiples of 8"):
        validate_spec(raw, source="test")


# -- sizes --------------------------------------------------------------------------------------

def _unused_upstream_shortcut_params(spec) -> int:
    from zoo.families.bignas.model import plan_blocks

    plans = plan_blocks(spec.arch.resolved_space(), spec.arch.resolved_subnet())
    return sum(p.in_chs * p.out_chs for p in plans if p.in_chs == p.out_chs)


@pytest.mark.parametrize("name", CHILDREN)
def test_params_equal_upstream_and_macs_match_readme(name: str) -> None:
    spec, model = _meta(name)
    params = zoo.measure.count_params(model)
    assert params + _unused_upstream_shortcut_params(spec) == UPSTREAM_PARAMS[name]
    # the bar: within 2% of upstream's count even without those convs (A6: -1.86%)
    assert abs(params / UPSTREAM_PARAMS[name] - 1) < 0.02, params
    assert all(p.requires_grad for p in model.parameters())
    res = spec.arch.subnet.resolution
    macs = zoo.measure.count_macs(model, (3, res, res))
    assert abs(macs / 1e6 - spec.reported.macs_m) / spec.reported.macs_m < 0.02, macs


def test_supernet_layout_is_attentivenas_dynamic_model() -> None:
    """The supernet checkpoint layout zoo expects is exactly the golden vectors' (the real
    AttentiveNasDynamicModel's state dict), and its parameters are upstream's count."""
    from zoo.families.bignas.model import supernet_layout

    g = G.load("tests/golden/bignas_attentivenas_a0.json")
    golden = {k: tuple(s) for k, s, _ in g["state_dict"] if ".bn_tracking." not in k}
    layout = supernet_layout(zoo.get_spec("bignas_attentivenas_supernet").arch.space)
    assert layout == golden
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    params = sum(math.prod(s) for k, s in layout.items() if not k.endswith(buffers))
    assert params == SUPERNET_PARAMS


def test_supernet_models_are_their_largest_child() -> None:
    spec, model = _meta("bignas_attentivenas_supernet")
    space = spec.arch.space
    # v3 head: the features end with the expansion conv (224 * 6), the head mixes to the width
    assert model.resolution == 288 and model.head_hidden_size == 1984
    assert model.num_features == 224 * 6
    assert len(model.stages) == 7
    assert [len(s) for s in model.stages] == [max(s.depth) for s in space.stages]
    _, big = _meta("bignas_supernet")
    assert big.resolution == 320 and big.num_features == big.head_hidden_size == 1408
    assert isinstance(big.feature_mix, torch.nn.Identity)


# -- slicing ------------------------------------------------------------------------------------

def _make_divisible(v: float, d: int = 8) -> int:
    new = max(1, int(v + d / 2) // d * d)
    return new + d if new < 0.9 * v else new


_ACT = {"swish": F.silu, "relu": F.relu, "relu6": F.relu6, "hard_swish": F.hardswish}


def dynamic_forward(sd, space, sub, x):
    """AttentiveNAS' *dynamic* supernet forward with ``set_active_subnet(sub)``, written from its
    semantics (models/modules/dynamic_ops.py + dynamic_layers.py): weights are sliced on the fly
    from the supernet state dict, nothing of zoo's model code is used."""
    def bn(h, p, c):
        b = f"{p}.bn.bn"
        return F.batch_norm(h, sd[f"{b}.running_mean"][:c], sd[f"{b}.running_var"][:c],
                            sd[f"{b}.weight"][:c], sd[f"{b}.bias"][:c], False, 0.0, 1e-5)

    act = _ACT[space.stem.act]
    c0 = sub.width[0]
    x = act(bn(F.conv2d(x, sd["first_conv.conv.conv.weight"][:c0], None, space.stem.stride, 1),
               "first_conv", c0))
    g = 0
    for s, stage in enumerate(space.stages):
        act = _ACT[stage.act]
        for j in range(sub.depth[s]):
            cin, cout = x.shape[1], sub.width[s + 1]
            stride = stage.stride if j == 0 else 1
            p = f"blocks.{g + j}.mobile_inverted_conv"
            h = x
            if max(stage.expand_ratio) > 1:
                mid = _make_divisible(round(cin * sub.expand_ratio[s]))
                w = sd[f"{p}.inverted_bottleneck.conv.conv.weight"][:mid, :cin]
                h = act(bn(F.conv2d(h, w), f"{p}.inverted_bottleneck", mid))
            else:
                mid = cin
            k = sub.kernel_size[s]
            full = sd[f"{p}.depth_conv.conv.conv.weight"]
            a = (full.shape[-1] - k) // 2
            h = F.conv2d(h, full[:mid, :, a:a + k, a:a + k], None, stride, k // 2, 1, mid)
            h = act(bn(h, f"{p}.depth_conv", mid))
            if stage.se:
                r = _make_divisible(mid // 4)
                y = h.mean(3, keepdim=True).mean(2, keepdim=True)
                y = F.relu(F.conv2d(y, sd[f"{p}.depth_conv.se.fc.reduce.weight"][:r, :mid],
                                    sd[f"{p}.depth_conv.se.fc.reduce.bias"][:r]))
                y = F.conv2d(y, sd[f"{p}.depth_conv.se.fc.expand.weight"][:mid, :r],
                             sd[f"{p}.depth_conv.se.fc.expand.bias"][:mid])
                h = h * F.relu6(y + 3.0) / 6.0
            h = bn(F.conv2d(h, sd[f"{p}.point_linear.conv.conv.weight"][:cout, :mid]),
                   f"{p}.point_linear", cout)
            sc = x
            if not (cin == cout and stride == 1):
                if stride > 1:
                    sc = F.avg_pool2d(sc, stride, padding=0 if sc.size(-1) % 2 == 0 else 1)
                if cin != cout:
                    sc = F.conv2d(sc, sd[f"blocks.{g + j}.shortcut.conv.conv.weight"][:cout, :cin])
            x = h + sc
        g += max(stage.depth)
    act, width, c = _ACT[space.head.act], sub.width[-1], x.shape[1]
    if space.head.v3:
        e = c * space.head.expand
        x = act(bn(F.conv2d(x, sd["last_conv.final_expand_layer.conv.conv.weight"][:e, :c]),
                   "last_conv.final_expand_layer", e))
        x = x.mean(3, keepdim=True).mean(2, keepdim=True)
        x = act(F.conv2d(x, sd["last_conv.feature_mix_layer.conv.conv.weight"][:width, :e]))
    else:
        x = act(bn(F.conv2d(x, sd["last_conv.conv.conv.weight"][:width, :c]), "last_conv", width))
    x = x.mean(3, keepdim=True).mean(2, keepdim=True).flatten(1)
    return F.linear(x, sd["classifier.linear.linear.weight"][:, :width],
                    sd["classifier.linear.linear.bias"])


_SUPERNET_SD: dict[str, dict[str, torch.Tensor]] = {}


def supernet_state_dict(name: str) -> dict[str, torch.Tensor]:
    """A whole random supernet checkpoint in upstream's layout, ``module.`` prefixed as the
    released files are (fan-in scaled weights, positive BN variances)."""
    from zoo.families.bignas.model import supernet_layout

    if name not in _SUPERNET_SD:
        g = torch.Generator().manual_seed(0)
        sd = {}
        for k, shape in supernet_layout(zoo.get_spec(name).arch.space).items():
            if k.endswith("num_batches_tracked"):
                t = torch.zeros(shape, dtype=torch.long)
            elif k.endswith("running_var"):
                t = 0.5 + torch.rand(shape, generator=g)
            elif len(shape) <= 1:
                t = float(k.endswith("weight")) + 0.1 * torch.randn(shape, generator=g)
            else:
                t = torch.randn(shape, generator=g) / math.sqrt(math.prod(shape[1:]))
            sd[f"module.{k}"] = t
        _SUPERNET_SD[name] = sd
    return _SUPERNET_SD[name]


@st.composite
def subnets(draw, supernet: str):
    space = zoo.get_spec(supernet).arch.space
    pick = lambda xs: draw(st.sampled_from(list(xs)))  # noqa: E731
    return dict(resolution=pick(space.resolution),
                width=[pick(space.stem.width), *(pick(s.width) for s in space.stages),
                       pick(space.head.width)],
                depth=[pick(s.depth) for s in space.stages],
                kernel_size=[pick(s.kernel_size) for s in space.stages],
                expand_ratio=[pick(s.expand_ratio) for s in space.stages])


@st.composite
def supernet_and_subnet(draw):
    supernet = draw(st.sampled_from(SUPERNETS))
    return supernet, draw(subnets(supernet)), draw(st.sampled_from([32, 33, 47]))


def _check_random_child(case) -> None:
    """Any valid arch of a supernet spec builds and runs; the child sliced by convert() computes
    what the supernet computes with that arch active.  Fully convolutional, so run small inputs
    (odd sizes exercise the shortcut's pooling padding) with the resize disabled."""
    from zoo.build import build_model
    from zoo.loading import load_into
    from zoo.families.bignas.model import convert

    supernet, subnet, size = case
    spec = zoo.get_spec(supernet).with_overrides(subnet=subnet, resize_input=False)
    sd = supernet_state_dict(supernet)
    child = build_model(spec, meta=True)
    load_into(child, convert(spec, sd), "sliced supernet")
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(size))
    with torch.no_grad():
        out = child.eval()(x)
        ref = dynamic_forward({k.removeprefix("module."): v for k, v in sd.items()},
                              spec.arch.space, spec.arch.subnet, x)
    assert out.shape == (1, 1000) and torch.isfinite(out).all()
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


@settings(max_examples=4, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(supernet_and_subnet())
def test_random_children_equal_dynamic_supernet(case) -> None:
    _check_random_child(case)


@pytest.mark.slow
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(supernet_and_subnet())
def test_random_children_equal_dynamic_supernet_many_seeds(case) -> None:
    _check_random_child(case)


def test_child_spec_equals_child_chosen_on_the_supernet_spec() -> None:
    """A named child and the same arch picked on its supernet spec are the same network: the
    same state-dict layout, and with the same sliced weights the same outputs."""
    sd = supernet_state_dict("bignas_attentivenas_supernet")
    child = zoo.create("bignas_attentivenas_a0").eval()
    child.load_state_dict(zoo.convert_checkpoint("bignas_attentivenas_a0", sd), strict=True)
    sub = zoo.get_spec("bignas_attentivenas_a0").arch.subnet.model_dump()
    direct = zoo.create("bignas_attentivenas_supernet", subnet=sub).eval()
    direct.load_state_dict(zoo.convert_checkpoint("bignas_attentivenas_a0", sd), strict=True)
    x = torch.randn(1, 3, 192, 192, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(child(x), direct(x), rtol=0, atol=0)


def test_convert_rejects_what_is_not_a_supernet_checkpoint() -> None:
    sd = dict(supernet_state_dict("bignas_attentivenas_supernet"))
    name = "bignas_attentivenas_a1"
    partial = {k: v for k, v in sd.items() if "blocks.30." not in k}
    with pytest.raises(StateDictMismatchError, match=r"missing keys: .*blocks\.30\."):
        zoo.convert_checkpoint(name, partial)
    other = supernet_state_dict("bignas_supernet")  # BigNAS space: other shapes
    with pytest.raises(StateDictMismatchError, match="wrong shapes"):
        zoo.convert_checkpoint(name, other)
    extra = {**sd, "module.foo.weight": torch.zeros(1)}
    with pytest.raises(StateDictMismatchError, match=r"unexpected keys: foo\.weight"):
        zoo.convert_checkpoint(name, extra)
    sliced = zoo.convert_checkpoint("bignas_attentivenas_a0", sd)
    with pytest.raises(StateDictMismatchError, match="another architecture"):
        zoo.convert_checkpoint(name, sliced)
    # the supernet's unused min/max-net BN trackers are accepted (and dropped)
    tracked = {**sd, "module.first_conv.bn.bn_tracking.0.running_mean": torch.zeros(24)}
    assert zoo.convert_checkpoint(name, tracked).keys() == zoo.create(name).state_dict().keys()


def test_slicing_takes_first_channels_and_centre_kernels() -> None:
    sd = supernet_state_dict("bignas_attentivenas_supernet")
    out = zoo.convert_checkpoint("bignas_attentivenas_a0", sd)
    dw = sd["module.blocks.2.mobile_inverted_conv.depth_conv.conv.conv.weight"]  # mb2 block 0
    # mb2 block 0: mid = 16 * 4 channels, the centre 3x3 of the 5x5 kernel
    assert torch.equal(out["stages.1.0.depth_conv.conv.weight"], dw[:64, :, 1:4, 1:4])
    assert torch.equal(out["stem.bn.running_var"], sd["module.first_conv.bn.bn.running_var"][:16])
    assert "stages.1.3.point_linear.conv.weight" not in out  # depth 3 of up to 5
    # idempotent on its own layout
    again = zoo.convert_checkpoint("bignas_attentivenas_a0", out)
    assert again.keys() == out.keys()


# -- model behaviour ----------------------------------------------------------------------------

class _Seen(Exception):
    pass


def test_input_is_resized_bicubically_to_the_child_resolution() -> None:
    """The stem sees the input bicubic-resized to the child's resolution (AttentiveNAS'
    forward), unless it already has that size or resize_input is off."""
    model = zoo.create("bignas_attentivenas_a0").eval()
    seen = []

    def grab(module, args):
        seen.append(args[0])
        raise _Seen

    model.stem.register_forward_pre_hook(grab)
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    for inp in (x, x[..., :192, :192]):
        with pytest.raises(_Seen), torch.no_grad():
            model(inp)
    torch.testing.assert_close(seen[0], F.interpolate(x, size=(192, 192), mode="bicubic"),
                               rtol=0, atol=0)
    assert torch.equal(seen[1], x[..., :192, :192])
    model.resize_input = False
    with pytest.raises(_Seen), torch.no_grad():
        model(x)
    assert torch.equal(seen[2], x)


def test_unused_upstream_shortcut_convs_are_not_parameters() -> None:
    _, model = _meta("bignas_attentivenas_a0")
    blocks = [b for s in model.stages for b in s]
    identity = [b for b in blocks if isinstance(b.shortcut, torch.nn.Identity)]
    assert len(identity) == 11 and all(not list(b.shortcut.parameters()) for b in identity)
    first = model.stages[1][0].shortcut  # 16 -> 24, stride 2: pool + conv
    assert first.stride == 2 and first.conv.weight.shape == (24, 16, 1, 1)


# -- BN calibration -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("calib")
    g = torch.Generator().manual_seed(0)
    for c in range(2):
        (root / f"class{c}").mkdir()
        for i in range(4):
            base = torch.rand(3, 1, 1, generator=g) * 255
            img = (base + 40 * torch.randn(3, 40, 48, generator=g)).clamp(0, 255).to(torch.uint8)
            Image.fromarray(img.permute(1, 2, 0).numpy()).save(root / f"class{c}" / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def child_weights(tmp_path_factory):
    """bignas_attentivenas_a0 sliced from a (filled) supernet, saved as a zoo weights folder."""
    model = zoo.create("bignas_attentivenas_a0")
    sd = supernet_state_dict("bignas_attentivenas_supernet")
    model.load_state_dict(zoo.convert_checkpoint("bignas_attentivenas_a0", sd), strict=True)
    out = tmp_path_factory.mktemp("child")
    zoo.save_pretrained(model.eval(), out)
    return out


def _bn_stats(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()
            if k.endswith(("running_mean", "running_var", "num_batches_tracked"))}


def test_recalibrate_bn_resets_and_averages_batches() -> None:
    """recalibrate_bn: statistics become the plain average over the batches (cumulative moving
    average), deterministic in the data, momenta restored, weights untouched."""
    from zoo.layers.batchnorm import recalibrate_bn

    model = zoo.create("bignas_attentivenas_a0", resize_input=False).eval()
    with torch.no_grad():
        for bn in model.modules():
            if isinstance(bn, torch.nn.BatchNorm2d):
                bn.running_mean.fill_(5.0)
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k
               and "num_batches" not in k}
    g = torch.Generator().manual_seed(0)
    batches = [torch.randn(2, 3, 32, 32, generator=g) for _ in range(3)]
    assert recalibrate_bn(model, batches, num_batches=2) == 2
    stem = model.stem.bn
    assert int(stem.num_batches_tracked) == 2 and stem.momentum == 0.1 and not model.training
    with torch.no_grad():  # the stem BN sees conv(x): its mean is the average of batch means
        expected = torch.stack([model.stem.conv(x).mean((0, 2, 3)) for x in batches[:2]]).mean(0)
    torch.testing.assert_close(stem.running_mean, expected, rtol=1e-5, atol=1e-6)
    first = {k: v.clone() for k, v in model.state_dict().items()}
    recalibrate_bn(model, batches, num_batches=2)
    assert all(torch.equal(first[k], v) for k, v in model.state_dict().items())
    assert all(torch.equal(weights[k], model.state_dict()[k]) for k in weights)


@pytest.mark.slow
def test_calibrate_image_folder_cli_deterministic_and_standalone(image_folder, child_weights,
                                                                 tmp_path) -> None:
    """`zoo calibrate` on an image folder: statistics change, the same seed gives the same
    result (CLI and Python), another seed other batches; the output folder is a standalone
    child whose non-BN weights are the input's."""
    from zoo.cli import main
    from zoo.calibrate import calibrate

    name = "bignas_attentivenas_a0"
    before = _bn_stats(zoo.create(name, weights=child_weights))
    out = tmp_path / "cli"
    assert main(["calibrate", name, "--data", str(image_folder), "--out", str(out),
                 "--weights", str(child_weights), "--batches", "2", "--batch-size", "3",
                 "--seed", "1"]) == 0
    assert (out / "model.safetensors").exists() and (out / "config.json").exists()
    kw = dict(weights=child_weights, num_batches=2, batch_size=3)
    a = calibrate(name, image_folder, seed=1, **kw)
    c = calibrate(name, image_folder, seed=2, **kw)
    sa, sc = _bn_stats(a), _bn_stats(c)
    assert sa.keys() == before.keys()
    assert all(int(v) == 2 for k, v in sa.items() if k.endswith("num_batches_tracked"))
    means = [k for k in sa if k.endswith("running_mean")]
    assert all(not torch.allclose(sa[k], before[k]) for k in means)
    assert any(not torch.equal(sa[k], sc[k]) for k in means)  # other seed: other batches
    saved = zoo.create(name, weights=out).state_dict()
    assert all(torch.equal(saved[k], v) for k, v in a.state_dict().items())  # same seed: same
    w0 = zoo.create(name, weights=child_weights).state_dict()
    assert all(torch.equal(saved[k], w0[k]) for k in w0 if k not in sa)


def test_calibration_errors(image_folder, tmp_path, capsys) -> None:
    from zoo.cli import main
    from zoo.calibrate import calibrate
    from zoo.errors import CalibrationError
    from zoo.layers.batchnorm import recalibrate_bn

    with pytest.raises(CalibrationError, match="no weights"):
        calibrate("bignas_attentivenas_a0", image_folder)
    model = zoo.create("bignas_attentivenas_a0")
    with pytest.raises(CalibrationError, match="does not exist"):
        calibrate("bignas_attentivenas_a0", tmp_path / "missing", model=model)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CalibrationError, match="no images"):
        calibrate("bignas_attentivenas_a0", tmp_path / "empty", model=model)
    with pytest.raises(CalibrationError, match="num_batches"):
        recalibrate_bn(model, [], num_batches=0)
    with pytest.raises(CalibrationError, match="empty"):
        recalibrate_bn(model, [], num_batches=1)
    assert main(["calibrate", "bignas_attentivenas_a0", "--data", str(image_folder),
                 "--out", str(tmp_path / "x")]) == 2
    assert "no weights to calibrate" in capsys.readouterr().err


@pytest.mark.slow
def test_calibrate_tag_replaces_its_converted_weights(image_folder, child_weights, tmp_path,
                                                      monkeypatch) -> None:
    """`zoo calibrate NAME.TAG` (no --out) calibrates the tag's locally converted weights in
    place, so the pretrained tag then loads the calibrated standalone child."""
    import shutil

    from zoo.cli import main
    from zoo.weights import converted_path

    monkeypatch.setenv("ZOO_CACHE", str(tmp_path))
    tag = "bignas_attentivenas_a0.in1k"
    target = converted_path(tag).parent
    shutil.copytree(child_weights, target)  # what `zoo convert TAG <supernet.pth.tar>` leaves
    before = _bn_stats(zoo.create(tag, pretrained=True))
    assert main(["calibrate", tag, "--data", str(image_folder), "--batches", "1",
                 "--batch-size", "2"]) == 0
    after = _bn_stats(zoo.create(tag, pretrained=True))
    assert int(after["stem.bn.num_batches_tracked"]) == 1
    assert not torch.allclose(after["stem.bn.running_mean"], before["stem.bn.running_mean"])


def test_regularization_options_train_and_vanish_in_eval() -> None:
    """drop_rate / drop_path_rate (zoo's fine-tuning options; upstream's dropout and drop
    connect) act in training only, and only on identity-shortcut blocks for drop path."""
    torch.manual_seed(0)
    model = zoo.create("bignas_attentivenas_a0", drop_rate=0.5, drop_path_rate=0.3,
                       resize_input=False)
    paths = [b.drop_path for s in model.stages for b in s]
    assert sum(not isinstance(p, torch.nn.Identity) for p in paths) == 11 - 1  # block 0: rate 0
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        model.eval()
        assert torch.equal(model(x), model(x))
        model.train()
        a, b = model(x), model(x)
    assert not torch.equal(a, b)


@pytest.mark.slow
def test_original_supernet_checkpoint_to_calibrated_child(image_folder, tmp_path) -> None:
    """The released files' layout ({'state_dict': {'module.<key>': ...}} of the dynamic
    supernet): `zoo convert` slices it to the child, and `zoo calibrate --supernet-checkpoint`
    gives the same calibrated child as calibrating the converted folder."""
    from zoo.cli import main

    ckpt = tmp_path / "attentive_nas_pretrained.pth.tar"
    torch.save({"state_dict": supernet_state_dict("bignas_attentivenas_supernet"), "epoch": 360},
               ckpt)
    name = "bignas_attentivenas_a2"
    assert main(["convert", name, str(ckpt), "--out", str(tmp_path / "conv")]) == 0
    common = ["--data", str(image_folder), "--batches", "1", "--batch-size", "2", "--seed", "5"]
    assert main(["calibrate", name, "--weights", str(tmp_path / "conv"),
                 "--out", str(tmp_path / "a"), *common]) == 0
    assert main(["calibrate", name, "--supernet-checkpoint", str(ckpt),
                 "--out", str(tmp_path / "b"), *common]) == 0
    a = zoo.create(name, weights=tmp_path / "a").state_dict()
    b = zoo.create(name, weights=tmp_path / "b").state_dict()
    # Same weights and batches; the statistics agree to float rounding (conv kernels may take
    # different vectorised paths for tensors loaded by assignment vs copied in).
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)
    sliced = zoo.convert_checkpoint(name, supernet_state_dict("bignas_attentivenas_supernet"))
    assert torch.equal(a["stages.5.3.se.fc1.weight"], sliced["stages.5.3.se.fc1.weight"])
