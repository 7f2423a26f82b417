"""The timm plug-in: zoo's models in timm's registry, never shadowing timm's own."""
from __future__ import annotations

import copy
import dataclasses
import subprocess
import sys
import types

import pytest
import timm
import torch
from safetensors.torch import save_file
from torch import nn

import zoo
from tests.hubfixtures import safetensors_bytes
from zoo import timm_plugin


@pytest.fixture(autouse=True)
def _registration_replayed_under_mutmut():
    """zoo registers its models in timm once, when timm is imported.  Under mutation testing
    (mutmut sets MUTANT_UNDER_TEST in the process that runs the tests) that import happened
    before any mutant was switched on, so the registration is replayed here, per test: a mutant
    of the plug-in's registration code is then what these tests see (docs/testing.md)."""
    import os
    import warnings

    if "MUTANT_UNDER_TEST" in os.environ:
        import timm.models._factory as factory
        from timm.models import _registry

        for name in list(timm_plugin._registered):
            _registry._model_entrypoints.pop(name, None)
        sys.modules.pop(timm_plugin._HOST, None)  # made anew by the (mutated) registration
        timm_plugin._registered.clear()
        timm_plugin.skipped.clear()
        loader = factory.load_model_config_from_hf
        factory.load_model_config_from_hf = getattr(loader, "_zoo_original", loader)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # timm: "Overwriting ... in registry"
            timm_plugin.install()
    yield


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


def test_import_hook_registers_once_timm_has_loaded(monkeypatch) -> None:
    """In process (the subprocess test above is invisible to mutation testing): the finder
    ``install()`` puts on ``sys.meta_path`` answers only for ``timm``, hands back timm's own
    spec, and the loader it wraps runs timm's module code, leaves the meta path and then
    registers zoo's models; a failing registration warns instead of breaking ``import timm``."""
    import importlib.util
    import warnings

    calls = []
    monkeypatch.setattr(timm_plugin, "register_new", lambda: calls.append("register"))
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    monkeypatch.delitem(sys.modules, "timm")  # as before `import timm`
    assert not any(isinstance(f, timm_plugin._TimmHook) for f in sys.meta_path)
    timm_plugin.install()
    hooks = [f for f in sys.meta_path if isinstance(f, timm_plugin._TimmHook)]
    assert len(hooks) == 1 and sys.meta_path[0] is hooks[0]
    timm_plugin.install()  # once only
    assert sum(isinstance(f, timm_plugin._TimmHook) for f in sys.meta_path) == 1
    hook = hooks[0]
    assert hook.find_spec("numpy", None) is None and hook.find_spec("timm.layers", None) is None
    monkeypatch.setitem(sys.modules, "timm", timm)  # find_spec("timm") gives the loaded spec
    loader = timm.__spec__.loader
    monkeypatch.setattr(loader, "exec_module", loader.exec_module)  # restored afterwards
    ran = []
    monkeypatch.setattr(loader, "exec_module", lambda module: ran.append(module.__name__))
    spec = hook.find_spec("timm", None)
    assert spec is not None and spec.name == "timm" and spec.loader is loader
    assert sys.meta_path[0] is hook  # put back in place while it looked timm up
    module = types.ModuleType("timm")
    spec.loader.exec_module(module)
    assert ran == ["timm"] and calls == ["register"]  # timm's code first, then registration
    assert hook not in sys.meta_path
    spec.loader.exec_module(module)  # a second run: the hook is already gone, no error
    assert calls == ["register", "register"]

    def broken() -> None:
        raise RuntimeError("catalog unreadable")

    monkeypatch.setattr(timm_plugin, "register_new", broken)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spec.loader.exec_module(module)
    assert [str(w.message) for w in caught] == [
        "zoo: could not register its models in timm: catalog unreadable"]


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


# -- entry points: `pretrained`, tags and pretrained_cfg exactly as timm's own ---------------------
# Every call below goes to two models: a timm-native one (timm's own build_model_with_cfg,
# registered for the test) and a zoo model, each with weights tags a_in1k (the default, first in
# registry order) and b_in1k published on the Hub emulator.  Each call starts with empty caches,
# so the emulator's log shows which tag's file is downloaded (or none); the model's tensors show
# which weights were loaded.  zoo's entry point must behave as timm's own does.

TWIN = "zoo_test_timm_native"
SMALL = "simplenetv1_small_m1_05"
TAGS = ("a_in1k", "b_in1k")


class _TimmNative(nn.Module):
    """The smallest model timm's builder takes: a first conv and a classifier."""

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, **kwargs) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.conv = nn.Conv2d(in_chans, 4, 1)
        self.fc = nn.Linear(4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).mean((2, 3)))


