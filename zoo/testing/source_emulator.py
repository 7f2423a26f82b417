"""A local stand-in for the hosts that publish original checkpoints, for offline tests of
``zoo fetch`` / ``zoo mirror``: real HTTP on 127.0.0.1, reached through ``ZOO_SOURCE_REWRITE``.

:class:`SourceEmulator` serves each emulated host under ``/<host>/`` and answers as the host
does, with the redirects pointing at the real hosts' https URLs (which the rewrite setting sends
back here):

- Google Drive: ``/file/d/<id>/view`` is a viewer page (HTML); ``/uc?export=download&id=<id>``
  redirects to ``drive.usercontent.google.com/download``, which for a file added with
  ``drive_confirm=True`` answers the "can't scan for viruses" page with its download form
  (``confirm=t`` + a ``uuid``) before the file.  ``drive_flow="legacy"`` answers ``/uc`` itself,
  with a ``confirm=<token>`` link and a ``download_warning`` cookie, as the older endpoint did.
- GitHub release assets redirect to ``objects.githubusercontent.com``; Dropbox serves a page for
  ``dl=0`` and redirects ``dl=1`` to ``dl.dropboxusercontent.com``; Zenodo serves a preview page
  unless ``download=1``; any other host serves its files directly.

Faults (:meth:`SourceEmulator.fault`), per published URL (or any, with None): ``html`` (a sign-in
page instead of the file, ``text/html``), ``html_octet`` (the same page labelled
``application/octet-stream``), ``quota`` (Drive's download-quota page), ``length`` (a
``Content-Length`` of ``length`` bytes, sending at most that many), ``stall`` (stop after
``after`` bytes for ``seconds``), ``status`` (answer ``status``), ``redirect_loop``,
``redirect_http`` (a redirect to plain http).  Every request is logged (:meth:`count`).

    >>> with SourceEmulator() as hosts:                                  # doctest: +SKIP
    ...     hosts.add("https://drive.google.com/file/d/1abcDEFghij/view", data, drive_confirm=True)
    ...     os.environ["ZOO_SOURCE_REWRITE"] = hosts.rewrite_setting()
"""
from __future__ import annotations

import hashlib
import html
import itertools
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from zoo.testing.server import LoopbackServer

DRIVE = "drive.google.com"
DRIVE_CONTENT = "drive.usercontent.google.com"
GITHUB, GITHUB_OBJECTS = "github.com", "objects.githubusercontent.com"
DROPBOX, DROPBOX_CONTENT = "www.dropbox.com", "dl.dropboxusercontent.com"
ZENODO = "zenodo.org"
FAULTS = ("html", "html_octet", "quota", "length", "stall", "status", "redirect_loop",
          "redirect_http")
_CHUNK = 64 * 1024

_SIGN_IN = (b"<!DOCTYPE html><html><head><title>Sign in</title></head><body><h1>Sign in to "
            b"continue</h1><form action=\"/login\" method=\"post\"><input name=\"user\">"
            b"</form></body></html>")
_QUOTA = (b"<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head><body>"
          b"<p>Sorry, you can't view or download this file at this time.</p><p>Too many users "
          b"have viewed or downloaded this file recently. Please try accessing the file again "
          b"later.</p></body></html>")


@dataclass
class _File:
    data: bytes
    name: str
    drive_confirm: bool = False
    drive_flow: str = "form"
    uuid: str = ""
    token: str = ""


@dataclass
class _Fault:
    kind: str
    key: tuple[str, str] | None
    remaining: int | None
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class SourceRequest:
    method: str
    host: str
    path: str
    query: str
    status: int
    body_bytes: int


