"""zoo export (issue 21): ONNX and torch.export files checked against eager PyTorch at two batch
sizes, metadata in the file, clear errors, the support matrix covering every model."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import zoo
from zoo.cli import main
from zoo.errors import ExportError, UsageError
from zoo.export.formats import Runner, read_metadata
from zoo.export.run import example_input, export
from zoo.families import family_names

ROOT = Path(__file__).resolve().parents[1]
SMALL = "simplenetv1_small_m1_05"


def _cheapest_deterministic(family: str) -> tuple[str, nn.Module]:
    """The family's cheapest model to export (fewest parameters, counted on the meta device,
    then fewest input pixels, then the name) among those whose inference is deterministic
    (SReT's sliced models draw a random token permutation, so no export can match them; export
    refuses them, tested below); derived from the catalog, so a new family is covered
    automatically.  Returns the name and the built model."""
    from zoo.measure import count_params

    def cost(n: str) -> tuple:
        with torch.device("meta"):
            params = count_params(zoo.create(n, device="meta"))
        size = zoo.get_spec(n).data.input_size
        return params, size[1] * size[2], n

    for name in sorted(zoo.list_models(family=family), key=cost):
        model = zoo.create(name).eval()
        x = example_input(zoo.get_spec(name).data.input_size, 1)
        with torch.no_grad():
            if torch.equal(model(x), model(x)):
                return name, model
    raise AssertionError(f"no {family} model is deterministic at inference")


def _matrix_status(name: str, fmt: str):
    """The support matrix's result for ``name`` in ``fmt`` (None: not measured)."""
    from zoo.export.matrix import ExportMatrix

    matrix = ExportMatrix.model_validate(
        json.loads((ROOT / "docs" / "export-matrix.json").read_text()))
    return matrix.models.get(name, {}).get(fmt)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["pt2", "onnx"])
@pytest.mark.parametrize("family", family_names())
def test_one_model_of_every_family_exports_and_matches_eager(family, fmt, tmp_path) -> None:
    """Both formats for the cheapest model of every family, checked at two batch sizes against
    eager; where docs/export-matrix.json records a failure (and why), export still refuses."""
    name, model = _cheapest_deterministic(family)
    documented = _matrix_status(name, fmt)
    if documented is not None and documented.status == "error":
        # the matrix says why this model does not export: the command must still say so
        with pytest.raises(ExportError):
            export(name, format=fmt, out=tmp_path, model=model)
        assert list(tmp_path.iterdir()) == []
        return
    report = export(name, format=fmt, out=tmp_path, model=model)
    assert report.checked_batches == (1, 3)
    assert report.max_rel_error <= report.tolerance
    path = Path(report.path)
    assert path.is_file() and path.suffix == f".{fmt}"
    meta = read_metadata(path)
    assert meta["zoo.model"] == name and meta["zoo.spec_sha256"] == zoo.get_spec(name).digest()


def test_exported_file_runs_at_other_batch_sizes_and_carries_preprocessing(tmp_path) -> None:
    report = export(SMALL, format="pt2", out=tmp_path / "m.pt2")
    runner = Runner(Path(report.path))
    model = zoo.create(SMALL).eval()
    torch.manual_seed(0)
    model = zoo.create(SMALL).eval()
    x = example_input(zoo.get_spec(SMALL).data.input_size, 5, seed=9)
    assert runner(x).shape == (5, 1000)
    meta = read_metadata(Path(report.path))
    spec = zoo.get_spec(SMALL)
    assert meta["zoo.preprocessing"]["mean"] == list(spec.data.mean)
    assert meta["zoo.preprocessing"]["input_size"] == list(spec.data.input_size)
    assert meta["zoo.weights"].startswith("none")
    del model