@pytest.fixture
def timm_registry():
    """timm's model registry (its module-level dicts and sets), restored after the test."""
    from timm.models import _registry

    saved = {n: copy.deepcopy(v) for n, v in vars(_registry).items()
             if n.startswith(("_model", "_module", "_deprecated")) and isinstance(v, (dict, set))}
    assert "_model_entrypoints" in saved and "_model_pretrained_cfgs" in saved
    yield _registry
    for n, v in saved.items():
        current = getattr(_registry, n)
        current.clear()
        current.update(v)


@pytest.fixture
def two_tags(hub, publish, timm_registry, monkeypatch, tmp_path):
    """{model: ({tag: first tensor of its weights}, {repo_id: tag})} for TWIN and SMALL."""
    from timm.models import build_model_with_cfg, generate_default_cfgs

    first: dict[str, dict[str, torch.Tensor]] = {TWIN: {}, SMALL: {}}
    repos: dict[str, dict[str, str]] = {TWIN: {}, SMALL: {}}
    cfgs = {}
    for i, tag in enumerate(TAGS):
        torch.manual_seed(i)
        native = _TimmNative().state_dict()
        repo = f"zoo-test-native/{TWIN}.{tag}"
        hub.add_file(repo, "model.safetensors", safetensors_bytes(native))
        cfgs[f"{TWIN}.{tag}"] = {"hf_hub_id": repo, "first_conv": "conv", "classifier": "fc"}
        first[TWIN][tag], repos[TWIN][repo] = native["conv.weight"], tag
        torch.manual_seed(i)
        ours = zoo.create(SMALL).state_dict()
        record = publish(f"{SMALL}.{tag}", ours)
        first[SMALL][tag] = next(iter(ours.values()))
        repos[SMALL][record.hub.repo_id] = tag
        save_file(ours, str(tmp_path / f"{SMALL}.{tag}.safetensors"))
        save_file(native, str(tmp_path / f"{TWIN}.{tag}.safetensors"))

    host = types.ModuleType("zoo_test_timm_native_models")
    host.default_cfgs = generate_default_cfgs(cfgs)

    def entrypoint(pretrained: bool = False, **kwargs):
        return build_model_with_cfg(_TimmNative, TWIN, pretrained, **kwargs)

    entrypoint.__name__ = TWIN
    entrypoint.__module__ = host.__name__
    monkeypatch.setitem(sys.modules, host.__name__, host)
    timm.models.register_model(entrypoint)
    return first, repos, tmp_path


def _fresh_caches(hub, monkeypatch, root) -> None:
    from tests.hubfixtures import hub_settings, patch_hf_constants

    env = hub_settings(hub, root)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    patch_hf_constants(monkeypatch, env)


def _pretrained_cfg_of(name: str, tag: str, kind: str):
    """The cfg of ``name.tag`` as a user would pass it: timm's registered PretrainedCfg, or the
    dict a model built with that tag holds."""
    from timm.models import PretrainedCfg

    cfg = dict(timm.create_model(f"{name}.{tag}").pretrained_cfg)
    if kind == "dict":
        return cfg
    if kind == "hf-hub":
        return {**cfg, "source": "hf-hub"}
    fields = {f.name for f in dataclasses.fields(PretrainedCfg)}
    return PretrainedCfg(**{k: v for k, v in cfg.items() if k in fields})


# (id, name suffix, pretrained, pretrained_cfg, pretrained_cfg_overlay); "cfg:<kind>:<tag>" is
# _pretrained_cfg_of(model, tag, kind), "repo:<tag>" the tag's Hub repo, "file:<tag>" a local
# safetensors copy of the tag's weights
CALLS = [
    ("plain", "", False, None, None),
    ("plain-pretrained", "", True, None, None),
    ("name-tag", ".b_in1k", True, None, None),
    ("name-tag-not-pretrained", ".b_in1k", False, None, None),
    ("str-tag", "", True, "b_in1k", None),
    ("str-tag-beats-name-tag", ".a_in1k", True, "b_in1k", None),
    ("dict-tag", "", True, "cfg:dict:b_in1k", None),
    ("pretrainedcfg-tag", "", True, "cfg:obj:b_in1k", None),
    ("dict-tag-beats-name-tag", ".a_in1k", True, "cfg:dict:b_in1k", None),
    ("pretrainedcfg-not-pretrained", ".a_in1k", False, "cfg:obj:b_in1k", None),
    ("dict-not-pretrained", "", False, "cfg:dict:b_in1k", None),
    ("hf-hub-source", "", True, "cfg:hf-hub:b_in1k", None),
    ("hf-hub-source-not-pretrained", "", False, "cfg:hf-hub:b_in1k", None),
    ("dict-hub-id", "", True, {"hf_hub_id": "repo:b_in1k"}, None),
    ("overlay-hub-id", ".a_in1k", True, None, {"hf_hub_id": "repo:b_in1k"}),
    ("overlay-file", ".b_in1k", True, None, {"file": "file:a_in1k"}),
    ("overlay-file-not-pretrained", "", False, None, {"file": "file:b_in1k"}),
]


