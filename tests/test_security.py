"""Attacks on zoo's safety claims: pickles that run code when loaded, and malformed or hostile
YAML thrown at the spec loader (property-based).  Each must end in zoo's own error, never in
executed code, another exception, unbounded time or unbounded memory."""
from __future__ import annotations

import argparse
import ast
import datetime as dt
import json
import os
import pickle
import tracemalloc
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import zoo
from zoo import yamlio
from zoo.catalog import Catalog
from zoo.weights.checkpoint import load_original_checkpoint
from zoo.errors import CheckpointError, SpecError
from zoo.catalog import validate_spec
from zoo.spec import SpecBase

MARKER = Path(os.environ.get("TMPDIR", "/tmp")) / f"zoo-pwned-{os.getpid()}"


# -- pickles -----------------------------------------------------------------------------------

class _Exec:
    """Unpickling this runs Python code that creates MARKER."""

    def __reduce__(self):
        return (exec, (f"open({str(MARKER)!r}, 'w').write('pwned')",))


class _System:
    """Unpickling this runs a shell command (os.system) that creates MARKER."""

    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


class PlainRecord:  # a harmless user type, allowed only on request
    def __init__(self, lr: float = 0.1) -> None:
        self.lr = lr


def _state_dict() -> dict[str, torch.Tensor]:
    return {"features.0.weight": torch.randn(4, 3, 3, 3), "classifier.bias": torch.zeros(10)}


@pytest.fixture(autouse=True)
def _no_marker():
    MARKER.unlink(missing_ok=True)
    yield
    assert not MARKER.exists(), "a checkpoint or spec ran code"


@pytest.mark.parametrize("payload", [_Exec, _System], ids=["exec", "os.system"])
@pytest.mark.parametrize("fmt", ["torch-zip", "torch-legacy", "pickle-2", "pickle-4"])
def test_malicious_pickle_is_refused_without_running(tmp_path, payload, fmt) -> None:
    path = tmp_path / "evil.pth"
    obj = {"state_dict": _state_dict(), "extra": payload()}
    if fmt == "torch-zip":
        torch.save(obj, path)
    elif fmt == "torch-legacy":
        torch.save(obj, path, _use_new_zipfile_serialization=False)
    else:
        path.write_bytes(pickle.dumps(obj, protocol=int(fmt[-1])))
    with pytest.raises(CheckpointError, match="refused to unpickle") as err:
        load_original_checkpoint(path)
    assert "nothing from the file was executed" in str(err.value)
    assert not MARKER.exists()


def test_zoo_convert_refuses_a_malicious_checkpoint(tmp_path, capsys) -> None:
    from zoo.cli import main

    torch.save({"model": _state_dict(), "x": _Exec()}, tmp_path / "evil.pth")
    code = main(["convert", "simplenet_cifar_5m", str(tmp_path / "evil.pth"),
                 "--out", str(tmp_path / "out")])
    assert code == 2
    assert "refused to unpickle" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_allow_list_and_wrappers(tmp_path) -> None:
    import numpy as np

    sd = _state_dict()
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()},
                "args": argparse.Namespace(lr=0.1, arch="simplenet"),
                "best_acc1": np.float64(71.5), "epoch": 90}, tmp_path / "a.pth")
    out = load_original_checkpoint(tmp_path / "a.pth")
    assert set(out) == {f"module.{k}" for k in sd}  # prefixes are the family converter's job
    assert all(torch.equal(out[f"module.{k}"], v) for k, v in sd.items())

    ema = {k: v + 1 for k, v in sd.items()}
    torch.save({"model": sd, "model_ema": ema}, tmp_path / "b.pth")
    assert torch.equal(load_original_checkpoint(tmp_path / "b.pth")["classifier.bias"],
                       sd["classifier.bias"])
    assert torch.equal(load_original_checkpoint(tmp_path / "b.pth", use_ema=True)
                       ["classifier.bias"], ema["classifier.bias"])
    torch.save({"net": sd}, tmp_path / "c.pth")
    assert set(load_original_checkpoint(tmp_path / "c.pth")) == set(sd)
    torch.save(sd, tmp_path / "d.pth")
    assert set(load_original_checkpoint(tmp_path / "d.pth")) == set(sd)
    with pytest.raises(CheckpointError, match="no EMA weights"):
        load_original_checkpoint(tmp_path / "d.pth", use_ema=True)

    torch.save({"model": sd, "cfg": PlainRecord()}, tmp_path / "e.pth")
    with pytest.raises(CheckpointError, match="PlainRecord"):
        load_original_checkpoint(tmp_path / "e.pth")
    assert set(load_original_checkpoint(tmp_path / "e.pth", extra_safe_globals=[PlainRecord])) \
        == set(sd)


