"""NASNet family: NASNet-A Mobile/Large/CIFAR, DARTS-V2 and user genotypes from the same builder.

Checks against the papers' tables and upstream code: parameter counts (Cadene's nasnetamobile,
timm's nasnetalarge), MACs (arXiv 1707.07012 Table 2), CIFAR and DARTS parameter counts
(arXiv 1707.07012 Table 1, arXiv 1806.09055 Table 2), exact equivalence with timm's NASNet-A
implementation at several (odd) sizes through ``convert``, the genotype validation errors, and
weights published on the local Hub emulator in timm's layout.
"""
from __future__ import annotations

import copy
import itertools
import math
import re

import pytest
import torch

import zoo
from zoo.build import build_model
from zoo.errors import CheckpointError, InputShapeError, SpecError
from zoo.measure import count_macs, count_params

_names = itertools.count()


def _unique(prefix: str) -> str:
    return f"{prefix}_{next(_names)}"


def _meta(name: str):
    return build_model(zoo.get_spec(name), meta=True)


# -- sizes: parameters and MACs against upstream and the papers -------------------------------

@pytest.mark.parametrize("name, upstream", [
    ("nasnet_a_mobile", 5_289_978),    # Cadene pretrainedmodels nasnetamobile(num_classes=1000)
    ("nasnet_a_large", 88_753_150),    # timm nasnetalarge
])
def test_param_count_equals_upstream(name: str, upstream: int) -> None:
    assert count_params(_meta(name)) == upstream


@pytest.mark.parametrize("name, paper_macs", [
    ("nasnet_a_mobile", 564e6),        # arXiv 1707.07012 Table 2: 564M mult-adds
    ("nasnet_a_large", 23.8e9),        # arXiv 1707.07012 Table 2: 23.8B mult-adds
])
def test_macs_within_2_percent_of_paper(name: str, paper_macs: float) -> None:
    spec = zoo.get_spec(name)
    assert spec.reported.macs_m * 1e6 == pytest.approx(paper_macs)
    macs = count_macs(_meta(name), tuple(spec.data.input_size))
    assert abs(macs - paper_macs) / paper_macs < 0.02, f"{name}: {macs / 1e6:.1f}M MACs"


@pytest.mark.parametrize("name, paper_params", [
    ("nasnet_a_cifar", 3.3e6),         # arXiv 1707.07012 Table 1: NASNet-A (6 @ 768) 3.3M
    ("darts_v2_imagenet", 4.7e6),      # arXiv 1806.09055 Table 2: DARTS (second order) 4.7M
])
def test_param_count_within_2_percent_of_paper(name: str, paper_params: float) -> None:
    params = count_params(_meta(name))
    assert abs(params - paper_params) / paper_params < 0.02, f"{name}: {params:,}"


def test_stack_follows_tf_slim() -> None:
    """Penultimate filters (the paper's N @ P), cell wiring and the concat quirks of TF-slim."""
    mobile, large = _meta("nasnet_a_mobile"), _meta("nasnet_a_large")
    assert (mobile.num_features, large.num_features) == (1056, 4032)
    assert len(mobile.cells) == 4 * 3 + 2 and len(large.cells) == 6 * 3 + 2
    # skip_reduction_layer_input: the cell after a reduction reads h_(i-2) from before it
    assert mobile.prev_offsets == [2] * 14
    assert [i for i, o in enumerate(large.prev_offsets) if o == 3] == [7, 14]
    # normal cells concatenate h_(i-2) too (6 x filters), reduction cells 4 block outputs
    assert mobile.cells[0].out_chs == 6 * 44 and mobile.cells[4].out_chs == 4 * 88
    assert [len(c.concat) for c in mobile.stem.cells] == [4, 4]
    # the first stem cell has no h_(i-2): state 0 is the raw stem conv output (32 channels)
    assert mobile.stem.cells[0].preprocess_prev is None
    assert mobile.stem.cells[0].blocks[0].right.sep_1.conv_dw.in_channels == 32


# -- equivalence with the upstream implementations ----------------------------------------------