# calls where the model's pretrained_cfg["tag"] may differ (the weights may not)
UNTAGGED_CFG = {"plain", "hf-hub-source", "hf-hub-source-not-pretrained", "overlay-hub-id",
                "overlay-file", "overlay-file-not-pretrained"}


def _resolve(value, name: str, repos: dict[str, str], root):
    if isinstance(value, dict):
        return {k: _resolve(v, name, repos, root) for k, v in value.items()}
    if isinstance(value, str) and value.startswith("cfg:"):
        _, kind, tag = value.split(":")
        return _pretrained_cfg_of(name, tag, kind)
    if isinstance(value, str) and value.startswith("repo:"):
        return next(r for r, t in repos.items() if t == value[5:])
    if isinstance(value, str) and value.startswith("file:"):
        return str(root / f"{name}.{value[5:]}.safetensors")
    return value


def _observe(hub, monkeypatch, root, name, call, first, repos):
    """(tags whose Hub file was downloaded, tag whose weights the model holds, cfg tag) or the
    error's type, for one timm.create_model call on ``name``."""
    key, suffix, pretrained, cfg, overlay = call
    cfg = _resolve(cfg, name, repos, root)
    overlay = _resolve(overlay, name, repos, root)
    _fresh_caches(hub, monkeypatch, root / f"{name}-{key}")
    hub.reset_log()
    try:
        model = timm.create_model(name + suffix, pretrained=pretrained, pretrained_cfg=cfg,
                                  pretrained_cfg_overlay=overlay)
    except Exception as e:  # noqa: BLE001 -- compared with timm's own outcome
        return "error", type(e).__name__
    fetched = sorted({repos.get(r.repo_id, r.repo_id) for r in hub.requests
                      if r.method == "GET" and r.filename and r.status in (200, 206)})
    tensor = next(iter(model.state_dict().values()))
    held = [t for t, w in first.items() if torch.equal(tensor, w)]
    return fetched, held, model.pretrained_cfg.get("tag") or ""


@pytest.mark.parametrize("call", CALLS, ids=[c[0] for c in CALLS])
def test_entry_point_loads_what_timms_own_would(two_tags, hub, monkeypatch, call) -> None:
    first, repos, root = two_tags
    native = _observe(hub, monkeypatch, root, TWIN, call, first[TWIN], repos[TWIN])
    ours = _observe(hub, monkeypatch, root, SMALL, call, first[SMALL], repos[SMALL])
    assert native[0] != "error", f"{call[0]}: not a valid timm call: {native}"
    if call[0] in UNTAGGED_CFG:
        # timm's model carries the cfg of its default tag (no tag was asked for), or of the tag
        # whose registered weights it replaced; zoo's names the registry tag it loaded, if any
        native, ours = native[:2], ours[:2]
    assert ours == native, f"{call[0]}: zoo {ours} != timm's own {native}"
    if not call[2]:
        assert ours[0] == [] and ours[1] == [], "pretrained=False must load nothing"


# -- data config: what timm's data pipeline reads is the spec's --------------------------------------

DATA_FIELDS = ("input_size", "mean", "std", "crop_pct", "crop_mode", "interpolation")


def _data_fields(cfg) -> dict:
    return {k: tuple(cfg[k]) if isinstance(cfg[k], (list, tuple)) else cfg[k] for k in DATA_FIELDS}


@pytest.mark.parametrize("name", zoo.list_models())
def test_pretrained_cfg_and_resolved_data_config_are_the_specs(name: str) -> None:
    """timm.create_model(name).pretrained_cfg, timm.data.resolve_data_config(model=...) and
    timm's registered cfg of every weights tag carry the spec's data config (built with the
    parameters on meta: nothing here depends on weights)."""
    from timm.models import get_pretrained_cfg

    from zoo.loading import parameters_on_meta
    from zoo.registry import registry

    d = zoo.get_spec(name).data
    want = {"input_size": tuple(d.input_size), "mean": tuple(d.mean), "std": tuple(d.std),
            "crop_pct": d.crop_pct, "crop_mode": d.crop_mode, "interpolation": d.interpolation}
    in_timm = name not in timm_plugin.skipped  # else timm's own model of that name
    with parameters_on_meta():
        model = timm.create_model(name) if in_timm else zoo.create(name)
    cfg = model.pretrained_cfg
    assert _data_fields(cfg) == want
    assert (cfg["num_classes"], cfg["first_conv"], cfg["classifier"], cfg["fixed_input_size"]) \
        == (d.num_classes, d.first_conv, d.classifier, d.fixed_input_size)
    assert _data_fields(timm.data.resolve_data_config(model=model)) == want
    tags = registry().tags_of(name) if in_timm else []
    for full in tags or ([name] if in_timm else []):
        registered = get_pretrained_cfg(full).to_dict()
        assert _data_fields(registered) == want, full
        assert _data_fields(timm.data.resolve_data_config(pretrained_cfg=registered)) == want, full


