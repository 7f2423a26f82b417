"""OFQ quantized DeiTs: upstream parameter layout, MACs, quantizer semantics (StatsQ, LSQ, QKR),
the packed deployable form (bit-exact round trip, sizes), the eval-time weight cache, and
invalid quantization specs."""
from __future__ import annotations

import copy
import functools
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import zoo
from tests.util import run_script
from tests import golden as G
from zoo.build import build_model
from zoo.catalog import catalog
from zoo.errors import InputShapeError, SpecError, StateDictMismatchError
from zoo.families.ofq import model as M
from zoo.families.ofq.packing import packed_numel, unpack_bits
from zoo.layers.quant import LSQQuantizer, StatsQuantizer
from zoo.catalog import validate_spec

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
TINY = zoo.list_models("ofq_deit_tiny_*")
SMALL = zoo.list_models("ofq_deit_small_*")
BITS = {"w2a2": 2, "w3a3": 3, "w4a4": 4}


@functools.cache
def _golden(name: str) -> dict:
    return G.load(GOLDEN / f"{name}.json")


@functools.cache
def _trained(name: str) -> M.OFQDeiT:
    """The model with its golden-vector weights (upstream layout, trained-like LSQ steps)."""
    g = _golden(name)
    model = zoo.create(name)
    model.load_state_dict(zoo.convert_checkpoint(name, G.fill_state_dict(g)), strict=True)
    return model.eval()


def _image(batch: int = 1, seed: int = 0, size: int = 224) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


# -- faithfulness: layout, parameter counts, MACs -------------------------------------------------
@pytest.mark.parametrize("name", TINY + SMALL)
def test_state_dict_layout_and_params_equal_upstream(name: str) -> None:
    g = _golden(name)
    model = build_model(zoo.get_spec(name), meta=True)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: tuple(shape) for k, shape, _ in g["state_dict"]}
    assert ours == theirs
    ref = g["reference"]["params"]
    params = dict(model.named_parameters())
    # upstream's StatsQ clip_val (the constant 2.0) is a frozen parameter; zoo's is a buffer
    # under the same key, so every parameter trains (timm's backward test) and the original's
    # count is the parameters plus those buffers
    assert zoo.measure.count_params(model, as_original=True) == g["num_params"] \
        == ref["num_params"]
    clip_vals = {k: b for k, b in model.named_buffers() if k.endswith(".clip_val")}
    assert clip_vals and "blocks.0.mlp.fc1.statsq_fn.clip_val" in clip_vals
    assert zoo.measure.count_params(model) == ref["num_params"] - sum(
        b.numel() for b in clip_vals.values())
    assert sum(p.numel() for k, p in params.items() if not k.endswith(".s")) \
        + sum(b.numel() for b in clip_vals.values()) == ref["num_params_without_lsq_s"]
    assert all(p.requires_grad for p in params.values())