@pytest.fixture(scope="module")
def timm_tiny():
    """timm's NASNetALarge class at toy width (stem 12, 192 features), with non-trivial BN
    statistics, and the name of zoo's matching spec: nasnet_a_large's at that width."""
    from timm.models.nasnet import NASNetALarge

    torch.manual_seed(0)
    ref = NASNetALarge(num_classes=10, stem_size=12, num_features=192).eval()
    with torch.no_grad():
        for n, b in ref.named_buffers():
            if n.endswith("running_mean"):
                b.normal_(0, 0.1)
            elif n.endswith("running_var"):
                b.uniform_(0.5, 1.5)
        for n, p in ref.named_parameters():
            if p.ndim == 1:
                p.normal_(1.0 if n.endswith("weight") else 0.0, 0.1)
    return ref, _register_tiny_large()


def _register_tiny_large(padding: str = "tf_same_count_pad") -> str:
    name = _unique("nasnet_tiny_timm")
    zoo.register_specs({"models": {name: {
        "extends": "nasnet_a_large",
        "data": {"num_classes": 10, "input_size": [3, 67, 67]},
        "arch": {"stem": {"kind": "nasnet_imagenet", "filters": 12}, "filters": 8,
                 "padding": padding}}}})
    return name


def test_matches_timm_nasnetalarge_at_any_size(timm_tiny) -> None:
    """convert() maps timm's layout; outputs equal timm's at odd and even sizes, where TF "SAME"
    padding is asymmetric and the stride-2 average pools' zero padding counts.  The padding
    convention is a real switch: exact TF "SAME" pools give other logits from the same weights."""
    ref, name = timm_tiny
    state = zoo.convert_checkpoint(name, ref.state_dict())
    model = zoo.create(name).eval()
    model.load_state_dict(state, strict=True)
    tf_exact = zoo.create(_register_tiny_large("tf_same")).eval()
    tf_exact.load_state_dict(state, strict=True)
    for size in (67, 64):
        x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(size))
        with torch.no_grad():
            expected = ref(x)
            torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-6)
            assert (tf_exact(x) - expected).abs().max() > 1e-4


def _brute_avg_pool(x: torch.Tensor, k: int, s: int, pad_before: int, out: int,
                    count_pad: bool) -> torch.Tensor:
    """Average of each window's in-bounds pixels (TF) or of all k*k (zero padding counted)."""
    n = x.shape[-1]
    y = torch.empty(*x.shape[:2], out, out)
    for i, j in itertools.product(range(out), repeat=2):
        r0, c0 = i * s - pad_before, j * s - pad_before
        rows = [r for r in range(r0, r0 + k) if 0 <= r < n]
        cols = [c for c in range(c0, c0 + k) if 0 <= c < n]
        window = x[:, :, rows][:, :, :, cols]
        y[:, :, i, j] = window.sum((-1, -2)) / (k * k if count_pad else len(rows) * len(cols))
    return y


@pytest.mark.parametrize("n", [6, 7])
def test_tf_same_average_pool(n: int) -> None:
    from zoo.layers.padding import pool2d

    x = torch.randn(1, 2, n, n, generator=torch.Generator().manual_seed(n))
    out = math.ceil(n / 2)
    pad_before = ((out - 1) * 2 + 3 - n) // 2  # TF: the smaller half before
    exact = pool2d("avg", 3, stride=2, mode="tf_same")(x)
    counted = pool2d("avg", 3, stride=2, mode="tf_same_count_pad")(x)
    torch.testing.assert_close(exact, _brute_avg_pool(x, 3, 2, pad_before, out, False))
    torch.testing.assert_close(counted, _brute_avg_pool(x, 3, 2, pad_before, out, True))
    assert not torch.allclose(exact, counted)


def _golden_large_state_dict():
    from tests import golden as G

    g = G.load("tests/golden/nasnet_a_large.json")
    return g, G.fill_state_dict(g)