def test_pretrained_cfg_carries_every_data_field() -> None:
    """A spec whose data config differs from timm's defaults in every field (the shipped specs
    share most values, e.g. crop_mode 'center'): each reaches pretrained_cfg and timm's
    resolved data config unchanged."""
    from zoo.build import set_pretrained_cfg

    spec = zoo.get_spec(SMALL)
    data = spec.data.model_copy(update={
        "input_size": (3, 96, 112), "mean": (0.1, 0.2, 0.3), "std": (0.4, 0.5, 0.6),
        "crop_pct": 0.55, "crop_mode": "squash", "interpolation": "nearest",
        "fixed_input_size": True, "num_classes": 7})
    odd = spec.model_copy(update={"data": data})
    want = {"input_size": (3, 96, 112), "mean": (0.1, 0.2, 0.3), "std": (0.4, 0.5, 0.6),
            "crop_pct": 0.55, "crop_mode": "squash", "interpolation": "nearest"}
    model = nn.Identity()
    set_pretrained_cfg(model, odd)
    assert _data_fields(model.pretrained_cfg) == want
    assert model.pretrained_cfg["fixed_input_size"] is True
    assert model.pretrained_cfg["num_classes"] == 7
    assert _data_fields(timm.data.resolve_data_config(model=model)) == want


def test_pretrained_cfg_names_the_paper_licence_and_weights_of_every_tag() -> None:
    """Every registry record's pretrained_cfg: the architecture and tag, the record's licence, its
    Hub file (or none) and source; untagged, the paper's licence; ImageNet-1k class names only
    for 1000-class ImageNet-1k heads."""
    from zoo.pretrained_cfg import pretrained_cfg
    from zoo.registry import registry

    records = registry().records
    assert records
    for full, rec in records.items():
        name, tag = full.split(".", 1)
        spec = zoo.get_spec(name)
        cfg = pretrained_cfg(spec, tag)
        assert (cfg["architecture"], cfg["tag"], cfg["license"], cfg["source_url"]) == \
            (name, tag, rec.license, rec.source.url), full
        hub = (cfg.get("hf_hub_id"), cfg.get("hf_hub_filename"), cfg.get("hf_hub_revision"))
        assert hub == ((rec.hub.repo_id, rec.hub.filename, rec.hub.revision) if rec.hub else (None,) * 3)
    spec = zoo.get_spec("sret_s")
    cfg = pretrained_cfg(spec)
    assert (cfg["tag"], cfg["license"], cfg["paper_ids"], cfg["paper_name"], cfg["origin_url"]) == \
        ("", "MIT", "arXiv:2111.05297", "Sliced Recursive Transformer", "https://github.com/szq0214/SReT")
    assert "source_url" not in cfg and "hf_hub_id" not in cfg
    assert len(cfg["label_names"]) == 1000 and cfg["label_names"][:2] == ("n01440764", "n01443537")
    assert pretrained_cfg(spec, "no_such_tag")["license"] == "MIT"
    no_code = pretrained_cfg(zoo.get_spec("karat_vit_tiny_g3b"))
    assert no_code["origin_url"] == "" and no_code["paper_ids"].startswith("arXiv:")
    no_arxiv = spec.model_copy(update={"paper": spec.paper.model_copy(update={"arxiv": None})})
    assert pretrained_cfg(no_arxiv)["paper_ids"] == ""
    assert "label_names" not in pretrained_cfg(zoo.get_spec("nasnet_a_cifar"))
    ten = spec.model_copy(update={"data": spec.data.model_copy(update={"num_classes": 10})})
    assert "label_names" not in pretrained_cfg(ten)


