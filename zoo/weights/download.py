"""Downloading an original checkpoint from its host (:class:`~zoo.weights.sources.SourcePlan`)
into a temporary file, validated before and while it is written.

- Redirects are followed by hand (at most :data:`MAX_HOPS`), each one rewritten per
  ``ZOO_SOURCE_REWRITE``; a redirect to anything but https is refused.
- Google Drive answers large files with a "can't scan for viruses" page: its confirmation form
  (or, on the older endpoint, its ``confirm=`` link or ``download_warning`` cookie) is followed
  once; a second page (quota exceeded, access denied) is an error.
- An HTML page where the file should be, a ``Content-Length`` over the cap
  (``ZOO_SOURCE_MAX_BYTES``, default 4 GiB) or different from the registry's size, and a body
  that does not start like the recorded format (zip/pickle/tar for ``pickle``, a safetensors
  header) are refused before a byte is written; a body that runs past its length or the cap,
  stops short, or stalls for ``ZOO_SOURCE_TIMEOUT`` seconds (default 60) is aborted.  Stalls,
  cut connections and server errors are retried (3 attempts in all).
- Bytes go to a temporary file in the folder the caller names, hashed on the way; any failure
  removes it.  Hub files go through huggingface_hub (:func:`zoo.weights.hub.hub_download`).
"""
from __future__ import annotations

import hashlib
import html
import http.client
import http.cookiejar
import os
import socket
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

from zoo.errors import SourceDownloadError, WeightsError
from zoo.version import __version__
from zoo.weights.sources import SourcePlan, rewrite, rewrite_map, safe_filename

MAX_HOPS = 10
MAX_HTML = 1 << 20
ATTEMPTS = 3
_CHUNK = 1 << 20
_HEAD = 4096
MAX_BYTES_ENV = "ZOO_SOURCE_MAX_BYTES"
TIMEOUT_ENV = "ZOO_SOURCE_TIMEOUT"


def max_bytes() -> int:
    return _env_number(MAX_BYTES_ENV, 4 << 30)


def timeout() -> float:
    return float(_env_number(TIMEOUT_ENV, 60))


def _env_number(name: str, default: int) -> int:
    text = os.environ.get(name)
    if not text:
        return default
    try:
        value = int(float(text))
    except ValueError:
        value = 0
    if value <= 0:
        raise WeightsError(f"{name}={text!r}: give a positive number")
    return value


@dataclass(frozen=True)
class Downloaded:
    """A downloaded file (a temporary file the caller moves or removes)."""

    path: Path
    sha256: str
    size: int
    filename: str
    final_url: str
    how: str