# Calls that can unpickle (run code from) a file: (module alias, function).
_UNPICKLERS = {("torch", "load"), ("pickle", "load"), ("pickle", "loads"),
               ("pickle", "Unpickler"), ("jit", "load"), ("dill", "load"), ("dill", "loads"),
               ("joblib", "load")}
_NUMPY = {"np", "numpy"}  # numpy.load unpickles only with allow_pickle=True


def _unpickling_calls(tree: ast.AST) -> list[ast.Call]:
    calls = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", None)
            allow = {k.arg: k.value for k in node.keywords}.get("allow_pickle")
            pickles = allow is not None and not (isinstance(allow, ast.Constant)
                                                 and not allow.value)
            if (name, node.func.attr) in _UNPICKLERS or (
                    name in _NUMPY and node.func.attr == "load" and pickles):
                calls.append(node)
    return calls


def test_the_only_unpickler_is_the_restricted_one() -> None:
    """zoo's source calls torch.load in exactly one place, zoo.weights.checkpoint (local files given to
    `zoo convert`), with weights_only=True inside the allow-list's safe_globals block; nothing
    else in zoo or its scripts unpickles (pickle, torch.jit, numpy...)."""
    probe = "torch.load(f); pickle.loads(b); torch.jit.load(f); np.load(f, allow_pickle=True)"
    assert len(_unpickling_calls(ast.parse(probe))) == 4  # the scan sees what it looks for
    assert _unpickling_calls(ast.parse("np.load(f); json.load(f); yamlio.load(p)")) == []
    root = Path(zoo.__file__).parent
    found: dict[str, list[ast.Call]] = {}
    trees = {}
    for path in [*root.rglob("*.py"), *(root.parent / "scripts").rglob("*.py")]:
        rel = path.relative_to(root.parent).as_posix()
        trees[rel] = ast.parse(path.read_text(), rel)
        for call in _unpickling_calls(trees[rel]):
            found.setdefault(rel, []).append(call)
    assert list(found) == ["zoo/weights/checkpoint.py"], {k: len(v) for k, v in found.items()}
    # custom unpicklers: only there too, and each resolves globals through its own allow-list
    subclasses = {rel: [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)
                        and any(ast.unparse(b).endswith("Unpickler") for b in n.bases)]
                  for rel, tree in trees.items()}
    subclasses = {rel: found_ for rel, found_ in subclasses.items() if found_}
    assert list(subclasses) == ["zoo/weights/checkpoint.py"], subclasses
    for cls in subclasses["zoo/weights/checkpoint.py"]:
        assert any(isinstance(f, ast.FunctionDef) and f.name == "find_class" for f in cls.body)
    (call,) = found["zoo/weights/checkpoint.py"]
    weights_only = {k.arg: k.value for k in call.keywords}.get("weights_only")
    assert isinstance(weights_only, ast.Constant) and weights_only.value is True
    guards = [ast.unparse(item.context_expr) for node in ast.walk(trees["zoo/weights/checkpoint.py"])
              if isinstance(node, ast.With) and any(n is call for n in ast.walk(node))
              for item in node.items]
    assert "torch.serialization.safe_globals(allowed)" in guards, guards


@pytest.mark.parametrize("content,match", [
    (b"", "empty, not a checkpoint"),
    (b"this is text, not a checkpoint", "text file, not a checkpoint"),
    (b"PK\x03\x04broken zip", "not a readable PyTorch checkpoint"),
])
def test_unreadable_checkpoints(tmp_path, content, match) -> None:
    (tmp_path / "x.pth").write_bytes(content)
    with pytest.raises(CheckpointError, match=match):
        load_original_checkpoint(tmp_path / "x.pth")


def test_checkpoints_without_a_state_dict(tmp_path) -> None:
    torch.save({"epoch": 3, "optimizer": {"lr": 0.1}}, tmp_path / "x.pth")
    with pytest.raises(CheckpointError, match="no state dict found"):
        load_original_checkpoint(tmp_path / "x.pth")
    torch.save({"a": torch.ones(1), "b": 3}, tmp_path / "y.pth")
    with pytest.raises(CheckpointError, match="non-tensor entries"):
        load_original_checkpoint(tmp_path / "y.pth")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_original_checkpoint(tmp_path / "missing.pth")


# -- hostile YAML --------------------------------------------------------------------------------

