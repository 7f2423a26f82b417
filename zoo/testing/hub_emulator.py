"""A local Hugging Face Hub for offline tests: real HTTP on 127.0.0.1, real ``huggingface_hub``.

:class:`HubEmulator` answers the requests that ``huggingface_hub`` sends for downloads
(``hf_hub_download``: ``HEAD``/``GET /{repo}/resolve/{revision}/{file}``, with ``Range`` for
resumed downloads), repository information (``model_info``, ``list_repo_tree``) and uploads
(``HfApi.create_repo``, ``create_branch``, ``create_commit``, ``upload_folder``:
``/api/repos/create``, ``/api/validate-yaml``, ``/api/models/{repo}/branch/{name}``,
``/api/models/{repo}/preupload/{rev}``, ``/api/models/{repo}/commit/{rev}``).

It never advertises Xet storage (no ``X-Xet-*`` headers) and answers ``uploadMode: regular``
to every pre-upload query, so clients use plain HTTP both ways whether or not ``hf_xet`` is
installed: file contents travel base64-encoded inside the commit request.  Files that the real
Hub stores with LFS (weights, by suffix or size) are served with the same headers the Hub uses
for them (``X-Linked-Etag`` = sha256, ``X-Linked-Size``), so the client cache keys them alike.

Fault knobs, all scoped to one file (or any file when ``filename`` is None):

- :meth:`HubEmulator.corrupt`: serve the file with some bytes flipped (same length, same
  headers), as a broken CDN would;
- :meth:`HubEmulator.drop_connection`: close the socket after part of the body, ``times`` times;
- :meth:`HubEmulator.delay`: sleep before answering (a slow or hanging server);
- :meth:`HubEmulator.hostile`: answer file requests with arbitrary status, headers and body (a
  hostile or broken mirror: path-traversing ``X-Repo-Commit``/``ETag`` values, wrong sizes,
  HTML instead of the file, error codes).

Every request is logged (:attr:`HubEmulator.requests`, :meth:`HubEmulator.count`).  The
emulator does no authentication: a private repo is only hidden from requests without an
``Authorization`` header.  It binds to loopback only and bounds request bodies and the log.

    >>> with HubEmulator() as hub:                      # doctest: +SKIP
    ...     sha = hub.add_file("org/net", "model.safetensors", data)
    ...     os.environ["HF_ENDPOINT"] = hub.endpoint    # before huggingface_hub is imported
"""
from __future__ import annotations

import base64
import collections
import hashlib
import itertools
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import unquote, urlsplit

from zoo.testing.server import LoopbackServer

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".onnx", ".msgpack",
                ".npz", ".pkl", ".gguf", ".tar", ".zip")
LFS_MIN_SIZE = 10 * 1024 * 1024
_CHUNK = 64 * 1024


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a blob (what the Hub reports as ETag of a regular file)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def is_lfs(filename: str, size: int) -> bool:
    """Whether the Hub would store this file with LFS (its default .gitattributes rules)."""
    return filename.endswith(LFS_SUFFIXES) or size >= LFS_MIN_SIZE


@dataclass(frozen=True)
class _Blob:
    data: bytes
    sha256: str
    git_oid: str

    @classmethod
    def of(cls, data: bytes) -> "_Blob":
        return cls(bytes(data), hashlib.sha256(data).hexdigest(), git_blob_sha1(data))


@dataclass(frozen=True)
class _Commit:
    oid: str
    parent: str | None
    summary: str
    files: dict[str, _Blob]
    created: float


@dataclass
class _Repo:
    repo_id: str
    private: bool = False
    branches: dict[str, str] = field(default_factory=dict)  # name -> commit oid
    commits: dict[str, _Commit] = field(default_factory=dict)

    def resolve(self, revision: str) -> _Commit | None:
        if revision in self.branches:
            return self.commits[self.branches[revision]]
        return self.commits.get(revision)