class _Retry(Exception):
    """A transient failure (stall, cut connection, server error): try again."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # redirects are followed by hand (rewritten, checked, counted)


class _Forms(HTMLParser):
    """The forms (action, hidden inputs) and ``confirm=`` links of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, list[tuple[str, str]], str]] = []
        self.links: list[str] = []
        self._form: tuple[str, list[tuple[str, str]], str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._form = (a.get("action", ""), [], a.get("id", ""))
            self.forms.append(self._form)
        elif tag == "input" and self._form is not None and a.get("name"):
            if a.get("type", "hidden") == "hidden":
                self._form[1].append((a["name"], a.get("value", "")))
        elif tag == "a" and "confirm=" in a.get("href", ""):
            self.links.append(a["href"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None


def drive_confirmation(page: str, page_url: str,
                       cookies: http.cookiejar.CookieJar | None = None) -> str | None:
    """The URL that Google Drive's virus-scan warning page confirms the download with: its
    download form (``drive.usercontent.google.com``), a ``confirm=`` link, or the
    ``download_warning`` cookie of the older endpoint; None if the page has none."""
    parser = _Forms()
    try:
        parser.feed(page)
    except Exception:  # a malformed page: no confirmation in it
        return None
    for action, inputs, form_id in parser.forms:
        if action and (form_id == "download-form" or "download" in action):
            query = urlencode(inputs)
            return urljoin(page_url, html.unescape(action)) + (f"?{query}" if query else "")
    if parser.links:
        return urljoin(page_url, html.unescape(parser.links[0]))
    for cookie in cookies or ():
        if cookie.name.startswith("download_warning"):
            sep = "&" if urlsplit(page_url).query else "?"
            return f"{page_url}{sep}confirm={cookie.value}"
    return None


def _looks_like_html(head: bytes) -> bool:
    low = head.lstrip()[:512].lower()
    return low.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<?xml")) \
        or b"<html" in low


def format_problem(head: bytes, fmt: str) -> str | None:
    """Why a body that starts with ``head`` is not a file of format ``fmt``, or None."""
    if not head:
        return "the body is empty"
    if fmt == "safetensors":
        if len(head) >= 9:
            n = int.from_bytes(head[:8], "little")
            if 2 <= n <= 100 << 20 and head[8:9] == b"{":
                return None
        return "it does not start with a safetensors header"
    if fmt == "pickle":
        if head.startswith((b"PK\x03\x04", b"\x80")) or head[257:262] == b"ustar":
            return None  # torch.save's zip, a legacy pickle, or the oldest tar format
        return "it is neither a zip (torch.save), a pickle nor a tar file"
    return None


def _describe(head: bytes) -> str:
    try:
        text = head[:60].decode("utf-8")
        return f"starts with {text!r}"
    except UnicodeDecodeError:
        return f"starts with bytes {head[:16].hex()}"


def http_download(plan: SourcePlan, folder: Path, *, fmt: str, expected_size: int | None = None,
                  what: str, progress: bool = False) -> Downloaded:
    """Download a non-Hub source into a temporary file in ``folder`` (see the module doc)."""
    if plan.download_url is None:
        raise SourceDownloadError(f"{what}: {plan.url} has no direct download ({plan.reason})")
    last: Exception | None = None
    for attempt in range(ATTEMPTS):
        try:
            return _attempt(plan, folder, fmt=fmt, expected_size=expected_size, what=what,
                            progress=progress)
        except _Retry as e:
            last = e
            if attempt + 1 < ATTEMPTS:
                time.sleep(min(0.5 * (attempt + 1), 2.0))
    raise SourceDownloadError(f"{what}: download from {plan.url} failed {ATTEMPTS} times: {last}; "
                              "retry later, or download it by hand and pass its folder with "
                              "--from-dir")


def _attempt(plan: SourcePlan, folder: Path, *, fmt: str, expected_size: int | None, what: str,
             progress: bool) -> Downloaded:
    mapping = rewrite_map()
    cookies = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(_NoRedirect(), urllib.request.HTTPCookieProcessor(cookies))
    url = plan.download_url or plan.url
    confirmed = False
    wait = timeout()
    for _ in range(MAX_HOPS):
        if urlsplit(url).scheme != "https":
            raise SourceDownloadError(f"{what}: {plan.url} redirected to {url[:200]!r}, which is "
                                      "not https; refused")
        target, _ = rewrite(url, mapping)
        request = urllib.request.Request(target, headers={
            "User-Agent": f"zoo/{__version__} (+zoo fetch)", "Accept": "*/*"})
        try:
            response = opener.open(request, timeout=wait)
        except urllib.error.HTTPError as e:
            location = e.headers.get("Location") if e.headers else None
            e.close()
            if e.code in (301, 302, 303, 307, 308) and location:
                url = urljoin(url, location)
                continue
            if e.code >= 500 or e.code == 408:
                raise _Retry(f"{e.code} {e.reason} from {url}") from None
            hint = (" (Google Drive's download quota for this file is exhausted or the file "
                    "is not shared publicly)" if plan.kind == "gdrive" and e.code in (403, 429)
                    else "")
            raise SourceDownloadError(f"{what}: {url} answered {e.code} {e.reason}{hint}; "
                                      "download it by hand and use --from-dir") from None
        except (socket.timeout, TimeoutError) as e:
            raise _Retry(f"no answer from {url} within {wait:g} s ({e})") from None
        except urllib.error.URLError as e:
            raise SourceDownloadError(f"{what}: cannot reach {url}: {e.reason}") from None
        except (ConnectionError, http.client.HTTPException, OSError) as e:
            raise _Retry(f"{type(e).__name__} talking to {url}: {e}") from None
        with response:
            head = _read_head(response, url, wait)
            ctype = (response.headers.get("Content-Type") or "").lower()
            if "text/html" in ctype or _looks_like_html(head):
                page = (head + response.read(MAX_HTML - len(head))).decode("utf-8", "replace")
                next_url = drive_confirmation(page, url, cookies) \
                    if plan.kind == "gdrive" and not confirmed else None
                if next_url is None:
                    raise SourceDownloadError(_html_message(what, plan, url, page, confirmed))
                url, confirmed = next_url, True
                continue
            return _save(response, head, url, folder, plan=plan, fmt=fmt,
                         expected_size=expected_size, what=what, progress=progress, wait=wait,
                         confirmed=confirmed)
    raise SourceDownloadError(f"{what}: more than {MAX_HOPS} redirects from {plan.url}; refused")


def _read_head(response: Any, url: str, wait: float) -> bytes:
    try:
        head = b""
        while len(head) < _HEAD:
            piece = response.read(_HEAD - len(head))
            if not piece:
                break
            head += piece
        return head
    except (socket.timeout, TimeoutError):
        raise _Retry(f"{url} stalled (no data for {wait:g} s)") from None
    except (ConnectionError, http.client.HTTPException, OSError) as e:
        raise _Retry(f"{type(e).__name__} reading {url}: {e}") from None


def _html_message(what: str, plan: SourcePlan, url: str, page: str, confirmed: bool) -> str:
    low = page.lower()
    if plan.kind == "gdrive":
        if "quota" in low or "too many users" in low:
            why = "Google Drive says the file's download quota is exceeded"
        elif confirmed:
            why = "Google Drive answered its confirmation with another page"
        else:
            why = "Google Drive answered with a page that has no download confirmation"
        return (f"{what}: {why} ({url}); nothing was saved. Retry later, or download it in a "
                "browser and pass its folder with --from-dir")
    return (f"{what}: {url} answered with an HTML page instead of the file; nothing was saved. "
            "The link may need a browser or a login: download it by hand and pass its folder "
            "with --from-dir")


def _filename(response: Any, url: str, plan: SourcePlan) -> str:
    disposition = response.headers.get("Content-Disposition") or ""
    name = None
    for part in disposition.split(";"):
        key, _, value = part.strip().partition("=")
        if key.lower() in ("filename", "filename*") and value:
            value = value.strip().strip('"')
            name = value.split("''", 1)[-1] if key.lower() == "filename*" else value
    name = name or plan.filename or urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
    return safe_filename(name)


def _save(response: Any, head: bytes, url: str, folder: Path, *, plan: SourcePlan, fmt: str,
          expected_size: int | None, what: str, progress: bool, wait: float,
          confirmed: bool) -> Downloaded:
    cap = max_bytes()
    length_text = response.headers.get("Content-Length")
    try:
        length = int(length_text) if length_text is not None else None
    except ValueError:
        raise SourceDownloadError(f"{what}: {url} sent a malformed Content-Length "
                                  f"{length_text[:40]!r}; refused") from None
    if length is not None and length < 0:
        raise SourceDownloadError(f"{what}: {url} sent a negative Content-Length; refused")
    if length is not None and length > cap:
        raise SourceDownloadError(f"{what}: {url} announces {length} bytes, over the "
                                  f"{cap}-byte cap ({MAX_BYTES_ENV}); nothing was saved")
    if length is not None and expected_size is not None and length != expected_size:
        raise SourceDownloadError(f"{what}: {url} announces {length} bytes where the registry "
                                  f"records {expected_size}; it is not the recorded file, "
                                  "nothing was saved")
    problem = format_problem(head, fmt)
    if problem:
        raise SourceDownloadError(f"{what}: {url} did not send a {fmt} checkpoint ({problem}; "
                                  f"it {_describe(head)}); nothing was saved")
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".download-", suffix=".part", dir=folder)
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    total = 0
    bar = _progress_bar(progress, length, what)
    read = getattr(response, "read1", response.read)  # what has arrived: a stall shows its count
    try:
        with os.fdopen(fd, "wb") as out:
            block = head
            while block:
                total += len(block)
                if total > cap or (length is not None and total > length):
                    raise SourceDownloadError(
                        f"{what}: {url} sent more than "
                        f"{length if length is not None and length < cap else cap} bytes; "
                        "aborted, nothing was saved")
                digest.update(block)
                out.write(block)
                if bar is not None:
                    bar.update(len(block))
                try:
                    block = read(_CHUNK)
                except (socket.timeout, TimeoutError):
                    raise _Retry(f"{url} stalled after {total} bytes (no data for {wait:g} s)") \
                        from None
                except (ConnectionError, http.client.HTTPException, OSError) as e:
                    raise _Retry(f"{url} broke off after {total} bytes ({type(e).__name__})") \
                        from None
            out.flush()
            os.fsync(out.fileno())
        if length is not None and total != length:
            raise _Retry(f"{url} ended after {total} of {length} bytes")
        if expected_size is not None and total != expected_size:
            raise SourceDownloadError(f"{what}: {url} sent {total} bytes where the registry "
                                      f"records {expected_size}; not the recorded file, removed")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        if bar is not None:
            bar.close()
    how = {"gdrive": "Google Drive" + (" (after its confirmation page)" if confirmed else ""),
           "github": "GitHub release asset", "zenodo": "Zenodo", "dropbox": "Dropbox (dl=1)",
           "direct": "direct https download"}.get(plan.kind, plan.kind)
    return Downloaded(tmp, digest.hexdigest(), total, _filename(response, url, plan), url, how)


def _progress_bar(show: bool, total: int | None, what: str) -> Any:
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=what[:40],
                leave=False, disable=None)


def hub_source_download(plan: SourcePlan, folder: Path, *, fmt: str,
                        expected_size: int | None, what: str) -> Downloaded:
    """A Hub-hosted original (``huggingface.co/<repo>/resolve/<rev>/<file>``) through
    huggingface_hub (its cache, ``HF_ENDPOINT``, zoo's response checks), copied into a
    temporary file in ``folder`` with its hash."""
    from zoo.weights.hub import hub_download, hub_metadata

    assert plan.hub is not None
    repo, rev, filename = plan.hub
    size = hub_metadata(repo, filename, rev, what).size
    cap = max_bytes()
    if size is not None and size > cap:
        raise SourceDownloadError(f"{what}: {repo}/{filename} has {size} bytes, over the "
                                  f"{cap}-byte cap ({MAX_BYTES_ENV}); nothing was downloaded")
    if size is not None and expected_size is not None and size != expected_size:
        raise SourceDownloadError(f"{what}: {repo}@{rev}/{filename} has {size} bytes where the "
                                  f"registry records {expected_size}; nothing was downloaded")
    cached = hub_download(repo, filename, rev, what, expected_size=expected_size)
    with open(cached, "rb") as f:
        head = f.read(_HEAD)
    problem = format_problem(head, fmt)
    if problem:
        raise SourceDownloadError(f"{what}: {repo}/{filename} is not a {fmt} checkpoint "
                                  f"({problem}; it {_describe(head)})")
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".download-", suffix=".part", dir=folder)
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    total = 0
    try:
        with os.fdopen(fd, "wb") as out, open(cached, "rb") as src:
            while block := src.read(_CHUNK):
                digest.update(block)
                total += len(block)
                out.write(block)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    parts = Path(cached).parts  # <hub cache>/models--org--name/snapshots/<commit>/<filename>
    commit = parts[parts.index("snapshots") + 1] if "snapshots" in parts[:-1] else rev
    return Downloaded(tmp, digest.hexdigest(), total, safe_filename(filename),
                      f"hf-hub:{repo}@{commit}/{filename}", f"Hugging Face Hub ({repo}@{commit[:12]})")