def _expected_macs(arch) -> int:
    """Per-image MACs of the QKR forward, counted by hand (no table lists OFQ MACs)."""
    c, h, n, hidden = arch.embed_dim, arch.num_heads, arch.num_tokens, arch.mlp_hidden
    patches = (arch.img_size // arch.patch_size) ** 2
    block = (n * c * c            # v = x W_v^T
             + n * c * h * c      # W_qk^h x for every head: (N, C) x (C, H*C)
             + h * n * n * c      # x (W_qk^h x)^T per head: full C, not C/H (the QKR price)
             + n * n * c          # attn @ v
             + n * c * c          # proj
             + 2 * n * c * hidden)  # fc1, fc2
    return patches * c * 3 * arch.patch_size ** 2 + arch.depth * block + 2 * c * 1000


@pytest.mark.parametrize("name", ["ofq_deit_tiny_w2a2",
                                  pytest.param("ofq_deit_small_w4a4", marks=pytest.mark.slow)])
def test_macs(name: str) -> None:
    spec = zoo.get_spec(name)
    expected = _expected_macs(spec.arch)
    packed = M._twin(build_model(spec, meta=True), packed=True)
    assert zoo.measure.count_macs(packed, spec.data.input_size) == expected
    # the latent form also forms W_qk = W_q^T W_k (C^3 per block) on every uncached forward
    latent = build_model(spec, meta=True)
    c = spec.arch.embed_dim
    assert zoo.measure.count_macs(latent, spec.data.input_size) == expected + spec.arch.depth * c ** 3


# -- quantizer semantics ----------------------------------------------------------------------
@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_statsq_scale_grid_and_rounding(bits: int) -> None:
    torch.manual_seed(bits)
    w = torch.randn(6, 40, dtype=torch.float64)
    w[0, 0] = -10.0  # clamped to -c/2: lands on -n - 1/2 and must round (half to even) to -n
    w[1, 0] = 10.0   # clamped to c/2 - 1e-6: top code n - 1
    q = StatsQuantizer(bits).double()
    n = 2 ** (bits - 1)
    k, scale = q.codes(w)
    torch.testing.assert_close(scale.squeeze(1), 2 * w.abs().mean(dim=1), rtol=0, atol=0)
    assert torch.equal(k, k.round()) and k.min() >= -n and k.max() <= n - 1
    assert k[0, 0] == -n and k[1, 0] == n - 1
    out = q(w)
    assert torch.equal(out, scale * (k + 0.5) / n)
    assert (out != 0).all(), "the StatsQ grid has no zero level"
    levels = out / scale * n  # half-integers, up to the rounding of the division
    torch.testing.assert_close(levels, torch.round(levels - 0.5) + 0.5, rtol=0, atol=1e-9)


def test_statsq_straight_through_and_exact_forward() -> None:
    w = torch.randn(4, 16, requires_grad=True)
    q = StatsQuantizer(2)
    out = q(w)
    out.sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))  # identity STE, as upstream
    with torch.no_grad():
        assert torch.equal(q(w), out.detach())  # the STE adds an exact zero


def test_lsq_per_token_steps_unsigned_and_grad() -> None:
    q = LSQQuantizer(2, signed=False, num_steps=3, dim=-2)
    with torch.no_grad():
        q.s.copy_(torch.tensor([0.5, 1.0, 2.0]))
    x = torch.tensor([[[-1.0, 0.3, 0.8, 5.0]] * 3])  # (B=1, N=3, C=4)
    out = q(x)
    for t, s in enumerate([0.5, 1.0, 2.0]):
        expected = torch.round(torch.clamp(x[0, t] / s, 0, 3)) * s
        assert torch.equal(out[0, t], expected)
    assert (out >= 0).all()
    x.requires_grad_(True)
    q(x).sum().backward()
    assert q.s.grad is not None and q.s.grad.abs().sum() > 0


def test_lsq_signed_buffer_latches_only_in_training() -> None:
    q = LSQQuantizer(8, signed="buffer", num_steps=3, dim=1)
    x = -torch.ones(1, 3, 2, 2)
    q.eval()
    assert torch.equal(q(x), torch.zeros_like(x)) and q.signed.item() == 0  # unsigned: clamps
    q.train()
    q(x)
    assert q.signed.item() == 1
    q.eval()
    assert torch.equal(q(x), x)


