"""A loopback HTTP server whose answers are written by hand, byte by byte.

For faults the scripted server cannot produce: answers that drip, never end, are cut off, are
compressed, or echo the request. Each route is a function that gets the request and a
:class:`Wire` to write to; the wire counts what reached the socket and notices when the client
went away, so tests can bound what a client read (a count, not a time).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Wire:
    """What a route writes to; ``sent`` counts the body bytes that reached the socket."""

    sock: socket.socket
    stop: threading.Event  # set when the server shuts down
    sent: int = 0
    gone: bool = False  # the client closed the connection before the route was done
    done: threading.Event = field(default_factory=threading.Event)

    def write(self, data: bytes) -> bool:
        """Write ``data``; False once the client has gone (the route should stop then)."""
        if self.gone:
            return False
        try:
            self.sock.sendall(data)
        except OSError:
            self.gone = True
            return False
        self.sent += len(data)
        return True

    def head(self, status: int, headers: dict[str, str]) -> bool:
        """Write the status line and headers (not counted in ``sent``)."""
        lines = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in headers.items()]
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if not self.write(data):
            return False
        self.sent -= len(data)
        return True

    def drip(self, data: bytes, every: float) -> None:
        """Send ``data`` one byte at a time, ``every`` seconds apart, until done or gone."""
        for i in range(len(data)):
            if self.stop.wait(every) or not self.write(data[i : i + 1]):
                return


Route = Callable[[Request, Wire], None]


class RawServer:
    """``with RawServer({"/fetch": route}) as srv:``; ``srv.wires`` lists every answer's wire."""

    def __init__(self, routes: dict[str, Route]) -> None:
        self.routes = routes
        self.wires: list[Wire] = []
        self.requests: list[Request] = []
        self.stop = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def last_wire(self, timeout: float = 60.0) -> Wire:
        """The newest answer's wire, once its route has returned (waits at most ``timeout``)."""
        wire = self.wires[-1]
        assert wire.done.wait(timeout), "the route never finished"
        return wire

    def __enter__(self) -> RawServer:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Request(self.command, self.path, dict(self.headers), body)
                wire = Wire(self.connection, outer.stop)
                outer.requests.append(request)
                outer.wires.append(wire)
                self.close_connection = True
                route = outer.routes.get(self.path.split("?", 1)[0])
                try:
                    if route is None:
                        wire.head(404, {"Content-Length": "0", "Connection": "close"})
                    else:
                        route(request, wire)
                finally:
                    wire.done.set()

            do_GET = do_POST = do_HEAD = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()
