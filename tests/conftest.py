"""Shared fixtures: a fast, real sandbox on loopback, plain HTTP helpers, a webhook receiver.

- ``sandbox``: a started :class:`luma_nb.sandbox.Sandbox` at speed 200 (a job takes 0.3-1.5 s),
  stopped after the test.
- ``make_sandbox``: a factory ``make_sandbox(**kwargs)`` for sandboxes with other settings
  (speed defaults to 200), all stopped after the test.
- ``sandbox_http``: a :class:`SandboxHTTP` (plain ``requests.Session``) talking to ``sandbox``.
- ``webhook_receiver``: a real HTTP server on 127.0.0.1 that records webhook posts.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from luma_nb.sandbox import Sandbox
from tests.store_support import backend, make, where  # noqa: F401 (the store tests' fixtures)

FAST = 200.0


class SandboxHTTP:
    """A thin ``requests`` helper for one sandbox: auth header, JSON in and out, waiting."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.base_url = sandbox.base_url
        self.session = requests.Session()
        self.session.headers["Authorization"] = sandbox.api_key

    def post(self, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
        """POST ``body`` as JSON (``timeout`` defaults to 10 s)."""
        kwargs.setdefault("timeout", 10)
        return self.session.post(self.base_url + path, json=body, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        """GET ``path`` (``timeout`` defaults to 10 s)."""
        kwargs.setdefault("timeout", 10)
        return self.session.get(self.base_url + path, **kwargs)

    def imagine(self, prompt: str = "a red fox in snow", **fields: Any) -> str:
        """Submit an imagine task; returns its id."""
        response = self.post("/luma-imagine", {"prompt": prompt, **fields})
        assert response.status_code == 200, response.text
        return str(response.json()["task_id"])

    def extend(
        self, parent_task_id: str, prompt: str = "the camera pulls back", **fields: Any
    ) -> str:
        """Submit an extend task; returns its id."""
        body = {"parent_task_id": parent_task_id, "prompt": prompt, **fields}
        response = self.post("/luma-extend", body)
        assert response.status_code == 200, response.text
        return str(response.json()["task_id"])

    def fetch(self, task_id: str) -> dict[str, Any]:
        """The fetch body of a task (asserts a 200)."""
        response = self.post("/fetch", {"task_id": task_id})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def wait(
        self,
        task_id: str,
        timeout: float = 30.0,
        *,
        on_body: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll until the task is finished (has ``video_url``) or failed; returns the last body."""
        deadline = time.monotonic() + timeout
        while True:
            body = self.fetch(task_id)
            if on_body is not None:
                on_body(body)
            if "video_url" in body or body.get("status") == "failed":
                return body
            if time.monotonic() > deadline:
                raise AssertionError(f"task {task_id} still {body} after {timeout} s")
            time.sleep(0.005)

    def close(self) -> None:
        """Close the session."""
        self.session.close()


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., Sandbox]]:
    """A factory of started sandboxes (speed 200 unless given), stopped after the test."""
    made: list[Sandbox] = []

    def factory(**kwargs: Any) -> Sandbox:
        kwargs.setdefault("speed", FAST)
        sandbox = Sandbox(**kwargs).start()
        made.append(sandbox)
        return sandbox

    yield factory
    for sandbox in made:
        sandbox.stop()


@pytest.fixture
def sandbox(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    """A started sandbox at speed 200 that accepts any non-empty key."""
    return make_sandbox()


@pytest.fixture
def sandbox_http(sandbox: Sandbox) -> Iterator[SandboxHTTP]:
    """Plain HTTP (``requests``) against the ``sandbox`` fixture."""
    http = SandboxHTTP(sandbox)
    yield http
    http.close()


@dataclass
class Received:
    """One webhook post the receiver got."""

    path: str
    headers: dict[str, str]
    body: Any
    time: float


@dataclass
class WebhookReceiver:
    """A loopback HTTP server recording POSTs; ``fail_next`` answers that many with 500."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    fail_next: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bodies(self) -> list[Any]:
        """The JSON bodies received so far."""
        with self.lock:
            return [r.body for r in self.received]

    def wait_for(
        self, predicate: Callable[[list[Received]], bool], timeout: float = 20.0
    ) -> list[Received]:
        """Wait until ``predicate(received)`` holds; returns the posts so far."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                seen = list(self.received)
            if predicate(seen):
                return seen
            if time.monotonic() > deadline:
                raise AssertionError(f"webhook condition not met; got {[r.body for r in seen]}")
            time.sleep(0.01)


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """A real webhook receiver on 127.0.0.1 (``.url``, ``.received``, ``.fail_next``)."""
    receiver = WebhookReceiver()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw
            with receiver.lock:
                receiver.received.append(
                    Received(self.path, dict(self.headers.items()), body, time.monotonic())
                )
                failing = receiver.fail_next > 0
                receiver.fail_next -= 1 if failing else 0
            status = 500 if failing else 200
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    yield receiver
    server.shutdown()
    server.server_close()
    thread.join(5)


# -- journal isolation (reliability work, issue 6) ------------------------------------------------
# Every LumaClient journals its submits by default (under LUMA_NB_HOME). Point LUMA_NB_HOME at a
# fresh temporary folder for EVERY test, so no test writes to the real user data folder and no
# test sees another test's journal. The session-wide folder below also covers clients made by
# module- or session-scoped fixtures, which are created before any function-scoped fixture.


@pytest.fixture(scope="session", autouse=True)
def _luma_nb_home_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """LUMA_NB_HOME = a temporary folder for the whole session (the baseline)."""
    with pytest.MonkeyPatch.context() as patch:
        home = tmp_path_factory.mktemp("luma_nb_home_session")
        patch.setenv("LUMA_NB_HOME", str(home))
        yield home


@pytest.fixture(autouse=True)
def _luma_nb_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """LUMA_NB_HOME = a fresh temporary folder for each test (yielded as a Path)."""
    home = tmp_path_factory.mktemp("luma_nb_home")
    monkeypatch.setenv("LUMA_NB_HOME", str(home))
    yield home


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """A real PostgreSQL server for the session (tests/pg_support.py); fails when missing."""
    from tests.pg_support import PostgresMissing, PostgresServer

    try:
        server = PostgresServer()
    except PostgresMissing as missing:
        pytest.fail(str(missing), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_dsn(postgres: Any) -> str:
    """The DSN of a fresh, empty PostgreSQL database (its password must never be shown)."""
    return str(postgres.database())
