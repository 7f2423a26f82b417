"""The timm plug-in: zoo's models in timm's registry, never shadowing timm's own."""
from __future__ import annotations

import subprocess
import sys

import pytest
import timm
import torch

import zoo
from zoo import timm_plugin


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_list_models_module_zoo_is_exactly_zoos_models() -> None:
    listed = set(timm.list_models(module="zoo"))
    expected = set(zoo.list_models()) - set(timm_plugin.skipped)
    assert listed == expected


def test_zoo_never_overwrites_a_timm_builtin() -> None:
    from timm.models._registry import _model_entrypoints, _model_to_module

    for name in zoo.list_models():
        if name in timm_plugin.skipped:
            assert _model_to_module[name] != "zoo"   # timm's own entry survived
        else:
            assert _model_to_module[name] == "zoo"
    # every timm built-in still maps to its own module
    builtin = [n for n, m in _model_to_module.items() if m != "zoo"]
    assert builtin and all(_model_entrypoints[n].__module__.startswith("timm.") for n in builtin)


def test_list_pretrained_includes_zoos_published_tags() -> None:
    ours = set(zoo.list_models(pretrained=True))
    assert ours <= set(timm.list_pretrained())
    # convertible sources are known tags without weights: not listed as pretrained
    from zoo.registry import registry

    sources = {t for t, r in registry().records.items() if not r.pretrained}
    assert not sources & set(timm.list_pretrained())


@pytest.mark.parametrize("order", ["import zoo, timm", "import timm, zoo"])
def test_registration_works_in_either_import_order(order: str) -> None:
    out = _run(f"{order}; m = timm.create_model('simplenetv1_small_m1_05'); "
               "print(type(m).__name__, m.pretrained_cfg['architecture'])")
    assert out == "SimpleNet simplenetv1_small_m1_05"


def test_import_zoo_is_cheap() -> None:
    out = _run("import sys, zoo; zoo.list_models(); "
               "print(sorted(m for m in ('torch', 'timm', 'huggingface_hub', 'safetensors') "
               "if m in sys.modules))")
    assert out == "[]"


def test_timm_model_api() -> None:
    model = timm.create_model("simplenetv1_small_m1_05", num_classes=10).eval()
    x = torch.randn(1, 3, 224, 224)
    feats = model.forward_features(x)
    assert feats.shape[1] == model.num_features
    assert model.forward_head(feats, pre_logits=True).shape == (1, model.num_features)
    assert model.default_cfg is model.pretrained_cfg
    model.reset_classifier(0)
    assert model(x).shape == (1, model.num_features)
    cfg = timm.data.resolve_data_config(model=model)
    transform = timm.data.create_transform(**cfg)
    from PIL import Image

    from zoo.demo import sample_image_path

    img = transform(Image.open(sample_image_path()).convert("RGB"))
    assert tuple(img.shape) == tuple(cfg["input_size"])
