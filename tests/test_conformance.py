"""Conformance: every registered zoo model behaves like a timm model (as timm's own model tests
check for timm's).  New families join automatically."""
from __future__ import annotations

import copy

import pytest
import torch

import zoo
from tests.conftest import heavy, model_params

MODELS = zoo.list_models()
BATCH = 2


SMALL = 64


@pytest.fixture(scope="module", params=model_params(MODELS))
def built(request):
    """(name, spec, model, size) built once per model and shared by the tests below; ``size``
    is the input the numeric tests use: the spec's, or for heavy models (the `slow` group) a
    small one where the model takes it (any size, or ``img_size`` resampling), as CI's budget
    asks for big models at small sizes."""
    torch.manual_seed(0)
    name = request.param
    spec = zoo.get_spec(name)
    size = _test_size(name, spec)
    model = zoo.create(name, **_size_args(spec, size))
    return name, spec, model, size


def _test_size(name: str, spec) -> tuple[int, ...]:
    c, h, w = spec.data.input_size
    if not heavy(name) or min(h, w) <= SMALL:
        return c, h, w
    if not spec.data.fixed_input_size:
        return c, SMALL, SMALL
    with torch.device("meta"):  # can its positional embedding be resampled to a small grid?
        model = zoo.create(name)
    if callable(getattr(model, "set_input_size", None)):
        for side in range(SMALL, h, 32):
            try:
                model.set_input_size(img_size=(side, side))
                return c, side, side
            except (ValueError, zoo.errors.ZooError):
                continue
    return c, h, w


def _size_args(spec, size: tuple[int, ...]) -> dict:
    fixed = spec.data.fixed_input_size and tuple(size) != tuple(spec.data.input_size)
    return {"img_size": tuple(size[1:])} if fixed else {}


def _input(size: tuple[int, ...], batch: int = BATCH) -> torch.Tensor:
    return torch.randn(batch, *size, generator=torch.Generator().manual_seed(0))


def test_forward_backward(built) -> None:
    name, spec, model, size = built
    model.train()
    out = model(_input(size))
    if isinstance(out, (tuple, list)):  # e.g. distillation heads in train mode
        out = out[0]
    assert out.shape == (BATCH, spec.data.num_classes)
    assert torch.isfinite(out).all()
    out.float().pow(2).mean().backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad, f"{name}: parameters without gradient: {no_grad[:10]}"
    model.zero_grad(set_to_none=True)
    model.eval()


def test_features_and_head(built) -> None:
    name, spec, model, size = built
    model.eval()
    x = _input(size)
    with torch.no_grad():
        # reseed: some models draw random numbers at inference as their originals do
        # (SReT's token permutation), so both passes must see the same draws
        torch.manual_seed(0)
        feats = model.forward_features(x)
        channels = feats.shape[1] if feats.ndim == 4 else feats.shape[-1]
        assert channels == model.num_features
        logits = model.forward_head(feats)
        assert logits.shape == (BATCH, spec.data.num_classes)
        torch.manual_seed(0)
        full = model(x)
        torch.testing.assert_close(logits, full, rtol=1e-5, atol=1e-5)
        pooled = model.forward_head(feats, pre_logits=True)
        assert pooled.shape == (BATCH, getattr(model, "head_hidden_size", model.num_features))


def test_reset_classifier(built) -> None:
    name, spec, built_model, size = built
    x = _input(size)
    with torch.no_grad():
        feats = built_model.eval().forward_features(x)
        model = copy.deepcopy(built_model).eval()
        model.reset_classifier(0)
        assert model.num_classes == 0
        # timm's head_hidden_size: a conv head after pooling (MobileNet-V3) widens the features
        pooled_dim = getattr(model, "head_hidden_size", model.num_features)
        assert model(x).shape == (BATCH, pooled_dim)
        model.reset_classifier(0, "")
        out = model(x)
        if pooled_dim == model.num_features:
            assert out.shape == feats.shape
        else:  # layers after the features: MobileNet-V3's 1x1 conv head keeps the map's
            # size, VGG's 7x7 fc6 convolution shrinks it
            assert out.ndim == 4 and out.shape[:2] == (feats.shape[0], pooled_dim)
        model = copy.deepcopy(built_model).eval()
        model.reset_classifier(7)
        assert model(x).shape == (BATCH, 7)
        assert model.num_classes == 7 and model.get_classifier().out_features == 7


@pytest.mark.parametrize("name", model_params(MODELS))
def test_data_config_agrees_with_model(name: str) -> None:
    spec = zoo.get_spec(name)
    with torch.device("meta"):
        model = zoo.create(name, device="meta")
    sd = model.state_dict()
    first = sd.get(f"{spec.data.first_conv}.weight")
    assert first is not None, f"first_conv {spec.data.first_conv!r} not in the state dict"
    assert first.shape[1] == spec.data.in_chans
    classifier = model.get_classifier()
    assert f"{spec.data.classifiers[0]}.weight" in sd
    assert model.get_submodule(spec.data.classifiers[0]) is classifier
    assert classifier.out_features == spec.data.num_classes
    cfg = model.pretrained_cfg
    assert cfg["architecture"] == name and tuple(cfg["input_size"]) == tuple(spec.data.input_size)
    from timm.data import resolve_data_config

    data = resolve_data_config(model=model)
    assert tuple(data["input_size"]) == tuple(spec.data.input_size)
    assert data["interpolation"] == spec.data.interpolation
    assert data["crop_pct"] == spec.data.crop_pct


def test_timm_create_model(built) -> None:
    import timm

    name, spec, _, size = built
    with torch.device("meta"):
        model = timm.create_model(name, num_classes=3, device="meta")
    assert model.pretrained_cfg["architecture"] == name
    assert model.num_classes == 3 and model.get_classifier().out_features == 3


def test_adapt_in_chans_and_classes(built) -> None:
    name, spec, _, size = built
    model = zoo.create(name, in_chans=1, num_classes=4, **_size_args(spec, size)).eval()
    x = torch.randn(1, 1, *size[1:])
    with torch.no_grad():
        assert model(x).shape == (1, 4)
