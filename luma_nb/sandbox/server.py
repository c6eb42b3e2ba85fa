"""The HTTP layer: a threaded HTTP/1.1 keep-alive server, request logging, faults and media.

The handler reads the request, logs it, applies a scheduled fault if one hits, and then answers
through :func:`luma_nb.sandbox.api.handle` (API paths) or the media route (``/media/<name>``,
no auth, byte ranges, streamed in chunks). Every answer has a Content-Length, so
``requests.Session`` keeps its connections.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import struct
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from ..contract.service import SERVICE_HEADER
from . import api
from .faults import Fault, Faults
from .media_library import MediaLibrary, Unsatisfiable, parse_range
from .reqlog import RequestLog

__all__ = ("BACKLOG", "MAX_BODY", "MAX_THREADS", "Backend", "SandboxServer")

log = logging.getLogger("luma_nb.sandbox")

#: Largest request body accepted (bigger ones get 413 with the errors shape).
MAX_BODY = 64 * 1024
_DRAIN = 1024 * 1024  # read and discard an oversized body up to this size, so the 413 arrives
_CHUNK = 64 * 1024
_BAD_GATEWAY = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
#: The listen backlog asked for (the kernel may cap it, see ``net.core.somaxconn``).
BACKLOG = 4096
#: Connection threads at most; further connections wait in the backlog.
MAX_THREADS = 256
_CROWDED_IDLE = 5.0
_MALFORMED = b'{"task_id": "3f1c0c8e-malformed", "status": "processing", "percen'


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "luma_nb-sandbox"
    timeout = 120  # idle keep-alive connections are closed after this many seconds
    # Headers and body go out in two writes; with Nagle on, the client's delayed ACK would
    # add ~40 ms to every keep-alive answer.
    disable_nagle_algorithm = True
    server: SandboxServer

    def do_GET(self) -> None:
        self._serve("GET")

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_OPTIONS(self) -> None:
        self._serve("OPTIONS")

    def handle_one_request(self) -> None:
        # While most connection threads are taken, an idle keep-alive connection gets a short
        # wait for its next request instead of two minutes (its client simply reconnects).
        if self.server.crowded():
            with contextlib.suppress(OSError):
                self.connection.settimeout(_CROWDED_IDLE)
        super().handle_one_request()
        with contextlib.suppress(OSError):
            self.connection.settimeout(self.timeout)

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            sys.stderr.write(f"sandbox: {self.address_string()} {format % args}\n")

    # -- one request -----------------------------------------------------------------------

    def _serve(self, method: str) -> None:
        app = self.server.app
        self._muted = False
        self._status = 0
        path = urlsplit(self.path).path
        raw, body_error, too_large = self._read_body()
        payload: Any = None
        if body_error is None and raw:
            try:
                payload = json.loads(raw)
            except ValueError:
                body_error = "Request body is not valid JSON"
            except RecursionError:
                body_error = "Request body is nested too deeply to be read"
        elif body_error is None and method == "POST":
            body_error = "Request body is missing; send a JSON object"
        headers = {
            k: ("<redacted>" if k.lower() == "authorization" else v)
            for k, v in self.headers.items()
        }
        logged = payload
        if isinstance(payload, dict) and payload.get("webhook_secret") is not None:
            logged = {**payload, "webhook_secret": "<redacted>"}
        entry = self._entry = app.log.add(
            method,
            path,
            None if body_error else logged,
            headers,
            self.client_address[:2],
            size=len(raw),
        )
        try:
            fault = app.faults.take(method, path)
            if fault is not None and self._fault(fault):
                return
            if too_large:
                self._send_json(413, api.errors(f"Request body too large (limit {MAX_BODY} bytes)"))
            elif path.startswith("/media/"):
                self._media(method, path[len("/media/") :])
            else:
                status, body, extra = api.handle(
                    app.api, method, path, self.headers.get("Authorization"), payload, body_error
                )
                self._send_json(status, body, extra)
        finally:
            entry.status = self._status or None
        if self._muted:
            self.close_connection = True

    def _read_body(self) -> tuple[bytes, str | None, bool]:
        """(body, error message, too large)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            return b"", "Chunked request bodies are not supported; send a Content-Length", False
        text = self.headers.get("Content-Length")
        if text is None:
            return b"", None, False
        try:
            length = int(text)
            if length < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            return b"", "Invalid Content-Length header", False
        if length > MAX_BODY:
            if length > _DRAIN:
                self.close_connection = True
            else:
                while length > 0:
                    got = self.rfile.read(min(_CHUNK, length))
                    if not got:
                        break
                    length -= len(got)
            return b"", None, True
        return self.rfile.read(length), None, False

    def _fault(self, fault: Fault) -> bool:
        """Apply a fault; True when it answered (or killed) the request."""
        app = self.server.app
        if fault.kind == "slow":
            app.stopping.wait(fault.seconds)
            return False
        if fault.kind == "drop":
            self._muted = True  # processed as usual, answer swallowed
            return False
        if fault.kind == "reset":
            self.close_connection = True
            try:
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.connection.close()  # with linger 0: a TCP reset
            except OSError:
                pass
            return True
        retry = {"Retry-After": f"{fault.retry_after:g}"}
        if fault.kind == "500":
            self._send_json(500, {})
        elif fault.kind == "502":
            self._send(502, _BAD_GATEWAY, "text/html")
        elif fault.kind == "503":
            self._send_json(503, {}, retry)
        elif fault.kind == "429":
            self._send_json(429, api.errors("Too many requests"), retry)
        else:  # malformed
            self._send(200, _MALFORMED, "application/json")
        return True

    # -- answers ---------------------------------------------------------------------------

    def _head(
        self, status: int, length: int, content_type: str, extra: dict[str, str] | None = None
    ) -> bool:
        """Send the status line and headers; False when the answer is muted by a fault."""
        self._status = status
        if self._muted:
            return False
        # Logged before the answer leaves, so a client that got it also finds it in the log.
        self._entry.status = status
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        # Clients learn that they talk to the sandbox from this header, never from the URL.
        self.send_header(SERVICE_HEADER, "sandbox")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        return True

    def _send(
        self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None
    ) -> None:
        if self._head(status, len(body), content_type, extra) and self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(
        self, status: int, body: dict[str, Any], extra: dict[str, str] | None = None
    ) -> None:
        self._send(status, json.dumps(body).encode(), "application/json", extra)

    def _media(self, method: str, name: str) -> None:
        if method not in ("GET", "HEAD"):
            self._send_json(
                405, api.errors(f"Method {method} not allowed on media"), {"Allow": "GET, HEAD"}
            )
            return
        from .video import MissingSandboxExtra

        try:
            found = self.server.app.media.source(name)
        except MissingSandboxExtra as exc:
            self._send_json(503, api.errors(str(exc)))
            return
        except Exception as exc:
            log.warning("sandbox: cannot serve %s: %s", name, exc)
            self._send_json(500, api.errors(f"Cannot make {name}: {exc}"))
            return
        if found is None:
            self._send_json(404, api.errors(f"Media not found: {name}"))
            return
        opener, size, content_type, cache_headers = found
        headers = {"Accept-Ranges": "bytes", **cache_headers}
        etag = cache_headers.get("ETag")
        if etag is not None and _etags(self.headers.get("If-None-Match")) & {etag, "*"}:
            self._send(304, b"", content_type, cache_headers)
            return
        try:
            span = parse_range(self.headers.get("Range"), size)
        except Unsatisfiable:
            headers["Content-Range"] = f"bytes */{size}"
            self._send_json(416, api.errors("Range not satisfiable"), headers)
            return
        first, last, status = 0, size - 1, 200
        if span is not None:
            first, last, status = span[0], span[1], 206
            headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        if not self._head(status, last - first + 1, content_type, headers) or method == "HEAD":
            return
        with opener() as stream:
            self._copy(stream, first, last - first + 1)

    def _copy(self, stream: BinaryIO, offset: int, length: int) -> None:
        stream.seek(offset)
        while length > 0:
            chunk = stream.read(min(_CHUNK, length))
            if not chunk:
                self.close_connection = True  # the file shrank: the promised length is a lie
                return
            self.wfile.write(chunk)
            length -= len(chunk)