def _key(url: str) -> tuple[str, str]:
    """(host, file key) of a published URL: Drive files by id, others by path."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if host in (DRIVE, "docs.google.com", DRIVE_CONTENT):
        segs = parts.path.strip("/").split("/")
        file_id = segs[2] if len(segs) >= 3 and segs[:2] == ["file", "d"] else \
            (parse_qs(parts.query).get("id") or [""])[0]
        return DRIVE, file_id
    return host, parts.path


class SourceEmulator(LoopbackServer):
    """Original-checkpoint hosts on loopback (see the module doc)."""

    thread_name = "zoo-source-emulator"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host=host, port=port)
        self._files: dict[tuple[str, str], _File] = {}
        self._objects: dict[str, tuple[str, str]] = {}  # objects path -> file key
        self._faults: list[_Fault] = []
        self._log: list[SourceRequest] = []
        self._lock = threading.RLock()
        self._counter = itertools.count(1)

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def base(self) -> str:
        return self._url

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        emulator = self

        class Handler(_Handler):
            hosts = emulator

        return Handler

    def rewrite_setting(self) -> str:
        """The ``ZOO_SOURCE_REWRITE`` value that sends every https host here (the emulator
        answers 404 for files it does not have, so no test reaches the real network)."""
        return f"*={self.base}/{{host}}"

    # -- content -----------------------------------------------------------------------------
    def add(self, url: str, data: bytes, *, drive_confirm: bool = False,
            drive_flow: str = "form", filename: str | None = None) -> str:
        """Publish ``data`` at ``url`` (as the registry records it); return its sha256."""
        if drive_flow not in ("form", "legacy"):
            raise ValueError("drive_flow must be 'form' or 'legacy'")
        host, key = _key(url)
        if not host or not key:
            raise ValueError(f"cannot serve {url!r}: no host or file")
        n = next(self._counter)
        name = filename or (f"drive-file-{n}.pth" if host == DRIVE else
                            urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1] or f"file{n}")
        with self._lock:
            self._files[(host, key)] = _File(bytes(data), name, drive_confirm, drive_flow,
                                             uuid=hashlib.sha1(f"u{n}".encode()).hexdigest(),
                                             token=hashlib.sha1(f"t{n}".encode()).hexdigest()[:4])
        return hashlib.sha256(data).hexdigest()

    def fault(self, url: str | None, kind: str, *, times: int | None = None,
              **params: Any) -> None:
        """Misbehave on the file of ``url`` (None: any file), ``times`` times (None: always)."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; one of {', '.join(FAULTS)}")
        with self._lock:
            self._faults.append(_Fault(kind, _key(url) if url else None, times, params))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take(self, key: tuple[str, str]) -> _Fault | None:
        with self._lock:
            for f in self._faults:
                if (f.key is None or f.key == key) and (f.remaining is None or f.remaining > 0):
                    if f.remaining is not None:
                        f.remaining -= 1
                    return f
        return None

    # -- log ---------------------------------------------------------------------------------
    @property
    def requests(self) -> list[SourceRequest]:
        with self._lock:
            return list(self._log)

    def count(self, host: str | None = None, path_contains: str = "") -> int:
        return sum(1 for r in self.requests if (host is None or r.host == host)
                   and path_contains in r.path)


