"""Shared fixtures: a fast real sandbox, clients, a scripted server, a webhook receiver.

Their helpers (the fast policy ``FAST``, ``eventually``, ``SandboxHTTP``) are in tests/support.py.

- ``sandbox``: a started :class:`luma_nb.sandbox.Sandbox` at speed 200 (a job takes 0.3-1.5 s),
  stopped after the test.
- ``make_sandbox``: a factory ``make_sandbox(**kwargs)`` for sandboxes with other settings
  (speed defaults to 200), all stopped after the test.
- ``sandbox_http``: a :class:`SandboxHTTP` (plain ``requests.Session``) talking to ``sandbox``.
- ``make_client``: a factory ``make_client(server, **options)`` of clients (``FAST`` polling),
  closed after the test.
- ``client``: a client of ``sandbox`` (no journal).
- ``scripted``: a :class:`ScriptedServer` on 127.0.0.1 answering from canned replies (for what
  the sandbox cannot say on purpose); ``scripted_client``: a client of it (key ``KEY``, its
  journal in the test's own ``LUMA_NB_HOME``).
- ``webhook_receiver``: a real HTTP server on 127.0.0.1 that records webhook posts.

Which tests are ``slow`` (left out of the fast tier, ``-m "not slow"``) is decided in the
repository's conftest.py.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from luma_nb import LumaClient
from luma_nb.sandbox import Sandbox
from tests.scripted import ScriptedServer
from tests.store_support import backend, make, where  # noqa: F401 (the store tests' fixtures)
from tests.support import FAST, KEY, Received, SandboxHTTP, WebhookReceiver

SPEED = 200.0


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., Sandbox]]:
    """A factory of started sandboxes (speed 200 unless given), stopped after the test."""
    made: list[Sandbox] = []

    def factory(**kwargs: Any) -> Sandbox:
        kwargs.setdefault("speed", SPEED)
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


@pytest.fixture
def make_client() -> Iterator[Callable[..., LumaClient]]:
    """A factory ``make_client(server, **options)`` of clients, all closed after the test.

    ``server`` is a :class:`Sandbox` (its key and URL; ``service="sandbox"``: the test started
    it, as a launcher does), a :class:`ScriptedServer` or a base URL (key ``KEY`` for both).
    ``options`` go to :class:`LumaClient`: ``poll`` defaults to ``FAST`` and ``timeout`` to 5 s;
    the journal is the product's default (in the test's own ``LUMA_NB_HOME``) unless
    ``journal`` says otherwise.
    """
    made: list[LumaClient] = []

    def factory(server: Sandbox | ScriptedServer | str, **options: Any) -> LumaClient:
        options.setdefault("poll", FAST)
        options.setdefault("timeout", 5)
        if isinstance(server, Sandbox):
            key, base_url = server.api_key, server.base_url
            options.setdefault("service", "sandbox")
        else:
            key, base_url = KEY, server if isinstance(server, str) else server.url
        made.append(LumaClient(options.pop("api_key", key), base_url=base_url, **options))
        return made[-1]

    yield factory
    for client in made:
        client.close()


@pytest.fixture
def client(make_client: Callable[..., LumaClient], sandbox: Sandbox) -> LumaClient:
    """A client of ``sandbox``: ``FAST`` polling, no journal, knowing it talks to the sandbox."""
    return make_client(sandbox, journal=None)


@pytest.fixture
def scripted() -> Iterator[ScriptedServer]:
    """A scripted HTTP server on 127.0.0.1 (tests/scripted.py), shut down after the test."""
    with ScriptedServer() as server:
        yield server


@pytest.fixture
def scripted_client(make_client: Callable[..., LumaClient], scripted: ScriptedServer) -> LumaClient:
    """A client of ``scripted``: key ``KEY``, ``FAST`` polling, the default journal."""
    return make_client(scripted)


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
