"""Spec loading and validation: every kind of bad spec gives a SpecError naming file, model and
field; extends/defaults resolve; names are checked with suggestions."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

import zoo
from zoo.catalog import Catalog, catalog
from zoo.errors import SpecError, UnknownModelError

SIMPLE = {
    "family": "simplenet",
    "paper": {"title": "t"},
    "data": {"input_size": [3, 32, 32], "first_conv": "features.0", "classifier": "head.fc"},
    "arch": {"layers": [{"filters": 8}, {"pool": "max"}, {"filters": 16}]},
}


def _doc(**models) -> dict:
    return {"models": models}


def _spec_error(doc, name: str) -> SpecError:
    cat = Catalog()
    with pytest.raises(SpecError) as info:
        cat.add_document(doc, "test.yaml")
        cat.spec(name)
    return info.value


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "user.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_valid_user_spec_builds() -> None:
    cat = Catalog()
    cat.add_document(_doc(tiny=SIMPLE), "t.yaml")
    spec = cat.spec("tiny")
    assert spec.family == "simplenet" and spec.data.in_chans == 3
    assert spec.arch.layers[1].pool == "max"


@pytest.mark.parametrize("mutate, field", [
    (lambda s: s["arch"].update(widths=3), "arch.widths"),                       # unknown key
    (lambda s: s.update(colour="red"), "colour"),                                 # unknown top key
    (lambda s: s["arch"]["layers"][0].update(filters="many"), "arch.layers.0"),   # wrong type
    (lambda s: s["arch"]["layers"][0].update(filters=-8), "arch.layers.0"),       # negative width
    (lambda s: s["arch"].update(strides={0: 3}), "arch.strides.0"),               # bad stride
    (lambda s: s["arch"].update(strides={9: 2}), "arch"),                         # stride index
    (lambda s: s["data"].update(input_size=[3, 0, 32]), "data.input_size.1"),
    (lambda s: s["data"].update(crop_pct=1.5), "data.crop_pct"),
    (lambda s: s["data"].pop("first_conv"), "data.first_conv"),                   # missing
    (lambda s: s["data"].update(num_classes=float("inf")), "data.num_classes"),
    (lambda s: s["paper"].update(arxiv="not-an-id"), "paper.arxiv"),
])
def test_invalid_fields_name_file_model_and_path(mutate, field) -> None:
    spec = json.loads(json.dumps(SIMPLE))
    mutate(spec)
    err = _spec_error(_doc(tiny=spec), "tiny")
    text = str(err)
    assert "test.yaml" in text and "'tiny'" in text
    assert any(p.startswith(field) for p in err.problems), err.problems


def test_unknown_family_lists_known_ones() -> None:
    err = _spec_error(_doc(x={**SIMPLE, "family": "simplenett"}), "x")
    assert "simplenett" in str(err) and "simplenet" in str(err)


def test_extends_overrides_fields_and_replaces_values() -> None:
    cat = Catalog()
    cat.add_document({"defaults": {"family": "simplenet"},
                      "models": {"base": {k: v for k, v in SIMPLE.items() if k != "family"},
                                 "wide": {"extends": "base", "arch": {"scale": 2.0},
                                          "data": {"num_classes": 10}}}}, "t.yaml")
    wide = cat.spec("wide")
    assert wide.arch.scale == 2.0 and wide.data.num_classes == 10
    assert wide.data.first_conv == "features.0"          # inherited field
    assert len(wide.arch.layers) == 3


def test_extends_cycle_and_unknown_base() -> None:
    cyc = _doc(a={**SIMPLE, "extends": "b"}, b={**SIMPLE, "extends": "a"})
    assert "cycle" in str(_spec_error(cyc, "a"))
    unknown = _doc(a={**SIMPLE, "extends": "simplenetv1_5m_m7"})
    err = _spec_error(unknown, "a")
    assert "`extends: simplenetv1_5m_m7` names an unknown model" in str(err)
    cat = Catalog()
    cat.add_document(_doc(base=SIMPLE), "a.yaml")
    cat.add_document(_doc(child={"extends": "bsae"}), "b.yaml")
    with pytest.raises(SpecError, match="Did you mean: base"):
        cat.spec("child")


def test_duplicate_model_names_across_files() -> None:
    cat = Catalog()
    cat.add_document(_doc(tiny=SIMPLE), "a.yaml")
    with pytest.raises(SpecError, match="already defined in a.yaml"):
        cat.add_document(_doc(tiny=SIMPLE), "b.yaml")


@pytest.mark.parametrize("text, message", [
    ("models: {a: {family: simplenet}\n", "not valid zoo YAML"),
    ("models:\n  a: {}\n  a: {}\n", "duplicate key 'a'"),
    ("models:\n  a: !!python/object/apply:os.system ['echo pwned']\n", "not valid zoo YAML"),
    ("x: &a [1]\nmodels: {b: *a}\n", "anchors"),
    ("- 1\n- 2\n", "mapping with a `models:`"),
    ("models: {}\nextra: 1\n", "unknown top-level key"),
])
def test_bad_yaml_files(tmp_path, text, message) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(SpecError, match=message) as info:
        Catalog().add_file(path)
    assert str(path) in str(info.value)


def test_register_specs_from_file_and_dict(tmp_path) -> None:
    path = _write(tmp_path, """
        defaults: {family: simplenet, paper: {title: mine}}
        models:
          user_tiny_a:
            data: {input_size: [3, 32, 32], first_conv: features.0, classifier: head.fc, num_classes: 5}
            arch: {layers: [{filters: 8}, {pool: max}, {filters: 16}]}
        """)
    assert zoo.register_specs(path) == ["user_tiny_a"]
    assert zoo.create("user_tiny_a").get_classifier().out_features == 5
    doc = {"name": "user_tiny_b", **SIMPLE}
    assert zoo.register_specs(doc) == ["user_tiny_b"]
    assert "user_tiny_b" in zoo.list_models("user_tiny_*")


def test_register_specs_is_all_or_nothing() -> None:
    bad = _doc(user_ok_c=SIMPLE, user_bad_c={**SIMPLE, "arch": {"layers": []}})
    with pytest.raises(SpecError):
        zoo.register_specs(bad)
    assert "user_ok_c" not in catalog().entries and "user_bad_c" not in catalog().entries


def test_unknown_model_suggests_close_names() -> None:
    with pytest.raises(UnknownModelError) as info:
        zoo.create("simplenetv1_5m_m3")
    assert "simplenetv1_5m_m1" in info.value.suggestions
    assert "Did you mean" in str(info.value)


def test_every_shipped_spec_validates_and_cites_its_numbers() -> None:
    for name in zoo.list_models():
        spec = zoo.get_spec(name)
        if spec.reported is not None:
            assert spec.reported.source.strip(), f"{name}: reported numbers without a source"


def test_json_schema_is_a_discriminated_union() -> None:
    from zoo.catalog import json_schema

    schema = json_schema("entry")
    text = json.dumps(schema)
    assert "simplenet" in text and schema["title"].startswith("zoo model spec")
    assert "discriminator" in text or "oneOf" in text or "$ref" in text


def test_list_models_filters() -> None:
    names = zoo.list_models("simplenetv1_*m1*")
    assert names and all(n.startswith("simplenetv1_") and "m1" in n for n in names)
    assert set(zoo.list_models(family="simplenet")) >= set(names)
    assert zoo.list_models("no_such_model_*") == []
    assert "simplenet" in zoo.list_families()


def test_third_party_specs_through_the_entry_point(tmp_path) -> None:
    """A package announcing a folder of spec files under the `zoo.specs` entry-point group
    contributes its models (a real installed distribution, found by importlib.metadata)."""
    import subprocess
    import sys

    pkg = tmp_path / "zoo_extra_specs"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "extra.yaml").write_text(textwrap.dedent("""
        defaults: {family: simplenet, paper: {title: third-party}}
        models:
          thirdparty_tiny:
            data: {input_size: [3, 32, 32], first_conv: features.0, classifier: head.fc}
            arch: {layers: [{filters: 8}, {pool: max}, {filters: 16}]}
        """))
    dist = tmp_path / "zoo_extra_specs-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: zoo-extra-specs\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[zoo.specs]\nextra = zoo_extra_specs\n")
    code = ("import zoo; print(zoo.list_models('thirdparty_*'), "
            "zoo.get_spec('thirdparty_tiny').paper.title)")
    root = Path(__file__).resolve().parents[1]
    import os

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(root)])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['thirdparty_tiny'] third-party"


@pytest.mark.parametrize("family", ["this", "xml.dom.minidom", "zoo.families.simplenet.model",
                                    "../simplenet", "simplenet.model"])
def test_a_spec_cannot_name_code_to_import(family: str) -> None:
    """`family` is looked up among the discovered families; nothing a spec says is imported."""
    import sys

    before = set(sys.modules)
    err = _spec_error(_doc(x={**SIMPLE, "family": family}), "x")
    assert "unknown family" in str(err) and "test.yaml" in str(err)
    assert family not in set(sys.modules) - before


def test_json_schema_is_strict_like_the_validator() -> None:
    """Editors see the same strictness: closed objects, the family literal, the field bounds."""
    from zoo.catalog import json_schema

    schema = json_schema("entry")
    assert schema["discriminator"]["propertyName"] == "family"
    defs = schema["$defs"]
    entry = defs[schema["discriminator"]["mapping"]["simplenet"].rsplit("/", 1)[1]]
    assert entry["additionalProperties"] is False
    assert entry["properties"]["family"]["const"] == "simplenet"
    assert {"name", "family", "data", "paper", "arch"} <= set(entry["required"])
    assert defs["DataConfig"]["additionalProperties"] is False
    assert defs["DataConfig"]["properties"]["crop_pct"]["maximum"] == 1.0
    assert set(schema["discriminator"]["mapping"]) == set(zoo.list_families())


def test_file_schema_accepts_every_shipped_spec_file_and_flags_mistakes() -> None:
    """`zoo schema` (file level) is what editors validate specs/*.yaml with: every shipped file
    passes (entries leaning on `defaults` / `extends`), and unknown keys or wrong types anywhere
    are flagged, as the loader would."""
    import jsonschema
    import yaml

    from zoo.catalog import json_schema
    from zoo.catalog.discovery import file_family, spec_files
    from zoo.families import family_names
    from zoo.paths import data_dir

    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    files = spec_files(data_dir("specs"))
    assert {file_family(p, data_dir("specs")) for p in files} == set(family_names())
    for path in files:
        doc = yaml.safe_load(path.read_text())
        errors = [e.message for e in validator.iter_errors(doc)]
        assert not errors, f"{path.name}: {errors[:3]}"
    doc = yaml.safe_load((data_dir("specs") / "sret.yaml").read_text())
    bad_cases = [
        {**doc, "extra": 1},                                                   # top-level key
        {**doc, "models": {"sret_x": {"extends": "sret_t", "archh": {}}}},     # entry key
        {**doc, "models": {"sret_x": {"extends": "sret_t",
                                      "data": {"crop_pct": "big"}}}},          # wrong type
        {**doc, "models": {"sret_x": {"extends": "sret_t",
                                      "arch": {"mlp_ratio": 4.0, "nope": 1}}}},  # arch key
        {**doc, "models": {"Bad-Name": {"extends": "sret_t"}}},                # model name
        {"defaults": doc["defaults"]},                                         # no models
    ]
    for bad in bad_cases:
        assert list(validator.iter_errors(bad)), bad



@pytest.mark.parametrize("key, value", [("extends", "base"), ("name", "other")])
def test_defaults_cannot_hold_extends_or_name(key: str, value: str) -> None:
    """`extends` (or `name`) under `defaults` would apply to every model of the file, or be
    silently ignored: either way a mistake, refused when the file is read, naming the key."""
    doc = {"defaults": {"family": "simplenet", key: value},
           "models": {"base": {k: v for k, v in SIMPLE.items() if k != "family"},
                      "child": {"arch": {"scale": 2.0}}}}
    with pytest.raises(SpecError) as info:
        Catalog().add_document(doc, "test.yaml")
    assert str(info.value) == "`defaults` cannot hold `extends` or `name` (in test.yaml)"


# -- Probability: 0 <= p < 1 (a drop rate of 1 drops everything) ------------------------------------

@pytest.mark.parametrize("value, ok", [
    (0.0, True), (-0.0, True), (1e-12, True), (0.5, True), (0.9999, True),
    (1.0, False), (1.0001, False), (-0.0001, False), (-1.0, False),
    (float("nan"), False), (float("inf"), False), (float("-inf"), False),
])
def test_probability_bounds(value: float, ok: bool) -> None:
    from zoo.spec import Probability, StrictModel

    class Rates(StrictModel):
        p: Probability

    if ok:
        assert Rates(p=value).p == value
    else:
        with pytest.raises(ValueError):
            Rates(p=value)


@pytest.mark.parametrize("value, ok", [(0.0, True), (0.9999, True), (1.0, False),
                                       (-0.0001, False)])
def test_probability_field_of_a_family_spec(value: float, ok: bool) -> None:
    """A family field typed Probability (DeepMAD's drop_rate): the boundary as a SpecError
    naming the field."""
    spec = zoo.get_spec(zoo.list_models(family="deepmad")[0])
    if ok:
        assert spec.with_overrides(drop_rate=value).arch.drop_rate == value
    else:
        with pytest.raises(SpecError) as info:
            spec.with_overrides(drop_rate=value)
        assert any(p.startswith("arch.drop_rate") for p in info.value.problems)


# -- spec documents: every malformed shape is named, with its source -----------------------------

def test_a_single_spec_document_is_one_model() -> None:
    cat = Catalog()
    assert cat.add_document({"name": "one", **SIMPLE}, "one.yaml") == ["one"]
    assert "name" not in cat.entries["one"].raw and cat.spec("one").name == "one"


@pytest.mark.parametrize("doc, message", [
    ("text", "a spec file must be a mapping with a `models:` mapping (and optionally `defaults:`)"),
    ({"defaults": {}}, "a spec file must be a mapping with a `models:` mapping (and optionally "
                       "`defaults:`)"),
    ({"models": {}}, "`defaults` must be a mapping and `models` a non-empty mapping"),
    ({"models": ["a"]}, "`defaults` must be a mapping and `models` a non-empty mapping"),
    ({"defaults": [1], "models": {"a": SIMPLE}},
     "`defaults` must be a mapping and `models` a non-empty mapping"),
    ({"models": {"a": SIMPLE}, "extra": 1}, "unknown top-level key(s) ['extra']; allowed: "
                                            "['defaults', 'models']"),
])
def test_malformed_documents(doc, message: str) -> None:
    with pytest.raises(SpecError) as err:
        Catalog().add_document(doc, "f.yaml")
    assert str(err.value) == f"{message} (in f.yaml)"
    assert err.value.source == "f.yaml"


def test_yaml_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("models: [unclosed\n")
    with pytest.raises(SpecError) as err:
        Catalog().add_file(path)
    assert err.value.source == str(path) and str(err.value).endswith(f"(in {path})")
    path.write_text(textwrap.dedent("""\
        models:
          good_one:
            family: simplenet
        """))
    cat = Catalog()
    assert cat.add_file(path) == ["good_one"] and cat.entries["good_one"].source == str(path)


def test_file_schema_shapes_beyond_the_shipped_files() -> None:
    """The file-level JSON schema refuses what the loader refuses: a document that is not a
    mapping, `models` empty or not a mapping, a malformed `extends`; `kind` is checked."""
    import jsonschema

    from zoo.catalog import json_schema

    validator = jsonschema.Draft202012Validator(json_schema())
    for bad in ("text", {"models": {}}, {"models": ["a"]},
                {"models": {"a": {"extends": "Bad-Name"}}}, {"models": {"a": {"extends": 3}}}):
        assert list(validator.iter_errors(bad)), bad
    assert not list(validator.iter_errors({"models": {"a": {"extends": "b"}}}))
    # the key under `models:` is the name: an entry has no `name` field (editors flag it)
    assert list(validator.iter_errors({"models": {"a": {"extends": "b", "name": "a"}}}))
    # what an editor shows on hover
    schema = json_schema()
    assert schema["title"] == "zoo spec file"
    assert schema["properties"]["defaults"]["description"] == "fields merged under every model of the file"
    for variant in schema["$defs"].values():
        if "extends" in variant.get("properties", {}):
            assert variant["properties"]["extends"]["description"] == "model whose fields this one starts from"
    assert json_schema("entry")["title"] == "zoo model spec (one resolved entry)"
    with pytest.raises(ValueError, match="kind must be 'file' or 'entry', got 'files'"):
        json_schema("files")


def test_overrides_are_validated_as_overrides_with_the_specs_context() -> None:
    """``zoo.create``'s overrides: a bad value is named as coming from the overrides, and a
    spec that looks others up (a BigNAS child's supernet) keeps its catalog context."""
    name = zoo.list_models(family="simplenet")[0]
    with pytest.raises(SpecError) as err:
        zoo.get_spec(name).with_overrides(num_classes=-1)
    assert err.value.source == "overrides" and f"(in overrides, model '{name}')" in str(err.value)
    child = next(n for n in zoo.list_models(family="bignas") if zoo.get_spec(n).arch.supernet)
    assert zoo.get_spec(child).with_overrides(num_classes=10).data.num_classes == 10



# -- error messages: what is wrong, where, and the offending value ---------------------------------

def test_validate_spec_shapes_word_for_word() -> None:
    from zoo.catalog import validate_spec
    from zoo.families import family_names

    with pytest.raises(SpecError) as err:
        validate_spec(["x"], source="s.yaml")
    assert str(err.value) == "a spec must be a mapping, not list (in s.yaml)"
    with pytest.raises(SpecError) as err:
        validate_spec({"name": "m", "family": "nope"}, source="s.yaml")
    assert str(err.value) == (f"unknown family 'nope'; known families: {', '.join(family_names())} "
                              "(in s.yaml, model 'm')")
    with pytest.raises(SpecError) as err:
        validate_spec({**SIMPLE, "name": "m", "data": {"crop_pct": "big"}}, source="s.yaml")
    assert str(err.value).startswith("invalid spec (in s.yaml, model 'm')\n  - ")
    assert "  - data.crop_pct: Input should be a valid number, unable to parse string as a number (got 'big')" \
        in str(err.value)


def test_a_dict_without_a_source_is_called_dict_and_any_shape_gets_a_spec_error() -> None:
    from zoo.catalog import validate_spec
    from zoo.spec import DataConfig, validate_as

    with pytest.raises(SpecError) as err:
        validate_spec(5)
    assert str(err.value) == "a spec must be a mapping, not int (in <dict>)"
    with pytest.raises(SpecError) as err:
        validate_spec({**SIMPLE, "name": "m", "data": {"crop_pct": "big"}})
    assert str(err.value).startswith("invalid spec (in <dict>, model 'm')\n  - ")
    with pytest.raises(SpecError) as err:
        validate_as(DataConfig, [1, 2])
    assert str(err.value) == ("invalid spec (in <dict>)\n"
                              "  - <root>: Input should be a valid dictionary or instance of DataConfig")


def test_problem_lines_show_scalars_not_containers_or_missing() -> None:
    from pydantic import ValidationError

    from zoo.spec import StrictModel, validation_problems

    class Inner(StrictModel):
        a: int

    class Outer(StrictModel):
        inner: Inner
        b: int

    with pytest.raises(ValidationError) as err:
        Outer.model_validate({"inner": {"a": "x"}, "c": 5})
    assert validation_problems(err.value) == [
        "inner.a: Input should be a valid integer, unable to parse string as an integer (got 'x')",
        "b: Field required",
        "c: Extra inputs are not permitted (got 5)"]
    with pytest.raises(ValidationError) as err:
        Outer.model_validate([1, 2])
    assert validation_problems(err.value) == [
        "<root>: Input should be a valid dictionary or instance of Outer"]
    with pytest.raises(ValidationError) as err:
        Outer.model_validate({"inner": [1], "b": 1})
    assert validation_problems(err.value) == [
        "inner: Input should be a valid dictionary or instance of Inner"]


def test_short_repr_bounds_and_huge_ints() -> None:
    from zoo.spec import short_repr

    assert short_repr("a" * 198) == repr("a" * 198)
    assert short_repr("a" * 199) == repr("a" * 199)[:200] + "..."
    assert short_repr(10 ** 5000) == "<int of 16610 bits>"

    class NoRepr:
        def __repr__(self):
            raise ValueError("no")

    assert short_repr(NoRepr()) == "<NoRepr>"


def test_extends_errors_word_for_word() -> None:
    cat = Catalog()
    cat.add_document({"models": {"a": {**SIMPLE, "extends": "b"}, "b": {**SIMPLE, "extends": "a"},
                                 "c": {**SIMPLE, "extends": 3}, "d": {**SIMPLE, "extends": "bb"}}},
                     "e.yaml")
    with pytest.raises(SpecError) as err:
        cat.resolve("a")
    assert str(err.value) == "`extends` cycle: a -> b -> a (in e.yaml, model 'a')"
    with pytest.raises(SpecError) as err:
        cat.resolve("c")
    assert str(err.value) == "`extends` must name a model (a string), not int (in e.yaml, model 'c')"
    with pytest.raises(SpecError) as err:
        cat.resolve("d")
    assert str(err.value).startswith("`extends: bb` names an unknown model (in e.yaml, model 'd')\n  - ")
    assert err.value.problems == ["unknown model 'bb'. Did you mean: b?"]


def test_extends_takes_fields_not_the_base_name() -> None:
    cat = Catalog()
    cat.add_document({"models": {"base": {**SIMPLE, "description": "base one"},
                                 "child": {"extends": "base"}}}, "e.yaml")
    child = cat.resolve("child")
    assert child["name"] == "child" and child["description"] == "base one" and "extends" not in child


def test_digest_is_the_sha256_of_the_canonical_json() -> None:
    """The spec hash exported files and site measurements are keyed by: canonical JSON (sorted
    keys, no spaces) of the resolved spec; another value of any field is another digest."""
    import hashlib

    name = zoo.list_models(family="simplenet")[0]
    spec = zoo.get_spec(name)
    canonical = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    assert spec.digest() == hashlib.sha256(canonical.encode()).hexdigest()
    assert spec.with_overrides().digest() == spec.digest()
    assert spec.with_overrides(num_classes=spec.data.num_classes + 1).digest() != spec.digest()


@pytest.mark.parametrize("models, message", [
    ({3: SIMPLE}, "model name 3 is not a string (in f.yaml)"),
    ({"m": [1]}, "a model entry must be a mapping (in f.yaml, model 'm')"),
    ({"m": {**SIMPLE, "name": "other"}}, "entry's name 'other' differs from its key (in f.yaml, model 'm')"),
])
def test_malformed_entries_word_for_word(models: dict, message: str) -> None:
    with pytest.raises(SpecError) as err:
        Catalog().add_document({"models": models}, "f.yaml")
    assert str(err.value) == message


def test_entries_keep_their_name_and_source_and_are_not_redefined(tmp_path: Path) -> None:
    cat = Catalog()
    cat.add_document({"models": {"m": {**SIMPLE, "name": "m"}}}, "a.yaml")
    assert cat.entries["m"].name == "m" and cat.entries["m"].source == "a.yaml"
    with pytest.raises(SpecError) as err:
        cat.add_document({"models": {"m": SIMPLE}}, "b.yaml")
    assert str(err.value) == "model 'm' is already defined in a.yaml (in b.yaml, model 'm')"
    path = tmp_path / "m.yaml"
    path.write_text(json.dumps({"models": {"m": SIMPLE}}))
    with pytest.raises(SpecError, match="already defined in a.yaml"):
        cat.add_file(path)
    assert cat.add_file(path, replace=True) == ["m"] and cat.entries["m"].source == str(path)
    # a document with `models:` is a file even when it also has a `name` (which is then unknown)
    with pytest.raises(SpecError, match=r"unknown top-level key\(s\) \['name'\]"):
        Catalog().add_document({"name": "x", "models": {"m": SIMPLE}}, "c.yaml")


def test_family_spec_model_is_specbase_with_the_family_literal_and_its_arch() -> None:
    """What each family registers at import (run here, where a test sees it happen)."""
    from pydantic import ValidationError

    from zoo.spec import ArchBase, SpecBase, family_spec_model

    class ToyArch(ArchBase):
        width: int

    model = family_spec_model("toy_net_v2", ToyArch)
    assert model.__name__ == "ToyNetV2Spec" and issubclass(model, SpecBase)
    base = {k: v for k, v in SIMPLE.items() if k not in ("family", "arch")}
    spec = model.model_validate({**base, "name": "t", "family": "toy_net_v2", "arch": {"width": 3}})
    assert spec.family == "toy_net_v2" and isinstance(spec.arch, ToyArch) and spec.arch.width == 3
    for bad in ({"family": "other", "arch": {"width": 3}}, {"family": "toy_net_v2"}, {"arch": {"width": 3}}):
        with pytest.raises(ValidationError):
            model.model_validate({**base, "name": "t", **bad})


def test_family_of_a_malformed_entry_is_none() -> None:
    """``Catalog.family_of`` reads the resolved, not yet validated document: a family that is
    not a string is no family (the spec's validation reports it)."""
    cat = Catalog()
    cat.add_document({"name": "odd_net", "family": ["simplenet"]}, "test")
    cat.add_document({"name": "plain_net", "family": "simplenet"}, "test")
    assert cat.family_of("odd_net") is None and cat.family_of("plain_net") == "simplenet"
    assert cat.names(family="simplenet") == ["plain_net"]


def test_a_spec_validated_from_python_is_named_as_a_dict() -> None:
    """Errors name where a spec came from; one handed over as a Python dict (no file) is
    ``<dict>``."""
    from zoo.catalog.schema import validate_spec

    with pytest.raises(SpecError) as err:
        validate_spec(["not", "a", "mapping"])
    assert str(err.value) == "a spec must be a mapping, not list (in <dict>)"