@dataclass
class _Fault:
    kind: str  # "corrupt" | "drop" | "delay" | "hostile"
    repo_id: str | None
    filename: str | None
    remaining: int | None  # None: until cleared
    after: int | None = None  # drop: body bytes sent before closing (None: half)
    seconds: float = 0.0
    status: int | None = None  # hostile: the status to answer (None: the normal one)
    headers: dict[str, str | None] = field(default_factory=dict)  # hostile: set (None: remove)
    body: bytes | None = None  # hostile: the body to send instead of the file's
    methods: tuple[str, ...] = ("HEAD", "GET")

    def matches(self, repo_id: str | None, filename: str | None) -> bool:
        return ((self.repo_id is None or self.repo_id == repo_id)
                and (self.filename is None or self.filename == filename)
                and (self.remaining is None or self.remaining > 0))


@dataclass
class LoggedRequest:
    """One request the emulator answered (status and body size are final once answered)."""

    method: str
    path: str
    repo_id: str | None
    filename: str | None
    revision: str | None
    range: str | None
    status: int
    body_bytes: int  # bytes of response body actually written
    time: float


class HubError(Exception):
    def __init__(self, status: int, code: str | None, message: str,
                 headers: dict[str, str] | None = None, body: dict[str, Any] | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers, self.body = headers or {}, body or {}


class HubEmulator(LoopbackServer):
    """A Hub-compatible HTTP server on loopback with repos, commits and fault injection.

    Args:
        host: loopback address to bind (anything else is refused).
        port: 0 picks a free port.
        max_body: largest request body accepted (bytes).
        max_log: number of requests kept in :attr:`requests`.
    """

    thread_name = "zoo-hub-emulator"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0,
                 max_body: int = 256 * 1024 * 1024, max_log: int = 10_000) -> None:
        super().__init__(host=host, port=port)
        self.max_body = max_body
        self._lock = threading.RLock()
        self._repos: dict[str, _Repo] = {}
        self._faults: list[_Fault] = []
        self._log: collections.deque[LoggedRequest] = collections.deque(maxlen=max_log)
        self._counter = itertools.count()

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        """Base URL to put in ``HF_ENDPOINT``."""
        return self._url

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        emulator = self

        class Handler(_Handler):
            hub = emulator

        return Handler

    # -- content -------------------------------------------------------------------------------
    def create_repo(self, repo_id: str, *, private: bool = False, exist_ok: bool = True) -> None:
        _check_repo_id(repo_id)
        with self._lock:
            if repo_id in self._repos:
                if not exist_ok:
                    raise HubError(409, None, f"You already created this model repo: {repo_id}")
                return
            self._repos[repo_id] = _Repo(repo_id, private=private)

    def add_file(self, repo_id: str, filename: str, data: bytes, *, revision: str = "main",
                 message: str | None = None) -> str:
        """Commit one file (creating the repo/branch if needed); return the new commit sha."""
        return self.commit(repo_id, {filename: data}, revision=revision,
                           message=message or f"Upload {filename}")

    def commit(self, repo_id: str, files: dict[str, bytes], *, deletions: tuple[str, ...] = (),
               revision: str = "main", message: str = "Update", parent: str | None = None,
               create_branch: bool = True) -> str:
        """Commit files (path -> bytes) and deletions on a branch; return the commit sha.

        A missing branch is created from ``main`` unless ``create_branch`` is False (the Hub's
        commit endpoint answers 404 then, which the HTTP side reproduces)."""
        for name in files:
            _check_path(name)
        with self._lock:
            self.create_repo(repo_id, exist_ok=True)
            repo = self._repos[repo_id]
            head = repo.branches.get(revision)
            if head is None and revision != "main":
                if not create_branch:
                    raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
                head = repo.branches.get("main")  # a new branch starts from main
            if parent is not None and parent != head:
                raise HubError(412, None, f"parent commit {parent} is not the head of {revision}")
            tree = dict(repo.commits[head].files) if head else {}
            for name in deletions:
                removed = [p for p in tree if p == name or p.startswith(name.rstrip("/") + "/")]
                if not removed:
                    raise HubError(404, "EntryNotFound",
                                   f"A file with this name doesn't exist: {name}")
                for p in removed:
                    del tree[p]
            tree.update({name: _Blob.of(data) for name, data in files.items()})
            seed = "\n".join([repo_id, head or "", message, str(next(self._counter)),
                              *(f"{p} {b.git_oid}" for p, b in sorted(tree.items()))])
            oid = hashlib.sha1(seed.encode()).hexdigest()
            repo.commits[oid] = _Commit(oid, head, message, tree, time.time())
            repo.branches[revision] = oid
            return oid

    def head(self, repo_id: str, revision: str = "main") -> str:
        with self._lock:
            commit = self._get_repo(repo_id).resolve(revision)
            if commit is None:
                raise KeyError(f"{repo_id} has no revision {revision!r}")
            return commit.oid

    def file_bytes(self, repo_id: str, filename: str, revision: str = "main") -> bytes:
        with self._lock:
            commit = self._get_repo(repo_id).resolve(revision)
            if commit is None or filename not in commit.files:
                raise KeyError(f"{repo_id}@{revision} has no file {filename!r}")
            return commit.files[filename].data

    def list_files(self, repo_id: str, revision: str = "main") -> list[str]:
        with self._lock:
            commit = self._get_repo(repo_id).resolve(revision)
            return sorted(commit.files) if commit else []

    def is_private(self, repo_id: str) -> bool:
        with self._lock:
            return self._get_repo(repo_id).private

    def repos(self) -> list[str]:
        with self._lock:
            return sorted(self._repos)

    def _get_repo(self, repo_id: str) -> _Repo:
        repo = self._repos.get(repo_id)
        if repo is None:
            raise KeyError(f"no repo {repo_id!r} on the emulator")
        return repo

    # -- faults --------------------------------------------------------------------------------
    def corrupt(self, repo_id: str | None = None, filename: str | None = None, *,
                times: int | None = None) -> None:
        """Serve the file's body with bytes flipped near its end (headers unchanged)."""
        self._add_fault(_Fault("corrupt", repo_id, filename, times))

    def drop_connection(self, repo_id: str | None = None, filename: str | None = None, *,
                        times: int = 1, after: int | None = None) -> None:
        """Close the connection after ``after`` body bytes (default: half) on the next
        ``times`` GETs of the file."""
        if times < 1:
            raise ValueError("times must be >= 1")
        self._add_fault(_Fault("drop", repo_id, filename, times, after=after))

    def delay(self, seconds: float, repo_id: str | None = None, filename: str | None = None, *,
              times: int | None = None) -> None:
        """Sleep ``seconds`` before answering matching requests (``times``: how many)."""
        if not 0 <= seconds <= 3600:
            raise ValueError("delay must be between 0 and 3600 s")
        self._add_fault(_Fault("delay", repo_id, filename, times, seconds=seconds))

    def hostile(self, repo_id: str | None = None, filename: str | None = None, *,
                status: int | None = None, headers: dict[str, str | None] | None = None,
                body: bytes | None = None, methods: tuple[str, ...] = ("HEAD", "GET"),
                times: int | None = None) -> None:
        """Answer matching file requests (``/resolve/``) as a hostile or broken server would:
        ``status`` replaces the status code, ``headers`` set (or, with None, remove) response
        headers, ``body`` replaces the file's bytes (Content-Length follows it unless
        ``headers`` sets one).  Applies to the file whether or not it exists."""
        if status is not None and not 100 <= status <= 599:
            raise ValueError("status must be an HTTP status code")
        for key, value in (headers or {}).items():
            if any(c in key + (value or "") for c in "\r\n"):
                raise ValueError("header names and values cannot hold line breaks")
        self._add_fault(_Fault("hostile", repo_id, filename, times, status=status,
                               headers=dict(headers or {}), body=body, methods=tuple(methods)))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _add_fault(self, fault: _Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def _take_fault(self, kind: str, repo_id: str | None, filename: str | None) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.kind == kind and fault.matches(repo_id, filename):
                    if fault.remaining is not None:
                        fault.remaining -= 1
                    return fault
        return None

    # -- request log ---------------------------------------------------------------------------
    @property
    def requests(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._log)

    def count(self, method: str | None = "GET", repo_id: str | None = None,
              filename: str | None = None, *, status: int | None = None) -> int:
        """Number of logged requests matching every given criterion."""
        return sum(1 for r in self.requests
                   if (method is None or r.method == method)
                   and (repo_id is None or r.repo_id == repo_id)
                   and (filename is None or r.filename == filename)
                   and (status is None or r.status == status))

    def reset_log(self) -> None:
        with self._lock:
            self._log.clear()

    def _record(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._log.append(entry)


def _check_repo_id(repo_id: str) -> None:
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(parts) or any(p in (".", "..") for p in parts):
        raise HubError(400, None, f"invalid repo id {repo_id!r}: use namespace/name")


def _check_path(path: str) -> None:
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise HubError(400, None, f"invalid path in repo {path!r}")


def _parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` -> inclusive (start, end); None: whole file."""
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        raise HubError(416, None, f"unsupported Range {header!r}")
    first, _, last = spec.strip().partition("-")
    try:
        if first == "":
            start, end = max(size - int(last), 0), size - 1
        else:
            start = int(first)
            end = min(int(last), size - 1) if last else size - 1
    except ValueError:
        raise HubError(416, None, f"malformed Range {header!r}") from None
    if start >= size or start > end:
        raise HubError(416, None, f"Range {header!r} outside a {size}-byte file",
                       {"Content-Range": f"bytes */{size}"})
    return start, end


class _Handler(BaseHTTPRequestHandler):
    hub: HubEmulator
    protocol_version = "HTTP/1.1"
    server_version = "zoo-hub-emulator/1"

    # the log goes to HubEmulator.requests, not stderr
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    # -- dispatch --------------------------------------------------------------------------------
    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        self._ctx: dict[str, Any] = {"repo_id": None, "filename": None, "revision": None}
        self._sent = 0
        self._entry: LoggedRequest | None = None
        self._method = method
        status = 500
        try:
            raw_path = urlsplit(self.path).path
            segments = [unquote(s) for s in raw_path.strip("/").split("/")] \
                if raw_path != "/" else []
            self._apply_delay(segments)
            status = self._route(method, segments)
        except HubError as e:
            status = self._send_error(e)
        except (BrokenPipeError, ConnectionResetError):
            status = 499
            self.close_connection = True
        except Exception as e:  # a bug in the emulator: answer 500, never hang the client
            status = self._send_error(HubError(500, None, f"emulator error: {e!r}"))
        finally:
            if self._entry is None:  # no response started (connection dropped before it)
                self._log_entry(status)
            entry = self._entry
            if entry is not None:
                entry.status = status
                entry.body_bytes = self._sent

    def send_response(self, code: int, message: str | None = None) -> None:
        # logged before the status line leaves, so a client that has its answer always finds
        # the request in the log (the body size is filled in when the handler returns)
        if self._entry is None:
            self._log_entry(code)
        super().send_response(code, message)

    def _log_entry(self, status: int) -> None:
        self._entry = LoggedRequest(
            self._method, self.path, self._ctx["repo_id"], self._ctx["filename"],
            self._ctx["revision"], self.headers.get("Range"), status, 0, time.time())
        self.hub._record(self._entry)

    def _apply_delay(self, segments: list[str]) -> None:
        repo_id, filename = _resolve_target(segments)
        fault = self.hub._take_fault("delay", repo_id, filename)
        if fault is not None:
            self.hub._stopping.wait(fault.seconds)

    def _route(self, method: str, seg: list[str]) -> int:
        if len(seg) >= 5 and seg[2] == "resolve" and method in ("GET", "HEAD"):
            return self._resolve(method, f"{seg[0]}/{seg[1]}", seg[3], "/".join(seg[4:]))
        if seg[:1] == ["api"]:
            rest = seg[1:]
            if method == "POST" and rest == ["repos", "create"]:
                return self._create_repo()
            if method == "POST" and rest == ["validate-yaml"]:
                self._read_body()
                return self._send_json(200, {"errors": [], "warnings": []})
            if rest[:1] == ["models"] and len(rest) >= 3:
                repo_id, tail = f"{rest[1]}/{rest[2]}", rest[3:]
                self._ctx["repo_id"] = repo_id
                if method == "GET" and not tail:
                    return self._model_info(repo_id, "main")
                if method == "GET" and len(tail) == 2 and tail[0] == "revision":
                    return self._model_info(repo_id, tail[1])
                if method == "GET" and len(tail) >= 2 and tail[0] == "tree":
                    return self._tree(repo_id, tail[1], "/".join(tail[2:]))
                if method == "POST" and len(tail) == 2 and tail[0] == "preupload":
                    return self._preupload(repo_id, tail[1])
                if method == "POST" and len(tail) == 2 and tail[0] == "commit":
                    return self._commit(repo_id, tail[1])
                if method == "POST" and len(tail) == 2 and tail[0] == "branch":
                    return self._create_branch(repo_id, tail[1])
        raise HubError(404, None, f"the emulator does not implement {method} /{'/'.join(seg)}")

    # -- helpers ---------------------------------------------------------------------------------
    def _repo(self, repo_id: str) -> _Repo:
        with self.hub._lock:
            repo = self.hub._repos.get(repo_id)
        if repo is None or (repo.private and not self.headers.get("Authorization")):
            raise HubError(404, "RepoNotFound", f"Repository not found: {repo_id}")
        return repo

    def _commit_of(self, repo: _Repo, revision: str) -> _Commit:
        with self.hub._lock:
            commit = repo.resolve(revision)
        if commit is None:
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return commit

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raise HubError(411, None, "chunked request bodies are not supported; send "
                           "Content-Length")
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0 or length > self.hub.max_body:
            self.close_connection = True
            raise HubError(413, None, f"request body of {length} bytes exceeds the emulator's "
                           f"limit of {self.hub.max_body}")
        return self.rfile.read(length) if length else b""

    def _read_json(self) -> Any:
        try:
            return json.loads(self._read_body() or b"null")
        except ValueError as e:
            raise HubError(400, None, f"malformed JSON body: {e}") from None

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> int:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
            self._sent += len(body)
        return status

    def _send_error(self, e: HubError) -> int:
        headers = dict(e.headers)
        if e.code:
            headers["X-Error-Code"] = e.code
        headers["X-Error-Message"] = e.message.encode("ascii", "replace").decode()
        return self._send_json(e.status, {"error": e.message, **e.body}, headers)

    # -- downloads -------------------------------------------------------------------------------
    def _resolve(self, method: str, repo_id: str, revision: str, filename: str) -> int:
        self._ctx.update(repo_id=repo_id, filename=filename, revision=revision)
        hostile = self.hub._take_fault("hostile", repo_id, filename)
        if hostile is not None and method in hostile.methods:
            return self._hostile(method, repo_id, revision, filename, hostile)
        repo = self._repo(repo_id)
        commit = self._commit_of(repo, revision)
        blob = commit.files.get(filename)
        if blob is None:
            raise HubError(404, "EntryNotFound", f"{filename} does not exist on {revision}",
                           {"X-Repo-Commit": commit.oid})
        size = len(blob.data)
        headers = {"X-Repo-Commit": commit.oid, "Accept-Ranges": "bytes",
                   "Content-Type": "application/octet-stream"}
        if is_lfs(filename, size):
            headers.update({"ETag": f'"{blob.sha256}"', "X-Linked-Etag": f'"{blob.sha256}"',
                            "X-Linked-Size": str(size)})
        else:
            headers["ETag"] = f'"{blob.git_oid}"'
        if method == "HEAD":
            self.send_response(200)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            return 200
        span = _parse_range(self.headers.get("Range"), size)
        start, end = span if span is not None else (0, size - 1)
        data = blob.data
        if self.hub._take_fault("corrupt", repo_id, filename) is not None and size:
            tail = max(size - 64, 0)
            data = data[:tail] + bytes(b ^ 0x55 for b in data[tail:])
        body = data[start:end + 1]
        status = 206 if span is not None else 200
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        if span is not None:
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            self.send_header("Content-Range", headers["Content-Range"])
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        drop = self.hub._take_fault("drop", repo_id, filename)
        limit = len(body)
        if drop is not None:
            limit = min(len(body), drop.after if drop.after is not None else len(body) // 2)
        for i in range(0, limit, _CHUNK):
            piece = body[i:min(i + _CHUNK, limit)]
            self.wfile.write(piece)
            self._sent += len(piece)
        if drop is not None:
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return 599  # logged as a dropped transfer
        return status

    def _hostile(self, method: str, repo_id: str, revision: str, filename: str,
                 fault: _Fault) -> int:
        """A :meth:`HubEmulator.hostile` answer: the normal headers and body where the file
        exists, with the fault's status, headers and body laid over them."""
        headers: dict[str, str] = {"Content-Type": "application/octet-stream"}
        data = b""
        with self.hub._lock:
            repo = self.hub._repos.get(repo_id)
            commit = repo.resolve(revision) if repo is not None else None
        blob = commit.files.get(filename) if commit is not None else None
        if commit is not None:
            headers["X-Repo-Commit"] = commit.oid
        if blob is not None:
            data = blob.data
            etag = blob.sha256 if is_lfs(filename, len(data)) else blob.git_oid
            headers.update({"ETag": f'"{etag}"', "X-Linked-Etag": f'"{etag}"',
                            "X-Linked-Size": str(len(data))})
        if fault.body is not None:
            data = fault.body
        headers["Content-Length"] = str(len(data))
        for key, value in fault.headers.items():
            for existing in [k for k in headers if k.lower() == key.lower()]:
                del headers[existing]
            if value is not None:
                headers[key] = value
        status = fault.status or (200 if blob is not None else 404)
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if method == "GET" and data:
            self.wfile.write(data)
            self._sent += len(data)
        return status

    def _model_info(self, repo_id: str, revision: str) -> int:
        repo = self._repo(repo_id)
        self._ctx["revision"] = revision
        commit = self._commit_of(repo, revision)
        siblings = [{"rfilename": p, "size": len(b.data), "blobId": b.git_oid}
                    | ({"lfs": {"sha256": b.sha256, "size": len(b.data), "pointerSize": 134}}
                       if is_lfs(p, len(b.data)) else {})
                    for p, b in sorted(commit.files.items())]
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(commit.created))
        return self._send_json(200, {
            "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24], "id": repo_id,
            "modelId": repo_id, "author": repo_id.split("/")[0], "sha": commit.oid,
            "private": repo.private, "disabled": False, "gated": False, "downloads": 0,
            "likes": 0, "tags": [], "library_name": None, "lastModified": stamp,
            "createdAt": stamp, "siblings": siblings})

    def _tree(self, repo_id: str, revision: str, prefix: str) -> int:
        repo = self._repo(repo_id)
        self._ctx["revision"] = revision
        commit = self._commit_of(repo, revision)
        prefix = prefix.rstrip("/")
        entries = []
        for p, b in sorted(commit.files.items()):
            if prefix and not p.startswith(prefix + "/"):
                continue
            entry: dict[str, Any] = {"type": "file", "oid": b.git_oid, "size": len(b.data),
                                     "path": p}
            if is_lfs(p, len(b.data)):
                entry["lfs"] = {"oid": b.sha256, "size": len(b.data), "pointerSize": 134}
            entries.append(entry)
        return self._send_json(200, entries)

    # -- uploads ---------------------------------------------------------------------------------
    def _create_repo(self) -> int:
        payload = self._read_json()
        if not isinstance(payload, dict) or not isinstance(payload.get("name"), str):
            raise HubError(400, None, "create repo: a JSON object with `name` is required")
        if payload.get("type") not in (None, "model"):
            raise HubError(400, None, "the emulator only hosts model repos")
        org = payload.get("organization") or "user"
        repo_id = f"{org}/{payload['name']}"
        self._ctx["repo_id"] = repo_id
        private = bool(payload.get("private")) or payload.get("visibility") == "private"
        with self.hub._lock:
            exists = repo_id in self.hub._repos
            if not exists:
                self.hub.create_repo(repo_id, private=private)
        if exists:  # the Hub's 409 carries the repo's url, which create_repo(exist_ok) returns
            raise HubError(409, None, f"You already created this model repo: {repo_id}",
                           body={"url": f"{self.hub.endpoint}/{repo_id}"})
        return self._send_json(200, {"url": f"{self.hub.endpoint}/{repo_id}", "name": repo_id,
                                     "id": repo_id})

    def _create_branch(self, repo_id: str, branch: str) -> int:
        self._ctx["revision"] = branch
        repo = self._repo(repo_id)
        payload = self._read_json() or {}
        start = payload.get("startingPoint") or "main" if isinstance(payload, dict) else "main"
        with self.hub._lock:
            if branch in repo.branches:
                raise HubError(409, None, f"Reference already exists: refs/heads/{branch}")
            commit = repo.resolve(start)
            if commit is None:
                raise HubError(404, "RevisionNotFound", f"Invalid rev id: {start}")
            repo.branches[branch] = commit.oid
        return self._send_json(200, {})

    def _preupload(self, repo_id: str, revision: str) -> int:
        self._ctx["revision"] = revision
        repo = self._repo(repo_id)
        payload = self._read_json()
        files = payload.get("files") if isinstance(payload, dict) else None
        if not isinstance(files, list):
            raise HubError(400, None, "preupload: `files` list required")
        with self.hub._lock:
            commit = repo.resolve(revision)
        answer = []
        for f in files:
            path = f.get("path") if isinstance(f, dict) else None
            if not isinstance(path, str):
                raise HubError(400, None, "preupload: every file needs a `path`")
            existing = commit.files.get(path) if commit else None
            # "regular": contents come inline with the commit, so no LFS/Xet transfer is needed
            answer.append({"path": path, "uploadMode": "regular", "shouldIgnore": False,
                           "oid": existing.git_oid if existing else None})
        return self._send_json(200, {"files": answer, "commitOid": commit.oid if commit else None})

    def _commit(self, repo_id: str, revision: str) -> int:
        self._ctx["revision"] = revision
        self._repo(repo_id)
        body = self._read_body()
        header: dict[str, Any] = {}
        files: dict[str, bytes] = {}
        deletions: list[str] = []
        for n, line in enumerate(body.splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                key, value = item["key"], item["value"]
            except (ValueError, KeyError, TypeError):
                raise HubError(400, None, f"commit payload line {n} is not a {{key, value}} "
                               "object") from None
            if key == "header":
                header = value
            elif key == "file":
                if value.get("encoding") != "base64":
                    raise HubError(400, None, "commit: file content must be base64-encoded")
                try:
                    files[value["path"]] = base64.b64decode(value["content"], validate=True)
                except (KeyError, ValueError):
                    raise HubError(400, None, f"commit: bad file entry on line {n}") from None
            elif key in ("deletedFile", "deletedFolder"):
                deletions.append(value["path"])
            elif key == "lfsFile":
                raise HubError(400, None, "the emulator stores uploads inline only; its preupload "
                               "answer is uploadMode=regular, so an lfsFile entry is a client bug")
            else:
                raise HubError(400, None, f"commit: unknown operation {key!r}")
        oid = self.hub.commit(repo_id, files, deletions=tuple(deletions), revision=revision,
                              message=str(header.get("summary") or "Update"),
                              parent=header.get("parentCommit"), create_branch=False)
        return self._send_json(200, {"success": True, "commitOid": oid,
                                     "commitUrl": f"{self.hub.endpoint}/{repo_id}/commit/{oid}",
                                     "pullRequestUrl": None, "hookOutput": ""})


def _resolve_target(seg: list[str]) -> tuple[str | None, str | None]:
    """(repo_id, filename) a request path is about, for fault matching."""
    if len(seg) >= 5 and seg[2] == "resolve":
        return f"{seg[0]}/{seg[1]}", "/".join(seg[4:])
    if len(seg) >= 4 and seg[0] == "api" and seg[1] == "models":
        return f"{seg[2]}/{seg[3]}", None
    return None, None