def test_large_onnx_weights_go_to_a_data_file_beside_the_graph(tmp_path, monkeypatch) -> None:
    """Protobuf holds at most 2 GiB: above 1 GiB of weights (forced here for a small model) the
    graph names a ``.data`` file beside it, under the output's own name, written only once the
    check passed; a failed check leaves neither file."""
    import zoo.export.run as run
    from zoo.export.formats import ONNX_EXTERNAL_BYTES, weight_bytes

    model = zoo.create(SMALL)
    monkeypatch.setattr(run, "ONNX_EXTERNAL_BYTES", weight_bytes(model) - 1)
    assert ONNX_EXTERNAL_BYTES == 1 << 30
    report = export(SMALL, format="onnx", out=tmp_path / "small.onnx", model=model)
    assert report.data_path == str(tmp_path / "small.onnx.data")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.onnx", "small.onnx.data"]
    assert (tmp_path / "small.onnx").stat().st_size < weight_bytes(model) / 10
    (tmp_path / "elsewhere").mkdir()
    for name in ("small.onnx", "small.onnx.data"):  # the pair moves together
        (tmp_path / name).rename(tmp_path / "elsewhere" / name)
    x = example_input(zoo.get_spec(SMALL).data.input_size, 2, seed=4)
    with torch.no_grad():
        expected = model.eval()(x)
    got = Runner(tmp_path / "elsewhere" / "small.onnx")(x)
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert read_metadata(tmp_path / "elsewhere" / "small.onnx")["zoo.model"] == SMALL

    small_report = export(SMALL, format="onnx", out=tmp_path / "plain.onnx", model=model,
                          external_data=False)
    assert small_report.data_path is None and not (tmp_path / "plain.onnx.data").exists()

    monkeypatch.setattr(run, "check_program", lambda *a, **k: (_ for _ in ()).throw(
        ExportError("planted check failure")))
    with pytest.raises(ExportError, match="planted"):
        export(SMALL, format="onnx", out=tmp_path / "failed.onnx", model=model)
    assert not [p for p in tmp_path.iterdir() if "failed" in p.name]


def test_onnx_metadata_and_fixed_batch(tmp_path) -> None:
    report = export(SMALL, format="onnx", out=tmp_path / "m.onnx", batch=2)
    assert report.checked_batches == (2,) and report.batch == "2"
    meta = read_metadata(Path(report.path))
    assert meta["zoo.model"] == SMALL and meta["zoo.family"] == "simplenet"
    import onnx

    dims = onnx.load(report.path).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [2, *zoo.get_spec(SMALL).data.input_size]


class _DataDependent(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # Python control flow on a tensor's value: not exportable
            return x.mean((2, 3)).repeat(1, 334)[:, :1000]
        return x.amax((2, 3)).repeat(1, 334)[:, :1000]


def test_unexportable_model_names_the_reason_and_writes_nothing(tmp_path) -> None:
    out = tmp_path / "m.pt2"
    with pytest.raises(ExportError, match="data-dependent") as e:
        export(SMALL, format="pt2", out=out, model=_DataDependent())
    assert SMALL in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_outputs_beyond_the_bound_fail_and_write_nothing(tmp_path, monkeypatch) -> None:
    real = Runner.__call__
    monkeypatch.setattr(Runner, "__call__", lambda self, x: real(self, x) * 1.001)
    with pytest.raises(ExportError, match="differs from eager"):
        export(SMALL, format="pt2", out=tmp_path / "m.pt2")
    assert list(tmp_path.iterdir()) == []


def test_unusable_out_fails_before_the_model_is_built(tmp_path, monkeypatch) -> None:
    from zoo.export import run

    monkeypatch.setattr(run, "create", lambda *a, **k: pytest.fail("built a model first"))
    (tmp_path / "afile").write_text("mine")
    with pytest.raises(UsageError, match=r"afile is a file, not a folder"):
        export("simplenetv1_small_m1_05", format="onnx", out=tmp_path / "afile" / "sub" / "x.onnx")
    assert (tmp_path / "afile").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_family_bound_is_declared_with_a_reason() -> None:
    from zoo.families import get_family

    for family in family_names():
        hooks = get_family(family).hooks
        assert 0 < hooks.export_tolerance < 1
        if hooks.export_tolerance > 1e-4:
            assert hooks.export_note, family


def test_cli_export(tmp_path, capsys) -> None:
    assert main(["export", SMALL, "--format", "pt2", "--out", str(tmp_path) + "/"]) == 0
    out = capsys.readouterr().out
    assert "max relative error" in out and (tmp_path / f"{SMALL}.pt2").is_file()
    assert main(["export", SMALL, "--format", "pt2", "--out", str(tmp_path / "x.onnx")]) == 2
    assert "named *.pt2" in capsys.readouterr().err
    assert main(["export", SMALL, "--format", "tflite", "--out", str(tmp_path)]) == 2
    assert main(["export", SMALL, "--format", "pt2", "--out", str(tmp_path), "--batch", "0"]) == 2
    with pytest.raises(UsageError):
        export(SMALL, format="pt2", out=tmp_path, batch=0)


def test_export_needs_the_extra_for_onnx(tmp_path, monkeypatch, capsys) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda n, *a: None if n == "onnxruntime" else real(n, *a))
    assert main(["export", SMALL, "--format", "onnx", "--out", str(tmp_path)]) == 2
    assert "zoo[export]" in capsys.readouterr().err


def _shipped_models() -> list[str]:
    """The models of zoo's own spec files (not those other tests registered in this process)."""
    from zoo.catalog import catalog
    from zoo.paths import data_dir

    root = data_dir("specs").resolve()
    return [name for name, entry in catalog().entries.items()
            if Path(entry.source).resolve().is_relative_to(root)]