class _Handler(BaseHTTPRequestHandler):
    hosts: SourceEmulator
    protocol_version = "HTTP/1.1"
    server_version = "zoo-source-emulator/1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        segs = parts.path.lstrip("/").split("/", 1)
        self._host = segs[0].lower()
        self._path = "/" + (segs[1] if len(segs) > 1 else "")
        self._query = parts.query
        self._sent = 0
        self._entry: SourceRequest | None = None
        status = 500
        try:
            status = self._route(parse_qs(parts.query))
        except (BrokenPipeError, ConnectionResetError):
            status = 499
            self.close_connection = True
        finally:
            if self._entry is None:  # no answer started
                self._log(status)
            assert self._entry is not None
            self._entry.status, self._entry.body_bytes = status, self._sent

    def send_response(self, code: int, message: str | None = None) -> None:
        # logged before the status line leaves: a client that has its answer finds the request
        # in the log (the final status and body size are filled in when the handler returns)
        if self._entry is None:
            self._log(code)
        super().send_response(code, message)

    def _log(self, status: int) -> None:
        self._entry = SourceRequest("GET", self._host, self._path, self._query, status, 0)
        with self.hosts._lock:
            self.hosts._log.append(self._entry)

    # -- answers -----------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, ctype: str = "text/html; charset=utf-8",
              headers: dict[str, str] | None = None) -> int:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
        self._sent += len(body)
        return status

    def _redirect(self, location: str, status: int = 302) -> int:
        return self._send(status, b"", headers={"Location": location})

    def _page(self, title: str, text: str) -> int:
        body = (f"<!DOCTYPE html><html><head><title>{html.escape(title)}</title></head>"
                f"<body><p>{html.escape(text)}</p></body></html>").encode()
        return self._send(200, body)

    def _not_found(self) -> int:
        return self._send(404, b"<html><body>Not Found</body></html>")

    def _route(self, q: dict[str, list[str]]) -> int:
        host, path = self._host, self._path
        arg = lambda k: (q.get(k) or [""])[0]  # noqa: E731
        if host in (DRIVE, "docs.google.com"):
            if path.startswith("/file/d/"):
                return self._page("Google Drive", "a file viewer page")
            if path == "/uc" and arg("id"):
                return self._drive_uc(arg("id"), arg("confirm"))
            return self._not_found()
        if host == DRIVE_CONTENT and path == "/download":
            return self._drive_download(arg("id"), arg("confirm"), arg("uuid"))
        if host == GITHUB_OBJECTS:
            key = self.hosts._objects.get(path)
            return self._serve(key) if key else self._not_found()
        if host == DROPBOX_CONTENT:
            key = self.hosts._objects.get(path)
            return self._serve(key) if key else self._not_found()
        key = (host, path)
        if key not in self.hosts._files:
            return self._not_found()
        if host == GITHUB and "/releases/download/" in path:
            obj = f"/github-production-release-asset-2e65be/{self.hosts._files[key].uuid}"
            self.hosts._objects[obj] = key
            disp = quote(f"attachment; filename={self.hosts._files[key].name}")
            return self._redirect(f"https://{GITHUB_OBJECTS}{obj}?X-Amz-Algorithm=AWS4-HMAC-"
                                  f"SHA256&response-content-disposition={disp}")
        if host == DROPBOX:
            if arg("dl") != "1":
                return self._page("Dropbox", "a preview page; add dl=1 to download")
            obj = f"/cd/0/get/{self.hosts._files[key].uuid}/file"
            self.hosts._objects[obj] = key
            return self._redirect(f"https://{DROPBOX_CONTENT}{obj}")
        if host.endswith(ZENODO) and arg("download") != "1":
            return self._page("Zenodo", "a record preview page; add download=1")
        return self._serve(key)

    def _drive_uc(self, file_id: str, confirm: str) -> int:
        key = (DRIVE, file_id)
        f = self.hosts._files.get(key)
        if f is None:
            return self._not_found()
        if f.drive_flow == "legacy":
            cookie = self.headers.get("Cookie") or ""
            if not f.drive_confirm or (confirm == f.token and f"={f.token}" in cookie):
                return self._serve(key)
            link = html.escape(f"/uc?export=download&confirm={f.token}&id={file_id}")
            body = ("<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title>"
                    f"</head><body><p>{html.escape(f.name)} is too large for Google to scan for "
                    f"viruses.</p><a id=\"uc-download-link\" href=\"{link}\">Download anyway</a>"
                    "</body></html>").encode()
            return self._send(200, body, headers={
                "Set-Cookie": f"download_warning_{f.uuid[:6]}={f.token}; "
                              "Path=/; HttpOnly"})
        return self._redirect(f"https://{DRIVE_CONTENT}/download?"
                              + urlencode({"id": file_id, "export": "download"}), 303)

    def _drive_download(self, file_id: str, confirm: str, uuid: str) -> int:
        key = (DRIVE, file_id)
        f = self.hosts._files.get(key)
        if f is None:
            return self._not_found()
        if f.drive_confirm and not (confirm == "t" and uuid == f.uuid):
            inputs = "".join(f'<input type="hidden" name="{k}" value="{html.escape(v)}">'
                             for k, v in (("id", file_id), ("export", "download"),
                                          ("confirm", "t"), ("uuid", f.uuid)))
            body = ("<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title>"
                    f"</head><body><p>{html.escape(f.name)} is too large for Google to scan for "
                    "viruses. Would you still like to download this file?</p>"
                    f'<form id="download-form" action="https://{DRIVE_CONTENT}/download" '
                    f'method="get"><input type="submit" value="Download anyway">{inputs}</form>'
                    "</body></html>").encode()
            return self._send(200, body)
        return self._serve(key)

    def _serve(self, key: tuple[str, str]) -> int:
        f = self.hosts._files[key]
        fault = self.hosts._take(key)
        if fault is not None:
            answered = self._fault(fault, f)
            if answered is not None:
                return answered
        data, declared = f.data, len(f.data)
        stall_after, stall_for = None, 0.0
        if fault is not None and fault.kind == "length":
            declared = int(fault.params["length"])
            data = data[:declared]
        if fault is not None and fault.kind == "stall":
            stall_after = int(fault.params.get("after", len(data) // 2))
            stall_for = float(fault.params.get("seconds", 30))
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(declared))
        self.send_header("Content-Disposition", f'attachment; filename="{f.name}"')
        self.end_headers()
        for i in range(0, len(data), _CHUNK):
            piece = data[i:i + _CHUNK]
            if stall_after is not None and i + len(piece) > stall_after:
                head = piece[:max(stall_after - i, 0)]
                self.wfile.write(head)
                self._sent += len(head)
                self.wfile.flush()
                self.hosts._stopping.wait(stall_for)
                self.close_connection = True
                return 598  # logged as a stalled transfer
            self.wfile.write(piece)
            self._sent += len(piece)
        if len(data) < declared:
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return 599
        return 200

    def _fault(self, fault: _Fault, f: _File) -> int | None:
        kind = fault.kind
        if kind == "html":
            return self._send(200, _SIGN_IN)
        if kind == "html_octet":
            return self._send(200, _SIGN_IN, "application/octet-stream")
        if kind == "quota":
            return self._send(200, _QUOTA)
        if kind == "status":
            status = int(fault.params.get("status", 500))
            return self._send(status, f"<html><body>error {status}</body></html>".encode())
        if kind == "redirect_loop":
            return self._redirect(f"https://{self._host}{self._path}"
                                  + (f"?{self._query}" if self._query else ""))
        if kind == "redirect_http":
            return self._redirect(f"http://{self._host}{self._path}")
        return None  # length / stall: applied while serving
