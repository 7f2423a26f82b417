"""Deep Model Assembling specs, family timm_arch: timm ViTs whose original checkpoints hold every
block twice (``blocks.<k>`` and the per-stage alias ``stages.<i>.blocks.<j>``), folded by the
spec's ``arch.stage_alias``; ViT-H without qkv bias and with torch's LayerNorm eps (1e-5).
Parity with the original code: tests/golden/assembled_*.json (run through tests/test_golden.py)."""
from __future__ import annotations

import copy

import pytest
import torch

import zoo
from zoo.build import build_model
from zoo.errors import CheckpointError, SpecError
from zoo.measure import count_macs, count_params

ASSEMBLED = [n for n in zoo.list_models(family="timm_arch")
             if zoo.get_spec(n).paper.arxiv == "2212.04129"]


def _raw(name: str) -> dict:
    from zoo.catalog import catalog

    return copy.deepcopy(catalog().resolve(name))


def _tiny(depths=(3, 3, 3, 3), **arch):
    """A cheap spec of the same kind: ViT-Ti/16 (12 blocks) with the stage alias rule."""
    from zoo.catalog import validate_spec

    raw = _raw("assembled_vit_base_patch16_224")
    raw["arch"].update(timm_model="vit_tiny_patch16_224", stage_alias={"depths": list(depths)},
                       **arch)
    return validate_spec(raw, source="test")


def upstream_full_state_dict(timm_sd: dict, depths) -> dict:
    """What upstream's utils.save_model stores under 'model' (see its VisionTransformer
    ._register_modules): the timm keys, plus stage 0 holding pos_embed/cls_token/patch_embed,
    stage i its blocks (local indices), the last stage norm and head -- the same tensors."""
    sd = dict(timm_sd)
    start = 0
    for i, depth in enumerate(depths):
        for j in range(depth):
            prefix = f"blocks.{start + j}."
            for k, v in timm_sd.items():
                if k.startswith(prefix):
                    sd[f"stages.{i}.blocks.{j}." + k[len(prefix):]] = v
        start += depth
    for k, v in timm_sd.items():
        if k.split(".")[0] in ("pos_embed", "cls_token", "patch_embed"):
            sd[f"stages.0.{k}"] = v
        if k.split(".")[0] in ("norm", "head"):
            sd[f"stages.{len(depths) - 1}.{k}"] = v
    return sd


def _timm_tiny_sd(seed: int = 0) -> dict:
    import timm

    torch.manual_seed(seed)
    m = timm.create_model("vit_tiny_patch16_224")
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.05)
    return m.state_dict()


def test_every_released_model_has_a_spec() -> None:
    """EVAL.md: ViT-B/L/H at 224 and fine-tuned at 384 (B, L) / 392 (H)."""
    sizes = {(zoo.get_spec(n).arch.timm_model.split("_")[1], zoo.get_spec(n).data.input_size[1])
             for n in ASSEMBLED}
    assert sizes == {("base", 224), ("base", 384), ("large", 224), ("large", 384),
                     ("huge", 224), ("huge", 392)}