def test_convert_cadene_mobile_layout_with_gaps() -> None:
    """Cadene numbers Mobile's normal cells as Large's (cell_0..3, cell_6..9, cell_12..15)."""
    from tests import golden as G

    g = G.load("tests/golden/nasnet_a_mobile.json")
    original = G.fill_state_dict(g)
    converted = zoo.convert_checkpoint("nasnet_a_mobile", original)
    own = _meta("nasnet_a_mobile").state_dict()
    assert set(converted) == set(own)
    assert all(converted[k].shape == own[k].shape for k in own)
    pairs = {"conv0.conv.weight": "stem.conv.weight",
             "cell_stem_1.path_2.conv.weight": "stem.cells.1.preprocess_prev.path_2.weight",
             "cell_3.comb_iter_4_left.bn_sep_2.bias": "cells.3.blocks.4.left.bn_2.bias",
             "reduction_cell_0.conv_prev_1x1.conv.weight": "cells.4.preprocess_prev.conv.weight",
             "cell_6.final_path_bn.running_var": "cells.5.preprocess_prev.bn.running_var",
             "reduction_cell_1.comb_iter_0_right.separable_1.depthwise_conv2d.weight":
                 "cells.9.blocks.0.right.sep_1.conv_dw.weight",
             "cell_12.conv_1x1.conv.weight": "cells.10.preprocess_x.conv.weight",
             "cell_15.comb_iter_1_left.separable_2.pointwise_conv2d.weight":
                 "cells.13.blocks.1.left.sep_2.conv_pw.weight",
             "last_linear.bias": "classifier.bias"}
    for theirs, ours in pairs.items():
        assert converted[ours] is original[theirs], (theirs, ours)


