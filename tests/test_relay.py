"""The classroom relay over real HTTP, in front of a real sandbox: the same API to students,
each student seeing only their own tasks, tokens hashed at rest and revoked at once."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from urllib.parse import unquote

import pytest
import requests

from luma_nb import LumaClient, extend_form
from luma_nb.contract.errors import APIError, AuthenticationError, ValidationError
from luma_nb.relay import hash_token
from luma_nb.relay.sqlite import SQLiteStore
from luma_nb.sandbox import Sandbox
from tests.relay_support import Classroom


@pytest.fixture
def room(sandbox: Sandbox, tmp_path) -> Iterator[Classroom]:
    classroom = Classroom(sandbox, tmp_path, publish=[sandbox.demo_parents[0].task_id])
    yield classroom
    classroom.close()


def test_a_student_submits_and_waits_with_the_unchanged_client(room):
    client = room.client(0)
    assert client.account().credits is None  # no budget set: no limit to show
    job = client.extend(room.sandbox.demo_parents[0].task_id, "a red sailboat races home")
    task = job.wait(timeout=30)
    assert task.is_finished and task.video_url
    assert task.task_id in room.sandbox.task_ids
    assert client.fetch(job.task_id).video_url == task.video_url
    account = client.account()
    assert (account.email, account.total_images, account.plan) == ("student-01", 1, "class")


def test_imagine_goes_through_too(room):
    job = room.client(1).imagine("a paper boat in the rain", aspect_ratio="16:9", loop=True)
    assert job.wait(timeout=30).is_finished
    sent = [r.body for r in room.sandbox.requests if r.path == "/luma-imagine"]
    assert sent == [
        {
            "prompt": "a paper boat in the rain",
            "enhance_prompt": False,
            "aspect_ratio": "16:9",
            "loop": True,
        }
    ]


def test_another_students_task_is_404_and_left_out_of_fetch_many(room):
    mine = room.client(0).imagine("a lighthouse at dusk")
    theirs = room.client(1)
    with pytest.raises(APIError) as caught:
        theirs.fetch(mine.task_id)
    assert caught.value.status_code == 404
    assert room.post("/fetch", {"task_id": "no-such-task"}, 1).status_code == 404
    published = room.sandbox.demo_parents[0].task_id
    tasks = theirs.fetch_many([mine.task_id, published])
    assert [t.task_id for t in tasks] == [published]  # the class's published parent only
    assert [t.task_id for t in room.client(0).fetch_many([mine.task_id, published])] == [
        mine.task_id,
        published,
    ]


def test_every_answer_names_the_relay_and_the_class(room):
    answers = [
        room.post("/fetch", {"task_id": "x"}),
        room.http().get(room.url + "/account", timeout=10),
        requests.get(room.url + "/account", timeout=10),  # no token: 401
        requests.get(room.url + "/nowhere", timeout=10),
        room.http().get(room.url + "/fetch", timeout=10),
    ]
    assert [a.status_code for a in answers] == [404, 200, 401, 404, 405]
    for answer in answers:
        assert answer.headers["X-Luma-NB-Service"] == "relay"
        assert unquote(answer.headers["X-Luma-NB-Class"]) == "Year 9 Art"
        assert "errors" in answer.json() or answer.status_code == 200
    assert answers[4].headers["Allow"] == "POST"


def test_fetch_answers_say_when_the_relay_last_looked(room):
    job = room.client(0).imagine("fireflies at night")
    job.wait(timeout=30)
    answer = room.post("/fetch", {"task_id": job.task_id})
    polled = float(answer.headers["X-Luma-NB-Polled-At"])
    # The poller may have looked again since; it never reports a look it has not made.
    assert 0 < polled <= round(room.relay.poller.last_look, 3) + 0.001


def test_bad_input_is_refused_before_any_credit_or_upstream_request(room):
    parent = room.sandbox.demo_parents[0].task_id
    session = room.http()
    cases = [
        session.post(room.url + "/luma-extend", data=b"{not json", timeout=10),
        session.post(room.url + "/luma-extend", data=b"", timeout=10),
        session.post(room.url + "/luma-extend", data=b"x" * (70 * 1024), timeout=10),
        session.post(room.url + "/luma-extend", json=["a", "list"], timeout=10),
        session.post(room.url + "/luma-extend", json={"parent_task_id": parent}, timeout=10),
        session.post(
            room.url + "/luma-extend",
            json={"parent_task_id": parent, "prompt": "ok", "aspect_ratio": "5:4"},
            timeout=10,
        ),
        session.post(
            room.url + "/luma-imagine", json={"prompt": "ok", "enhance_prompt": "yes"}, timeout=10
        ),
        session.post(room.url + "/luma-imagine", json={"prompt": "ok", "colour": 1}, timeout=10),
        session.post(
            room.url + "/luma-imagine",
            json={"prompt": "ok", "webhook_url": "https://example.org/hook"},
            timeout=10,
        ),
        session.post(room.url + "/fetch-many", json={"task_ids": ["only-one"]}, timeout=10),
    ]
    assert [c.status_code for c in cases] == [400, 400, 413, 400, 400, 400, 400, 400, 400, 400]
    for case in cases:
        assert case.json()["errors"][0]["msg"]
    assert "prompt" in cases[4].json()["errors"][0]["msg"]
    assert "webhook" in cases[8].json()["errors"][0]["msg"]
    assert room.upstream_submits() == 0
    assert room.relay.ledger() == []


def test_tokens_are_stored_hashed_never_in_clear(room, tmp_path):
    room.client(0).imagine("a hot-air balloon").wait(timeout=30)
    room.relay.stop()  # flush everything to the files
    files = [p for p in tmp_path.iterdir() if p.name.startswith("class.sqlite")]
    data = b"".join(p.read_bytes() for p in files)
    for issued in room.tokens:
        assert issued.token.encode() not in data
        assert hash_token(issued.token).encode() in data
    assert "token=<hidden>" in repr(room.tokens[0])


def test_revoking_takes_effect_at_once_even_from_another_process_connection(room):
    client = room.client(0)
    assert client.account().email == "student-01"
    other = SQLiteStore(room.db)  # what `luma-nb class revoke` opens
    assert other.revoke("student-01")
    other.close()
    with pytest.raises(AuthenticationError):
        client.account()
    with pytest.raises(AuthenticationError):
        client.imagine("one more try")
    assert room.upstream_submits() == 0
    assert room.client(1).account().email == "student-02"  # the others go on


def test_the_upstream_key_never_leaves_the_relay(make_sandbox, tmp_path, caplog):
    planted = "sk-PLANTED-upstream-key-4f1e"
    sandbox = make_sandbox(api_key=planted)
    caplog.set_level(logging.DEBUG)
    room = Classroom(sandbox, tmp_path, student_budget=6)
    try:
        seen = []
        client = room.client(0)
        job = client.imagine("a storm over the harbour")
        job.wait(timeout=30)
        seen.append(room.post("/luma-imagine", {"prompt": "over budget"}))  # 402
        sandbox.faults.add(path="/fetch", kind="500", times=3)
        seen.append(room.post("/fetch", {"task_id": job.task_id}))
        seen.append(room.post("/luma-imagine", {"prompt": 3}))
        seen.append(room.http().get(room.url + "/account", timeout=10))
        seen.append(requests.get(room.url + "/account", timeout=10))
        texts = [r.text + repr(dict(r.headers)) for r in seen]
        texts += [repr(room.relay), repr(client), str(room.relay.ledger())]
        texts += [record.getMessage() for record in caplog.records]
        room.relay.stop()
        for path in tmp_path.iterdir():
            assert planted.encode() not in path.read_bytes(), path
        for text in texts:
            assert planted not in text
            for issued in room.tokens:
                assert issued.token not in text
    finally:
        room.close()


def test_default_client_and_the_form_use_the_class_relay(room, monkeypatch):
    from luma_nb.client import defaults

    monkeypatch.setenv("LUMA_NB_CLASS_URL", room.url + "/")
    monkeypatch.setenv("LUMA_NB_CLASS_TOKEN", room.tokens[1].token)
    monkeypatch.setenv("APIFRAME_API_KEY", "a-students-own-key")
    monkeypatch.setattr(defaults, "_client", None)
    client = defaults.default_client()
    assert client.base_url == room.url
    assert client.account().email == "student-02"
    assert defaults.default_client() is client
    form = extend_form()
    assert form.client is client
    assert form.in_class and "Class" in form.status_line
    done = threading.Event()
    form.observe(lambda change: done.set(), names="status_line")
    if "Year 9 Art" not in form.status_line:
        assert done.wait(10)
    assert "Class: Year 9 Art" in form.status_line
    assert "sandbox" not in form.status_line.lower()
    monkeypatch.setenv("LUMA_NB_CLASS_TOKEN", "")
    with pytest.raises(ValidationError, match="LUMA_NB_CLASS_TOKEN"):
        defaults.default_client()


def test_the_form_banner_counts_the_students_credits(sandbox, tmp_path):
    room = Classroom(sandbox, tmp_path, student_budget=30)
    try:
        client = room.client(0)
        client.imagine("a parent").wait(timeout=30)
        form = extend_form(client)
        done = threading.Event()
        form.observe(lambda change: done.set(), names="status_line")
        if "credits left" not in form.status_line:
            assert done.wait(10)
        assert form.status_line.startswith("Class: Year 9 Art")
        assert "24 credits left" in form.status_line and form.credits == 24
    finally:
        room.close()


def test_a_relay_needs_the_upstream_key(sandbox, tmp_path, monkeypatch):
    from luma_nb.relay import Relay

    monkeypatch.delenv("APIFRAME_API_KEY", raising=False)
    with pytest.raises(ValueError, match="APIFRAME_API_KEY"):
        Relay(sandbox.base_url, db=tmp_path / "c.sqlite")


def test_json_nested_too_deep_for_the_parser_is_a_400_not_a_500(room, caplog):
    caplog.set_level(logging.ERROR)
    deep = b"[" * 20_000 + b"]" * 20_000  # ~40 KB, under the body limit
    session = room.http()
    answers = [
        session.post(room.url + path, data=deep, timeout=10)
        for path in ("/fetch", "/fetch-many", "/luma-imagine", "/luma-extend", "/class/share")
    ]
    assert [a.status_code for a in answers] == [400] * 5
    for answer in answers:
        assert answer.json() == {"errors": [{"msg": "Request body is not valid JSON"}]}
    assert not [r for r in caplog.records if r.exc_info]  # no traceback in the relay's log
    assert room.upstream_submits() == 0
    assert room.relay.ledger() == []


def test_a_student_may_extend_only_a_parent_they_may_see(room):
    sandbox = room.sandbox
    theirs = room.client(1).imagine("a private lighthouse").wait(timeout=30)
    assert room.post("/class/share", {"task_id": theirs.task_id, "shared": False}, 1).ok
    # An upstream task the class never made (another account's, or another class's).
    with LumaClient(sandbox.api_key, base_url=sandbox.base_url, journal=None) as up:
        foreign = up.imagine("somebody else's video").task_id
        sandbox.complete(foreign)
    before = room.upstream_submits()
    unknown = room.post("/fetch", {"task_id": "no-such-task"})
    for parent in (theirs.task_id, foreign, "no-such-task"):
        answer = room.post("/luma-extend", {"parent_task_id": parent, "prompt": "mine now"})
        assert answer.status_code == 404, (parent, answer.text)
        assert answer.json() == unknown.json()  # the same shape as an unknown id
    assert room.upstream_submits() == before
    assert [e.kind for e in room.relay.ledger()] == ["reserve", "charge"]  # student-02's only

    # Once shared in the class gallery (the default), a classmate may extend it; a published
    # parent and one's own task always.
    assert room.post("/class/share", {"task_id": theirs.task_id, "shared": True}, 1).ok
    shared = room.post("/luma-extend", {"parent_task_id": theirs.task_id, "prompt": "and on"})
    assert shared.status_code == 200, shared.text
    assert room.extend(0).status_code == 200  # the published demo parent
    own = room.client(1).extend(theirs.task_id, "my own, further")
    assert own.task_id


def test_a_class_connecting_at_once_is_queued_not_turned_away(room):
    """600 connections arrive while the relay's loop is busy (it accepts none of them): the
    listening socket's backlog holds them all (Tornado's default of 128 would leave the rest's
    SYNs unanswered, retried after 1, 3, 7 s)."""
    import selectors
    import socket

    busy, release = threading.Event(), threading.Event()

    def hold() -> None:
        busy.set()
        release.wait(60)

    room.relay._loop.call_soon_threadsafe(hold)
    assert busy.wait(10)
    selector = selectors.DefaultSelector()
    sockets = []
    try:
        for _ in range(600):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", room.relay.port))
            selector.register(sock, selectors.EVENT_WRITE)
            sockets.append(sock)
        connected = 0
        while connected < len(sockets):
            ready = selector.select(timeout=10)  # a dropped SYN is only retried after 1 s
            if not ready:
                break
            for key, _ in ready:
                selector.unregister(key.fileobj)
                error = key.fileobj.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                connected += error == 0
        assert connected == 600
    finally:
        release.set()
        selector.close()
        for sock in sockets:
            sock.close()
    answer = requests.post(
        room.url + "/fetch",
        json={"task_id": "nope"},
        headers={"Authorization": room.tokens[0].token},
        timeout=30,
    )
    assert answer.status_code == 404  # and the relay serves on


def test_a_write_waiting_for_the_database_holds_up_no_other_student(room):
    """A submit whose reservation waits for the database (another process holds SQLite's
    write lock) waits alone: the event loop answers other students' fetches meanwhile."""
    import sqlite3

    other = sqlite3.connect(room.db, isolation_level=None, timeout=30)
    other.execute("BEGIN IMMEDIATE")
    answers: list[requests.Response] = []
    submit = threading.Thread(
        target=lambda: answers.append(
            requests.post(
                room.url + "/luma-imagine",
                json={"prompt": "a lighthouse"},
                headers={"Authorization": room.tokens[0].token},
                timeout=60,
            )
        )
    )
    try:
        submit.start()
        time.sleep(0.5)  # the submit reaches its reservation and waits for the lock
        parent = room.sandbox.demo_parents[0].task_id
        for _ in range(5):
            fetched = requests.post(
                room.url + "/fetch",
                json={"task_id": parent},
                headers={"Authorization": room.tokens[1].token},
                timeout=30,
            )
            assert fetched.status_code == 200, fetched.text
        assert submit.is_alive() and not answers  # still waiting for the database
    finally:
        other.execute("ROLLBACK")
        other.close()
    submit.join(60)
    assert answers and answers[0].status_code == 200, answers and answers[0].text


def test_a_rehearsal_relay_polls_at_its_sandbox_speed(tmp_path):
    """`luma-nb class serve --upstream sandbox`: the class's poller paces itself at the
    sandbox's speed (a 6-second demo job is looked at often enough for the dashboard to see it
    move), unless a policy is given."""
    from luma_nb.contract.polling import DefaultPolicy, FixedPolicy
    from luma_nb.relay.launch import rehearsal

    with rehearsal(speed=10, db=str(tmp_path / "a.sqlite"), port=0) as paced:
        policy = paced.relay.poller.policy
        assert isinstance(policy, DefaultPolicy)
        assert policy.sparse_max == DefaultPolicy().sparse_max / 10
        assert policy.prior.quantile(1.0) == 30.0  # the documented 5 minutes, at speed 10
    fixed = FixedPolicy(2.0)
    with rehearsal(speed=10, db=str(tmp_path / "b.sqlite"), port=0, poll=fixed) as given:
        assert given.relay.poller.policy is fixed
