"""A small scripted HTTP server on 127.0.0.1: each path answers from a queue of canned replies.

It exists for what the sandbox cannot say on purpose: odd payload shapes from the contract
(numeric percentages, a ``status``-less failure, unknown fields) and precise wire checks.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict/list -> JSON; str/bytes -> sent as is
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False  # close the connection without answering
    delay: float = 0.0


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    raw: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.raw) if self.raw else None


class ScriptedServer:
    def __init__(self) -> None:
        self.replies: dict[str, deque[Reply]] = defaultdict(deque)
        self.defaults: dict[str, Reply] = {}
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def queue(self, path: str, *replies: Reply) -> None:
        with self._lock:
            self.replies[path].extend(replies)

    def default(self, path: str, reply: Reply) -> None:
        self.defaults[path] = reply

    def requests_to(self, path: str) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.path == path]

    def _next(self, path: str) -> Reply:
        with self._lock:
            if self.replies[path]:
                return self.replies[path].popleft()
        return self.defaults.get(path, Reply(404, {"errors": [{"msg": "no scripted reply"}]}))

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> ScriptedServer:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                with outer._lock:
                    outer.seen.append(Seen(self.command, self.path, dict(self.headers), raw))
                reply = outer._next(self.path)
                if reply.delay:
                    threading.Event().wait(reply.delay)
                if reply.drop:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if isinstance(reply.body, (dict, list)):
                    data = json.dumps(reply.body).encode()
                    ctype = "application/json"
                elif isinstance(reply.body, str):
                    data = reply.body.encode()
                    ctype = "text/html" if reply.body.lstrip().startswith("<") else "text/plain"
                elif isinstance(reply.body, bytes):
                    data, ctype = reply.body, "application/octet-stream"
                else:
                    data, ctype = b"", "application/json"
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.headers.get("Content-Type", ctype))
                for key, value in reply.headers.items():
                    if key != "Content-Type":
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