def test_qkr_attention_matches_per_head_reference() -> None:
    """QKR: scores x Q(W_q^h^T W_k^h) x^T per head; q/k without bias, v with bias."""
    model = _trained("ofq_deit_tiny_w2a2").double()
    try:
        attn = model.blocks[3].attn
        assert attn.q.bias is None and attn.k.bias is None and attn.v.bias is not None
        h, d, c = attn.num_heads, attn.head_dim, attn.dim
        wqk = attn.fused_qk()
        for i in range(h):
            wq, wk = attn.q.weight[i * d:(i + 1) * d], attn.k.weight[i * d:(i + 1) * d]
            torch.testing.assert_close(wqk[i * c:(i + 1) * c], wq.T @ wk)
        x = torch.randn(2, attn.num_tokens, c, dtype=torch.float64,
                        generator=torch.Generator().manual_seed(3))
        with torch.no_grad():
            ours = attn(x)
            # upstream's formulation (einsums over the (heads, C, C) stack)
            xq = attn.quant_x_4_qkv(x)
            v = torch.nn.functional.linear(xq, attn.v_quant(attn.v.weight)) + attn.v.bias
            v = attn.move_v_aft(attn.quan_a_v_fn(attn.move_v_b4(v)))
            v = v.reshape(2, -1, h, d).permute(0, 2, 1, 3)
            wq3 = attn.qk_quant(wqk).reshape(h, c, c)
            qkx = torch.einsum("hdc,bcn->bhdn", wq3, xq.transpose(-2, -1))
            qkx = attn.move_qkx_b4(qkx.permute(0, 3, 1, 2).reshape(2, -1, h * c))
            qkx = attn.quan_a_qkx_fn(qkx.reshape(2, -1, c)).reshape(2, -1, h * c)
            qkx = attn.move_qkx_aft(qkx).reshape(2, -1, h, c).permute(0, 2, 3, 1)
            scores = torch.einsum("bnc,bhcd->bhnd", xq, qkx) * d ** -0.5
            prob = attn.quan_a_softmax_fn(scores.softmax(-1))
            ref = attn.proj((prob @ v).transpose(1, 2).reshape(2, -1, c))
        torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    finally:
        model.float()


def test_eval_output_is_mean_of_heads_and_distilled_training() -> None:
    model = _trained("ofq_deit_tiny_w4a4")
    x = _image()
    with torch.no_grad():
        feats = model.forward_features(x)
        expected = (model.head(feats[:, 0]) + model.head_dist(feats[:, 1])) / 2
        assert torch.equal(model(x), expected)
        cls_logits, dist_logits = model.head(feats[:, 0]), model.head_dist(feats[:, 1])
    m = copy.deepcopy(model)
    m.set_distilled_training(True)
    m.train()
    with torch.no_grad():
        cls, dist = m(x)
    assert torch.equal(cls, cls_logits) and torch.equal(dist, dist_logits)


def test_training_forward_equals_eval_forward_bitwise() -> None:
    """With autograd on, every STE adds an exact zero: same logits as the no-grad forward."""
    model = copy.deepcopy(_trained("ofq_deit_tiny_w2a2"))
    x = _image()
    with torch.no_grad():
        reference = model(x)
    model.train()
    out = model(x)
    out.sum().backward()
    assert torch.equal(out.detach(), reference)
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    for key in ("blocks.0.attn.q.weight", "blocks.0.attn.k.weight", "blocks.0.mlp.fc1.weight",
                "blocks.0.attn.quan_a_qkx_fn.s", "blocks.0.attn.quan_a_softmax_fn.s",
                "patch_embed.proj.lsqw_fn.s", "head.input_quant_fn.s", "blocks.0.mlp.fc2.move_b4.bias"):
        assert grads[key] is not None and grads[key].abs().sum() > 0, key


# -- packed deployable form ------------------------------------------------------------------------
@pytest.mark.parametrize("name", TINY)
def test_packed_round_trip_is_bit_exact(name: str, tmp_path: Path) -> None:
    model = _trained(name)
    bits = BITS[name.rsplit("_", 1)[1]]
    packed_sd = model.packed_state_dict()
    assert not any(k.endswith(("mlp.fc1.weight", "attn.q.weight", "attn.k.weight", "clip_val",
                               "lsqw_fn.s")) for k in packed_sd)
    codes = packed_sd["blocks.0.mlp.fc1.weight_q.codes"]
    w = model.blocks[0].mlp.fc1.weight
    assert codes.dtype == torch.uint8 and codes.numel() == packed_numel(w.numel(), bits)
    k = unpack_bits(codes, bits, w.numel())
    assert k.min() >= 0 and k.max() <= 2 ** bits - 1
    qk = model.blocks[0].attn
    assert packed_sd["blocks.0.attn.qk_q.codes"].numel() == packed_numel(
        qk.num_heads * qk.dim * qk.dim, bits)
    assert packed_sd["head.weight_q.codes"].numel() == model.head.weight.numel()  # 8-bit head
    latent_sd = model.state_dict()
    for key in packed_sd.keys() & latent_sd.keys():  # everything else as is
        assert torch.equal(packed_sd[key], latent_sd[key]), key
    save_file(packed_sd, tmp_path / "model.safetensors")
    deployed = M.load_packed(zoo.get_spec(name), load_file(tmp_path / "model.safetensors"))
    assert deployed.packed and not deployed.training
    x = _image(2, seed=1)
    with torch.no_grad():
        assert torch.equal(deployed(x), model(x))
        assert torch.equal(deployed(x), model(x))  # cached dequantized weights: still equal