def test_matrix_is_current_and_lists_every_model() -> None:
    """docs/export-matrix.json (scripts/export_matrix.py): rows have both formats, a reason for
    every failure and the current spec digest for every success; at least one model of every
    family is measured; docs/export.md is its rendering and names every catalog model (a row,
    or the list of models not measured yet)."""
    from zoo.export.matrix import ExportMatrix

    path = ROOT / "docs" / "export-matrix.json"
    matrix = ExportMatrix.model_validate(json.loads(path.read_text()))
    assert set(matrix.models) <= set(zoo.list_models()), "rows of models no longer in the catalog"
    measured = {zoo.get_spec(n).family for n in matrix.models}
    assert measured == set(family_names()), f"no model measured for {set(family_names()) - measured}"
    for name, row in matrix.models.items():
        assert set(row) == {"onnx", "pt2"}, name
        for fmt, result in row.items():
            assert result.status == "ok" or result.reason, (name, fmt)
            if result.status == "ok":
                assert result.spec_sha256 == zoo.get_spec(name).digest(), \
                    f"{name}: spec changed since its row; rerun scripts/export_matrix.py --resume"
    text = (ROOT / "docs" / "export.md").read_text()
    assert all(f"| {name} |" in text for name in matrix.models)
    from zoo.families import get_family

    notes = [get_family(f).hooks.export_note for f in family_names()]
    assert any(notes) and all(note in text for note in notes), \
        "docs/export.md lacks a family's export note; rerun scripts/export_matrix.py --render"
    missing = sorted(set(_shipped_models()) - set(matrix.models))
    unnamed = [name for name in missing if f"`{name}`" not in text]
    assert not unnamed, f"docs/export.md does not name {unnamed}; rerun scripts/export_matrix.py --render"


class _Noisy(nn.Module):
    """A model that draws random numbers at inference."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.inner(x)
        return out + torch.rand_like(out)


def test_model_random_at_inference_is_named_and_nothing_written(tmp_path) -> None:
    """A model whose two eager forwards of one input differ: the check says the model is
    random, not that the export is wrong."""
    model = _Noisy(zoo.create(SMALL))
    with pytest.raises(ExportError) as err:
        export(SMALL, format="pt2", out=tmp_path, model=model)
    assert str(err.value) == (f"{SMALL} (pt2): the model draws random numbers at inference (two "
                              "eager forwards of one input differ), so no export can match it; "
                              "nothing was written")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["pt2", "onnx"])
def test_sliced_sret_is_refused_with_the_reason_before_exporting(fmt, tmp_path, monkeypatch) -> None:
    """SReT's sliced models permute tokens at random in every forward, with either permutation
    source: export refuses them up front, saying why, and writes nothing; the models without
    slicing are not refused (they export: the family test above)."""
    import zoo.export.run as run

    monkeypatch.setattr(run, "_write", lambda *a, **k: pytest.fail("exported a refused model"))
    sliced = [n for n in zoo.list_models(family="sret")
              if any(st.recursive_groups > 1 for st in zoo.get_spec(n).arch.stages)]
    assert sliced and len(sliced) < len(zoo.list_models(family="sret"))
    name = min(sliced, key=lambda n: zoo.get_spec(n).arch.stages[0].dim)
    for permutation in ("global_rng", "seeded"):
        model = zoo.create(name, token_permutation=permutation, device="meta")
        with pytest.raises(ExportError) as err:
            export(name, format=fmt, out=tmp_path, model=model)
        message = str(err.value)
        assert message.startswith(f"{name} cannot be exported to {fmt}: its sliced group "
                                  "self-attention permutes the tokens with torch.randperm")
        assert "token_permutation='seeded' included" in message
        assert message.endswith("; nothing was written")
    assert list(tmp_path.iterdir()) == []
    from zoo.families import get_family

    for name in set(zoo.list_models(family="sret")) - set(sliced):
        assert get_family("sret").export_refusal(zoo.create(name, device="meta")) is None, name


def test_matrix_script_takes_patterns_in_order_and_keeps_results_over_timeouts() -> None:
    """scripts/export_matrix.py: models run in the order of the patterns given; a child that
    timed out (a busy machine) keeps a format's earlier result for the same spec."""
    import runpy

    script = runpy.run_path(str(Path(__file__).resolve().parents[1] / "scripts" / "export_matrix.py"))
    assert script["_in_pattern_order"](["a1", "b1", "a2", "c"], ["b*", "a*", "a1"]) == ["b1", "a1", "a2"]
    keep = script["_keep_over_timeouts"]

    def timed_out() -> dict:
        return {"status": "error", "reason": "did not finish within 9 s", "timed_out": True}

    ok = {"status": "ok", "max_rel_error": 0.0, "spec_sha256": "d1"}
    kept = keep({"pt2": timed_out(), "onnx": timed_out()},
                {"pt2": ok, "onnx": {"status": "error", "reason": "x", "spec_sha256": "d1"}}, "d1")
    assert kept["pt2"] == ok and kept["onnx"]["reason"] == "x"
    shared = timed_out()  # _run_child gives both formats one dict
    assert keep({"pt2": shared, "onnx": shared}, {"pt2": ok, "onnx": ok}, "d1") == {"pt2": ok, "onnx": ok}
    fresh = keep({"pt2": timed_out(), "onnx": timed_out()}, {"pt2": ok}, "d2")  # spec changed
    assert fresh["pt2"] == fresh["onnx"] == {"status": "error", "reason": "did not finish within 9 s"}
    measured = {"status": "error", "reason": "op", "spec_sha256": "d1"}
    assert keep({"pt2": measured}, {"pt2": ok}, "d1") == {"pt2": measured}
    # --no-timing: an untimed ok row keeps the latencies measured before for the same spec only
    timed = {**ok, "latency_ms": {"ort_b1": 1.0, "eager_b1": 2.0}}
    for digest, kept_latency in (("d1", True), ("d2", False)):
        row = {"onnx": dict(ok)}
        script["_keep_latency"](row, {"onnx": timed}, digest)
        assert ("latency_ms" in row["onnx"]) is kept_latency
    complete = script["_complete"]
    assert complete({"pt2": ok, "onnx": timed}, "d1", timed=True)
    assert not complete({"pt2": ok, "onnx": ok}, "d1", timed=True)  # untimed: timed on --resume
    assert complete({"pt2": ok, "onnx": ok}, "d1", timed=False)
    assert not complete({"pt2": ok, "onnx": timed}, "d2", timed=False)  # spec changed
    assert not complete({"pt2": measured, "onnx": timed}, "d1", timed=False)
    calls: list[str] = []
    a, b = script["_alternating_medians_ms"](lambda: calls.append("a"), lambda: calls.append("b"), 3)
    assert calls == ["a", "b"] * 4 and a >= 0 and b >= 0  # one warm-up each, then alternating