@pytest.mark.parametrize("name", ASSEMBLED)
def test_stage_depths_are_a_quarter_of_the_depth(name: str) -> None:
    """EVAL.md: --divided_depths DEPTH/4 x 4."""
    spec = zoo.get_spec(name)
    depth = len(build_model(spec, meta=True).model.blocks)
    assert spec.arch.stage_alias.depths == (depth // 4,) * 4


@pytest.mark.parametrize("name", ASSEMBLED)
def test_architecture_details(name: str) -> None:
    """Upstream's vit_huge_patch14_* pass no qkv_bias/norm_layer (qkv_bias=False, nn.LayerNorm
    eps 1e-5); ViT-B/L use qkv_bias=True and eps 1e-6, as timm."""
    model = build_model(zoo.get_spec(name), meta=True).model
    huge = "huge" in name
    eps = {m.eps for m in model.modules() if isinstance(m, torch.nn.LayerNorm)}
    assert eps == ({1e-5} if huge else {1e-6})
    assert all((b.attn.qkv.bias is None) == huge for b in model.blocks)
    assert model.global_pool == "token" and isinstance(model.head, torch.nn.Linear)


@pytest.mark.parametrize("name", ASSEMBLED)
def test_params_and_macs_match_table_1(name: str) -> None:
    """Paper Table 1: #Param rounded to 1M, one value per model for both resolutions (the
    high-res position embedding adds < 1M); FLOPs (= MACs) to 0.1G: within 2%."""
    spec = zoo.get_spec(name)
    model = build_model(spec, meta=True)
    assert abs(count_params(model) / 1e6 - spec.reported.params_m) < 1.0
    macs = count_macs(model, tuple(spec.data.input_size)) / 1e6
    assert abs(macs - spec.reported.macs_m) / spec.reported.macs_m < 0.02, macs


def test_full_and_stage_only_checkpoints_convert_alike() -> None:
    """The 'model' state dict (blocks + aliases) and the stages' own state dicts
    (upstream's 'model_stages', flattened as stages.<i>.<key>) give the timm model's keys."""
    from zoo.families.timm_arch.model import convert

    spec = _tiny()
    timm_sd = _timm_tiny_sd()
    full = upstream_full_state_dict(timm_sd, spec.arch.stage_alias.depths)
    stages_only = {k: v for k, v in full.items() if k.startswith("stages.")}
    expected = {f"model.{k}": v for k, v in timm_sd.items()}
    for sd in (full, stages_only, {f"module.{k}": v for k, v in full.items()}):
        got = convert(spec, sd)
        assert got.keys() == expected.keys()
        assert all(got[k] is expected[k] or torch.equal(got[k], expected[k]) for k in got)


def test_converted_tiny_model_computes_the_timm_model() -> None:
    from zoo.build import build_model as build
    from zoo.families.timm_arch.model import convert

    spec = _tiny(depths=(2, 4, 4, 2))
    timm_sd = _timm_tiny_sd(seed=1)
    model = build(spec).eval()
    model.load_state_dict(convert(spec, upstream_full_state_dict(timm_sd, (2, 4, 4, 2))),
                          strict=True)
    import timm

    ref = timm.create_model("vit_tiny_patch16_224").eval()
    ref.load_state_dict(timm_sd)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), rtol=0, atol=0)


def test_wrong_stage_depths_are_caught() -> None:
    """A checkpoint saved with other --divided_depths does not fold consistently."""
    from zoo.families.timm_arch.model import convert

    full = upstream_full_state_dict(_timm_tiny_sd(), (3, 3, 3, 3))
    with pytest.raises(CheckpointError, match="alias"):
        convert(_tiny(depths=(2, 4, 4, 2)), full)
    with pytest.raises(CheckpointError, match="stage 0 has 2 blocks"):
        convert(_tiny(depths=(2, 4, 4, 2)),
                {k: v for k, v in full.items() if k.startswith("stages.")})
    five = {**full, "stages.4.norm.weight": full["norm.weight"]}
    with pytest.raises(CheckpointError, match="names stage 4"):
        convert(_tiny(), five)


@pytest.mark.parametrize("change,match", [
    ({"stage_alias": {"depths": [3, 3, 3]}}, "add up to 9 blocks"),
    ({"stage_alias": {"depths": [3, 3, 3, 3], "blocks": "layers"}}, "not a block list"),
    ({"model_args": {"img_size": 256}}, "built for"),
])
def test_spec_errors_at_build(change, match) -> None:
    from zoo.families.timm_arch.model import build
    from zoo.catalog import validate_spec

    raw = _raw("assembled_vit_base_patch16_224")
    raw["arch"].update(timm_model="vit_tiny_patch16_224", **change)
    with pytest.raises(SpecError, match=match):
        build(validate_spec(raw, source="test"))


@pytest.mark.parametrize("change,match", [
    ({"stage_alias": {"depths": []}}, "stage_alias.depths"),
    ({"stage_alias": {"depths": [3, 0]}}, "stage_alias.depths"),
    ({"stage_alias": {"depths": [3], "container": "stages.x"}}, "container"),
    ({"layer_norm_eps": 0.0}, "layer_norm_eps"),
])
def test_spec_errors_at_validation(change, match) -> None:
    from zoo.catalog import validate_spec

    raw = _raw("assembled_vit_base_patch16_224")
    raw["arch"].update(change)
    with pytest.raises(SpecError, match=match):
        validate_spec(raw, source="test")