def test_convert_rejects_and_repairs() -> None:
    _, sd = _golden_large_state_dict()
    # a `module.` prefix (DataParallel) is stripped; zoo's own layout passes through unchanged
    converted = zoo.convert_checkpoint("nasnet_a_large", {f"module.{k}": v for k, v in sd.items()})
    assert zoo.convert_checkpoint("nasnet_a_large", converted) == converted
    # exports without BN counters still load strictly
    no_counter = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    assert set(zoo.convert_checkpoint("nasnet_a_large", no_counter)) == set(converted)
    with pytest.raises(CheckpointError, match="normal cells"):  # a Mobile file for Large
        zoo.convert_checkpoint("nasnet_a_large",
                               {k: v for k, v in sd.items() if not k.startswith("cell_17.")})
    with pytest.raises(CheckpointError, match="aux_head"):
        zoo.convert_checkpoint("nasnet_a_large", {**sd, "aux_head.fc.weight": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="empty"):
        zoo.convert_checkpoint("nasnet_a_large", {})
    with pytest.raises(CheckpointError, match="darts_imagenet"):
        zoo.convert_checkpoint("darts_v2_imagenet", {"stem0.0.weight": torch.zeros(1)})


# -- user genotypes ------------------------------------------------------------------------------

def _user_spec(**arch) -> dict:
    """A small CIFAR-stem network around a user genotype that uses every op of the vocabulary:
    strided identity/skip/zero ops, pools and identities on the unprojected stem state (1x1
    projections), and a reduction cell that concatenates its (factorized-reduced) inputs."""
    genotype = {
        "normal": {"blocks": [[["dil_conv_5x5", 1], ["sep_conv_7x7", 0]],
                              [["max_pool_3x3", 0], ["identity", 0]],
                              [["avg_pool_3x3", 2], ["none", 3]],
                              [["dil_conv_3x3", 4], ["skip_connect", 1]]],
                   "concat": [0, 3, 5]},
        "reduce": {"blocks": [[["identity", 0], ["skip_connect", 1]],
                              [["sep_conv_3x3", 2], ["none", 1]],
                              [["sep_conv_5x5", 1], ["avg_pool_3x3", 3]]],
                   "concat": [0, 1, 4]},
    }
    base = {"genotype": genotype, "stem": {"kind": "nasnet_cifar", "filters": 12},
            "depths": [1, 1], "filters": 6, "padding": "tf_same"}
    return {"family": "nasnet", "paper": {"title": "a user genotype"},
            "data": {"input_size": [3, 32, 32], "num_classes": 5, "first_conv": "stem.conv",
                     "classifier": "classifier"},
            "arch": {**base, **arch}}


@pytest.mark.parametrize("padding", ["tf_same", "symmetric"])
def test_user_genotype_registers_builds_and_trains(padding: str) -> None:
    name = _unique("my_cell_net")
    assert zoo.register_specs({"models": {name: _user_spec(padding=padding)}}) == [name]
    model = zoo.create(name)
    x = torch.randn(2, 3, 33, 33, generator=torch.Generator().manual_seed(0))  # odd size
    out = model(x)
    assert out.shape == (2, 5) and torch.isfinite(out).all()
    out.pow(2).mean().backward()
    assert not [n for n, p in model.named_parameters() if p.grad is None]
    # the concat lists define the width: normal 3 states, reduction 3 states
    assert model.num_features == 3 * 6 * 2
    reduction = model.cells[1]
    assert set(reduction.adapt) == {"0", "1"}  # inputs reduced to join the concat
    import timm

    assert timm.create_model(name, num_classes=2)(x).shape == (2, 2)


_YAML_GENOTYPE = """\
# a user's own cell, written as a spec file: DARTS/NASNet op names, chronological states
models:
  {name}:
    family: nasnet
    paper: {{title: "my searched cell"}}
    data: {{input_size: [3, 32, 32], num_classes: 4, first_conv: stem.conv,
           classifier: classifier}}
    arch:
      genotype:
        normal:
          blocks:
            - [[sep_conv_3x3, 0], [dil_conv_3x3, 1]]
            - [[max_pool_3x3, 2], [{op}, 1]]
          concat: [2, 3]
        reduce:
          blocks:
            - [[sep_conv_5x5, 0], [avg_pool_3x3, 1]]
            - [[skip_connect, 2], [sep_conv_7x7, 1]]
          concat: [2, 3]
      stem: {{kind: nasnet_cifar, filters: 8}}
      depths: [1, 1]
      filters: 4
      padding: symmetric
"""


def test_user_genotype_from_a_yaml_file(tmp_path) -> None:
    """The user path as documented: a YAML spec file -> register_specs -> a working network;
    the same file with a typo in an op name is refused, naming the op and the model."""
    name = _unique("yaml_cell_net")
    good = tmp_path / "good.yaml"
    good.write_text(_YAML_GENOTYPE.format(name=name, op="identity"))
    assert zoo.register_specs(good) == [name]
    model = zoo.create(name).eval()
    assert [len(c.blocks) for c in model.cells] == [2, 2, 2]  # normal, reduction, normal
    assert model.num_features == 2 * 4 * 2
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 4) and torch.isfinite(out).all()
    bad_name = _unique("yaml_cell_net")
    bad = tmp_path / "bad.yaml"
    bad.write_text(_YAML_GENOTYPE.format(name=bad_name, op="sep_conv_3x5"))
    with pytest.raises(SpecError, match="unknown op 'sep_conv_3x5'") as info:
        zoo.register_specs(bad)
    assert bad_name in str(info.value)
    assert bad_name not in zoo.list_models()


