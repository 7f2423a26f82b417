"""zoo.create: overrides, adaptation, weights from folders, the meta-device fast path."""
from __future__ import annotations

import json
import logging

import pytest
import torch

import zoo
from zoo.build import build_model
from zoo.loading import parameters_on_meta
from zoo.errors import (SpecError, StateDictMismatchError, UnknownArgumentError,
                        UnknownModelError, WeightsNotPublishedError)

NAME = "simplenetv1_small_m1_05"


def test_arch_overrides_are_validated() -> None:
    model = zoo.create(NAME, drop_rate=0.2)
    assert model.head.drop.p == 0.2
    with pytest.raises(SpecError, match="drop_rate"):
        zoo.create(NAME, drop_rate=2.0)
    # an unknown argument is a TypeError, as for any Python callable (timm's tests expect it)
    with pytest.raises(UnknownArgumentError, match="no_such_field") as err:
        zoo.create(NAME, no_such_field=1)
    assert isinstance(err.value, TypeError)


def test_num_classes_and_in_chans_without_weights() -> None:
    model = zoo.create(NAME, num_classes=0, in_chans=1)
    assert model(torch.randn(2, 1, 64, 64)).shape == (2, model.num_features)
    assert model.pretrained_cfg["num_classes"] == 0
    assert tuple(model.pretrained_cfg["input_size"]) == (1, 224, 224)


def test_save_pretrained_round_trip(tmp_path) -> None:
    model = zoo.create(NAME).eval()
    zoo.save_pretrained(model, tmp_path / "out")
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"model.safetensors", "config.json",
                                                               "README.md"}
    again = zoo.create(NAME, weights=tmp_path / "out")
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(model(x), again(x))
    card = (tmp_path / "out" / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: timm") and "license: mit" in card


def test_pretrained_weights_adapt_head_and_input(tmp_path) -> None:
    model = zoo.create(NAME).eval()
    zoo.save_pretrained(model, tmp_path)
    adapted = zoo.create(NAME, weights=tmp_path, num_classes=3, in_chans=1).eval()
    assert adapted.get_classifier().out_features == 3
    sd, src = adapted.state_dict(), model.state_dict()
    torch.testing.assert_close(sd["features.0.weight"], src["features.0.weight"].sum(1, keepdim=True))
    assert torch.equal(sd["features.1.running_var"], src["features.1.running_var"])
    assert all(not t.is_meta for t in sd.values())
    with torch.no_grad():
        assert adapted(torch.randn(1, 1, 224, 224)).shape == (1, 3)


def test_saved_num_classes_is_restored(tmp_path) -> None:
    model = zoo.create(NAME, num_classes=7)
    zoo.save_pretrained(model, tmp_path)
    assert zoo.create(NAME, weights=tmp_path).get_classifier().out_features == 7


def test_wrong_weights_are_refused_whole(tmp_path) -> None:
    from safetensors.torch import save_file

    other = zoo.create("simplenetv1_small_m1_075")
    zoo.save_pretrained(other, tmp_path / "saved")
    with pytest.raises(StateDictMismatchError, match="holds weights of simplenetv1_small_m1_075"):
        zoo.create(NAME, weights=tmp_path / "saved")
    save_file(other.state_dict(), str(tmp_path / "bare.safetensors"))  # no zoo metadata
    with pytest.raises(StateDictMismatchError, match="wrong shapes") as info:
        zoo.create(NAME, weights=tmp_path / "bare.safetensors")
    assert "features.0.weight: checkpoint (48, 3, 3, 3) vs model (32, 3, 3, 3)" in str(info.value)


def test_parameters_on_meta_skips_initialization() -> None:
    calls = []
    original = torch.nn.init.xavier_uniform_

    def spy(t, *a, **k):
        calls.append(t.device.type)
        return original(t, *a, **k)

    torch.nn.init.xavier_uniform_ = spy
    try:
        with parameters_on_meta():
            model = build_model(zoo.get_spec(NAME))
    finally:
        torch.nn.init.xavier_uniform_ = original
    assert calls and set(calls) == {"meta"}
    assert all(p.is_meta for p in model.parameters())
    assert not any(b.is_meta for b in model.buffers())


def test_convertible_source_explains_how_to_convert() -> None:
    with pytest.raises(WeightsNotPublishedError) as info:
        zoo.create("simplenetv1_5m_m1", pretrained=True)
    text = str(info.value)
    assert "releases/download/v1.0.0/simplenetv1_5m_m1-36c4ca4d.pth" in text
    assert "zoo convert simplenetv1_5m_m1.in1k" in text


def test_unknown_tag() -> None:
    with pytest.raises(UnknownModelError, match="simplenetv1_5m_m1.in1k"):
        zoo.create("simplenetv1_5m_m1.in22k", pretrained=True)


def test_convert_checkpoint_maps_upstream_layout() -> None:
    upstream = {"module.features.0.weight": torch.zeros(1), "classifier.weight": torch.ones(1),
                "classifier.bias": torch.ones(1)}
    out = zoo.convert_checkpoint(NAME, upstream)
    assert set(out) == {"features.0.weight", "head.fc.weight", "head.fc.bias"}


def test_adaptation_is_logged(tmp_path, caplog) -> None:
    zoo.save_pretrained(zoo.create(NAME), tmp_path)
    with caplog.at_level(logging.INFO, logger="zoo"):
        zoo.create(NAME, weights=tmp_path, num_classes=3, in_chans=1)
    assert [r.getMessage() for r in caplog.records if r.name.startswith("zoo")] == [
        f"{NAME}: classifier head.fc dropped for num_classes=3 (freshly initialized)",
        f"{NAME}: first conv features.0.weight adapted from 3 to 1 input channels"]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="zoo"):
        zoo.create(NAME, weights=tmp_path)  # nothing adapted, nothing said
    assert "dropped" not in caplog.text and "adapted" not in caplog.text


