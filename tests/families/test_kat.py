"""KAT family: the group-rational follows upstream's CUDA/Triton kernel formula, parameter
counts equal upstream's constructors, checkpoints in upstream's layout load strictly."""
from __future__ import annotations

import argparse
import copy

import pytest
import torch

import zoo
from zoo.errors import (CheckpointError, InputShapeError, SpecError, StateDictMismatchError,
                        WeightsNotPublishedError)
from zoo.families.kat.model import RATIONAL_INIT, GroupRational, group_rational
from zoo.measure import count_macs, count_params

TINY = "kat_tiny_patch16_224"
KAT = zoo.list_models(family="kat")  # every variant of specs/kat.yaml


@torch.no_grad()
def kernel_formula(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, groups: int) -> torch.Tensor:
    """Upstream kernel's math written out term by term in float64 (no Horner, no broadcasting
    tricks): P(x) = sum_i a_i x^i, Q_g(x) = 1 + sum_j |b_gj| |x|^(j+1), group g = c // (C/G)."""
    x = x.double()
    out = torch.empty_like(x)
    per = x.shape[-1] // groups
    for c in range(x.shape[-1]):
        g = c // per
        xc = x[..., c]
        num = sum(a[0, i].item() * xc ** i for i in range(a.shape[1]))
        den = 1 + sum(abs(b[g, j].item()) * xc.abs() ** (j + 1) for j in range(b.shape[1]))
        out[..., c] = num / den
    return out


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return zoo.create(TINY).eval()


# -- the rational -------------------------------------------------------------------------------

def test_rational_hand_computed_negative_input() -> None:
    # x = -2, a = 1..1, b = (1, -1, 0, 0):  P = 1-2+4-8+16-32 = -21,  Q = 1+|1|*2+|-1|*4 = 7
    x = torch.tensor([[[-2.0] * 8]])
    a = torch.ones(1, 6)
    b = torch.tensor([[1.0, -1.0, 0.0, 0.0]]).repeat(8, 1)
    y = group_rational(x, a, b, 8)
    torch.testing.assert_close(y, torch.full_like(x, -3.0))
    # upstream's torch fallback would compute Q = 1 + 1*(-2) + 1*4 = 3, i.e. -7: zoo must not
    assert not torch.allclose(y, torch.full_like(x, -7.0))
    assert group_rational(-x, a, b, 8)[0, 0, 0].item() == pytest.approx(63.0 / 7.0)


@pytest.mark.parametrize("shape", [(2, 5, 32), (3, 16), (1, 2, 3, 24)])
def test_rational_matches_kernel_formula(shape) -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(*shape, generator=g) * 2.5          # about half the inputs are negative
    assert (x < 0).float().mean() > 0.3
    rat = GroupRational(num_groups=8, init="swish")
    with torch.no_grad():
        rat.weight_numerator.copy_(torch.randn(1, 6, generator=g))
        rat.weight_denominator.copy_(torch.randn(8, 4, generator=g))  # negative b: |b| is used
    torch.testing.assert_close(rat(x).double(), kernel_formula(x, rat.weight_numerator,
                                                               rat.weight_denominator, 8),
                               rtol=1e-5, atol=1e-5)


def test_rational_group_layout_is_contiguous_channel_blocks() -> None:
    x = torch.full((1, 1, 16), -1.5)
    a = torch.tensor([[0.0, 1.0, 0.0, 0.0, 0.0, 0.0]])
    b = torch.zeros(8, 4)
    b[:, 0] = torch.arange(8.0)                          # group g: Q = 1 + g * |x|
    y = group_rational(x, a, b, 8)[0, 0]
    expected = torch.tensor([-1.5 / (1 + g * 1.5) for g in range(8)]).repeat_interleave(2)
    torch.testing.assert_close(y, expected)


def test_rational_initializations_approximate_their_functions() -> None:
    x = torch.linspace(-3, 3, 601).view(1, 1, -1).repeat(1, 1, 8)
    assert torch.equal(GroupRational(8, "identity")(x), x)
    # swish (the released models' act_init) is fitted tightly on [-3, 3] ...
    torch.testing.assert_close(GroupRational(8, "swish")(x), torch.nn.functional.silu(x),
                               atol=1e-5, rtol=0)
    # ... upstream's "gelu" coefficients only near 0 (they drift beyond |x| > 1)
    x = torch.linspace(-1, 1, 201).view(1, 1, -1).repeat(1, 1, 8)
    torch.testing.assert_close(GroupRational(8, "gelu")(x), torch.nn.functional.gelu(x),
                               atol=2e-2, rtol=0)


def test_rational_gradients() -> None:
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 8, generator=g, dtype=torch.float64, requires_grad=True)
    a = torch.randn(1, 6, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, 4, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *t: group_rational(*t, 2), (x, a, b))


