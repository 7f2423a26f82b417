"""timm's model contract, checked for every registered zoo model (derived from the catalog, so
new variants are covered): what timm's own ``tests/test_models.py`` checks of timm's models
(docs/timm.md): the full ``pretrained_cfg`` (``pool_size``, ``label_names``), the create
arguments timm passes, ``forward_intermediates`` / ``prune_intermediate_layers``,
``features_only`` with every ``feature_cls``, gradient checkpointing that recomputes, the
optimizer API, and TorchScript / torch.fx / torch.export.

Cost: structure checks run on the meta device at the spec's input size, for every model;
numeric checks on CPU at small inputs (64 px where the architecture takes any size or can be
resized, else its own size), for every model below the heavy bound (:func:`_numeric_models`); compilers
(TorchScript, torch.fx, torch.export) and the hook / fx feature extractors on one model per
family, the one with the fewest modules (the variants of a family run the same code; timm's own
tests, run against every zoo model as docs/timm.md describes, compile each of them).
"""
from __future__ import annotations

import copy
import functools
import inspect
import math

import pytest
import timm
import torch
from timm.models import get_notrace_functions, get_notrace_modules
from timm.models._manipulate import group_parameters

import zoo
from tests.conftest import model_params
from zoo.errors import UnknownArgumentError

MODELS = zoo.list_models()
SMALL = 64


def _overrides(spec) -> dict:
    """Switches a family's schema offers for a deterministic, size-flexible model: SReT's seeded
    token permutation (its original draws from the global RNG at inference, so two forwards
    differ), BigNAS without the input resize (maps at strides of the image), and dynamic image
    sizes where the positional embedding can be resampled."""
    fields = type(spec.arch).model_fields
    out = {}
    if "token_permutation" in fields:
        out["token_permutation"] = "seeded"
    if "resize_input" in fields:
        out["resize_input"] = False
    if "dynamic_img_size" in fields:
        out["dynamic_img_size"] = True
    return out


def _small_size(model) -> tuple[int, int, int]:
    """A small input the model takes: 64 px (or less) where it takes any size, the smallest
    multiple of 32 from 64 its ``set_input_size`` accepts, else its own size."""
    c, h, w = model.pretrained_cfg["input_size"]
    setter = getattr(model, "set_input_size", None)
    if callable(setter):  # it validates sizes (e.g. SReT's slices must divide the token counts)
        for side in range(SMALL, h, 32):
            try:
                setter(img_size=(side, side))
                return c, side, side
            except UnknownArgumentError:  # it takes any size as it is
                break
            except (ValueError, zoo.errors.ZooError):
                continue
        else:
            return c, h, w  # no smaller size it takes
    if not model.pretrained_cfg.get("fixed_input_size"):
        return c, min(h, SMALL), min(w, SMALL)
    return c, h, w


def _meta_model(name: str, **kwargs):
    with torch.device("meta"):
        return zoo.create(name, device="meta", **kwargs).eval()


def _is_map(model) -> bool:
    return model.pretrained_cfg.get("pool_size") is not None


def _x(size, batch: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, *size, generator=torch.Generator().manual_seed(seed))


def _numeric_models() -> list[str]:
    """The models the numeric checks run on: every model but the heavy ones (the `slow` group's
    parameter/MAC bound, which timm's own tests also leave out by size), plus a family's
    smallest model where all of its models are heavy.  The heavy variants run the same code as
    their family's light ones and get the structure checks above."""
    from tests.conftest import heavy

    light = [n for n in MODELS if not heavy(n)]
    covered = {zoo.get_spec(n).family for n in light}
    extra = {}
    for n in MODELS:
        fam = zoo.get_spec(n).family
        if fam not in covered and fam not in extra:
            extra[fam] = n
    return light + sorted(extra.values())


