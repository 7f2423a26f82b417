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
    # every timm built-in still maps to its own module (zoo_hub: self-describing repos' models)
    builtin = [n for n, m in _model_to_module.items() if m not in ("zoo", "zoo_hub")]
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


def test_list_pretrained_is_not_vacuous() -> None:
    """The shipped registry has published (Hub) weights; timm lists them as pretrained tags and
    knows their Hub file."""
    from timm.models import get_pretrained_cfg

    ours = zoo.list_models(pretrained=True)
    assert "nasnet_a_large.tf_in1k" in ours
    assert "nasnet_a_large.tf_in1k" in timm.list_pretrained("nasnet_a_large*")
    cfg = get_pretrained_cfg("nasnet_a_large.tf_in1k")
    assert cfg.hf_hub_id == "timm/nasnetalarge.tf_in1k"
    # a convertible source is a known tag of the model, without downloadable weights
    src = get_pretrained_cfg("simplenetv1_5m_m1.in1k")
    assert src is not None and not src.hf_hub_id


def test_timm_create_model_pretrained_through_the_registry(publish) -> None:
    """`timm.create_model("name.tag", pretrained=True)` loads the registry's verified Hub file
    (through zoo.create), here served by the local Hub emulator."""
    name = "simplenetv1_small_m1_05"
    torch.manual_seed(5)
    source = zoo.create(name).eval()
    record = publish(f"{name}.hubtest", source.state_dict())
    model = timm.create_model(f"{name}.hubtest", pretrained=True).eval()
    assert model.pretrained_cfg["hf_hub_revision"] == record.hub.revision
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in source.state_dict().items())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():  # same weights; batch-1 kernels may sum in another order
        torch.testing.assert_close(model(x), source(x), rtol=1e-5, atol=1e-6)
    adapted = timm.create_model(f"{name}.hubtest", pretrained=True, num_classes=4, in_chans=1)
    assert adapted.get_classifier().out_features == 4
    gray = x.mean(1, keepdim=True)
    with torch.no_grad():  # a summed first conv on gray == the original on a replicated image
        torch.testing.assert_close(adapted.forward_features(gray),
                                   source.forward_features(gray.expand(-1, 3, -1, -1)),
                                   rtol=1e-4, atol=1e-4)


def test_specs_registered_at_run_time_join_timm_without_shadowing_it() -> None:
    """A user spec becomes a timm model; one named like a timm built-in stays zoo-only (in a
    fresh interpreter: the registrations must not leak into this process's catalog)."""
    spec = {"family": "simplenet", "paper": {"title": "t"},
            "data": {"input_size": [3, 32, 32], "first_conv": "features.0",
                     "classifier": "head.fc"},
            "arch": {"layers": [{"filters": 8}, {"pool": "max"}, {"filters": 16}]}}
    out = _run(f"""if True:
        import timm, zoo
        from zoo import timm_plugin
        spec = {spec!r}
        zoo.register_specs({{"name": "resnet18", **spec}})
        zoo.register_specs({{"name": "user_timm_tiny", **spec}})
        zoo_models = timm.list_models(module="zoo")
        print(type(timm.create_model("resnet18")).__module__, type(zoo.create("resnet18")).__name__,
              "resnet18" in timm_plugin.skipped, "resnet18" in zoo_models)
        print(type(timm.create_model("user_timm_tiny", num_classes=3)).__name__,
              "user_timm_tiny" in zoo_models)
        """)
    assert out.splitlines() == ["timm.models.resnet SimpleNet True False", "SimpleNet True"]