def test_identity_init_denominators_get_the_kernels_gradient() -> None:
    """At b = 0 (identity init) the kernel's dF/db_j = -P/Q^2 * copysign(1, b_j) * |x|^(j+1) is
    not zero: the coefficients must train.  (torch.abs alone would give them zero gradient.)"""
    rat = GroupRational(num_groups=1, init="identity")
    x = torch.tensor([[[-2.0], [0.5]]])
    rat(x).sum().backward()
    expected = torch.tensor([-sum(float(v) * abs(float(v)) ** (j + 1) for v in (-2.0, 0.5))
                             for j in range(4)])  # P = x, Q = 1 at b = 0
    torch.testing.assert_close(rat.weight_denominator.grad[0], expected)


def test_rational_low_precision_is_evaluated_in_float32() -> None:
    x = torch.randn(2, 4, 16)
    rat = GroupRational(8, "swish")
    y16 = rat(x.bfloat16())
    assert y16.dtype == torch.bfloat16
    torch.testing.assert_close(y16.float(), rat(x.bfloat16().float()), rtol=1e-2, atol=1e-2)


def test_rational_rejects_indivisible_channels() -> None:
    with pytest.raises(InputShapeError, match="divisible by 8"):
        group_rational(torch.randn(2, 12), torch.ones(1, 6), torch.zeros(8, 4), 8)


def test_rational_init_tables_have_the_kernel_orders() -> None:
    assert {k: (len(n), len(d)) for k, (n, d) in RATIONAL_INIT.items()} == {
        "identity": (6, 4), "swish": (6, 4), "gelu": (6, 4)}


# -- architecture -------------------------------------------------------------------------------

# Parameter counts of upstream's constructors (Adamdad/kat katransformer.py, kat_*_patch16_224 with
# kat_rational's KAT_Group): the README's validate log prints 5718328 for KAT-T.
UPSTREAM_PARAMS = {"kat_tiny_patch16_224": 5_718_328, "kat_small_patch16_224": 22_051_576,
                   "kat_base_patch16_224": 86_568_568}


@pytest.mark.parametrize("name", KAT)
def test_param_counts_equal_upstream(name) -> None:
    from zoo.build import build_model

    assert name in UPSTREAM_PARAMS, f"{name}: add upstream's parameter count"
    model = build_model(zoo.get_spec(name), meta=True)
    assert count_params(model) == UPSTREAM_PARAMS[name]
    reported = zoo.get_spec(name).reported.params_m
    assert round(count_params(model) / 1e6, 1) == reported


@pytest.mark.parametrize("name", KAT)
def test_macs_equal_the_vit_of_the_same_size(name) -> None:
    """GR-KAN keeps the MLP's matmuls (Sec. 4.2): KAT's multiply-accumulates are the ViT's (timm's
    ``vit_<size>_patch16_224``); the rationals add only elementwise work, which count_macs does
    not count."""
    import timm

    vit = name.replace("kat_", "vit_", 1)

    from zoo.build import build_model

    kat = build_model(zoo.get_spec(name), meta=True)
    with torch.device("meta"):
        ref = timm.create_model(vit)
    assert count_macs(kat, (3, 224, 224)) == count_macs(ref, (3, 224, 224))


def test_structure(tiny) -> None:
    assert len(tiny.blocks) == 12 and tiny.num_features == 192
    mlp = tiny.blocks[0].mlp
    assert (mlp.act1.init, mlp.act2.init) == ("identity", "swish")
    assert mlp.fc1.in_features == 192 and mlp.fc1.out_features == 768
    assert mlp.act1.weight_numerator.shape == (1, 6)
    assert mlp.act1.weight_denominator.shape == (8, 4)
    assert tiny.pos_embed.shape == (1, 197, 192)


def test_fixed_input_size(tiny) -> None:
    with pytest.raises(InputShapeError, match="224x224"):
        tiny(torch.randn(1, 3, 256, 256))


def test_avg_pool_variant_moves_norm_after_pooling() -> None:
    model = zoo.create(TINY, global_pool="avg", depth=2).eval()
    assert isinstance(model.norm, torch.nn.Identity)
    assert isinstance(model.fc_norm, torch.nn.LayerNorm)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        feats = model.forward_features(x)
        expected = model.head(model.fc_norm(feats[:, 1:].mean(1)))
        torch.testing.assert_close(model(x), expected)


def _raw(name: str) -> dict:
    from zoo.catalog import catalog

    return copy.deepcopy(catalog().resolve(name))


