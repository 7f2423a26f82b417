"""Looking at a generated site in a real browser: a loopback HTTP server for the site folder and
Chromium launched through Playwright with the flags a headless CI machine needs.

Used by the browser tests and ``scripts/catalog_screenshot.py``; needs ``playwright`` (the
``test`` extra) and a Chromium binary (Debian's ``chromium`` package: ``/usr/bin/chromium``, or
``$ZOO_CHROMIUM``).  Playwright's own browser downloads are never used.
"""
from __future__ import annotations

import contextlib
import functools
import http.server
import os
import threading
from pathlib import Path
from typing import Any, Iterator

CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run")


def chromium_path() -> str:
    return os.environ.get("ZOO_CHROMIUM", "/usr/bin/chromium")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass


@contextlib.contextmanager
def serve(folder: str | Path) -> Iterator[str]:
    """Serve ``folder`` on 127.0.0.1 (a free port) for the block; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def launch_chromium(playwright: Any) -> Any:
    """A headless Chromium browser from ``playwright.sync_api.sync_playwright()``."""
    return playwright.chromium.launch(executable_path=chromium_path(), headless=True,
                                      args=list(CHROMIUM_ARGS))