def _etags(header: str | None) -> set[str]:
    """The entity tags an ``If-None-Match`` header lists (``*`` included as is)."""
    return {part.strip() for part in (header or "").split(",") if part.strip()}


@dataclass(frozen=True)
class Backend:
    """What the HTTP server serves: the API, the request log, the media files and the faults."""

    api: api.ApiContext
    """The API's state and rules (tasks, credits, webhooks)."""
    log: RequestLog
    """Every request, as the tests and the benchmarks count them."""
    media: MediaLibrary
    """The rendered MP4s by name."""
    faults: Faults
    """Injected failures, taken by the requests they match."""
    stopping: threading.Event
    """Set when the sandbox stops (a "slow" fault's wait ends early)."""


class SandboxServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer with daemon threads that can cut its open connections on stop."""

    daemon_threads = True
    request_queue_size = BACKLOG

    def __init__(
        self,
        host: str,
        port: int,
        app: Backend,
        *,
        verbose: bool = False,
        max_threads: int = MAX_THREADS,
    ) -> None:
        if ":" in host:
            self.address_family = socket.AF_INET6
        self.app = app
        self.verbose = verbose
        self.max_threads = max_threads
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        # Connections beyond the cap wait in the listen backlog until a thread is free.
        self._slots = threading.BoundedSemaphore(max_threads)
        self._closing = False
        super().__init__((host, port), _Handler)

    def shutdown(self) -> None:
        """Stop the serve loop (a connection waiting for a thread is dropped)."""
        self._closing = True
        super().shutdown()

    def crowded(self) -> bool:
        """True while three quarters of the connection threads are taken."""
        with self._open_lock:
            return len(self._open) * 4 >= self.max_threads * 3

    def process_request(self, request: Any, client_address: Any) -> None:
        while not self._slots.acquire(timeout=0.5):
            if self._closing:
                self.shutdown_request(request)
                return
        with self._open_lock:
            self._open.add(request)
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._release(request)
            raise

    def shutdown_request(self, request: Any) -> None:
        super().shutdown_request(request)
        self._release(request)

    def _release(self, request: Any) -> None:
        with self._open_lock:
            if request not in self._open:
                return
            self._open.discard(request)
        self._slots.release()

    def close_connections(self) -> None:
        """Shut down every open client connection (their handler threads then end)."""
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about clients that went away; log anything else."""
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            return
        log.exception("sandbox: error while serving %s", client_address)