def test_requested_weights_read_like_timms_own_resolution() -> None:
    """(tag, weights reference) of a timm.create_model call, without any download: the tag's own
    registry record needs no reference; other Hub repos, files and hf-hub sources are references;
    state dicts, URLs and other files of a Hub repo are refused with what to do instead."""
    from timm.models import PretrainedCfg

    from zoo.errors import WeightsError
    from zoo.timm_plugin import _requested

    name, own = "nasnet_a_large", "timm/nasnetalarge.tf_in1k"
    assert _requested(name, None, None) == (None, None)
    assert _requested(name, "", None) == (None, None)
    assert _requested(name, "tf_in1k", None) == ("tf_in1k", None)
    assert _requested(name, {"tag": "tf_in1k", "hf_hub_id": own}, None) == ("tf_in1k", None)
    assert _requested(name, PretrainedCfg(tag="tf_in1k", hf_hub_id=own,
                                          hf_hub_filename="model.safetensors"), None) == ("tf_in1k", None)
    assert _requested(name, None, {"hf_hub_id": own}) == (None, None)  # the default tag's record
    assert _requested(name, {"tag": "tf_in1k", "hf_hub_id": "org/other"}, None) == \
        ("tf_in1k", "hf-hub:org/other")
    assert _requested(name, {"hf_hub_id": "org/other", "hf_hub_filename": "model.safetensors"},
                      None) == (None, "hf-hub:org/other")
    assert _requested(name, {"tag": "tf_in1k", "hf_hub_id": own, "source": "hf-hub"}, None) == \
        ("tf_in1k", f"hf-hub:{own}")
    assert _requested(name, {"tag": "t", "hf_hub_id": own, "file": "/w.safetensors"}, None) == \
        ("t", "/w.safetensors")
    assert _requested(name, "tf_in1k", {"file": "/w.safetensors"}) == ("tf_in1k", "/w.safetensors")
    refusals = [
        ({"state_dict": {"a": 1}}, f"{name}: a state_dict inside pretrained_cfg is not loaded by zoo; "
                                   "build the model, then call model.load_state_dict(state_dict)"),
        ({"url": "https://example.org/w.pth"}, f"{name}: pretrained_cfg names the URL "
                                               "https://example.org/w.pth; zoo downloads weights only "
                                               "from the Hub (hf_hub_id) or its registry tags"),
        ({"hf_hub_id": "org/other", "hf_hub_filename": "w.bin"},
         f"{name}: pretrained_cfg names org/other/w.bin, which is not a weights record of zoo's "
         "registry; zoo loads other Hub repos only from their model.safetensors "
         "(weights='hf-hub:org/other')"),
        ({"tag": "tf_in1k", "hf_hub_id": own, "hf_hub_filename": "pytorch_model.bin"},
         f"{name}: pretrained_cfg names {own}/pytorch_model.bin, which is not a weights record of "
         f"zoo's registry; zoo loads other Hub repos only from their model.safetensors "
         f"(weights='hf-hub:{own}')"),
    ]
    for cfg, message in refusals:
        with pytest.raises(WeightsError) as err:
            _requested(name, cfg, None)
        assert str(err.value) == message
    with pytest.raises(WeightsError, match="a state_dict inside pretrained_cfg"):
        _requested(name, "tf_in1k", {"state_dict": {"a": 1}})


def test_timm_registers_each_tag_with_its_own_weights_and_licence() -> None:
    """timm's registered cfg of every zoo model: one per registry tag (Hub file named only where
    the record has one; a convertible source is a tag without weights), else one untagged cfg."""
    from timm.models import get_pretrained_cfg

    from zoo.registry import registry

    checked_hub = checked_source = checked_untagged = 0
    for name in timm.list_models(module="zoo"):
        tags = registry().tags_of(name)
        assert sorted(timm.list_models(name, include_tags=True, pretrained=True)) == \
            sorted(t for t in tags if registry().records[t].hub is not None)
        for full in tags:
            rec, cfg = registry().records[full], get_pretrained_cfg(full)
            assert cfg.tag == full.split(".", 1)[1] and cfg.license == rec.license, full
            _assert_timm_cfg_is_zoos(cfg, name, cfg.tag)
            if rec.hub is None:
                assert not cfg.hf_hub_id and not cfg.hf_hub_filename, full
                checked_source += 1
            else:
                assert (cfg.hf_hub_id, cfg.hf_hub_filename) == (rec.hub.repo_id, rec.hub.filename), full
                checked_hub += 1
        if not tags:
            cfg = get_pretrained_cfg(name)
            assert not cfg.tag and not cfg.hf_hub_id and cfg.num_classes == zoo.get_spec(name).data.num_classes
            _assert_timm_cfg_is_zoos(cfg, name, None)
            checked_untagged += 1
    assert checked_hub and checked_source and checked_untagged


def _assert_timm_cfg_is_zoos(cfg, name: str, tag: str | None) -> None:
    """timm's registered cfg holds every field of zoo's ``pretrained_cfg`` that timm's
    ``PretrainedCfg`` has (the paper, the origin, the data config, the Hub file), as zoo's."""
    import dataclasses

    from timm.models import PretrainedCfg

    from zoo.pretrained_cfg import pretrained_cfg

    ours = pretrained_cfg(zoo.get_spec(name), tag)
    shared = {f.name for f in dataclasses.fields(PretrainedCfg)} & set(ours)
    assert {"paper_name", "origin_url", "mean", "input_size", "license"} <= shared
    assert cfg.architecture == name and (cfg.tag or None) == tag
    for key in shared - {"architecture", "tag"}:
        assert getattr(cfg, key) == ours[key], (name, tag, key)


# -- self-describing Hub repos' timm names (timm.create_model("hf-hub:org/repo")) -------------------

HUB_BASE = "simplenetv1_small_m1_05"
COMMIT_A, COMMIT_B = "a" * 40, "b" * 40


