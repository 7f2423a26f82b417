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


def _rgb(colour: str) -> tuple[int, ...]:
    assert re.fullmatch(r"#[0-9a-f]{6}", colour), colour
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))


def _closest_pair(colours: list[str]) -> float:
    import itertools
    import math

    return min(math.dist(_rgb(a), _rgb(b)) for a, b in itertools.combinations(colours, 2))


@pytest.mark.parametrize("n", sorted({len(zoo.list_families()), 12, 13, 16, 24}))
def test_family_colours_are_distinct(n: int) -> None:
    """One colour per family that a reader can tell apart from every other family's (the first
    families beyond the fixed palette once got near-copies of its blue)."""
    from zoo.site.plots import PALETTE, family_colours

    families = [f"fam{i:02d}" for i in range(n)]
    colours = family_colours(families)
    assert list(colours) == families
    assert [colours[f] for f in families[:len(PALETTE)]] == list(PALETTE[:n])  # stable
    assert _closest_pair(list(colours.values())) >= (50 if n <= 16 else 35)


def test_index_plots_one_colour_per_family(tmp_path: Path) -> None:
    """Every plot point of a family has that family's colour (hollow points: the outline), the
    legend shows it, and no two families share one."""
    for i, name in enumerate(zoo.list_models()):  # made-up measurements: every model plotted
        spec = zoo.get_spec(name)
        ms.write_cached(spec, ms.Measured((i + 1) * 10**6, (i + 1) * 10**8,
                                          tuple(spec.data.input_size)), tmp_path / "c")
    build_site(tmp_path / "s", measure=False, cache_dir=tmp_path / "c", export_matrix=None)
    index = (tmp_path / "s" / "index.html").read_text()
    seen: dict[str, set[str]] = {}
    for dot in re.findall(r'<circle [^>]*class="pt[ "][^>]*>', index):
        fill, stroke = re.search(r'fill="([^"]+)" stroke="([^"]+)"', dot).groups()
        family = re.search(r'data-family="([^"]+)"', dot).group(1)
        seen.setdefault(family, set()).add(stroke if fill == "#fff" else fill)
    assert set(seen) == {f for f in zoo.list_families() if zoo.list_models(family=f)}
    assert all(len(c) == 1 for c in seen.values()), seen
    colours = {f: c.pop() for f, c in seen.items()}
    assert _closest_pair(list(colours.values())) >= 50, colours
    legend = index[index.index('<ul class="legend">'):]
    for family, colour in colours.items():
        assert f'fill="{colour}"></circle></svg> {family}</li>' in legend, family


def test_index_table_columns(tmp_path: Path) -> None:
    """The table's columns: family, measured params/MACs beside the paper's and the difference,
    input size, top-1 with its source, weights availability, licence."""
    from zoo.registry import registry

    name = "nasnet_a_large"
    spec = zoo.get_spec(name)
    rep = spec.reported
    assert rep is not None and rep.params_m and rep.macs_m and rep.top1
    ms.write_cached(spec, ms.Measured(round(rep.params_m * 1.1e6), round(rep.macs_m * 0.95e6),
                                      tuple(spec.data.input_size)), tmp_path / "c")
    build_site(tmp_path / "s", [name, "sret_t", "simplenet_cifar_5m"], measure=False,
               cache_dir=tmp_path / "c", export_matrix=None)
    index = (tmp_path / "s" / "index.html").read_text()
    head = index[index.index('<table id="models"'):index.index("</thead>")]
    labels = re.findall(r'<button type="button" data-type="(?:num|text)" title="[^"]*">([^<]+)<', head)
    assert labels == ["Model", "Family", "Params", "paper", "Δ", "MACs", "paper", "Δ", "Input",
                      "Top-1", "Weights", "Licence"]

    def cells(model: str) -> list[str]:
        row = re.search(rf'<tr data-model="{model}".*?</tr>', index, re.S).group(0)
        return [html.unescape(re.sub(r"<[^>]+>", " ", c)).split()
                for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]

    row = cells(name)
    h, w = spec.data.input_size[1:]
    licence = registry().records[registry().tags_of(name)[0]].license
    assert row[0] == [name] and row[1] == [spec.family]
    assert row[2] == [f"{rep.params_m * 1.1:.3g}M"] and row[4] == ["+10.0%"]
    assert row[5][0].endswith("M") or row[5][0].endswith("G")
    assert row[7] == ["-5.0%"] and row[8] == [f"{h}×{w}"]
    assert row[9][0] == f"{rep.top1:g}" and " ".join(row[9][1:]) == " ".join(rep.source.split())
    assert row[10] == ["Hub", "file"] and " ".join(row[11]) == licence
    assert cells("sret_t")[10][0] == "convertible"
    assert cells("sret_t")[2] == ["–"] and cells("sret_t")[4] == ["–"]  # not measured: no Δ
    cifar = cells("simplenet_cifar_5m")
    assert cifar[9][:2] == [f"{zoo.get_spec('simplenet_cifar_5m').reported.top1:g}", "(cifar-10)"]


