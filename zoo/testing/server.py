"""What zoo's test emulators share: a threaded HTTP server bound to a loopback address, started
and stopped explicitly or as a context manager (no torch, no network beyond 127.0.0.1/::1)."""
from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

LOOPBACK = ("127.0.0.1", "::1", "localhost")


_S = TypeVar("_S", bound="LoopbackServer")


class LoopbackServer:
    """Lifecycle of an emulator: :meth:`start` serves :meth:`_handler` on ``host:port`` (port 0
    picks a free one) in a daemon thread; :meth:`stop` releases the port.  ``_stopping`` is set
    while stopping, so handlers that stall on purpose can wake up."""

    thread_name = "zoo-emulator"

    def __init__(self, *, host: str, port: int) -> None:
        if host not in LOOPBACK:
            raise ValueError(f"{type(self).__name__} binds to loopback only, not {host!r}")
        self.host, self.port = host, port
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        """The request handler class, bound to this emulator."""
        raise NotImplementedError

    @property
    def _url(self) -> str:
        if self._server is None:
            raise RuntimeError("the emulator is not running; call start()")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._server.server_address[1]}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self: _S) -> _S:
        if self._server is not None:
            return self
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False  # a delayed handler must not keep stop() waiting
            address_family = family

        self._stopping.clear()
        self._server = Server((self.host, self.port), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; later connections are refused (the port is released)."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self: _S) -> _S:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