@pytest.mark.parametrize("change,match", [
    ({"embed_dim": 196, "num_heads": 4}, "rational_groups"),
    ({"num_heads": 5}, "num_heads"),
    ({"numerator_order": 6}, "orders"),
    ({"act_init": "relu"}, "act_init"),
])
def test_spec_errors(change, match) -> None:
    from zoo.catalog import validate_spec

    raw = _raw(TINY)
    raw["arch"].update(change)
    with pytest.raises(SpecError, match=match):
        validate_spec(raw, source="test")


# -- checkpoints --------------------------------------------------------------------------------

def upstream_layout(depth: int = 12, dim: int = 192, hidden: int = 768) -> dict[str, tuple]:
    """Keys and shapes of upstream's KATVisionTransformer state dict (written out from its module
    tree: timm PatchEmbed, cls_token, pos_embed, Block(norm1, attn.qkv/proj, norm2,
    mlp=KAN(act1, fc1, act2, fc2)), norm, head)."""
    shapes: dict[str, tuple] = {"cls_token": (1, 1, dim), "pos_embed": (1, 197, dim),
                                "patch_embed.proj.weight": (dim, 3, 16, 16),
                                "patch_embed.proj.bias": (dim,)}
    for i in range(depth):
        p = f"blocks.{i}."
        shapes.update({p + "norm1.weight": (dim,), p + "norm1.bias": (dim,),
                       p + "attn.qkv.weight": (3 * dim, dim), p + "attn.qkv.bias": (3 * dim,),
                       p + "attn.proj.weight": (dim, dim), p + "attn.proj.bias": (dim,),
                       p + "norm2.weight": (dim,), p + "norm2.bias": (dim,),
                       p + "mlp.act1.weight_numerator": (1, 6),
                       p + "mlp.act1.weight_denominator": (8, 4),
                       p + "mlp.fc1.weight": (hidden, dim), p + "mlp.fc1.bias": (hidden,),
                       p + "mlp.act2.weight_numerator": (1, 6),
                       p + "mlp.act2.weight_denominator": (8, 4),
                       p + "mlp.fc2.weight": (dim, hidden), p + "mlp.fc2.bias": (dim,)})
    shapes.update({"norm.weight": (dim,), "norm.bias": (dim,), "head.weight": (1000, dim),
                   "head.bias": (1000,)})
    return shapes


def synthetic_checkpoint(prefix: str = "") -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return {prefix + k: torch.randn(*s, generator=g) * 0.02
            for k, s in upstream_layout().items()}


@pytest.mark.parametrize("prefix", ["", "module."])
def test_upstream_checkpoint_converts_and_loads_strictly(tiny, prefix) -> None:
    sd = synthetic_checkpoint(prefix)
    converted = zoo.convert_checkpoint(TINY, sd)
    model = copy.deepcopy(tiny)
    model.load_state_dict(converted, strict=True)
    src = sd[prefix + "blocks.7.mlp.act2.weight_denominator"]
    assert torch.equal(model.blocks[7].mlp.act2.weight_denominator, src)
    with torch.no_grad():
        assert torch.isfinite(model(torch.randn(1, 3, 224, 224))).all()


def test_training_checkpoint_file_round_trip(tiny, tmp_path) -> None:
    """A .pth as upstream's train.py writes it (weights under 'state_dict', argparse args next
    to them) -> load_original_checkpoint -> convert -> strict load -> save_pretrained -> create."""
    from zoo.build import build_model
    from zoo.loading import load_into
    from zoo.weights.checkpoint import load_original_checkpoint

    sd = synthetic_checkpoint()
    path = tmp_path / "kat_tiny.pth"
    torch.save({"state_dict": sd, "epoch": 299, "arch": TINY,
                "args": argparse.Namespace(model=TINY, lr=1e-3)}, path)
    converted = zoo.convert_checkpoint(TINY, load_original_checkpoint(path))
    model = build_model(zoo.get_spec(TINY), meta=True)
    load_into(model, converted, str(path))
    model.pretrained_cfg = tiny.pretrained_cfg
    zoo.save_pretrained(model.eval(), tmp_path / "out")
    again = zoo.create(TINY, weights=str(tmp_path / "out"))
    assert all(torch.equal(again.state_dict()[k], v) for k, v in model.state_dict().items())


def test_plain_vit_checkpoint_is_refused() -> None:
    sd = {k: v for k, v in synthetic_checkpoint().items() if ".act" not in k}
    with pytest.raises(CheckpointError, match="plain ViT"):
        zoo.convert_checkpoint(TINY, sd)


def test_nested_checkpoint_is_refused() -> None:
    with pytest.raises(CheckpointError, match="not tensors"):
        zoo.convert_checkpoint(TINY, {"state_dict": synthetic_checkpoint(), "epoch": 3})