@pytest.fixture
def timm_registry_restored():
    """timm's registry and the plug-in's record of repo names as they were before the test."""
    from timm.models import _registry

    kept = {k: copy.deepcopy(v) for k, v in vars(_registry).items()
            if k.startswith("_model") or k.startswith("_module")}
    hub_names = dict(timm_plugin._hub_names)
    host = timm_plugin._host_module(timm_plugin._HUB_HOST)
    cfgs = dict(host.default_cfgs)
    yield
    for k, v in kept.items():
        setattr(_registry, k, v)
    timm_plugin._hub_names.clear()
    timm_plugin._hub_names.update(hub_names)
    host.default_cfgs.clear()
    host.default_cfgs.update(cfgs)


def _repo(spec, repo_id: str, revision: str = COMMIT_A):
    from zoo.weights.remote import HubModel

    return HubModel(repo_id=repo_id, revision=revision, spec=spec, config=None)


def _edited(name: str = HUB_BASE, drop_rate: float = 0.3, new_name: str | None = None):
    spec = zoo.get_spec(name)
    arch = spec.arch.model_copy(update={"drop_rate": drop_rate})
    return spec.model_copy(update={"arch": arch, "name": new_name or name})


def test_a_repo_holding_a_catalog_spec_unchanged_is_the_catalog_model(timm_registry_restored) -> None:
    assert timm_plugin._hub_name(_repo(zoo.get_spec(HUB_BASE), "Org/Copy")) == HUB_BASE
    assert HUB_BASE not in timm_plugin._hub_names


def test_repo_names_never_shadow_and_stay_stable(timm_registry_restored) -> None:
    """A repo's edited catalog spec gets ``<name>__<repo slug>``; the same spec again the same
    name; another spec under that slug ``..._<8 hex of sha256(repo@rev)>``; a name in neither
    timm nor the catalog is taken as it is.  Each registered name builds through zoo from its
    repo, under timm's module ``zoo_hub``, with the repo's pinned snapshot as its Hub id."""
    import hashlib

    from timm.models import get_pretrained_cfg, is_model, model_entrypoint
    from timm.models._registry import _model_to_module

    edited = _edited()
    name = timm_plugin._hub_name(_repo(edited, "My-Org/Net.V2"))
    assert name == f"{HUB_BASE}__my_org_net_v2"
    assert is_model(name) and _model_to_module[name] == "zoo_hub"
    assert timm_plugin._hub_names[name] == edited.model_dump(mode="json")
    cfg = get_pretrained_cfg(name).to_dict()
    assert cfg["hf_hub_id"] == f"My-Org/Net.V2@{COMMIT_A}"
    assert cfg["num_classes"] == 1000 and cfg["input_size"] == edited.data.input_size
    # timm sets the registered name as the architecture; the repo has no tag; the paper is
    # the one the repo's spec names
    assert (cfg["architecture"], cfg.get("tag")) == (name, None)
    assert cfg["paper_name"] == edited.paper.title
    catalog_cfg = get_pretrained_cfg(HUB_BASE).to_dict()
    assert (cfg["license"], cfg["origin_url"]) == (catalog_cfg["license"], catalog_cfg["origin_url"])
    fn = model_entrypoint(name)
    assert fn.__name__ == name and fn.__module__ == timm_plugin._HUB_HOST
    assert fn.__doc__ == f"zoo model {name} from the self-describing Hub repo hf-hub:My-Org/Net.V2@{COMMIT_A}."

    # the same spec from the same repo (another snapshot): the same name, nothing new registered
    assert timm_plugin._hub_name(_repo(_edited(), "My-Org/Net.V2", COMMIT_B)) == name
    # another spec under the same slug: the digest of repo@revision tells them apart
    other = timm_plugin._hub_name(_repo(_edited(drop_rate=0.4), "my_org/net_v2", COMMIT_B))
    digest = hashlib.sha256(f"my_org/net_v2@{COMMIT_B}".encode()).hexdigest()[:8]
    assert other == f"{HUB_BASE}__my_org_net_v2_{digest}" and len(digest) == 8
    assert get_pretrained_cfg(other).hf_hub_id == f"my_org/net_v2@{COMMIT_B}"
    # a third spec there: every candidate name is taken
    with pytest.raises(RuntimeError) as e:
        timm_plugin._hub_name(_repo(_edited(drop_rate=0.5), "my_org/net_v2", COMMIT_B))
    assert str(e.value) == f"zoo: no free timm name for hf-hub:my_org/net_v2@{COMMIT_B}"

    # a name in no catalog and not timm's: itself
    fresh = _edited(new_name="zoo_test_unlisted_net")
    assert timm_plugin._hub_name(_repo(fresh, "org/unlisted")) == "zoo_test_unlisted_net"
    # a timm built-in's name: never taken over
    clash = timm_plugin._hub_name(_repo(_edited(new_name="resnet18"), "org/clash"))
    assert clash == "resnet18__org_clash"
    assert model_entrypoint("resnet18").__module__.startswith("timm.")