def test_plot_cost_axes_are_logarithmic() -> None:
    """Equal ratios of cost are equal distances on the x axis; top-1 stays linear."""
    from zoo.site.plots import Axis, Point, Scatter

    points = [Point(x, y, f"m{i}", "f", "", "#") for i, (x, y) in
              enumerate([(1.0, 60.0), (10.0, 70.0), (100.0, 75.0), (1000.0, 80.0)])]
    svg = Scatter("t", Axis("cost (log scale)"), Axis("top-1", log=False, unit_millions=False),
                  points, {"f": "#1f77b4"}).svg()
    xs = [float(v) for v in re.findall(r'<circle cx="([0-9.]+)"', svg)]
    ys = [float(v) for v in re.findall(r'<circle cx="[0-9.]+" cy="([0-9.]+)"', svg)]
    steps = [b - a for a, b in zip(xs, xs[1:])]
    assert min(steps) > 0 and max(steps) - min(steps) < 0.5, xs
    assert abs((ys[0] - ys[1]) / (ys[1] - ys[2]) - 2.0) < 0.05, ys  # 10 points vs 5 points


def test_site_loads_nothing_from_elsewhere(tmp_path: Path) -> None:
    """Offline: every script, stylesheet, icon and image a page loads is a file of the site."""
    build_site(tmp_path / "s", [SMALL, "nasnet_a_large", "simplenet_cifar_5m"], measure=False,
               cache_dir=tmp_path / "c")
    pages = [tmp_path / "s" / "index.html", *sorted((tmp_path / "s" / "models").iterdir())]
    for page in pages:
        text = page.read_text()
        tags = re.findall(r"<(?:script|link|img|iframe|source|embed|object|audio|video)\b[^>]*>", text)
        assert len(tags) >= 3, page
        for tag in tags:
            for url in re.findall(r'\b(?:src|href|data)="([^"]*)"', tag):
                assert not re.match(r"([a-z][a-z0-9+.-]*:|//)", url, re.I), (page.name, tag)
                assert (page.parent / url).resolve().is_file(), (page.name, url)
        assert "@import" not in text and "url(" not in text
        assert "default-src 'none'" in html.unescape(text)  # the CSP forbids other origins
    for asset in (tmp_path / "s" / "assets").iterdir():
        text = asset.read_text()
        assert not re.search(r"@import|url\(\s*['\"]?(https?:)?//|fetch\(|XMLHttpRequest", text), asset


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


def test_export_matrix_caveat_is_shown(tmp_path: Path) -> None:
    """A matrix's caveat (how its numbers were made, e.g. noisy latencies) stands beside them."""
    path = _matrix(tmp_path, {
        "version": 1, "formats": {"onnx": "ONNX"}, "caveat": "a busy machine: latencies are noisy",
        "models": {SMALL: {"onnx": {"status": "ok", "latency_ms": {"ort_b1": 3.0}}}}})
    build_site(tmp_path / "s", [SMALL], measure=False, cache_dir=tmp_path / "c", export_matrix=path)
    page = (tmp_path / "s" / "models" / f"{SMALL}.html").read_text()
    section = page[page.index('id="export"'):page.index('id="paper"')]
    assert "ort_b1 3 ms" in section and "a busy machine: latencies are noisy" in section


def test_default_export_matrix_is_the_checkouts(tmp_path: Path) -> None:
    """Without --export-matrix, model pages show docs/export-matrix.json's rows."""
    from zoo.site.exports import ExportMatrix, default_path

    assert default_path() == ROOT / "docs" / "export-matrix.json"
    matrix = ExportMatrix.model_validate_json(default_path().read_text())
    # a model that exports and one refused (rows not in the file: test_export_matrix_shown_where_known)
    shown = [sorted(n for n, r in matrix.models.items() if all(v.status == "ok" for v in r.values()))[0],
             sorted(n for n, r in matrix.models.items() if any(v.status != "ok" for v in r.values()))[0]]
    report = build_site(tmp_path / "s", shown, measure=False, cache_dir=tmp_path / "c")
    assert report.export_matrix == default_path()
    for name in shown:
        page = (tmp_path / "s" / "models" / f"{name}.html").read_text()
        section = page[page.index('id="export"'):page.index('id="paper"')]
        for fmt, res in matrix.models[name].items():
            assert f'<th scope="row">{html.escape(matrix.formats[fmt])}</th><td class="export-' \
                   f'{res.status}">{res.status}<' in section


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


def test_readme_shows_the_command_and_the_screenshot() -> None:
    """The README gives `zoo catalog --out` and shows docs/catalog-index.png, which is a real
    screenshot (a PNG of the index, as scripts/catalog_screenshot.py writes it)."""
    from PIL import Image

    readme = (ROOT / "README.md").read_text()
    assert re.search(r"`zoo catalog --out \S+`", readme)
    assert "](docs/catalog-index.png)" in readme and "(docs/catalog.md)" in readme
    with Image.open(ROOT / "docs" / "catalog-index.png") as img:
        assert img.format == "PNG" and img.width >= 900 and img.height >= 700
        assert len(img.convert("RGB").getcolors(1 << 20)) > 50