def test_wrong_size_checkpoint_is_a_mismatch(tiny) -> None:
    from zoo.build import build_model
    from zoo.loading import load_into

    sd = zoo.convert_checkpoint(TINY, synthetic_checkpoint())
    del sd["blocks.11.mlp.act2.weight_numerator"]
    with pytest.raises(StateDictMismatchError, match="act2.weight_numerator"):
        load_into(build_model(zoo.get_spec(TINY), meta=True), sd, "test")


def test_hub_record_pins_a_file_of_this_model() -> None:
    """The one safetensors file on the Hub (kat_base .vitft, conversion PR) must hold the fp32
    parameters of kat_base_patch16_224: 4 bytes each plus a small safetensors header."""
    from zoo.registry import registry

    rec = registry().records["kat_base_patch16_224.in1k_vitft"]
    assert rec.hub is not None and rec.hub.layout == "original"
    payload = 4 * UPSTREAM_PARAMS["kat_base_patch16_224"]
    assert payload < rec.hub.size < payload + 64_000
    assert all(registry().records[f"{n}.{t}"].hub is None
               for n in KAT for t in ("in1k", "in1k_vitft")
               if (n, t) != ("kat_base_patch16_224", "in1k_vitft"))


def test_published_original_layout_loads_with_pretrained(publish) -> None:
    """Weights in upstream's layout published on a Hub (the emulator) load via pretrained=True."""
    sd = synthetic_checkpoint()
    publish(f"{TINY}.in1k", sd, layout="original")
    model = zoo.create(f"{TINY}.in1k", pretrained=True)
    assert torch.equal(model.blocks[0].mlp.act1.weight_numerator,
                       sd["blocks.0.mlp.act1.weight_numerator"])


# Paper / upstream README numbers: top-1 from scratch and initialized from the ViT of that size.
TOP1 = {"kat_tiny_patch16_224": (74.6, 75.7), "kat_small_patch16_224": (81.2, 82.0),
        "kat_base_patch16_224": (82.3, 82.8)}


@pytest.mark.parametrize("name", KAT)
def test_reported_and_registered_accuracies(name) -> None:
    """The spec carries the from-scratch number; each tag's record the accuracy of its weights."""
    from zoo.registry import registry

    assert name in TOP1, f"{name}: add the paper's top-1"
    scratch, vitft = TOP1[name]
    assert zoo.get_spec(name).reported.top1 == scratch
    assert set(registry().tags_of(name)) == {f"{name}.in1k", f"{name}.in1k_vitft"}
    records = registry().records
    assert round(records[f"{name}.in1k"].metrics.top1, 1) == scratch
    assert records[f"{name}.in1k_vitft"].metrics.top1 == vitft
    for tag in ("in1k", "in1k_vitft"):  # every tag names where upstream's file is
        assert records[f"{name}.{tag}"].source.url.startswith("https://huggingface.co/adamdad/")


def test_hub_pickle_converts_into_the_cache_and_pushes(hub, tmp_path, monkeypatch) -> None:
    """The path of a pickle-only tag: upstream's ``pytorch_model.bin`` (a plain state dict) ->
    ``zoo convert TAG FILE`` (read with weights_only) -> ``pretrained=True`` from the cache, and
    scripts/convert_kat.py -> ``zoo push`` -> a pinned record that loads from the Hub."""
    from tests.util import run_script
    from zoo import publish as P
    from zoo.registry import Registry, registry

    tag = f"{TINY}.in1k"
    sd = synthetic_checkpoint()
    src = tmp_path / "pytorch_model.bin"
    torch.save(sd, src)
    with pytest.raises(WeightsNotPublishedError, match=f"zoo convert {tag}"):
        zoo.create(tag, pretrained=True)
    P.convert(tag, src)
    cached = zoo.create(tag, pretrained=True)
    assert all(torch.equal(cached.state_dict()[k], v) for k, v in sd.items())

    folder = tmp_path / "hub_folder"
    assert run_script("convert_kat.py", tag, src, "--out", folder) == 0
    *_, written = P.push(folder, "org/kat_tiny", update_registry="in1k_pushed",
                            registry_dir=tmp_path / "registry",
                            source_url=registry().records[tag].source.url,
                            license_="Apache-2.0")
    pushed = Registry()
    pushed.add_file(written)
    rec = pushed.get(f"{TINY}.in1k_pushed")
    assert rec.hub.revision == hub.head("org/kat_tiny") and rec.hub.layout == "zoo"
    monkeypatch.setitem(registry().records, f"{TINY}.in1k_pushed", rec)
    again = zoo.create(f"{TINY}.in1k_pushed", pretrained=True)
    assert all(torch.equal(again.state_dict()[k], v) for k, v in sd.items())