@pytest.mark.parametrize("mutate, message", [
    (lambda g: g["normal"]["blocks"][0][0].__setitem__(0, "sep_conv_9x9"),
     "unknown op 'sep_conv_9x9'; did you mean"),
    (lambda g: g["normal"]["blocks"][1][1].__setitem__(1, 3),
     "block 1 (right): input state 3 is out of range"),
    (lambda g: g["reduce"]["blocks"][0][0].__setitem__(1, -1), "input state -1 is out of range"),
    (lambda g: g["normal"].__setitem__("concat", []), "concat is empty"),
    (lambda g: g["normal"].__setitem__("concat", [0, 3]),
     "the output of block 3 (state 5) is never used"),
    (lambda g: g["reduce"].__setitem__("concat", [4, 4]), "more than once"),
    (lambda g: g["reduce"].__setitem__("concat", [4, 9]), "concat state 9 is out of range"),
    (lambda g: g["normal"]["blocks"].__setitem__(0, [["sep_conv_3x3", 0]]), "normal.blocks.0"),
    (lambda g: g.pop("reduce"), "genotype.reduce: Field required"),
])
def test_invalid_genotype_is_rejected_clearly(mutate, message: str) -> None:
    spec = _user_spec()
    mutate(spec["arch"]["genotype"])
    name = _unique("bad_cell_net")
    with pytest.raises(SpecError, match="invalid spec") as info:
        zoo.register_specs({"models": {name: spec}})
    assert message in str(info.value) and name in str(info.value)
    assert name not in zoo.list_models()


@pytest.mark.parametrize("arch, message", [
    ({"depths": [2, 0]}, "every stage needs at least one normal cell"),
    ({"stem": {"kind": "nasnet_cifar", "filters": 12, "num_cells": 2}}, "num_cells only applies"),
    ({"stem": {"kind": "nasnet_imagenet", "filters": 12, "num_cells": 3}, "filters": 4},
     "leaves no channels"),
    ({"padding": "same"}, "arch.padding"),
])
def test_invalid_stack_is_rejected(arch: dict, message: str) -> None:
    with pytest.raises(SpecError, match="invalid spec") as info:
        zoo.register_specs({"models": {_unique("bad_stack"): _user_spec(**arch)}})
    assert message in str(info.value)


def test_prev_projection_and_head_relu_are_conventions() -> None:
    """DARTS projects h_(i-2) in every cell (48 -> 48 channels here), TF-slim only if needed."""
    darts = _meta("darts_v2_imagenet")
    assert type(darts.cells[1].preprocess_prev).__name__ == "ReLUConvBn"
    tf_style = build_model(zoo.get_spec("darts_v2_imagenet").with_overrides(
        prev_projection="when_needed"), meta=True)
    assert isinstance(tf_style.cells[1].preprocess_prev, torch.nn.Identity)
    assert count_params(darts) - count_params(tf_style) == 48 * 48 + 2 * 48
    model = zoo.create("darts_v2_imagenet").eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert (model.forward_features(x) < 0).any()  # no ReLU before DARTS's pool


def test_drop_path_only_in_training() -> None:
    name = _unique("my_cell_net")
    zoo.register_specs({"models": {name: _user_spec(drop_path_rate=0.5)}})
    model = zoo.create(name)
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x))
        model.train()
        torch.manual_seed(0)
        a = model(x)
        torch.manual_seed(1)
        assert not torch.allclose(a, model(x))


def test_input_shape_errors() -> None:
    model = zoo.create("nasnet_a_mobile").eval()
    with pytest.raises(InputShapeError, match=r"\(B, 3, H, W\)"):
        model(torch.randn(1, 1, 224, 224))
    with pytest.raises(InputShapeError, match="H, W >= 3"):
        model(torch.randn(1, 3, 2, 2))


# -- weights ------------------------------------------------------------------------------------

def test_registry_records_the_timm_hub_file() -> None:
    from zoo.registry import registry

    rec = registry().get("nasnet_a_large.tf_in1k")
    assert rec.source.url.startswith("https://huggingface.co/timm/nasnetalarge.tf_in1k/")
    assert rec.source.format == "safetensors" and rec.license == "Apache-2.0"


def test_registry_pins_the_timm_repo_file_in_its_original_layout() -> None:
    from zoo.registry import registry

    hub = registry().get("nasnet_a_large.tf_in1k").hub
    assert hub is not None
    assert (hub.repo_id, hub.filename, hub.layout) == (
        "timm/nasnetalarge.tf_in1k", "model.safetensors", "original")
    assert len(hub.revision) == 40 and len(hub.sha256) == 64


