"""JupyterHub mode of the relay, against a small Hub stand-in (a real HTTP server on loopback).

The stand-in answers ``GET /hub/api/user`` as JupyterHub does (the owner's model for a known
token, 403 for any other), so these tests pin the relay's side quickly: enrolment on first use,
separate budgets, the base path, the cache, 401 for unknown or revoked tokens, 503 when the Hub
is down, and ``default_client()`` in a Hub user's server. The real JupyterHub is in
tests/test_hub.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from luma_nb import LumaClient
from luma_nb.client import defaults as defaults_module
from luma_nb.contract.polling import FixedPolicy
from luma_nb.relay import Relay, hash_token
from luma_nb.relay.hub import HubIdentity, HubUnavailable, HubUser, service_from_env
from luma_nb.relay.sqlite import SQLiteStore
from luma_nb.relay.tokens import issue
from luma_nb.sandbox import Sandbox

PREFIX = "/services/luma-class/"


class FakeHub:
    """``/hub/api/user`` for the tokens in ``users`` (token -> model); 403 for the rest."""

    def __init__(self) -> None:
        self.users: dict[str, dict[str, Any]] = {}
        self.asked: list[str] = []  # the Authorization headers the Hub got
        self.status: int | None = None  # answer every request with this status instead
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                auth = self.headers.get("Authorization", "")
                with outer.lock:
                    outer.asked.append(auth)
                    token = auth.removeprefix("token ")
                    model = outer.users.get(token) if self.path == "/hub/api/user" else None
                    status = outer.status or (200 if model is not None else 403)
                body = json.dumps(model if status == 200 else {"status": status}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.api_url = f"http://127.0.0.1:{self.server.server_address[1]}/hub/api"

    def add(self, token: str, name: str, *, admin: bool = False, groups: tuple[str, ...] = ()):
        with self.lock:
            self.users[token] = {
                "kind": "user",
                "name": name,
                "admin": admin,
                "groups": list(groups),
                "scopes": [],
            }

    def revoke(self, token: str) -> None:
        with self.lock:
            del self.users[token]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    fake = FakeHub()
    yield fake
    fake.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def relay(sandbox: Sandbox, hub: FakeHub, clock: Clock, tmp_path: Path) -> Iterator[Relay]:
    identity = HubIdentity(hub.api_url, teacher_group="teachers", clock=clock)
    parent = sandbox.demo_parents[0].task_id
    with Relay(
        sandbox.base_url,
        api_key=sandbox.api_key,
        db=tmp_path / "class.sqlite",
        class_name="Year 9 Art",
        student_budget=12,
        poll=FixedPolicy(0.05),
        publish=[parent],
        hub=identity,
        base_path=PREFIX,
    ) as started:
        yield started


def _get(relay: Relay, path: str, token: str) -> requests.Response:
    return requests.get(relay.base_url + path, headers={"Authorization": token}, timeout=10)


def _extend(relay: Relay, sandbox: Sandbox, token: str) -> requests.Response:
    body = {"parent_task_id": sandbox.demo_parents[0].task_id, "prompt": "the tide comes in"}
    return requests.post(
        relay.base_url + "/luma-extend", json=body, headers={"Authorization": token}, timeout=10
    )


def test_hub_users_are_enrolled_on_first_use_with_their_own_budgets(
    relay: Relay, sandbox: Sandbox, hub: FakeHub
) -> None:
    hub.add("alice-token", "alice")
    hub.add("bob-token", "bob")
    assert relay.base_url.endswith("/services/luma-class")
    assert [s.name for s in relay.store.students()] == []

    account = _get(relay, "/account", "alice-token")
    assert account.status_code == 200, account.text
    assert account.json()["email"] == "alice" and account.json()["credits"] == 12
    assert account.headers["X-Luma-NB-Service"] == "relay"
    assert [s.name for s in relay.store.students()] == ["alice"]

    for _ in range(2):
        assert _extend(relay, sandbox, "alice-token").status_code == 200
    refused = _extend(relay, sandbox, "alice-token")
    assert refused.status_code == 402, refused.text
    assert _extend(relay, sandbox, "bob-token").status_code == 200

    assert _get(relay, "/account", "alice-token").json()["credits"] == 0
    assert _get(relay, "/account", "bob-token").json()["credits"] == 6
    reserved: dict[str | None, float] = {}
    for entry in relay.ledger():
        if entry.kind == "reserve":
            reserved[entry.student] = reserved.get(entry.student, 0) + entry.credits
    assert reserved == {"alice": 12, "bob": 6}
    # "token <t>" as the Hub's own clients send it works too, and is the same student.
    assert _get(relay, "/account", "token alice-token").json()["email"] == "alice"
    assert [s.name for s in relay.store.students()] == ["alice", "bob"]


def test_class_tokens_keep_working_beside_hub_users_and_never_reach_the_hub(
    relay: Relay, hub: FakeHub
) -> None:
    (issued,) = relay.add_students(names=["carol"])
    answer = _get(relay, "/account", issued.token)
    assert answer.status_code == 200 and answer.json()["email"] == "carol"
    assert hub.asked == []
    # A class token that is not (or no longer) known is refused without asking the Hub either.
    relay.revoke("carol")
    assert _get(relay, "/account", issued.token).status_code == 401
    assert hub.asked == []


def test_unknown_revoked_and_service_tokens_get_401(
    relay: Relay, hub: FakeHub, clock: Clock
) -> None:
    assert _get(relay, "/account", "made-up").status_code == 401
    assert _get(relay, "/account", "").status_code == 401
    hub.users["service-token"] = {"kind": "service", "name": "luma-class"}
    assert _get(relay, "/account", "service-token").status_code == 401

    hub.add("alice-token", "alice")
    assert _get(relay, "/account", "alice-token").status_code == 200
    hub.revoke("alice-token")
    # Trusted for a short while (the cache), then asked again and refused.
    assert _get(relay, "/account", "alice-token").status_code == 200
    clock.now += 31
    assert _get(relay, "/account", "alice-token").status_code == 401

    # The teacher revoking the student refuses their Hub token too (no new enrolment).
    hub.add("alice-new", "alice")
    assert relay.revoke("alice")
    assert _get(relay, "/account", "alice-new").status_code == 401
    assert [s.name for s in relay.store.students() if s.revoked] == ["alice"]


def test_answers_are_cached_by_hash_and_the_token_is_never_logged(
    relay: Relay, hub: FakeHub, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    hub.add("alice-secret-token", "alice")
    caplog.set_level("DEBUG")
    for _ in range(5):
        assert _get(relay, "/account", "alice-secret-token").status_code == 200
    assert hub.asked == ["token alice-secret-token"]
    clock.now += 31
    assert _get(relay, "/account", "alice-secret-token").status_code == 200
    assert len(hub.asked) == 2
    assert "alice-secret-token" not in caplog.text
    assert relay.hub is not None
    assert all("alice-secret-token" not in key for key in relay.hub._cache)


def test_the_hub_down_is_503_not_401(relay: Relay, hub: FakeHub) -> None:
    hub.status = 500
    answer = _get(relay, "/account", "alice-token")
    assert answer.status_code == 503
    assert "JupyterHub" in answer.json()["errors"][0]["msg"]
    hub.status = None
    hub.close()
    assert _get(relay, "/account", "alice-token").status_code == 503


def test_the_relay_serves_under_the_base_path_only(relay: Relay, hub: FakeHub) -> None:
    hub.add("alice-token", "alice")
    root = relay.base_url.removesuffix(PREFIX.rstrip("/"))
    assert _get(relay, "/account", "alice-token").status_code == 200
    outside = requests.get(root + "/account", headers={"Authorization": "alice-token"}, timeout=10)
    assert outside.status_code == 404
    # The loop counts an answer right after sending it: one more answer makes both counted.
    assert _get(relay, "/account", "alice-token").status_code == 200
    assert relay.served["/account"] >= 1 and relay.served["other"] == 1


def test_teachers_are_hub_admins_or_members_of_the_teacher_group(
    relay: Relay, hub: FakeHub
) -> None:
    hub.add("head", "head", admin=True)
    hub.add("ms-lee", "ms-lee", groups=("teachers", "staff"))
    hub.add("alice", "alice", groups=("students",))
    assert relay.hub_teacher("head") == HubUser("head", True, frozenset())
    found = relay.hub_teacher("ms-lee")
    assert found is not None and found.name == "ms-lee"
    assert relay.hub_teacher("alice") is None
    assert relay.hub_teacher("nobody") is None
    assert relay.hub is not None and not relay.hub.is_teacher(None)
    without_group = HubIdentity(hub.api_url)
    assert asyncio.run(without_group.teacher("ms-lee")) is None
    assert asyncio.run(without_group.teacher("head")) is not None


def test_an_unreachable_hub_raises_hub_unavailable() -> None:
    identity = HubIdentity("http://127.0.0.1:9/hub/api", timeout=5)
    with pytest.raises(HubUnavailable):
        asyncio.run(identity.user("some-token"))


def test_the_cache_is_bounded(hub: FakeHub) -> None:
    identity = HubIdentity(hub.api_url, cache_size=3)
    for i in range(5):
        hub.add(f"t{i}", f"user{i}")

    async def ask_all() -> None:
        for i in range(5):
            assert await identity.name(f"t{i}") == f"user{i}"

    asyncio.run(ask_all())
    assert len(identity._cache) == 3


def test_service_settings_come_from_the_hubs_environment() -> None:
    env = {
        "JUPYTERHUB_SERVICE_NAME": "luma-class",
        "JUPYTERHUB_SERVICE_URL": "http://127.0.0.1:10101",
        "JUPYTERHUB_SERVICE_PREFIX": "/hub-root/services/luma-class/",
        "JUPYTERHUB_API_URL": "http://127.0.0.1:8081/hub-root/hub/api",
    }
    service = service_from_env(env)
    assert (service.host, service.port, service.prefix) == (
        "127.0.0.1",
        10101,
        "/hub-root/services/luma-class/",
    )
    assert service.api_url == env["JUPYTERHUB_API_URL"]
    with pytest.raises(ValueError, match="JUPYTERHUB_SERVICE_URL"):
        service_from_env({k: v for k, v in env.items() if k != "JUPYTERHUB_SERVICE_URL"})
    with pytest.raises(ValueError, match="must look like"):
        service_from_env(env | {"JUPYTERHUB_SERVICE_URL": "http://127.0.0.1"})


def test_enroll_is_by_name_and_never_matches_a_class_token(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "class.sqlite")
    try:
        (carol,) = issue(store, names=["carol"])
        alice = store.enroll("alice")
        assert alice is not None and store.enroll("alice") == alice
        # A Hub user named like a token student is that student (one budget, one name).
        by_token = store.student_by_hash(hash_token(carol.token))
        assert store.enroll("carol") == by_token
        assert [s.name for s in store.students()] == ["carol", "alice"]
        store.revoke("alice")
        assert store.enroll("alice") is None
    finally:
        store.close()


# -- the student's side: default_client() in a Hub user's server --------------------------------


@pytest.fixture
def fresh_default(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(defaults_module, "_client", None)
    monkeypatch.setattr(defaults_module, "_class_token", None)
    for name in ("LUMA_NB_CLASS_TOKEN", "APIFRAME_API_KEY", "APIFRAME_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    yield
    client = defaults_module._client
    if client is not None:
        client.close()


def test_default_client_uses_the_servers_hub_token_and_announces_the_class(
    relay: Relay, hub: FakeHub, monkeypatch: pytest.MonkeyPatch, fresh_default: None
) -> None:
    hub.add("alice-server-token", "alice")
    monkeypatch.setenv("LUMA_NB_CLASS_URL", relay.base_url + "/")
    monkeypatch.setenv("JUPYTERHUB_API_URL", hub.api_url)
    monkeypatch.setenv("JUPYTERHUB_USER", "alice")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "alice-server-token")
    client = defaults_module.default_client()
    assert client.service == "relay" and client.class_name == "Year 9 Art"
    assert client.account().raw["email"] == "alice"
    assert hub.asked == ["token alice-server-token"]

    # A class token, when there is one, wins over the Hub token.
    (issued,) = relay.add_students(names=["dan"])
    monkeypatch.setenv("LUMA_NB_CLASS_TOKEN", issued.token)
    assert defaults_module.default_client().account().raw["email"] == "dan"


def test_a_hub_token_without_the_hubs_other_variables_is_not_sent(
    relay: Relay, monkeypatch: pytest.MonkeyPatch, fresh_default: None
) -> None:
    from luma_nb import ValidationError

    monkeypatch.setenv("LUMA_NB_CLASS_URL", relay.base_url)
    monkeypatch.delenv("JUPYTERHUB_API_URL", raising=False)
    monkeypatch.delenv("JUPYTERHUB_USER", raising=False)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "stray-token")
    with pytest.raises(ValidationError, match="LUMA_NB_CLASS_TOKEN"):
        defaults_module.default_client()


def test_a_student_client_reaches_the_relay_under_its_prefix(relay: Relay, hub: FakeHub) -> None:
    hub.add("bob-token", "bob")
    with LumaClient("bob-token", base_url=relay.base_url, journal=None) as client:
        assert client.account().raw["class"] == "Year 9 Art"
        assert client.service == "relay"


# -- luma-nb class serve --hub outside a Hub ------------------------------------------------------


def test_serve_hub_outside_a_hub_says_which_variable_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from luma_nb import cli

    for name in list(os.environ):
        if name.startswith("JUPYTERHUB_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("APIFRAME_API_KEY", "k")
    db = str(tmp_path / "class.sqlite")
    assert cli.main(["class", "serve", "--hub", "--db", db]) == 2
    assert "JUPYTERHUB_SERVICE_NAME is not set: --hub runs the relay as a JupyterHub" in (
        capsys.readouterr().err
    )
    assert cli.main(["class", "serve", "--teacher-group", "teachers", "--db", db]) == 2
    assert "need --hub" in capsys.readouterr().err