def test_packed_round_trip_float64() -> None:
    model = copy.deepcopy(_trained("ofq_deit_tiny_w3a3")).double()
    deployed = M.load_packed(zoo.get_spec("ofq_deit_tiny_w3a3"), model.packed_state_dict())
    assert deployed.pos_embed.dtype == torch.float64
    x = _image(1, seed=2).double()
    with torch.no_grad():
        assert torch.equal(deployed(x), model(x))


def test_packed_load_is_strict() -> None:
    sd = _trained("ofq_deit_tiny_w2a2").packed_state_dict()
    del sd["blocks.5.attn.qk_q.scale"]
    with pytest.raises(StateDictMismatchError, match="blocks.5.attn.qk_q.scale"):
        M.load_packed(zoo.get_spec("ofq_deit_tiny_w2a2"), sd)
    latent = _trained("ofq_deit_tiny_w2a2").state_dict()
    with pytest.raises(StateDictMismatchError):
        M.load_packed(zoo.get_spec("ofq_deit_tiny_w2a2"), latent)


def test_w2a2_deit_small_packed_file_is_8x_smaller(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = zoo.create("ofq_deit_small_w2a2").eval()
    save_file(model.state_dict(), tmp_path / "fp32.safetensors")
    save_file(model.packed_state_dict(), tmp_path / "packed.safetensors")
    fp32 = (tmp_path / "fp32.safetensors").stat().st_size
    packed = (tmp_path / "packed.safetensors").stat().st_size
    print(f"ofq_deit_small_w2a2: fp32 {fp32:,} B, packed {packed:,} B, {fp32 / packed:.2f}x")
    assert fp32 / packed >= 8
    summary = M.quant_summary(model)
    for kind, size in (("fp32", fp32), ("packed", packed)):
        assert 0 <= size - summary["size_bytes"][kind] < 64 * 1024  # safetensors header only


def test_quant_summary() -> None:
    model = _trained("ofq_deit_tiny_w2a2")
    s = M.quant_summary(model)
    assert s["bits"] == {"weight": [2, 8], "act": [2, 8]}
    layers = s["quantized_modules"]
    assert len(layers) == 3 + 4 * 12  # patch_embed.proj, heads; attn (QKR), proj, fc1, fc2
    assert layers["blocks.0.attn"]["weight"] == {"quantizer": "statsq", "bits": 2}
    assert layers["head_dist"]["weight"] == {"quantizer": "lsq", "bits": 8}
    assert s["full_precision_modules"] == []
    p = s["params"]
    assert p["total"] == zoo.measure.count_params(model)
    assert p["quantized_weights"] + p["full_precision"] == p["total"]
    lines = M.info(model)
    assert lines["quant"] == "statsq w2/lsq a2, lsq w8/lsq a8" and "(8.03x)" in lines["size"]
    assert M.quant_summary(M.load_packed(zoo.get_spec("ofq_deit_tiny_w2a2"),
                                         model.packed_state_dict()))["size_bytes"] == s["size_bytes"]


# -- eval-time weight cache ----------------------------------------------------------------------
def test_eval_caches_quantized_weights_and_notices_updates(monkeypatch) -> None:
    model = copy.deepcopy(_trained("ofq_deit_tiny_w2a2"))
    calls = []
    original = StatsQuantizer.forward
    monkeypatch.setattr(StatsQuantizer, "forward", lambda self, w: calls.append(1) or original(self, w))
    x = _image()
    with torch.no_grad():
        first = model(x)
        n_first = len(calls)
        again = model(x)
    assert n_first == 12 * 5 and len(calls) == n_first  # second forward: no re-quantization
    assert torch.equal(first, again)
    with torch.no_grad():
        model.blocks[0].mlp.fc1.weight.mul_(-1.0)  # in-place update: version bump
        changed = model(x)
    assert len(calls) == n_first + 1
    fresh = copy.deepcopy(model)  # copies carry no cache
    with torch.no_grad():
        assert torch.equal(changed, fresh(x)) and not torch.equal(changed, first)
    model.train()
    model.eval()
    with torch.no_grad():
        model(x)
    assert len(calls) == n_first + 1 + 12 * 5 + 12 * 5  # fresh's forward and the cleared cache


# -- calibration (training tool), input checks, conversion -----------------------------------------
def test_calibrate_initializes_lsq_steps_from_data() -> None:
    torch.manual_seed(0)
    model = zoo.create("ofq_deit_tiny_w4a4")
    x = _image(2, seed=4)
    M.calibrate_(model, x)
    quant = model.patch_embed.proj.input_quant_fn
    assert quant.signed.item() == 1
    torch.testing.assert_close(quant.s, 2 * x.abs().mean(dim=(0, 2, 3)) / 127 ** 0.5)
    fc1 = model.blocks[0].mlp.fc1
    assert fc1.input_quant_fn.s.shape == (198,) and not torch.equal(fc1.input_quant_fn.s,
                                                                    torch.ones(198))
    torch.testing.assert_close(model.head.lsqw_fn.s, 2 * model.head.weight.abs().mean(1) / 127 ** 0.5)


def test_input_size_is_fixed() -> None:
    model = _trained("ofq_deit_tiny_w2a2")
    with pytest.raises(InputShapeError):
        model(_image(size=192))


def test_convert_strips_ddp_prefix() -> None:
    spec = zoo.get_spec("ofq_deit_tiny_w2a2")
    sd = {"module.cls_token": torch.zeros(1), "pos_embed": torch.ones(1)}
    assert set(M.convert(spec, sd)) == {"cls_token", "pos_embed"}
    with pytest.raises(ValueError, match="twice"):
        M.convert(spec, {"module.cls_token": torch.zeros(1), "cls_token": torch.zeros(1)})


# -- declarative quantization: custom specs, invalid specs ----------------------------------------
def _raw(**arch) -> dict:
    raw = copy.deepcopy(catalog().resolve("ofq_deit_tiny_w2a2"))
    raw["name"] = "ofq_test"
    raw["arch"].update(arch)
    return raw


def _rules(*rules: dict) -> dict:
    return {"rules": list(rules)}


RULE_8 = {"modules": ["patch_embed.proj", "head", "head_dist"], "weight": {"quantizer": "lsq", "bits": 8},
          "act": {"bits": 8}}


@pytest.mark.parametrize("rule, message", [
    ({"modules": "blocks.*.mlp", "weight": {"quantizer": "statsq", "bits": 1}, "act": {"bits": 2}},
     "weight.bits"),
    ({"modules": "blocks.*.mlp", "weight": {"quantizer": "statsq", "bits": 2}, "act": {"bits": 9}},
     "act.bits"),
    ({"modules": "blocks.12.attn", "weight": {"quantizer": "statsq", "bits": 2}, "act": {"bits": 2}},
     "'blocks.12.attn' matches no quantizable module"),
    ({"modules": "blocks.0.norm1", "weight": {"quantizer": "statsq", "bits": 2}, "act": {"bits": 2}},
     "'blocks.0.norm1' matches no quantizable module"),
    ({"modules": "blocks.*.mlp", "weight": {"quantizer": "minmax", "bits": 2}, "act": {"bits": 2}},
     "weight.quantizer"),
    ({"modules": ["blocks.*.mlp", "head"], "weight": {"quantizer": "statsq", "bits": 2}, "act": {"bits": 2}},
     "module 'head' is already quantized"),
])
def test_invalid_quantization_specs_are_rejected(rule: dict, message: str) -> None:
    with pytest.raises(SpecError) as err:
        validate_spec(_raw(quantization=_rules(RULE_8, rule)))
    assert message in str(err.value)


def test_img_size_must_agree_with_data() -> None:
    raw = _raw(img_size=256)
    spec = validate_spec(raw)
    with pytest.raises(SpecError, match="img_size 256"):
        M.build(spec)


def test_partial_and_mixed_quantization_spec(tmp_path: Path) -> None:
    """Unnamed modules stay full precision; LSQ weights on an MLP, StatsQ on the patch conv."""
    raw = _raw(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2,
               quantization=_rules(
                   {"modules": "blocks.0.mlp", "weight": {"quantizer": "lsq", "bits": 4}, "act": {"bits": 3}},
                   {"modules": ["patch_embed.proj", "blocks.1.attn"],
                    "weight": {"quantizer": "statsq", "bits": 3}, "act": {"bits": 8}}))
    raw["data"]["input_size"] = [3, 32, 32]
    spec = validate_spec(raw)
    torch.manual_seed(0)
    model = M.build(spec)
    from timm.layers import Mlp
    from timm.models.vision_transformer import Attention

    assert isinstance(model.blocks[0].attn, Attention) and isinstance(model.blocks[1].mlp, Mlp)
    assert isinstance(model.blocks[0].mlp, M.QuantMlp) and isinstance(model.blocks[1].attn, M.QKRAttention)
    assert isinstance(model.head, torch.nn.Linear) and not isinstance(model.head, M.QuantLinear)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    M.calibrate_(model, x)
    model.eval()
    s = M.quant_summary(model)
    assert s["bits"] == {"weight": [3, 4], "act": [3, 8]}
    assert set(s["full_precision_modules"]) == {"blocks.0.attn", "blocks.1.mlp", "head", "head_dist"}
    sd = model.packed_state_dict()
    assert sd["blocks.0.mlp.fc1.weight_q.codes"].numel() == packed_numel(128 * 32, 4)
    save_file(sd, tmp_path / "p.safetensors")
    deployed = M.load_packed(spec, load_file(tmp_path / "p.safetensors"))
    with torch.no_grad():
        assert torch.equal(deployed(x), model(x))


def test_save_pretrained_packed_loads_back_bit_identical(tmp_path: Path) -> None:
    """The core wiring: ``zoo.save_pretrained(packed=True)`` -> ``zoo.create(weights=DIR)``."""
    model = _trained("ofq_deit_tiny_w2a2")
    zoo.save_pretrained(model, tmp_path / "packed", packed=True)
    deployed = zoo.create("ofq_deit_tiny_w2a2", weights=str(tmp_path / "packed"))
    assert isinstance(deployed, M.OFQDeiT) and deployed.packed
    x = _image(1, seed=5)
    with torch.no_grad():
        assert torch.equal(deployed(x), model(x))


# -- upstream checkpoints, LSQ steps, zoo info --------------------------------------------------
def test_upstream_pth_tar_converts_strictly_latent_and_packed(tmp_path: Path, capsys) -> None:
    """Upstream's files are timm ``save_checkpoint`` dicts: the weights under ``'state_dict'``
    (``module.`` keys, trained LSQ steps included) beside an ``argparse.Namespace`` of the
    training args.  scripts/convert_ofq.py reads them with ``weights_only=True`` and zoo's
    allow-list, loads strictly and writes the latent or the packed folder; both reload to the
    checkpoint's logits bit for bit, with the checkpoint's LSQ steps.  Any other global in the
    pickle is refused."""
    import argparse
    import datetime

    name = "ofq_deit_tiny_w3a3"
    sd = G.fill_state_dict(_golden(name))
    upstream = {"epoch": 299, "arch": "deit_tiny_distilled_patch16_224", "version": 2,
                "state_dict": {f"module.{k}": v for k, v in sd.items()},
                "optimizer": {"state": {}, "param_groups": [{"lr": 5e-4, "params": [0, 1]}]},
                "args": argparse.Namespace(model="deit_tiny_distilled_patch16_224", wq_bitw=3,
                                           aq_bitw=3, qk_reparam=True, qk_reparam_type=0),
                "metric": 72.72}
    ckpt = tmp_path / "w3a3_deit_t_qkr_cga.pth.tar"
    torch.save(upstream, ckpt)
    assert run_script("convert_ofq.py", f"{name}.in1k", ckpt, "--out", tmp_path / "latent") == 0
    assert run_script("convert_ofq.py", f"{name}.in1k", ckpt, "--out", tmp_path / "packed",
                      "--packed") == 0
    latent = zoo.create(name, weights=str(tmp_path / "latent"))
    deployed = zoo.create(name, weights=str(tmp_path / "packed"))
    assert not latent.packed and deployed.packed
    assert latent.state_dict().keys() == sd.keys()
    assert all(torch.equal(latent.state_dict()[k], v) for k, v in sd.items())
    assert torch.equal(deployed.blocks[4].attn.quan_a_qkx_fn.s, sd["blocks.4.attn.quan_a_qkx_fn.s"])
    x = _image(1, seed=6)
    with torch.no_grad():
        expected = _trained(name)(x)
        assert torch.equal(latent(x), expected) and torch.equal(deployed(x), expected)

    capsys.readouterr()
    torch.save({**upstream, "date": datetime.date(2023, 1, 1)}, tmp_path / "unsafe.pth.tar")
    assert run_script("convert_ofq.py", f"{name}.in1k", tmp_path / "unsafe.pth.tar",
                      "--out", tmp_path / "refused") == 1
    assert "refused to unpickle" in capsys.readouterr().err
    assert not (tmp_path / "refused").exists()


def test_lsq_steps_are_never_initialized_from_data() -> None:
    """Upstream initializes every LSQ step from the first batch it sees; zoo creates them with
    their final shapes at build time and no forward (eval, or training with autograd) changes
    them: a fresh model keeps its unit activation steps, a loaded one the checkpoint's."""
    x = _image(2, seed=7)
    fresh = zoo.create("ofq_deit_tiny_w2a2")
    act_steps = {n: p for n, p in fresh.named_parameters()
                 if n.endswith(".s") and ".lsqw_fn." not in n}
    assert len(act_steps) == 12 * 7 + 3  # per block: qkv input, qk.x, v, softmax, proj, fc1, fc2
    for mode in (False, True):
        fresh.train(mode)
        with torch.set_grad_enabled(mode):
            fresh(x)
    assert all(torch.equal(p, torch.ones_like(p)) for p in act_steps.values())

    model = copy.deepcopy(_trained("ofq_deit_tiny_w2a2"))
    steps = {n: p.detach().clone() for n, p in model.named_parameters() if n.endswith(".s")}
    with torch.no_grad():
        model(x)
    model.train()
    model(x).sum().backward()
    assert all(torch.equal(p, steps[n]) for n, p in model.named_parameters() if n in steps)
    assert not any(torch.equal(p, torch.ones_like(p)) for n, p in model.named_parameters()
                   if n in steps and ".lsqw_fn." not in n)


def test_zoo_info_shows_bits_size_and_split(capsys) -> None:
    from zoo.cli import main

    assert main(["info", "ofq_deit_tiny_w2a2"]) == 0
    out = capsys.readouterr().out
    lines = {line.split(":", 1)[0]: line for line in out.splitlines()}
    assert "statsq w2/lsq a2, lsq w8/lsq a8" in lines["quant"]
    assert "51 quantized modules" in lines["split"] and "full-precision params" in lines["split"]
    assert "MiB fp32 latent" in lines["size"] and "MiB packed (8.03x)" in lines["size"]
    assert "ofq_deit_tiny_w2a2.in1k" in out and "license MIT" in out
