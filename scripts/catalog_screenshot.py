"""Screenshot of the catalog site's index (the picture in docs/catalog-index.png).

    python scripts/catalog_screenshot.py [--site DIR] [--out docs/catalog-index.png]

Without --site, the site of every model is generated first (measurements from zoo's cache, the
models not cached yet are measured: a few minutes on 2 cores the first time).  Needs playwright
and Debian's chromium (see zoo/site/browser.py).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", help="an existing `zoo catalog` folder (default: generate one)")
    parser.add_argument("--out", default="docs/catalog-index.png")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=1250)
    parser.add_argument("--no-measure", action="store_true", help="when generating: cached "
                        "measurements only")
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    from zoo.site.browser import launch_chromium, serve
    from zoo.site.generate import build_site, stderr_progress

    with tempfile.TemporaryDirectory() as tmp:
        site = Path(args.site) if args.site else Path(tmp) / "site"
        if not args.site:
            build_site(site, measure=not args.no_measure, progress=stderr_progress)
        with serve(site) as url, sync_playwright() as p:
            browser = launch_chromium(p)
            page = browser.new_page(viewport={"width": args.width, "height": args.height})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url + "index.html", wait_until="networkidle")
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=args.out)
            browser.close()
    if errors:
        print("console errors on the index:\n" + "\n".join(errors), file=sys.stderr)
        return 1
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
