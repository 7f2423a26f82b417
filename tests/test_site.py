"""`zoo catalog`: the site's data, measurement cache, export matrix, escaping and output folder
(no browser here; tests/test_site_browser.py opens the pages in Chromium)."""
from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import zoo
from zoo.paths import data_dir
from zoo.site import SiteError
from zoo.site import measurements as ms
from zoo.site.data import bibtex, pareto_front
from zoo.site.generate import MARKER, build_site

ROOT = Path(__file__).resolve().parents[1]
SMALL = "simplenetv1_small_m1_05"          # the cheapest model to build


def run_zoo(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """`python -m zoo ARGS` in a fresh process (a user spec never leaks into this one's catalog)."""
    proc = subprocess.run([sys.executable, "-m", "zoo", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


# -- measurement cache ----------------------------------------------------------------------------
def test_cache_key_follows_the_architecture_not_the_prose() -> None:
    spec = zoo.get_spec(SMALL)
    key = ms.spec_key(spec)
    assert re.fullmatch(r"[0-9a-f]{64}", key)
    assert ms.spec_key(spec.model_copy(update={"description": "changed"})) == key
    assert ms.spec_key(spec.with_overrides(num_classes=10)) != key
    assert ms.spec_key(spec.with_overrides(scale=0.75)) != key
    assert ms.spec_key(zoo.get_spec("simplenetv1_small_m2_05")) != key


def test_cache_key_follows_the_builder_code(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = zoo.get_spec(SMALL)
    key = ms.spec_key(spec)
    monkeypatch.setattr(ms, "_version", lambda dist: "99.0" if dist == "torch" else "x")
    ms.code_fingerprint.cache_clear()
    try:
        assert ms.spec_key(spec) != key
    finally:
        monkeypatch.undo()
        ms.code_fingerprint.cache_clear()
    assert ms.spec_key(spec) == key


def test_measure_once_then_from_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from zoo.measure import count_macs, count_params

    cache = tmp_path / "cache"
    report = build_site(tmp_path / "a", [SMALL], cache_dir=cache, export_matrix=None)
    assert report.measured == [SMALL] and not report.cached and not report.failed
    entries = list(cache.rglob("*.json"))
    assert len(entries) == 1
    entry = json.loads(entries[0].read_text())
    model = zoo.create(SMALL)
    spec = zoo.get_spec(SMALL)
    assert entry["params"] == count_params(model)
    assert entry["macs"] == count_macs(model, tuple(spec.data.input_size))
    assert entry["key"] == ms.spec_key(spec) and entries[0].stem == entry["key"]
    assert not list(cache.rglob("*.tmp"))  # atomic write left no temporary file

    def no_build(spec):
        raise AssertionError("a cached model was measured again")

    monkeypatch.setattr(ms, "measure_spec", no_build)
    report = build_site(tmp_path / "b", [SMALL], cache_dir=cache, export_matrix=None)
    assert report.cached == [SMALL] and not report.measured
    page = (tmp_path / "b" / "models" / f"{SMALL}.html").read_text()
    assert f"{entry['params'] / 1e6:.3g}M" in page

    calls = []
    monkeypatch.setattr(ms, "measure_spec", lambda spec: calls.append(spec.name) or
                        ms.Measured(1, 2, tuple(spec.data.input_size)))
    report = build_site(tmp_path / "c", [SMALL], cache_dir=cache, refresh=True, export_matrix=None)
    assert calls == [SMALL] and report.measured == [SMALL]


def test_unreadable_cache_entry_is_a_miss(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = zoo.get_spec(SMALL)
    path = ms.write_cached(spec, ms.Measured(5, 7, (3, 224, 224)), tmp_path)
    assert ms.read_cached(spec, tmp_path) == ms.Measured(5, 7, (3, 224, 224))
    path.write_text('{"format": 1, "key": "trunc')
    assert ms.read_cached(spec, tmp_path) is None
    monkeypatch.setattr(ms, "measure_spec", lambda s: ms.Measured(11, 13, (3, 224, 224)))
    assert ms.measurement(spec, root=tmp_path) == (ms.Measured(11, 13, (3, 224, 224)), "measured")
    assert ms.measurement(spec, root=tmp_path) == (ms.Measured(11, 13, (3, 224, 224)), "cached")


def test_no_measure_builds_nothing_and_imports_no_torch(tmp_path: Path) -> None:
    code = ("import sys; from zoo.cli import main; "
            f"rc = main(['catalog', 'simplenetv1_small*', '--out', {str(tmp_path / 's')!r}, "
            "'--no-measure', '--quiet', '--export-matrix', 'none']); "
            "print(rc, 'torch' in sys.modules)")
    env_cache = tmp_path / "empty-cache"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "ZOO_CACHE": str(env_cache)}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-2:] == ["0", "False"], proc.stdout
    assert "0 measured" in proc.stdout and "4 not measured" in proc.stdout
    assert not env_cache.exists()
    index = (tmp_path / "s" / "index.html").read_text()
    assert "no model is both measured and reported" in index


def test_measuring_failure_is_reported_not_hidden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(spec):
        raise RuntimeError("builder exploded")

    monkeypatch.setattr(ms, "measure_spec", broken)
    report = build_site(tmp_path / "s", [SMALL], cache_dir=tmp_path / "c", export_matrix=None)
    assert "builder exploded" in report.failed[SMALL]
    assert "builder exploded" in (tmp_path / "s" / "models" / f"{SMALL}.html").read_text()


# -- content ------------------------------------------------------------------------------------------
def test_pareto_front() -> None:
    pts = [(1, 60, "a"), (2, 59, "dominated"), (2, 70, "b"), (3, 70, "tie_costlier"), (5, 80, "c"),
           (4, 65, "dominated2")]
    assert pareto_front(pts) == ["a", "b", "c"]
    assert pareto_front([]) == []


@pytest.mark.parametrize("name", zoo.list_models())
def test_bibtex_entry_from_the_spec(name: str) -> None:
    spec = zoo.get_spec(name)
    entry = bibtex(spec)
    assert re.match(r"@(inproceedings|article)\{[a-z0-9]+,\n", entry)
    depth = 0
    for ch in entry.replace("\\{", "").replace("\\}", ""):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0
    assert depth == 0
    assert spec.paper.title.split()[0] in entry
    if spec.paper.arxiv:
        assert f"eprint = {{{spec.paper.arxiv}}}" in entry
    if spec.paper.authors:
        author = next(line for line in entry.splitlines() if line.startswith("  author = "))
        assert author.count(" and ") == len(spec.paper.authors.split(",")) - 1


def test_every_model_on_the_site_without_measuring(tmp_path: Path) -> None:
    """The full catalog, measuring off (cheap): a row and a page per `zoo list` model."""
    report = build_site(tmp_path / "s", measure=False, cache_dir=tmp_path / "c", export_matrix=None)
    names = zoo.list_models()
    assert report.models == names and report.unmeasured == names
    index = (tmp_path / "s" / "index.html").read_text()
    rows = re.findall(r'<tr data-model="([a-z0-9_]+)"', index)
    assert rows == names
    for name in names:
        page = (tmp_path / "s" / "models" / f"{name}.html").read_text()
        assert f'<h1 id="model-name">{name}</h1>' in page
    data = json.loads((tmp_path / "s" / "catalog.json").read_text())
    assert [m["name"] for m in data["models"]] == names


def test_model_page_content(tmp_path: Path) -> None:
    from zoo.registry import registry

    name = "nasnet_a_large"  # a Hub file record
    build_site(tmp_path / "s", [name, "sret_t", "ebv_resnet50"], measure=False,
               cache_dir=tmp_path / "c", export_matrix=None)
    page = html.unescape((tmp_path / "s" / "models" / f"{name}.html").read_text())
    rec = registry().records[registry().tags_of(name)[0]]
    for text in (rec.hub.repo_id, rec.hub.revision, rec.hub.sha256, rec.source.url,
                 rec.source.converter, f'zoo.create("{name}.tf_in1k", pretrained=True)',
                 f'timm.create_model("{name}.tf_in1k", pretrained=True)', "@inproceedings",
                 "Unknown: no export matrix", "name: nasnet_a_large", "family: nasnet",
                 "specs/" + Path(zoo.catalog.catalog().entries[name].source).resolve()
                 .relative_to(data_dir("specs").resolve()).as_posix()):
        assert text in page, text
    assert str(ROOT) not in page  # no local paths
    sret = html.unescape((tmp_path / "s" / "models" / "sret_t.html").read_text())
    assert "zoo convert sret_t.in1k FILE" in sret  # a convertible source says how to use it
    ebv = html.unescape((tmp_path / "s" / "models" / "ebv_resnet50.html").read_text())
    basis = registry().get("ebv_resnet50.in1k").source.tensors["basis"]  # and its tensor files
    assert basis.url in ebv and "zoo convert ebv_resnet50.in1k FILE --tensor basis=" \
        f"{basis.url.rsplit('/', 1)[1]}" in ebv


# -- export matrix ----------------------------------------------------------------------------------
def _matrix(tmp_path: Path, doc: dict) -> Path:
    path = tmp_path / "export-matrix.json"
    path.write_text(json.dumps(doc))
    return path


def test_export_matrix_shown_where_known(tmp_path: Path) -> None:
    path = _matrix(tmp_path, {
        "version": 1, "generated": "2026-11-02", "torch_version": "2.14.1",
        "formats": {"onnx": "ONNX", "pt2": "torch.export"},
        "models": {SMALL: {"onnx": {"status": "ok", "max_rel_error": 2.5e-6},
                           "pt2": {"status": "error", "op": "aten.weird_op",
                                   "reason": "data-dependent shape"}}}})
    build_site(tmp_path / "s", [SMALL, "simplenetv1_small_m2_05"], measure=False,
               cache_dir=tmp_path / "c", export_matrix=path)
    page = (tmp_path / "s" / "models" / f"{SMALL}.html").read_text()
    section = page[page.index('id="export"'):page.index('id="paper"')]
    assert 'class="export-ok">ok<' in section and 'class="export-error">error<' in section
    assert "2.5e-06" in section and "fails at aten.weird_op; data-dependent shape" in section
    other = (tmp_path / "s" / "models" / "simplenetv1_small_m2_05.html").read_text()
    section = other[other.index('id="export"'):other.index('id="paper"')]
    assert section.count(">unknown<") == 2


@pytest.mark.parametrize("doc, message", [
    ({"version": 1, "formats": {"onnx": "ONNX"}, "models": {SMALL: {"onnx": {"status": "fine"}}}},
     "status"),
    ({"version": 1, "formats": {"onnx": "ONNX"}, "models": {SMALL: {"onnx": {"status": "ok",
                                                                             "max_rel_err": 1}}}},
     "max_rel_err"),
    ({"version": 1, "formats": {"onnx": "ONNX"}, "models": {SMALL: {"tflite": {"status": "ok"}}}},
     "tflite"),
    ({"version": 2, "formats": {}, "models": {}}, "version"),
])
def test_export_matrix_errors_are_clear(tmp_path: Path, doc: dict, message: str) -> None:
    with pytest.raises(SiteError, match=message):
        build_site(tmp_path / "s", [SMALL], measure=False, cache_dir=tmp_path / "c",
                   export_matrix=_matrix(tmp_path, doc))
    assert not (tmp_path / "s").exists()


# -- output folder --------------------------------------------------------------------------------
def test_output_folder_is_replaced_whole_but_never_a_foreign_one(tmp_path: Path) -> None:
    out = tmp_path / "site"
    build_site(out, [SMALL, "simplenetv1_small_m2_05"], measure=False, cache_dir=tmp_path / "c",
               export_matrix=None)
    assert (out / MARKER).exists() and (out / "models" / "simplenetv1_small_m2_05.html").exists()
    build_site(out, [SMALL], measure=False, cache_dir=tmp_path / "c", export_matrix=None)
    assert sorted(p.name for p in (out / "models").iterdir()) == [f"{SMALL}.html"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".site")]  # no leftovers

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(SiteError, match="not written by `zoo catalog`"):
        build_site(mine, [SMALL], measure=False, cache_dir=tmp_path / "c", export_matrix=None)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


def test_unknown_pattern_is_an_error(tmp_path: Path) -> None:
    proc = run_zoo("catalog", "no_such_model*", "--out", str(tmp_path / "s"), "--no-measure",
                   check=False)
    assert proc.returncode == 2 and "no model matches ['no_such_model*']" in proc.stderr


# -- text from specs is escaped ---------------------------------------------------------------------
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def hostile_spec(path: Path) -> Path:
    path.write_text(f"""
models:
  simplenetv1_hostile:
    extends: simplenetv1_small_m1_05
    description: '{HOSTILE}'
    paper: {{title: 'T</title><script>alert(2)</script>', authors: '<b>A</b>, B&C',
             license: '<i>MIT</i>'}}
    reported: {{top1: 50.0, source: '"><svg onload=alert(3)>'}}
""")
    return path


def test_spec_text_is_escaped(tmp_path: Path) -> None:
    spec = hostile_spec(tmp_path / "hostile.yaml")
    run_zoo("catalog", "simplenetv1_hostile", "--specs", str(spec), "--out", str(tmp_path / "s"),
            "--no-measure", "--quiet")
    for page in (tmp_path / "s" / "index.html", tmp_path / "s" / "models" / "simplenetv1_hostile.html"):
        text = page.read_text()
        assert "<script>alert" not in text and "<img src=x" not in text and "<svg onload" not in text
        assert "<b>A</b>" not in text and "<i>MIT</i>" not in text
        assert "<script" not in text.replace('<script src="', "")  # only the site's own script file
    page = (tmp_path / "s" / "models" / "simplenetv1_hostile.html").read_text()
    assert html.escape(HOSTILE, quote=True) in page


def _one_per_family() -> list[str]:
    """Each family's cheapest model by its spec's reported MACs, else parameters."""
    def cost(name: str) -> tuple[float, float, str]:
        rep = zoo.get_spec(name).reported
        inf = float("inf")
        return ((rep.macs_m or inf) if rep else inf, (rep.params_m or inf) if rep else inf, name)

    return [min(zoo.list_models(family=fam), key=cost) for fam in zoo.list_families()
            if zoo.list_models(family=fam)]


@pytest.mark.parametrize("name", _one_per_family())
def test_meta_measurement_equals_a_real_model(name: str) -> None:
    """The site builds models with parameters on the meta device; its numbers are those of a real
    model counted as `zoo info` counts them."""
    from zoo.measure import count_macs, count_params

    spec = zoo.get_spec(name)
    got = ms.measure_spec(spec)
    model = zoo.create(name)
    assert got.params == count_params(model)
    assert got.macs == count_macs(model, tuple(spec.data.input_size))
    assert got.input_size == tuple(spec.data.input_size)


@pytest.mark.slow
def test_every_model_measured(tmp_path: Path) -> None:
    """The whole catalog measured (a few minutes on 2 cores), then regenerated from the cache."""
    names = zoo.list_models()
    report = build_site(tmp_path / "s", cache_dir=tmp_path / "c", export_matrix=None)
    assert report.failed == {} and sorted(report.measured + report.cached) == names
    # models that build the same network (same family/arch/data) are measured once
    assert len(report.measured) == len({ms.spec_key(zoo.get_spec(n)) for n in names})
    data = json.loads((tmp_path / "s" / "catalog.json").read_text())
    assert all(m["params"] > 0 and m["macs"] > 0 for m in data["models"])
    report = build_site(tmp_path / "s", measure=False, cache_dir=tmp_path / "c", export_matrix=None)
    assert report.cached == names
