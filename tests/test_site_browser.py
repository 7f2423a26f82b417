"""The catalog site in a real browser: Debian's Chromium driven by Playwright, the site served on
127.0.0.1.  Skipped where Chromium or playwright is missing, unless ``ZOO_REQUIRE_BROWSER=1``
(CI sets it, so there a missing browser fails)."""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import zoo
from zoo.site.browser import chromium_path, launch_chromium, serve
from zoo.site.generate import build_site

ROOT = Path(__file__).resolve().parents[1]
# a measured subset: three families, two top-1 datasets, cheap to build
SUBSET = ["simplenetv1_small*", "meal_v2_mobilenetv3_small*", "sret_t", "simplenet_cifar_5m"]

pytestmark = pytest.mark.xdist_group("site-browser")  # one worker, one browser


def _browser_missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install '.[test]')"
    if not shutil.which(chromium_path()):
        return f"no Chromium at {chromium_path()} (apt-get install -y chromium)"
    return None


@pytest.fixture(scope="module")
def browser():
    missing = _browser_missing()
    if missing:
        if os.environ.get("ZOO_REQUIRE_BROWSER") == "1":
            pytest.fail(f"ZOO_REQUIRE_BROWSER=1 but {missing}")
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch_chromium(p)
        yield b
        b.close()


class Page:
    """A browser page that records console errors, page errors and dialogs."""

    def __init__(self, browser, width: int = 1400, height: int = 1000):
        self.page = browser.new_page(viewport={"width": width, "height": height})
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.requests: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

        def dialog(d):
            self.dialogs.append(d.message)
            d.dismiss()

        self.page.on("dialog", dialog)

    def open(self, url: str):
        self.page.goto(url, wait_until="load")
        return self.page

    def close(self) -> None:
        self.page.close()


@pytest.fixture(scope="module")
def small_site(tmp_path_factory):
    """The subset, measured (into a private cache), served; yields (base url, catalog.json)."""
    base = tmp_path_factory.mktemp("site-small")
    build_site(base / "site", SUBSET, cache_dir=base / "cache", export_matrix=None)
    data = json.loads((base / "site" / "catalog.json").read_text())
    with serve(base / "site") as url:
        yield url, data


@pytest.fixture(scope="module")
def full_site(tmp_path_factory):
    """Every model, measuring off (no cache: nothing is built)."""
    base = tmp_path_factory.mktemp("site-full")
    build_site(base / "site", measure=False, cache_dir=base / "cache", export_matrix=None)
    with serve(base / "site") as url:
        yield url


def _row_names(page) -> list[str]:
    return page.eval_on_selector_all("#models tbody tr", "rows => rows.map(r => r.dataset.model)")


def _visible_rows(page) -> list[str]:
    return page.eval_on_selector_all("#models tbody tr:not([hidden])",
                                     "rows => rows.map(r => r.dataset.model)")


def test_index_loads_without_console_errors(browser, small_site) -> None:
    url, data = small_site
    p = Page(browser)
    page = p.open(url + "index.html")
    assert page.title() == "zoo model catalog"
    assert _row_names(page) == sorted(m["name"] for m in data["models"])
    page.wait_for_load_state("networkidle")
    assert p.errors == [] and p.dialogs == []
    # offline: the page, its script, stylesheet and icon, all from the site itself
    assert all(r.startswith(url) for r in p.requests), p.requests
    assert {url + "index.html", url + "assets/site.js", url + "assets/site.css"} <= set(p.requests)
    p.close()


def test_sorting_a_column_reorders_rows(browser, small_site) -> None:
    url, data = small_site
    p = Page(browser)
    page = p.open(url + "index.html")
    params = {m["name"]: m["params"] for m in data["models"]}
    assert len(set(params.values())) > 2 and None not in params.values()
    button = page.locator("#models thead th button", has_text="Params")
    button.click()
    ascending = sorted(params, key=lambda n: (params[n], n))
    assert _row_names(page) == ascending
    assert button.locator("xpath=..").get_attribute("aria-sort") == "ascending"
    button.click()
    assert _row_names(page) == sorted(params, key=lambda n: (-params[n], n))
    # a text column, and rows without a value (MACs the papers do not give) stay last
    page.locator("#models thead th button", has_text="Family").click()
    fam = {m["name"]: m["family"] for m in data["models"]}
    assert _row_names(page) == sorted(fam, key=lambda n: (fam[n], n))
    page.locator("#models thead th button").nth(6).click()  # paper MACs
    rows = _row_names(page)
    reported = {m["name"]: (m["reported"] or {}).get("macs_m") for m in data["models"]}
    known = [n for n in rows if reported[n] is not None]
    assert rows[:len(known)] == sorted(known, key=lambda n: (reported[n], n))
    assert all(reported[n] is None for n in rows[len(known):])
    assert p.errors == []
    p.close()