def test_model_card_front_matter(tmp_path) -> None:
    import yaml

    model = zoo.create(NAME)
    zoo.save_pretrained(model, tmp_path, metrics={"top1": 61.1, "top5": 82.9,
                                                  "dataset": "imagenet-1k"})
    card = (tmp_path / "README.md").read_text()
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["library_name"] == "timm" and front["license"] == "mit"
    assert {"image-classification", "timm", "simplenet"} <= set(front["tags"])
    (entry,) = front["model-index"]
    assert entry["name"] == NAME
    metrics = {m["name"]: m["value"] for m in entry["results"][0]["metrics"]}
    assert metrics == {"top-1": 61.1, "top-5": 82.9}
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["architecture"] == NAME and config["num_classes"] == 1000
    assert config["num_features"] == model.num_features
    cfg = config["pretrained_cfg"]
    assert cfg["input_size"] == [3, 224, 224] and cfg["classifier"] == "head.fc"
    assert cfg["first_conv"] == "features.0" and cfg["interpolation"] == "bicubic"


def test_device_and_dtype(tmp_path) -> None:
    model = zoo.create(NAME, dtype=torch.float64, device="cpu")
    assert {p.dtype for p in model.parameters()} == {torch.float64}
    zoo.save_pretrained(zoo.create(NAME), tmp_path)
    loaded = zoo.create(NAME, weights=tmp_path, dtype=torch.bfloat16)
    assert {p.dtype for p in loaded.parameters()} == {torch.bfloat16}
    assert not loaded.training  # weights loaded: ready for inference
    with torch.no_grad():
        assert loaded(torch.randn(1, 3, 64, 64, dtype=torch.bfloat16)).dtype == torch.bfloat16


@pytest.mark.parametrize("weights", ["hubtest", f"{NAME}.hubtest"])
def test_weights_takes_a_registry_tag(publish, weights: str) -> None:
    """``weights=`` names a registry tag (bare or with the model name) as well as a location."""
    torch.manual_seed(3)
    source = zoo.create(NAME).eval()
    record = publish(f"{NAME}.hubtest", source.state_dict())
    model = zoo.create(NAME, weights=weights)
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in source.state_dict().items())
    assert model.pretrained_cfg["tag"] == "hubtest"
    assert model.pretrained_cfg["hf_hub_revision"] == record.hub.revision