VALID = {
    "family": "simplenet",
    "paper": {"title": "t"},
    "data": {"input_size": [3, 32, 32], "first_conv": "features.0", "classifier": "head.fc",
             "num_classes": 10},
    "arch": {"layers": [{"filters": 8}, {"pool": "max"}, {"filters": 16}], "strides": {0: 2}},
}

# Paths into VALID where a hostile value is spliced in.
SLOTS = [(), ("family",), ("paper",), ("paper", "title"), ("data",), ("data", "input_size"),
         ("data", "num_classes"), ("data", "mean"), ("data", "classifier"), ("arch",),
         ("arch", "layers"), ("arch", "strides"), ("arch", "scale"), ("name",)]

TAGGED = [
    "!!python/object/apply:os.system ['touch {m}']",
    "!!python/object/apply:builtins.exec [\"open('{m}', 'w')\"]",
    "!!python/object/new:os.system ['touch {m}']",
    "!!python/name:os.system",
    "!!python/module:os",
    "!!python/object:argparse.Namespace {{a: 1}}",
    "!<tag:yaml.org,2002:python/object/apply:os.system> ['touch {m}']",
    "!!binary aGVsbG8=",
    "!!set {{a, b}}",
    "!!omap [a: 1, b: 2]",
    "!!timestamp 2001-12-14t21:59:43.10-05:00",
    "!custom 1",
    "!!float nan",
    "!!int 0x" + "f" * 40,
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
    | st.dates(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.text(max_size=8) | st.integers(), inner, max_size=4),
    max_leaves=12)

# Integers beyond Python's 4300-digit str->int limit included.
huge_numbers = st.one_of(
    st.integers(1, 6000).map(lambda n: "9" * n),
    st.integers(1, 6000).map(lambda n: "-" + "9" * n),
    st.integers(1, 3000).map(lambda n: "0x" + "f" * n),
    st.integers(300, 100000).map(lambda n: f"1e{n}"),
    st.sampled_from([".inf", "-.inf", ".nan", "1_000_000_000_000_000_000", "0o777", "1e-400",
                     "190:20:30", "-0", "0b1010"]))


def _nest(depth: int, kind: str) -> str:
    if kind == "flow-list":
        return "[" * depth + "1" + "]" * depth
    if kind == "flow-map":
        return "{a: " * depth + "1" + "}" * depth
    return "\n".join("  " * i + "- " for i in range(depth)) + "1"


def _billion_laughs(levels: int, width: int) -> str:
    lines = ['l0: &l0 "lol"']
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    lines.append(f"models: {{a: {{family: simplenet, arch: *l{levels - 1}}}}}")
    return "\n".join(lines)


def _splice(path: tuple[str, ...], value_yaml: str) -> str:
    """VALID as a spec file (flow style) with the YAML text ``value_yaml`` at ``path``."""
    import json

    def render(obj, here):
        if here == path:
            return value_yaml
        if isinstance(obj, dict):
            keys = list(obj) + ([path[len(here)]] if len(path) > len(here)
                                and here == path[:len(here)] and path[len(here)] not in obj else [])
            return "{" + ", ".join(f"{json.dumps(str(k)) if isinstance(k, str) else k}: "
                                   f"{render(obj.get(k, {}), here + (k,))}" for k in keys) + "}"
        return json.dumps(obj)

    return "models:\n  hostile: " + render(VALID, ())


hostile_text = st.one_of(
    st.text(max_size=200),
    st.builds(_nest, st.integers(1, 3000), st.sampled_from(["flow-list", "flow-map", "block"])),
    st.builds(_billion_laughs, st.integers(2, 12), st.integers(2, 12)),
    st.builds(_splice, st.sampled_from(SLOTS),
              st.sampled_from(TAGGED).map(lambda t: t.format(m=MARKER))),
    st.builds(_splice, st.sampled_from(SLOTS), huge_numbers),
    st.builds(_splice, st.sampled_from(SLOTS),
              st.builds(_nest, st.integers(1, 200), st.sampled_from(["flow-list", "flow-map"]))),
    st.builds(lambda s, t: "models:\n  a: " + s + "\n  a: " + t, st.text(max_size=10),
              st.text(max_size=10)),
    st.builds(lambda v: _splice(("extends",), json.dumps(v, default=str)), json_values),
)


def _load_file(text: str, path: Path) -> list[SpecBase]:
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    cat = Catalog()
    return [cat.spec(name) for name in cat.add_file(path)]


def _outcome(fn, *args) -> str:
    try:
        specs = fn(*args)
    except SpecError:
        return "error"
    assert all(isinstance(s, SpecBase) for s in specs)
    return "valid"


