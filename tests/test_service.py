"""The client knows it talks to the sandbox because the sandbox says so, never from the URL."""

from __future__ import annotations

from luma_nb import LumaClient, ValidationError
from luma_nb.client.client import DEFAULT_BASE_URL
from luma_nb.client.journal import service_of
from luma_nb.contract.service import SERVICE_HEADER
from luma_nb.notebook import display
from luma_nb.notebook.showing import text_bundle

from .scripted import Reply, ScriptedServer
from .support import FAST

ACCOUNT = {"email": "a@b.c", "credits": 10, "total_images": 0, "plan": "free"}


def test_the_documented_url_is_the_api_and_any_other_unknown_until_an_answer_says() -> None:
    assert LumaClient("k", journal=None).service == "api"
    other = LumaClient("k", base_url="http://127.0.0.1:9", journal=None)
    assert other.service == "unknown" and not other.is_sandbox
    assert LumaClient("k", base_url=DEFAULT_BASE_URL + "/", journal=None).service == "api"


def test_a_loopback_server_without_the_header_is_not_called_demo_or_free(tmp_path) -> None:
    with ScriptedServer() as server:
        server.default("/account", Reply(200, ACCOUNT))
        server.queue("/luma-imagine", Reply(200, {"task_id": "t-1"}))
        client = LumaClient(
            "k", base_url=server.url, poll=FAST, journal=tmp_path / "journal.sqlite3"
        )
        client.account()
        assert client.service == "unknown" and not client.is_sandbox
        job = client.imagine("a quiet lake")
        bundle = text_bundle(job)
        assert display.DEMO_NOTE not in bundle["text/html"]
        assert "no credits" not in bundle["text/html"]
        entry = client.journal.entries(1)[0]
        assert entry.service == server.url and entry.service != "sandbox"
        assert service_of(client) == server.url


def test_a_service_is_recognised_by_its_header_whatever_its_url(sandbox) -> None:
    # The same loopback sandbox, spelled in a way no hostname guess would call local.
    url = sandbox.base_url.replace("127.0.0.1", "LOCALHOST")
    client = LumaClient(sandbox.api_key, base_url=url, poll=FAST, journal=None)
    assert client.service == "unknown"
    client.account()
    assert client.service == "sandbox" and client.is_sandbox


def test_a_relay_announces_itself_and_its_class() -> None:
    relay = {SERVICE_HEADER: "relay", "X-Luma-NB-Class": "Film%20101%20%C3%A9t%C3%A9"}
    with ScriptedServer() as server:
        server.default("/account", Reply(200, ACCOUNT, headers=relay))
        client = LumaClient("k", base_url=server.url, journal=None)
        client.account()
        assert client.service == "relay" and not client.is_sandbox
        assert client.class_name == "Film 101 été"


def test_the_journal_files_a_sandbox_submit_under_the_sandbox_once_it_answered(
    sandbox, tmp_path
) -> None:
    client = LumaClient(
        sandbox.api_key, base_url=sandbox.base_url, poll=FAST, journal=tmp_path / "j.sqlite3"
    )
    job = client.extend(sandbox.demo_parents[0].task_id, "the first answer tells")
    entry = client.journal.entries(1)[0]
    assert entry.task_id == job.task_id and entry.service == "sandbox"
    assert [j.task_id for j in client.resume()] == [job.task_id]


def test_a_launcher_may_say_what_it_started_and_nothing_else() -> None:
    assert LumaClient("k", base_url="http://127.0.0.1:9", service="sandbox").is_sandbox
    try:
        LumaClient("k", service="free")
    except ValidationError as error:
        assert error.field == "service"
    else:
        raise AssertionError("an unknown service name was accepted")