def _run_matrix_script(args: list[str], hide: str | None = None):
    """Run scripts/export_matrix.py in a fresh interpreter, ``hide`` made unimportable."""
    import subprocess
    import sys

    code = ("import runpy, sys\n"
            + (f"sys.modules[{hide!r}] = None\n" if hide else "")
            + f"sys.argv = ['export_matrix.py', *{args!r}]\n"
            + f"runpy.run_path({str(ROOT / 'scripts' / 'export_matrix.py')!r}, run_name='__main__')\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_matrix_script_refuses_an_environment_without_the_export_runtime(tmp_path: Path) -> None:
    """Without onnxruntime every child would fail and each row would be recorded as an export
    error: the script stops first, names what is missing, and writes nothing."""
    import sys

    proc = _run_matrix_script(["sret_t", "--out", str(tmp_path)], hide="onnxruntime")
    assert proc.returncode == 2, proc.stderr
    assert f"(with {sys.executable}) needs onnxruntime, which is not installed" in proc.stderr
    assert "pip install 'zoo[export]'" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_matrix_render_keeps_the_measurements_date_and_torch(tmp_path: Path) -> None:
    """--render measures nothing, so the file keeps the date and torch version of the run that
    measured it; the caveat is replaced as asked."""
    from zoo.export.matrix import VERSION

    name = zoo.list_models()[0]
    row = {"status": "ok", "max_rel_error": 0.0, "spec_sha256": zoo.get_spec(name).digest()}
    (tmp_path / "export-matrix.json").write_text(json.dumps({
        "version": VERSION, "generated": "2000-01-02", "torch_version": "0.0.test",
        "formats": {"onnx": "o", "pt2": "p"}, "models": {name: {"onnx": row, "pt2": row}}}))
    proc = _run_matrix_script(["--render", "--out", str(tmp_path), "--caveat", "a test caveat"])
    assert proc.returncode == 0, proc.stderr
    written = json.loads((tmp_path / "export-matrix.json").read_text())
    assert (written["generated"], written["torch_version"]) == ("2000-01-02", "0.0.test")
    assert written["caveat"] == "a test caveat" and written["models"][name]["onnx"] == row
    text = (tmp_path / "export.md").read_text()
    assert "on 2000-01-02" in text and "torch 0.0.test" in text and "a test caveat" in text