def test_filters_hide_rows_and_plot_points(browser, small_site) -> None:
    url, data = small_site
    p = Page(browser)
    page = p.open(url + "index.html")
    everyone = sorted(m["name"] for m in data["models"])
    page.select_option("#filter-family", "simplenet")
    simplenet = sorted(m["name"] for m in data["models"] if m["family"] == "simplenet")
    assert _visible_rows(page) == simplenet and len(simplenet) < len(everyone)
    assert page.locator("#shown-count").inner_text() == f"{len(simplenet)} of {len(everyone)} models"
    hidden = page.locator("svg.plot a.pt-link:not(.filtered-out)").evaluate_all(
        "links => links.map(a => a.dataset.model)")
    assert set(hidden) <= set(simplenet) and hidden
    assert page.locator('svg.plot a.pt-link[data-model="sret_t"]').first.is_hidden()
    page.select_option("#filter-family", "")
    page.fill("#filter-text", "sret")
    assert _visible_rows(page) == ["sret_t"]
    page.fill("#filter-text", "")
    page.select_option("#filter-dataset", "cifar-10")
    assert _visible_rows(page) == ["simplenet_cifar_5m"]
    page.select_option("#filter-dataset", "")
    page.select_option("#filter-weights", "none")
    none = sorted(m["name"] for m in data["models"] if not m["weights"])
    assert _visible_rows(page) == none
    page.select_option("#filter-weights", "")
    assert _visible_rows(page) == everyone
    assert p.errors == []
    p.close()


def _drawn_pixels(png: bytes, colours: list[str]) -> int:
    """Pixels of a screenshot within a small distance of any of ``colours`` (#rrggbb)."""
    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("RGB")
    targets = [tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) for c in colours]
    return sum(count for count, px in img.getcolors(img.width * img.height)
               if any(sum(abs(a - b) for a, b in zip(px, t)) < 30 for t in targets))


def test_each_plot_renders(browser, small_site) -> None:
    url, data = small_site
    p = Page(browser)
    page = p.open(url + "index.html")
    plots = page.locator("svg.plot")
    assert plots.count() == 6  # top-1 vs MACs/params for 2 datasets, 2 claims plots
    for i in range(plots.count()):
        svg = plots.nth(i)
        ident = svg.get_attribute("id")
        n = int(svg.get_attribute("data-points"))
        dots = svg.locator("circle.pt")
        assert n > 0 and dots.count() == n, ident
        colours = sorted(set(dots.evaluate_all("cs => cs.map(c => c.getAttribute('fill') === '#fff' "
                                               "? c.getAttribute('stroke') : c.getAttribute('fill'))")))
        box = svg.bounding_box()
        assert box["width"] > 300 and box["height"] > 200, ident
        assert _drawn_pixels(svg.screenshot(), colours) > 20 * n, ident  # dots really drawn
    imagenet = page.locator("#plot-top1-macs-0")
    expected = [m["name"] for m in data["models"]
                if (m["reported"] or {}).get("dataset") == "imagenet-1k" and m["macs"]]
    assert sorted(imagenet.locator("circle.pt").evaluate_all(
        "cs => cs.map(c => c.dataset.model)")) == sorted(expected)
    assert imagenet.locator("polyline.pareto").count() == 1
    assert imagenet.locator("circle.pt[data-front]").count() >= 2
    assert p.errors == []
    p.close()


def test_hover_shows_the_model_name(browser, small_site) -> None:
    url, _ = small_site
    p = Page(browser)
    page = p.open(url + "index.html")
    assert page.locator("#tooltip").is_hidden()
    page.locator('#plot-top1-params-0 a.pt-link[data-model="sret_t"] circle.pt').hover()
    tip = page.locator("#tooltip")
    assert tip.is_visible() and tip.inner_text().splitlines()[0] == "sret_t"
    page.mouse.move(2, 2)
    assert tip.is_hidden()
    p.close()