HYPOTHESIS = settings(max_examples=150, deadline=dt.timedelta(seconds=5),
                      suppress_health_check=[HealthCheck.function_scoped_fixture,
                                             HealthCheck.too_slow])


@HYPOTHESIS
@given(text=hostile_text)
@example(text=_splice(("arch", "scale"), "9" * 4000))
@example(text=_billion_laughs(9, 9))
def test_hostile_yaml_files_end_in_spec_error(tmp_path, text) -> None:
    """A spec file, whatever its bytes: SpecError or valid specs; no code runs."""
    assert _outcome(_load_file, text, tmp_path / "hostile.yaml") in ("error", "valid")
    assert not MARKER.exists()


@HYPOTHESIS
@given(path=st.sampled_from(SLOTS[1:]), value=json_values)
@example(path=("data", "num_classes"), value=-(10 ** 4000))
def test_wrong_types_in_spec_dicts(path, value) -> None:
    """Any JSON-like value anywhere in a spec dict: SpecError or a valid spec."""
    import copy

    raw = copy.deepcopy(VALID)
    node = raw
    for key in path[:-1]:
        node = node.setdefault(key, {}) if isinstance(node, dict) else node
    if isinstance(node, dict):
        node[path[-1]] = value
    raw["name"] = raw.get("name") if path == ("name",) else "hostile"

    def run():
        return [validate_spec(raw)]

    assert _outcome(run) in ("error", "valid")
    cat = Catalog()

    def run_catalog():
        doc = {"models": {"hostile": {k: v for k, v in raw.items() if k != "name"}}}
        return [cat.spec(n) for n in cat.add_document(doc, "<hostile>")]

    assert _outcome(run_catalog) in ("error", "valid")


@settings(max_examples=40, deadline=dt.timedelta(seconds=10),
          suppress_health_check=[HealthCheck.too_slow])
@given(text=hostile_text)
def test_register_specs_is_all_or_nothing(text) -> None:
    """zoo.register_specs with a hostile document: SpecError and no trace in the catalog.

    (Documents a private catalog accepts are skipped: registering them would be legitimate and
    would leave them in the process-wide catalog and timm for the rest of the session.)"""
    from zoo.catalog import catalog

    try:
        doc = yamlio.loads(text)
    except yamlio.YamlDataError:
        return  # not a document; the file loader turns this into SpecError (tested above)
    if not isinstance(doc, dict):
        return  # register_specs takes a path or a dict; other types are a caller's TypeError
    if isinstance(doc.get("models"), dict):
        doc["models"] = {f"zz_hostile_{k}" if isinstance(k, str) else k: v
                         for k, v in doc["models"].items()}
    if _outcome(_private, doc) == "valid":
        return
    before = set(catalog().entries)
    with pytest.raises(SpecError):
        zoo.register_specs(doc)
    assert set(catalog().entries) == before
    assert not MARKER.exists()


def _private(doc):
    cat = Catalog()
    return [cat.spec(name) for name in cat.add_document(doc, "<hostile>")]


def test_billion_laughs_and_deep_nesting_are_bounded(tmp_path) -> None:
    for text in (_billion_laughs(12, 12), _nest(100_000, "flow-list"),
                 _nest(50_000, "flow-map"), "a: " + "[" * 200_000):
        tracemalloc.start()
        try:
            with pytest.raises(SpecError):
                _load_file(text, tmp_path / "bomb.yaml")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 256 * 2**20, f"{peak / 2**20:.0f} MiB for a {len(text)}-byte document"


def test_integer_beyond_python_digit_limit_is_a_spec_error(tmp_path) -> None:
    with pytest.raises(SpecError):
        _load_file(_splice(("arch", "scale"), "9" * 5000), tmp_path / "big.yaml")


def test_huge_invalid_integer_in_error_message_is_a_spec_error() -> None:
    raw = {**VALID, "name": "hostile",
           "arch": {**VALID["arch"], "layers": [{"filters": -int("f" * 5000, 16)}]}}
    with pytest.raises(SpecError):
        validate_spec(raw)


def test_non_utf8_spec_file_is_a_spec_error(tmp_path) -> None:
    (tmp_path / "bad.yaml").write_bytes(b"models: {a: \xff\xfe}")
    with pytest.raises(SpecError):
        Catalog().add_file(tmp_path / "bad.yaml")


@pytest.mark.parametrize("base", [[1], {"a": 1}, False, 3])
def test_non_string_extends_is_a_spec_error(base) -> None:
    with pytest.raises(SpecError):
        cat = Catalog()
        for name in cat.add_document({"models": {"a": {"extends": base}}}, "<x>"):
            cat.spec(name)