def test_a_registered_catalog_name_is_not_reused_for_an_edited_spec(timm_registry_restored,
                                                                    monkeypatch) -> None:
    """The catalog's name is the repo's only while the catalog model is registered in timm and
    the specs agree; a catalog model that timm does not have registered still keeps its name."""
    monkeypatch.setattr(timm_plugin, "_registered", timm_plugin._registered - {HUB_BASE})
    name = timm_plugin._hub_name(_repo(zoo.get_spec(HUB_BASE), "org/unregistered"))
    assert name == f"{HUB_BASE}__org_unregistered"


def test_hub_entry_point_builds_from_the_repo_timm_passes(monkeypatch) -> None:
    """The entry point builds through zoo.create from the Hub id of the pretrained_cfg timm
    passes (a dict or timm's PretrainedCfg), else from the repo it was registered for."""
    from timm.models import PretrainedCfg

    import zoo.build

    calls = []
    monkeypatch.setattr(zoo.build, "create",
                        lambda target, **kw: calls.append((target, kw)) or "model")
    fn = timm_plugin._hub_entrypoint("net__org_repo", "hf-hub:org/repo@" + COMMIT_A)
    assert fn(pretrained=True, pretrained_model_args={"x": 1}, drop_rate=0.1) == "model"
    assert calls.pop() == ("hf-hub:org/repo@" + COMMIT_A, {"pretrained": True, "drop_rate": 0.1})
    fn(pretrained_cfg={"source": "hf-hub", "hf_hub_id": "org/other@" + COMMIT_B})
    assert calls.pop() == ("hf-hub:org/other@" + COMMIT_B, {"pretrained": False})
    fn(pretrained_cfg=PretrainedCfg(source="hf-hub", hf_hub_id="org/third"), num_classes=3)
    assert calls.pop() == ("hf-hub:org/third", {"pretrained": False, "num_classes": 3})
    for cfg in ({"source": "url", "hf_hub_id": "org/x"}, {"source": "hf-hub"}, "some_tag"):
        fn(pretrained_cfg=cfg)
        assert calls.pop()[0] == "hf-hub:org/repo@" + COMMIT_A


def test_register_new_registers_the_names_given_past_those_it_skips(timm_registry_restored,
                                                                   monkeypatch) -> None:
    """``register_new(names)`` registers exactly those names: one already registered, a timm
    built-in's name and a name that fails are skipped (each with its reason, a failure warned
    about), and the names after them still register; other catalog names are left alone."""
    from timm.models import _registry, is_model

    registered = sorted(timm_plugin._registered)
    done, again, untouched = registered[0], registered[1], registered[2]
    monkeypatch.setattr(timm_plugin, "_registered", set(registered) - {again, untouched})
    monkeypatch.setattr(timm_plugin, "skipped", {})
    for name in (again, untouched):
        _registry._model_entrypoints.pop(name)
    with pytest.warns(UserWarning, match="zoo: zoo_no_such_net not registered in timm: "
                                         "UnknownModelError: "):
        timm_plugin.register_new([done, "resnet18", "zoo_no_such_net", again])
    assert is_model(again) and again in timm_plugin._registered
    assert not is_model(untouched) and untouched not in timm_plugin._registered
    assert timm_plugin.skipped["resnet18"] == "timm has a built-in model of this name"
    assert timm_plugin.skipped["zoo_no_such_net"].startswith("UnknownModelError: ")
    assert set(timm_plugin.skipped) == {"resnet18", "zoo_no_such_net"}


def test_register_new_waits_for_timm(monkeypatch) -> None:
    """Before timm is imported, or while it is half imported (no ``create_model`` yet),
    ``register_new`` does nothing (the import hook calls it once timm is complete)."""
    import types

    monkeypatch.delitem(sys.modules, "timm")
    assert timm_plugin.register_new() is None
    monkeypatch.setitem(sys.modules, "timm", types.ModuleType("timm"))
    assert timm_plugin.register_new() is None