@pytest.fixture(scope="module", params=model_params(_numeric_models()))
def small(request):
    """(name, model at a small input size, a batch of inputs: 2 where batch norm needs them in
    training, else 1), built once per model."""
    name = request.param
    torch.manual_seed(0)
    model = zoo.create(name, **_overrides(zoo.get_spec(name))).eval()
    batch_norm = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                     for m in model.modules())
    return name, model, _x(_small_size(model), batch=2 if batch_norm else 1)


# -- structure: meta device, the spec's input size ----------------------------------------------

@pytest.mark.parametrize("name", model_params(MODELS))
def test_structure(name: str) -> None:
    """On the meta device at the spec's input size: pool_size is forward_features' spatial size
    (None for token features); num_features / head_hidden_size are the widths of the features
    and pre-logits; timm's data config fields; ImageNet-1k models name their classes;
    reset_classifier keeps the pooling unless told, and the model's device, dtype and mode;
    group_matcher splits the parameters, no_weight_decay names parameters (or optional ones
    the variant lacks), frozen parameters stay frozen; feature_info has >= 3 levels."""
    spec = zoo.get_spec(name)
    model = _meta_model(name)
    cfg = model.pretrained_cfg
    assert model.in_chans == cfg["input_size"][0] == spec.data.in_chans
    feats = model.forward_features(torch.randn(1, *cfg["input_size"], device="meta"))
    if feats.ndim == 4:
        assert tuple(cfg["pool_size"]) == tuple(feats.shape[-2:])
        assert feats.shape[1] == model.num_features
    else:
        assert cfg.get("pool_size") is None and feats.shape[-1] == model.num_features
    assert model.forward_head(feats, pre_logits=True).shape == (1, model.head_hidden_size)
    assert model.forward_head(feats).shape == (1, spec.data.num_classes)
    for key in ("first_conv", "classifier", "license", "crop_pct", "interpolation", "mean",
                "std"):
        assert key in cfg, key
    assert f"{cfg['first_conv']}.weight" in model.state_dict()
    if spec.data.label_set == "imagenet-1k" and spec.data.num_classes == 1000:
        assert len(cfg["label_names"]) == 1000 and cfg["label_names"][0] == "n01440764"
    else:
        assert "label_names" not in cfg
    info = model.feature_info
    assert len(info) >= 3 and all(d["num_chs"] > 0 for d in info)
    assert [d["reduction"] for d in info] == sorted(d["reduction"] for d in info)

    groups = group_parameters(model, model.group_matcher(coarse=False), reverse=True)
    assert len(set(groups.values())) > 1
    names = dict(model.named_parameters())
    for pattern in model.no_weight_decay():
        assert pattern in names or getattr(model, pattern, None) is None, pattern

    # callers (timm's tests among them) resize a model when it has set_input_size: having it
    # means taking a resize (a model that takes any size as it is has none, as timm's CNNs)
    setter = getattr(model, "set_input_size", None)
    if setter is not None:
        setter(img_size=tuple(cfg["input_size"][1:]))
        assert tuple(model.pretrained_cfg["input_size"]) == tuple(spec.data.input_size)

    assert inspect.signature(model.reset_classifier).parameters["global_pool"].default is None
    model.reset_classifier(5)
    assert model.forward_head(feats, pre_logits=True).shape == (1, model.head_hidden_size)
    model.reset_classifier(0, "")
    unpooled = model.forward_head(feats)  # a conv after the pooling (MobileNetV3) still applies
    if feats.ndim == 3:
        assert unpooled.shape == feats.shape
    elif isinstance(getattr(model, "model", None), timm.models.VGG):  # its 7x7 pre-logits conv
        assert unpooled.ndim == 4 and unpooled.shape[:2] == (1, model.head_hidden_size)
    else:
        assert unpooled.shape == (1, model.head_hidden_size, *feats.shape[2:])
    model = model.to(dtype=torch.float64).requires_grad_(False)
    model.reset_classifier(3)
    head = model.get_classifier()
    assert all(p.device.type == "meta" and p.dtype == torch.float64 for p in head.parameters())
    assert not any(m.training for m in model.modules())
    model.reset_classifier(0)
    assert not any(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("name", model_params(MODELS))
def test_create_arguments(name: str) -> None:
    """What timm's factory passes: num_classes=0 with global_pool='' builds the model whose
    head returns the unpooled features; unknown arguments are a TypeError."""
    model = _meta_model(name, num_classes=0, global_pool="")
    assert model.num_classes == 0 and model.get_classifier() is not None
    if _is_map(model):
        x = torch.randn(1, model.num_features, 3, 5, device="meta")
        out = model.forward_head(x)
        if isinstance(getattr(model, "model", None), timm.models.VGG):  # its 7x7 pre-logits conv
            assert out.ndim == 4 and out.shape[:2] == (1, model.head_hidden_size)
        else:
            assert out.shape == (1, model.head_hidden_size, 3, 5)
    else:
        x = torch.randn(1, 7, model.num_features, device="meta")  # tokens
        assert model.forward_head(x).shape == x.shape
    with pytest.raises(TypeError):
        zoo.create(name, not_a_model_arg=1)
    with pytest.raises(UnknownArgumentError, match="not_a_model_arg"):
        timm.create_model(name, not_a_model_arg=1)


# -- numbers: CPU, small inputs ---------------------------------------------------------------------

def test_forward_intermediates(small) -> None:
    """Every feature_info level (channels, nominal stride), the final output equal to
    forward_features, and stop_early / indices giving the same maps."""
    name, model, x = small
    x = x[:1]
    info = model.feature_info
    with torch.no_grad():
        final, taps = model.forward_intermediates(x)
        torch.testing.assert_close(final, model.forward_features(x), rtol=1e-5, atol=1e-6)
        assert len(taps) == len(info)
        for tap, d in zip(taps, info):
            assert tap.shape[:2] == (x.shape[0], d["num_chs"])
            for got, side in zip(tap.shape[-2:], x.shape[-2:]):
                assert side / (2 * d["reduction"]) < got <= math.ceil(side / d["reduction"]) + 1
        mid = len(info) // 2
        only = model.forward_intermediates(x, indices=[mid], stop_early=True,
                                           intermediates_only=True)
        torch.testing.assert_close(only[0], taps[mid], rtol=1e-5, atol=1e-6)


def test_features_only(small) -> None:
    """features_only with out_indices (timm's FeatureGetterNet, the default) gives the levels
    forward_intermediates gives, with timm's feature_info; without, the family's default levels
    at their nominal strides; timm.create_model builds it."""
    from zoo.model import features_only

    name, model, x = small
    x = x[:1]
    last = len(model.feature_info) - 1
    with torch.no_grad():
        taps = model.forward_intermediates(x, indices=[0, last], intermediates_only=True)
        extractor = features_only(copy.deepcopy(model), out_indices=(0, -1))
        assert extractor.feature_info.channels() == [model.feature_info[0]["num_chs"],
                                                     model.feature_info[last]["num_chs"]]
        assert "classifier" not in extractor.pretrained_cfg
        outs = extractor(x)
    assert len(outs) == 2
    for out, ref in zip(outs, taps):
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    # the default extractor: the family's default levels (every level; the last 3 blocks for
    # ViTs, as timm's) at their channels and nominal strides (unpadded stems lose a pixel)
    default = getattr(model, "default_out_indices", None) or len(model.feature_info)
    with torch.no_grad():
        full = features_only(copy.deepcopy(model))
        outs = full(x)
    assert len(outs) == len(full.feature_info.out_indices) == default
    width = x.shape[-1]
    for out, chs, red in zip(outs, full.feature_info.channels(), full.feature_info.reduction()):
        assert out.shape[1] == chs
        assert width // red - 1 <= out.shape[-1] <= -(-width // red)
    spec = zoo.get_spec(name)
    meta = timm.create_model(name, features_only=True, out_indices=(-1,), device="meta",
                             **_overrides(spec))
    assert meta.feature_info.channels() == [model.feature_info[last]["num_chs"]]


def test_prune_intermediate_layers(small) -> None:
    """Pruned at a middle level (as FeatureGetterNet prunes) the model's features end at that
    level, and training it leaves no parameter without a gradient (DDP-safe)."""
    name, model, x = small
    mid = len(model.feature_info) // 2
    with torch.no_grad():
        tap = model.forward_intermediates(x, indices=[mid], intermediates_only=True)[0]
    pruned = copy.deepcopy(model)
    take = pruned.prune_intermediate_layers([mid], prune_norm=True)
    assert take == [mid] and pruned.num_classes == 0
    with torch.no_grad():
        feats = pruned.forward_features(x)
        if feats.ndim == 4:
            torch.testing.assert_close(feats, tap, rtol=1e-5, atol=1e-6)
    pruned.train()
    out = pruned.forward_intermediates(x, indices=take, intermediates_only=True)
    (out[0].sum() + pruned.forward_features(x).sum()).backward()
    unused = [n for n, p in pruned.named_parameters() if p.requires_grad and p.grad is None]
    assert not unused, unused[:5]


def _last_weighted_leaf(model: torch.nn.Module, name: str) -> torch.nn.Module:
    """The last module without children holding parameters, in registration order, up to the
    end of module ``name`` (its input is saved for the backward pass, so a checkpointed region
    that produces ``name``'s output recomputes it)."""
    found, inside = None, False
    for n, m in model.named_modules():
        in_target = n == name or n.startswith(name + ".")
        if inside and not in_target:
            break
        inside = inside or in_target
        if not list(m.children()) and list(m.parameters(recurse=False)):
            found = m
    return found


def test_grad_checkpointing_recomputes(small) -> None:
    """set_grad_checkpointing really checkpoints: a layer of the deepest level runs again in the
    backward pass, and outputs and gradients are those of the plain model (same RNG draws:
    stochastic depth in training)."""
    name, model, x = small
    results = []
    for enable in (False, True):
        m = copy.deepcopy(model).train()
        m.set_grad_checkpointing(enable)
        calls = []
        leaf = _last_weighted_leaf(m, m.feature_info[-1]["module"])
        leaf.register_forward_pre_hook(lambda *a: calls.append(1))  # fires on recomputation
        torch.manual_seed(0)
        out = m.forward_features(x)
        forward_calls = len(calls)
        out.float().pow(2).mean().backward()
        results.append((out.detach(), {n: p.grad for n, p in m.named_parameters()
                                       if p.grad is not None}, forward_calls, len(calls)))
    (plain, g_plain, f0, b0), (ckpt, g_ckpt, f1, b1) = results
    assert f0 == f1 > 0 and b0 == f0, "the hooked layer is not on the forward path"
    assert b1 > f1, "no recomputation in the backward pass"
    torch.testing.assert_close(ckpt, plain, rtol=1e-5, atol=1e-5)
    assert g_ckpt.keys() == g_plain.keys()
    for n in g_plain:
        torch.testing.assert_close(g_ckpt[n], g_plain[n], rtol=1e-4, atol=1e-5, msg=n)


# -- compilers ----------------------------------------------------------------------------------------

FAMILIES = sorted({zoo.get_spec(n).family for n in MODELS})
FAMILY_PARAMS = [pytest.param(f, id=f, marks=[pytest.mark.xdist_group(f"compile-{f}")])
                 for f in FAMILIES]


@functools.cache
def _representative(family: str) -> str:
    """The family's model with the fewest modules (the cheapest to compile), then the fewest
    parameters (counted on the meta device)."""
    def size(name: str) -> tuple[int, int, str]:
        with torch.device("meta"):
            model = zoo.create(name)
        return len(list(model.modules())), zoo.measure.count_params(model), name

    return min((n for n in MODELS if zoo.get_spec(n).family == family), key=size)


def _compile_case(family: str):
    name = _representative(family)
    spec = zoo.get_spec(name)
    with timm.set_scriptable(True):
        torch.manual_seed(0)
        model = zoo.create(name, **_overrides(spec)).eval()
    return model, _x(_small_size(model), batch=1)


@pytest.mark.parametrize("family", FAMILY_PARAMS)
def test_torchscript(family: str) -> None:
    model, x = _compile_case(family)
    with torch.no_grad():
        ref = model(x)
        torch.testing.assert_close(torch.jit.script(model)(x), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", FAMILY_PARAMS)
def test_fx_trace_and_backward(family: str) -> None:
    """timm's fx feature extraction (its leaf modules and wrapped functions): same output, also
    once scripted, and a traced training graph gives every parameter a gradient."""
    from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

    model, x = _compile_case(family)
    tracer_kwargs = dict(leaf_modules=get_notrace_modules(),
                         autowrap_functions=get_notrace_functions())
    train_nodes, eval_nodes = get_graph_node_names(model, tracer_kwargs=tracer_kwargs)
    graph = create_feature_extractor(model, train_return_nodes=[train_nodes[-1]],
                                     eval_return_nodes=[eval_nodes[-1]],
                                     tracer_kwargs=tracer_kwargs)
    with torch.no_grad():
        ref = model(x)
        # twice: nothing made at trace time (SReT's seeded generator) carries state over calls
        for _ in range(2):
            torch.testing.assert_close(list(graph(x).values())[0], ref, rtol=1e-5, atol=1e-5)
        # then TorchScript, as timm's fx-then-script test (the traced code keeps forward's
        # annotations: they must be real types, not strings)
        scripted = torch.jit.script(graph.eval())
        for _ in range(2):
            torch.testing.assert_close(list(scripted(x).values())[0], ref, rtol=1e-5, atol=1e-5)
    graph.train()
    list(graph(torch.cat([x, x])).values())[0].mean().backward()
    assert not [n for n, p in graph.named_parameters() if p.grad is None]


@pytest.mark.parametrize("family", FAMILY_PARAMS)
def test_torch_export(family: str) -> None:
    model, x = _compile_case(family)
    with torch.no_grad():  # an inference program
        program = torch.export.export(model, (x,))
        torch.testing.assert_close(program.module()(x), model(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", FAMILY_PARAMS)
def test_hook_and_fx_feature_extractors(family: str) -> None:
    """feature_cls 'hook' (forward hooks, model unchanged) and 'fx' (graph cut at the levels'
    modules) give the getter's maps (hooks on transformer blocks see their token sequences)."""
    from zoo.model import features_only

    model, x = _compile_case(family)
    with torch.no_grad():
        taps = model.forward_intermediates(x, indices=[0, -1], intermediates_only=True)
        for cls in ("hook", "fx"):
            outs = features_only(copy.deepcopy(model), out_indices=(0, -1), feature_cls=cls)(x)
            assert len(outs) == 2
            for out, ref in zip(outs, taps):
                if out.ndim == 3:
                    assert out.shape[-1] == ref.shape[1]
                else:
                    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5, msg=cls)


@functools.lru_cache(maxsize=None)
def _smallest_wrapped(level_fmt: str) -> str | None:
    """The model with the fewest parameters among those around a timm backbone whose levels
    give ``level_fmt`` outputs (NHWC: Swin's maps, NLC: a ViT's tokens): the wrapper treats them
    on code paths of their own that its family's representative may not take."""
    sizes = {}
    for name in MODELS:
        if "timm_model" in type(zoo.get_spec(name).arch).model_fields:
            with torch.device("meta"):
                model = zoo.create(name)
            if model.feature_fmt == level_fmt:
                sizes[name] = zoo.measure.count_params(model)
    return min(sizes, key=sizes.__getitem__) if sizes else None


def _smallest_nhwc_model():
    """A fresh, seeded, scriptable build of the smallest NHWC-wrapped model, in eval mode."""
    name = _smallest_wrapped("NHWC")
    assert name, "no zoo model wraps an NHWC timm backbone any more: drop this test"
    with timm.set_scriptable(True):
        torch.manual_seed(0)
        return zoo.create(name).eval()


def test_nhwc_backbones_compile_and_give_nchw_maps() -> None:
    """The smallest NHWC-wrapped model: TorchScript, torch.fx (no branch on a traced tensor's
    rank) and torch.export give eager's output; unpooled head output is NCHW like its features."""
    model = _smallest_nhwc_model()
    x = _x(model.pretrained_cfg["input_size"], batch=1)
    with torch.no_grad():
        ref = model(x)
        torch.testing.assert_close(torch.jit.script(model)(x), ref, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(torch.fx.symbolic_trace(model)(x), ref, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(torch.export.export(model, (x,)).module()(x), ref, rtol=1e-5, atol=1e-5)
        feats = model.forward_features(x)
        assert feats.shape[1] == model.num_features
        model.reset_classifier(0, "")
        unpooled = model(x)
        torch.testing.assert_close(unpooled, model.forward_head(feats))
        assert unpooled.shape[1] == model.head_hidden_size and unpooled.shape[2:] == feats.shape[2:]


def test_hook_and_fx_features_of_nhwc_levels_are_nchw() -> None:
    """feature_cls 'hook' and 'fx' on Swin's NHWC stages give the getter's NCHW maps (timm's own
    extractors would return the stages' NHWC outputs); the fx extractor scripts, as timm's test of
    fx-then-TorchScript features requires."""
    from zoo.model import features_only

    model = _smallest_nhwc_model()
    x = _x(model.pretrained_cfg["input_size"], batch=2)
    with torch.no_grad():
        taps = model.forward_intermediates(x, indices=[0, -1], intermediates_only=True)
        assert taps[0].shape[1] == model.feature_info[0]["num_chs"]  # NCHW: channels second
        for cls in ("hook", "fx"):
            extractor = features_only(copy.deepcopy(model), out_indices=(0, -1), feature_cls=cls)
            for out, ref in zip(extractor(x), taps, strict=True):
                torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5, msg=cls)
            as_dict = features_only(copy.deepcopy(model), out_indices=(0, -1), feature_cls=cls,
                                    return_dict=True)(x)
            for out, ref in zip(as_dict.values(), taps, strict=True):
                torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5, msg=cls)
            if cls == "fx":
                scripted = torch.jit.script(extractor)(x)
                for out, ref in zip(scripted, taps, strict=True):
                    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_hook_and_fx_features_of_token_levels_are_refused() -> None:
    """A wrapped ViT's levels are token sequences: hooks and fx cuts would return them as they
    are, so only the getter (NCHW maps through forward_intermediates) is offered."""
    from zoo.errors import ZooError
    from zoo.model import features_only

    name = _smallest_wrapped("NLC")
    assert name, "no zoo model wraps a timm ViT any more: drop this test"
    model = zoo.create(name)
    for cls, cls_name in (("hook", "FeatureHookNet"), ("fx", "FeatureGraphNet")):
        with pytest.raises(ZooError) as e:
            features_only(copy.deepcopy(model), feature_cls=cls)
        assert str(e.value) == (
            f"{model.pretrained_cfg['architecture']}: feature_cls={cls_name} would return its NLC "
            "outputs as they are; use feature_cls='getter' (the default), whose "
            "forward_intermediates gives NCHW maps")
    assert len(features_only(model, out_indices=(0, -1))(_x(model.pretrained_cfg["input_size"],
                                                             batch=1))) == 2


def test_families_come_from_the_catalog() -> None:
    from zoo.families import family_names

    assert set(FAMILIES) == {f for f in family_names()
                             if any(zoo.get_spec(n).family == f for n in MODELS)}