def test_model_page_opens_from_the_index(browser, small_site) -> None:
    url, data = small_site
    p = Page(browser)
    page = p.open(url + "index.html")
    first = _row_names(page)[0]
    page.locator(f'#models tr[data-model="{first}"] td.name a').click()
    page.wait_for_url(f"**/models/{first}.html")
    assert page.locator("h1").inner_text() == first
    for section in ("#numbers", "#usage-zoo", "#usage-timm", "#weights", "#export", "#bibtex",
                    "#spec-yaml"):
        assert page.locator(section).is_visible(), section
    assert f'zoo.get_spec("{first}")' in page.locator("#usage-zoo").inner_text()
    page.locator("nav.crumbs a").click()
    page.wait_for_url("**/index.html")
    page.locator('#plot-top1-macs-0 a.pt-link[data-model="sret_t"] circle.pt').click()
    page.wait_for_url("**/models/sret_t.html")
    assert page.locator("h1").inner_text() == "sret_t"
    page.wait_for_load_state("networkidle")
    assert p.errors == []
    assert all(r.startswith(url) for r in p.requests), p.requests
    p.close()


def test_every_listed_model_appears_and_has_a_page(browser, full_site) -> None:
    p = Page(browser)
    page = p.open(full_site + "index.html")
    names = zoo.list_models()
    assert _row_names(page) == names
    links = page.eval_on_selector_all("#models td.name a", "as => as.map(a => a.href)")
    assert links == [f"{full_site}models/{n}.html" for n in names]
    for name, link in zip(names, links):
        page.goto(link, wait_until="load")
        assert page.locator("h1").inner_text() == name
    assert p.errors == [], p.errors
    p.close()


def _catalog(out: Path, *args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "zoo", "catalog", *args, "--out", str(out),
                           "--no-measure", "--quiet", "--export-matrix", "none"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr


def test_a_model_added_to_a_spec_file_appears_on_regeneration(browser, tmp_path: Path) -> None:
    specs = tmp_path / "my_specs.yaml"
    specs.write_text("models:\n  simplenetv1_mine_a:\n    extends: simplenetv1_small_m1_05\n"
                     "    description: my first variant\n")
    out = tmp_path / "site"
    _catalog(out, "simplenetv1_*", "--specs", str(specs))
    with serve(out) as url:
        p = Page(browser)
        page = p.open(url + "index.html")
        assert "simplenetv1_mine_a" in _row_names(page)
        assert "simplenetv1_mine_b" not in _row_names(page)
        specs.write_text(specs.read_text() + "  simplenetv1_mine_b:\n    extends: simplenetv1_mine_a\n"
                         "    description: my second variant, wider\n    arch: {scale: 0.75}\n")
        _catalog(out, "simplenetv1_*", "--specs", str(specs))
        page.reload(wait_until="load")
        assert "simplenetv1_mine_b" in _row_names(page)
        page.locator('#models tr[data-model="simplenetv1_mine_b"] td.name a').click()
        page.wait_for_url("**/models/simplenetv1_mine_b.html")
        assert page.locator(".desc").inner_text() == "my second variant, wider"
        assert "scale: 0.75" in page.locator("#spec-yaml").inner_text()
        assert p.errors == []
        p.close()


def test_hostile_spec_text_stays_text(browser, tmp_path: Path) -> None:
    from tests.test_site import HOSTILE, hostile_spec

    spec = hostile_spec(tmp_path / "hostile.yaml")
    _catalog(tmp_path / "site", "simplenetv1_hostile", "--specs", str(spec))
    with serve(tmp_path / "site") as url:
        p = Page(browser)
        page = p.open(url + "index.html")
        page.hover('a.pt-link[data-model="simplenetv1_hostile"] circle.pt >> nth=0')
        page = p.open(url + "models/simplenetv1_hostile.html")
        page.wait_for_load_state("networkidle")
        assert page.locator(".desc").inner_text() == HOSTILE
        assert page.locator("img").count() == 0 and page.locator("main script").count() == 0
        assert p.dialogs == [] and p.errors == []
        p.close()


def test_screenshot_script(browser, tmp_path: Path) -> None:
    """scripts/catalog_screenshot.py (which made docs/catalog-index.png), in its own process."""
    from PIL import Image

    site = tmp_path / "site"
    build_site(site, ["simplenetv1_small*"], measure=False, cache_dir=tmp_path / "c",
               export_matrix=None)
    out = tmp_path / "shot.png"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "catalog_screenshot.py"),
                           "--site", str(site), "--out", str(out), "--width", "900", "--height", "700"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    with Image.open(out) as img:
        assert img.size == (900, 700)
        assert len(img.convert("RGB").getcolors(1 << 20)) > 50  # not a blank page