def test_materialize_initializes_what_was_built_on_meta() -> None:
    import torch
    from torch import nn

    from zoo.loading import materialize

    with torch.device("meta"):
        head = nn.Sequential(nn.Linear(64, 10), nn.BatchNorm1d(10))
    materialize(head)
    lin, bn = head
    bound = 1 / 64 ** 0.5  # nn.Linear.reset_parameters: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert lin.weight.device.type == "cpu" and lin.weight.abs().max() <= bound
    assert lin.weight.std() > bound / 4
    assert torch.equal(bn.weight, torch.ones(10)) and torch.equal(bn.running_var, torch.ones(10))
    assert torch.equal(bn.running_mean, torch.zeros(10))


def test_meta_building_is_thread_safe_and_leaves_nothing_patched() -> None:
    """Concurrent pretrained builds (``zoo mirror --jobs``) each get meta parameters; a thread
    outside the block gets real ones meanwhile; afterwards nn.Module is as it was."""
    import threading

    import torch
    from torch import nn

    from zoo.loading import parameters_on_meta

    original = nn.Module.register_parameter
    inside, release = threading.Barrier(5), threading.Event()
    devices: dict[str, str] = {}

    def build_on_meta(i: int) -> None:
        with parameters_on_meta():
            inside.wait()
            devices[f"meta{i}"] = nn.Linear(2, 2).weight.device.type
            release.wait(10)
            devices[f"late{i}"] = nn.Linear(2, 2).weight.device.type

    threads = [threading.Thread(target=build_on_meta, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    inside.wait()
    # while four threads are inside: this thread, and a new one that never entered the block
    devices["outside"] = nn.Linear(2, 2).weight.device.type
    fresh = threading.Thread(
        target=lambda: devices.__setitem__("fresh", nn.Linear(2, 2).weight.device.type))
    fresh.start()
    fresh.join(10)
    release.set()
    for t in threads:
        t.join(10)
    assert devices.pop("outside") == "cpu" and devices.pop("fresh") == "cpu"
    assert set(devices.values()) == {"meta"} and len(devices) == 8
    assert nn.Module.register_parameter is original
    assert torch.empty(1).device.type == "cpu" and nn.Linear(2, 2).weight.device.type == "cpu"


def test_unknown_arguments_named_with_suggestions_and_what_is_taken() -> None:
    from zoo.build import CREATE_ARGS

    spec = zoo.get_spec(NAME)
    fields = sorted(type(spec.arch).model_fields)
    with pytest.raises(UnknownArgumentError) as err:
        zoo.create(NAME, drop_rat=0.1, num_clases=3, zzz=1)
    assert str(err.value) == (
        f"zoo.create({NAME!r}): unknown argument 'drop_rat' (did you mean drop_rate?), 'num_clases' "
        f"(did you mean num_classes?), 'zzz'; it takes {', '.join(CREATE_ARGS)} and the simplenet "
        f"architecture's fields ({', '.join(fields)})")


def test_adapt_state_dict_drops_only_the_classifier_and_needs_the_first_conv() -> None:
    from zoo.build import adapt_state_dict
    from zoo.errors import StateDictMismatchError

    spec = zoo.get_spec(NAME)
    head = spec.data.classifiers[0]
    sd = {f"{head}.weight": torch.ones(1), f"{head}.bias": torch.ones(1), f"{head}x.weight": torch.ones(1),
          f"{spec.data.first_conv}.weight": torch.ones(2, 3, 1, 1)}
    same = adapt_state_dict(spec, sd, num_classes=spec.data.num_classes, in_chans=3)
    assert same == sd and same is not sd
    out = adapt_state_dict(spec, sd, num_classes=7, in_chans=3)
    assert sorted(out) == sorted([f"{head}x.weight", f"{spec.data.first_conv}.weight"])
    out = adapt_state_dict(spec, sd, num_classes=spec.data.num_classes, in_chans=1)
    assert out[f"{spec.data.first_conv}.weight"].shape == (2, 1, 1, 1)
    with pytest.raises(StateDictMismatchError) as err:
        adapt_state_dict(spec, {}, num_classes=spec.data.num_classes, in_chans=1)
    assert str(err.value) == (f"{NAME}: first_conv weight '{spec.data.first_conv}.weight' not in "
                              "checkpoint")


@pytest.mark.parametrize("img_size", [-3, 0, (0, 64), (64,), (64, 64, 3), "big", 2.5, True, (64.0, 64),
                                      16385])
@pytest.mark.parametrize("name", ["gcr_deit3_small_d8", NAME])
def test_bad_img_size_is_a_spec_error_before_anything_is_resized(img_size, name: str) -> None:
    with pytest.raises(SpecError) as err:
        zoo.create(name, img_size=img_size, device="meta")
    assert str(err.value) == ("img_size must be a side or (height, width) in whole pixels from 1 to "
                              f"16384, got {img_size!r} (model {name!r})")


def test_a_classifier_the_model_lacks_is_passed_over_not_the_end() -> None:
    """With num_classes changed, every classifier the spec names that the model has is built for
    real on a meta-built model, also after one it does not have (a spec naming a distillation
    head of a variant built without it)."""
    from zoo.build import _materialize_classifier

    spec = zoo.get_spec("simplenetv1_small_m1_05")
    head = spec.data.classifiers[0]
    spec = spec.model_copy(update={"data": spec.data.model_copy(
        update={"classifier": ("head_dist", head)})})
    model = build_model(spec, meta=True)
    assert model.get_submodule(head).weight.is_meta
    _materialize_classifier(model, spec)
    assert not model.get_submodule(head).weight.is_meta
    assert torch.isfinite(model.get_submodule(head).weight).all()


def test_features_only_arguments_of_create() -> None:
    """``features_only`` with ``out_indices`` / ``feature_cls`` given directly or in
    ``feature_cfg`` (the direct ones win), as timm's create_model passes them."""
    from timm.models._features import FeatureGetterNet, FeatureHookNet

    x = torch.randn(1, 3, 64, 64)
    levels = len(zoo.create(NAME).feature_info)
    every = zoo.create(NAME, features_only=True)
    assert isinstance(every, FeatureGetterNet) and len(every(x)) == levels
    two = zoo.create(NAME, features_only=True, out_indices=(0, 1), feature_cls="hook")
    assert isinstance(two, FeatureHookNet) and len(two(x)) == 2
    by_cfg = zoo.create(NAME, features_only=True, feature_cfg={"out_indices": (1,),
                                                                "feature_cls": "hook"})
    assert isinstance(by_cfg, FeatureHookNet) and len(by_cfg(x)) == 1
    direct_wins = zoo.create(NAME, features_only=True, out_indices=(0, 1, 2),
                             feature_cfg={"out_indices": (1,)})
    assert len(direct_wins(x)) == 3
    assert not isinstance(zoo.create(NAME, features_only=False, out_indices=(1,)),
                          FeatureGetterNet)


def test_in_chans_alone_changes_the_first_conv() -> None:
    model = zoo.create(NAME, in_chans=1).eval()
    assert model.in_chans == 1 and model.pretrained_cfg["input_size"][0] == 1
    with torch.no_grad():
        assert model(torch.randn(1, 1, 64, 64)).shape == (1, 1000)


def test_packed_weights_refuse_a_new_head_or_input(tmp_path) -> None:
    """A packed (deployable) OFQ folder holds integer codes: it cannot be adapted to another
    num_classes or in_chans, and says to load the latent weights."""
    name = next(n for n in zoo.list_models() if zoo.get_spec(n).family == "ofq")
    zoo.save_pretrained(zoo.create(name), tmp_path / "packed", packed=True)
    message = ("packed (deployable) weights cannot be adapted to a new num_classes/in_chans; "
               "load the latent weights instead")
    for change in ({"num_classes": 10}, {"in_chans": 1}):
        with pytest.raises(StateDictMismatchError) as err:
            zoo.create(name, weights=str(tmp_path / "packed"), **change)
        assert str(err.value) == message


def test_packed_weights_under_a_registry_tag_carry_it(publish) -> None:
    """A registry tag whose file is a packed (deployable) OFQ model loads the packed model,
    and its ``pretrained_cfg`` names that tag and the pinned revision, as latent weights do."""
    name = next(n for n in zoo.list_models() if zoo.get_spec(n).family == "ofq")
    torch.manual_seed(5)
    source = zoo.create(name).eval()
    record = publish(f"{name}.hubpacked", source.packed_state_dict(), layout="packed")
    model = zoo.create(f"{name}.hubpacked", pretrained=True)
    assert model.packed and not model.training
    assert model.pretrained_cfg["tag"] == "hubpacked"
    assert model.pretrained_cfg["hf_hub_revision"] == record.hub.revision
    x = torch.randn(1, *zoo.get_spec(name).data.input_size)
    with torch.no_grad():
        assert torch.allclose(model(x), source(x), atol=1e-5)


def test_suggestions_are_the_close_names_joined_by_or() -> None:
    """Up to three names at least 70% alike (difflib's ratio), best first, joined by 'or'."""
    with pytest.raises(UnknownArgumentError) as err:
        zoo.create(NAME, num_class=3)
    assert "'num_class' (did you mean num_classes?)" in str(err.value)
    with pytest.raises(UnknownArgumentError) as err:
        zoo.create(NAME, eatures_only=True)  # feature_cls/_cfg are only 0.6-0.7 alike
    assert "'eatures_only' (did you mean features_only?);" in str(err.value)
    with pytest.raises(UnknownArgumentError) as err:
        zoo.create(NAME, feature=1)  # features_only and feature_cls/_cfg: three of four
    assert "'feature' (did you mean feature_cls or feature_cfg or features_only?);" in str(err.value)


def test_a_self_describing_repo_gives_its_weights_only_when_pretrained(hub, tmp_path) -> None:
    """``zoo.create("hf-hub:org/repo")`` builds the repo's spec with fresh weights;
    ``pretrained=True`` loads the weights of the same snapshot; explicit ``weights=`` win."""
    from tests.util import random_eval_model

    saved = random_eval_model(NAME)
    folder = zoo.save_pretrained(saved, tmp_path / "saved")
    files = {n: (folder / n).read_bytes() for n in ("model.safetensors", "config.json")}
    hub.commit("user/net", files)
    other = zoo.save_pretrained(random_eval_model(NAME, seed=1), tmp_path / "other")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        want = saved(x)
        assert torch.equal(zoo.create("hf-hub:user/net", pretrained=True)(x), want)
        assert not torch.equal(zoo.create("hf-hub:user/net").eval()(x), want)
        assert hub.count("GET", "user/net", "model.safetensors") == 1
        mine = zoo.create("hf-hub:user/net", pretrained=True, weights=str(other)).eval()
        assert not torch.equal(mine(x), want)


@pytest.mark.parametrize("weights", ["in22k", "simplenetv1_5m_m1.in22k"])
def test_a_weights_tag_is_looked_up_as_given(weights: str) -> None:
    """``weights=`` naming a tag (bare or after the model's name) is that tag, never the
    default: an unknown one is refused, naming the tags there are."""
    with pytest.raises(UnknownModelError) as err:
        zoo.create("simplenetv1_5m_m1", weights=weights)
    assert "in22k" in str(err.value) and "simplenetv1_5m_m1.in1k" in str(err.value)


def test_random_models_train_loaded_ones_evaluate_and_device_dtype_apply(tmp_path) -> None:
    """timm's convention: a freshly initialized model is in training mode, a loaded one in
    eval mode; ``device`` and ``dtype`` move the result."""
    assert zoo.create(NAME).training
    zoo.save_pretrained(zoo.create(NAME), tmp_path)
    assert not zoo.create(NAME, weights=tmp_path).training
    meta = zoo.create(NAME, device="meta")
    assert {p.device.type for p in meta.parameters()} == {"meta"}
    double = zoo.create(NAME, dtype=torch.float64)
    assert {p.dtype for p in double.parameters()} == {torch.float64}
    both = zoo.create(NAME, device="meta", dtype=torch.float16)
    assert {(p.device.type, p.dtype) for p in both.parameters()} == {("meta", torch.float16)}