def test_layer_norm_eps_needs_layer_norms() -> None:
    from zoo.families.timm_arch.model import build
    from zoo.catalog import validate_spec

    raw = _raw("meal_v2_resnet50")
    raw["arch"]["layer_norm_eps"] = 1e-5
    with pytest.raises(SpecError, match="no LayerNorm"):
        build(validate_spec(raw, source="test"))


def test_fixed_input_size_declared() -> None:
    from zoo.families.timm_arch.model import build
    from zoo.catalog import validate_spec

    raw = _raw("assembled_vit_base_patch16_224")
    raw["arch"]["timm_model"] = "vit_tiny_patch16_224"
    raw["data"]["fixed_input_size"] = False
    with pytest.raises(SpecError, match="fixed_input_size"):
        build(validate_spec(raw, source="test"))


def test_data_config_is_upstream_evaluation() -> None:
    """datasets.py build_transform: Resize(int(256/224*size), bicubic) + CenterCrop(size),
    ImageNet default mean/std."""
    for name in ASSEMBLED:
        d = zoo.get_spec(name).data
        size = d.input_size[1]
        assert int(size / d.crop_pct) == int(256 / 224 * size)
        assert d.interpolation == "bicubic" and d.fixed_input_size
        assert d.mean == (0.485, 0.456, 0.406) and d.std == (0.229, 0.224, 0.225)


# EVAL.md "Expected results" (Acc@1) per released file.
EVAL_MD_TOP1 = {
    "assembled_vit_base_patch16_224.in1k": 82.368, "assembled_vit_base_patch16_384.in1k": 84.188,
    "assembled_vit_large_patch16_224.in1k": 83.894, "assembled_vit_large_patch16_384.in1k": 85.270,
    "assembled_vit_huge_patch14_224.in1k": 84.310, "assembled_vit_huge_patch14_392.in1k": 85.560,
}


def test_registry_records() -> None:
    from zoo.registry import registry

    records = {t: r for t, r in registry().records.items() if t.split(".")[0] in ASSEMBLED}
    assert {t: r.metrics.top1 for t, r in records.items()} == EVAL_MD_TOP1
    for tag, rec in records.items():
        name = tag.split(".")[0]
        assert rec.hub is None and rec.source.format == "pickle"
        size = "huge" if "huge" in name else "large" if "large" in name else "base"
        folder = "pretrained/" if name.endswith("_224") else "pretrained/high_res/"
        assert rec.source.url == ("https://huggingface.co/nzl-thu/Model-Assembling/resolve/main/"
                                  f"{folder}vit_{size}.pth")
        assert rec.metrics.img_size == zoo.get_spec(name).data.input_size[1]


@pytest.mark.slow
def test_upstream_training_checkpoint_through_the_script(tmp_path) -> None:
    """A file as upstream's utils.save_model writes it ({'model', 'model_stages', 'optimizer',
    'epoch', ...}; golden weights from the original code) -> scripts/convert_model_assembling.py
    -> a folder reproducing the original's logits."""
    from pathlib import Path

    from tests import golden as G
    from tests.util import run_script

    name = "assembled_vit_base_patch16_224"
    g = G.load(Path(__file__).resolve().parents[1] / "golden" / f"{name}.json")
    full = G.fill_state_dict(g)
    stages = [{k.split(".", 2)[2]: v for k, v in full.items() if k.startswith(f"stages.{i}.")}
              for i in range(4)]
    path = tmp_path / "vit_base.pth"
    torch.save({"model": full, "model_stages": stages, "optimizer": {"state": {}},
                "epoch": 99, "scaler": {}}, path)
    del full, stages
    assert run_script("convert_model_assembling.py", f"{name}.in1k", path,
                      "--out", tmp_path / "hub") == 0
    G.assert_matches(g, G.run(g, zoo.create(name, weights=tmp_path / "hub")))