def test_pretrained_from_a_repo_laid_out_as_timms(hub, timm_tiny, monkeypatch) -> None:
    """A repo as timm publishes it (timm's config.json, model.safetensors with only timm's
    {"format": "pt"} metadata, a pytorch_model.bin beside it), read through nasnet_a_large.tf_in1k's
    own registry record (only commit, sha256 and size replaced by the emulator's): zoo downloads
    the safetensors file alone, converts timm's keys and reproduces timm's logits."""
    import hashlib
    import io
    import json

    from safetensors.torch import save

    from zoo.registry import registry

    ref, name = timm_tiny
    repo = f"timm/{name}.tf_in1k"
    weights = save({k: v.contiguous() for k, v in ref.state_dict().items()},
                   metadata={"format": "pt"})
    pickle = io.BytesIO()
    torch.save(ref.state_dict(), pickle)
    config = {"architecture": "nasnetalarge", "num_classes": 10, "num_features": 192,
              "pretrained_cfg": {"tag": "tf_in1k", "input_size": [3, 331, 331],
                                 "first_conv": "conv0.conv", "classifier": "last_linear"}}
    commit = hub.commit(repo, {"model.safetensors": weights, "pytorch_model.bin": pickle.getvalue(),
                               "config.json": json.dumps(config).encode(),
                               "README.md": b"---\nlibrary_name: timm\n---\n"})
    real = registry().get("nasnet_a_large.tf_in1k")
    record = real.model_copy(update={"hub": real.hub.model_copy(update={
        "repo_id": repo, "revision": commit, "sha256": hashlib.sha256(weights).hexdigest(),
        "size": len(weights)})})
    monkeypatch.setitem(registry().records, f"{name}.tf_in1k", record)
    model = zoo.create(f"{name}.tf_in1k", pretrained=True)
    x = torch.randn(1, 3, 67, 67, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), rtol=1e-5, atol=1e-6)
    assert hub.count(repo_id=repo, filename="model.safetensors") >= 1
    assert hub.count(method=None, repo_id=repo, filename="pytorch_model.bin") == 0


def test_pretrained_timm_layout_from_hub(publish, timm_tiny) -> None:
    """A file laid out as timm's Hub repo (layout original) is converted on load."""
    ref, name = timm_tiny
    publish(f"{name}.tf_in1k", ref.state_dict(), layout="original", repo_id=f"timm/{name}")
    model = zoo.create(f"{name}.tf_in1k", pretrained=True)
    assert not model.training and model.pretrained_cfg["tag"] == "tf_in1k"
    x = torch.randn(1, 3, 67, 67)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_pretrained_nasnet_a_large_from_hub_matches_golden(publish) -> None:
    """nasnet_a_large.tf_in1k end to end: timm-layout safetensors on the Hub emulator ->
    zoo.create(pretrained=True) -> the golden vector timm's own model produced."""
    from tests import golden as G

    g, sd = _golden_large_state_dict()
    publish("nasnet_a_large.tf_in1k", sd, layout="original", repo_id="timm/nasnetalarge.tf_in1k")
    model = zoo.create("nasnet_a_large.tf_in1k", pretrained=True)
    G.assert_matches(g, G.run(g, model))


def test_convert_script_round_trip(tmp_path, timm_tiny, capsys) -> None:
    from safetensors.torch import save_file

    from tests.util import run_script

    ref, name = timm_tiny
    src = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(src))
    out = tmp_path / "out"
    assert run_script("convert_nasnet.py", name, src, "--out", out) == 0
    model = zoo.create(name, weights=str(out)).eval()
    x = torch.randn(1, 3, 40, 40)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), rtol=1e-5, atol=1e-6)
    bad = copy.copy(ref.state_dict())
    bad.pop("last_linear.bias")
    save_file({k: v.contiguous() for k, v in bad.items()}, str(tmp_path / "bad.safetensors"))
    capsys.readouterr()
    assert run_script("convert_nasnet.py", name, tmp_path / "bad.safetensors",
                      "--out", tmp_path / "out2") == 1
    assert re.search("last_linear|classifier", capsys.readouterr().err)
    assert not (tmp_path / "out2" / "model.safetensors").exists()