def test_timms_hub_config_loader_answers_for_zoo_repos_only(hub, tmp_path, monkeypatch,
                                                           timm_registry_restored) -> None:
    """timm.create_model("hf-hub:...") asks ``load_model_config_from_hf`` for the repo's
    config: zoo's wrapper (installed once) answers for repos zoo wrote (a zoo name, the config's
    pretrained_cfg pinned to the snapshot), hands other repos and missing ones to timm's own
    loader, and refuses a hostile server's answer before timm sees anything."""
    import json

    import timm.models._factory as factory

    from tests.util import random_eval_model
    from zoo.errors import HubResponseError

    loader = factory.load_model_config_from_hf
    original = loader._zoo_original
    assert loader._zoo_wrapped and not getattr(original, "_zoo_wrapped", False)
    timm_plugin._install_hub_loader()  # idempotent
    assert factory.load_model_config_from_hf is loader

    folder = zoo.save_pretrained(random_eval_model(HUB_BASE), tmp_path / "zoo")
    config = json.loads((folder / "config.json").read_text())
    files = {n: (folder / n).read_bytes() for n in ("model.safetensors", "config.json")}
    commit = hub.commit("user/zoo-net", files)
    cfg, name, kwargs = loader("user/zoo-net")
    assert (name, kwargs) == (HUB_BASE, {})  # the catalog's spec, unchanged: its own name
    assert cfg == {**config["pretrained_cfg"], "architecture": HUB_BASE, "source": "hf-hub",
                   "hf_hub_id": f"user/zoo-net@{commit}", "num_classes": config["num_classes"]}

    edited = dict(config, num_classes=7)
    edited["zoo"] = dict(config["zoo"], spec=_edited(drop_rate=0.25).model_dump(mode="json"))
    edited_commit = hub.commit("user/edited", {**files, "config.json": json.dumps(edited).encode()})
    cfg, name, _ = loader("user/edited@" + edited_commit)
    assert name == f"{HUB_BASE}__user_edited" and cfg["num_classes"] == 7
    assert cfg["hf_hub_id"] == f"user/edited@{edited_commit}" and cfg["architecture"] == name

    catalog_by_timm = {"architecture": HUB_BASE, "num_classes": 7, "model_args": {"num_classes": 7},
                       "pretrained_cfg": {"input_size": [3, 64, 64]}}  # timm's push_to_hf_hub
    hub.commit("user/timm-zoo-net", {"config.json": json.dumps(catalog_by_timm).encode()})
    model = timm.create_model("hf-hub:user/timm-zoo-net")  # timm passes pretrained_model_args
    assert isinstance(model, type(zoo.create(HUB_BASE))) and model.num_classes == 7

    timm_config = {"architecture": "resnet18", "num_classes": 5,
                   "pretrained_cfg": {"input_size": [3, 160, 160]}}
    hub.commit("user/timm-net", {"config.json": json.dumps(timm_config).encode()})
    cfg, name, _ = loader("user/timm-net")  # timm's own reading of its own format
    assert name == "resnet18" and cfg["num_classes"] == 5 and cfg["input_size"] == [3, 160, 160]
    assert (cfg, name) == original("user/timm-net")[:2]

    # timm's own loader gets timm's own arguments (its cache_dir, given either way)
    for i, call in enumerate((lambda d: loader("user/timm-net", d),
                              lambda d: loader("user/timm-net", cache_dir=d))):
        cache = tmp_path / f"timm-cache-{i}"
        assert call(str(cache))[1] == "resnet18"
        assert (cache / "models--user--timm-net").is_dir()

    # offline, a repo that only timm's own cache_dir holds (zoo's cache does not): timm's loader
    # finds it there
    hub.commit("user/timm-offline", {"config.json": json.dumps(timm_config).encode()})
    own_cache = str(tmp_path / "timm-own-cache")
    original("user/timm-offline", cache_dir=own_cache)
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for call in (lambda: loader("user/timm-offline", own_cache),
                 lambda: loader("user/timm-offline", cache_dir=own_cache)):
        assert call()[1] == "resnet18"
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE")

    # the revision asked for is the one read: a zoo config at the head, timm's before it
    first = hub.commit("user/mixed", {"config.json": json.dumps(timm_config).encode()})
    hub.commit("user/mixed", files)
    assert loader(f"user/mixed@{first}")[1] == "resnet18"
    assert loader("user/mixed")[1] == HUB_BASE

    with pytest.raises(Exception) as missing:  # timm's own error for a repo that is not there
        loader("user/absent")
    assert not isinstance(missing.value, zoo.errors.ZooError)
    assert "user/absent" in str(missing.value)

    hub.hostile("user/zoo-net", "config.json", headers={"X-Repo-Commit": "../../evil"})
    with pytest.raises(HubResponseError):
        loader("user/zoo-net@main")


def test_entry_points_default_to_no_weights_and_share_one_host_module() -> None:
    """Called directly, as timm's own model functions, an entry point builds without weights
    unless asked; every zoo entry point lives in one generated module, reused."""
    import inspect

    from timm.models import model_entrypoint

    fn = model_entrypoint(HUB_BASE)
    assert inspect.signature(fn).parameters["pretrained"].default is False
    assert fn().training  # random init: timm's training mode
    host = timm_plugin._host_module()
    assert host is timm_plugin._host_module() is sys.modules[timm_plugin._HOST]
    assert host.__name__ == timm_plugin._HOST
    assert host.__doc__.startswith("timm entry points of zoo models")
    assert fn.__module__ == timm_plugin._HOST and HUB_BASE in host.default_cfgs
    assert f"zoo info {HUB_BASE}" in fn.__doc__  # help(fn) says where the model comes from
