"""Webhooks: constant-time secret check, a hardened local receiver, updates without polling."""

from __future__ import annotations

import http.client
import json
import threading
from email.message import Message

import pytest
import requests

import luma_nb.client.webhooks as webhooks
from luma_nb import FixedPolicy, Journal, LumaClient, TaskFailedError, ValidationError
from luma_nb.client.webhooks import Receiver, verify

from .support import FAST, eventually

SECRET = "hook-secret-3f9a1c7e"


# -- verify ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["x-webhook-secret", "X-Webhook-Secret", "X-WEBHOOK-SECRET"])
def test_verify_matches_the_header_case_insensitively(name):
    assert verify({name: SECRET}, SECRET)
    assert verify([(name, SECRET)], SECRET)


def test_verify_accepts_an_http_message():
    message = Message()
    message["X-Webhook-Secret"] = SECRET
    assert verify(message, SECRET)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-webhook-secret": ""},
        {"x-webhook-secret": SECRET + "x"},
        {"x-webhook-secret": SECRET[:-1]},
        {"x-webhook-signature": SECRET},
        {"authorization": SECRET},
        [("x-webhook-secret", SECRET), ("X-Webhook-Secret", "other")],  # ambiguous: refused
        [("x-webhook-secret", SECRET), ("x-webhook-secret", SECRET)],
        {"x-webhook-secret": None},
        None,
        42,
    ],
)
def test_verify_refuses_missing_wrong_or_repeated_secrets(headers):
    assert verify(headers, SECRET) is False


@pytest.mark.parametrize("secret", ["", None, 0])
def test_an_empty_expected_secret_never_verifies(secret):
    assert verify({"x-webhook-secret": ""}, secret) is False


def test_verify_compares_in_constant_time(monkeypatch):
    calls = []
    real = webhooks.hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(webhooks.hmac, "compare_digest", spy)
    assert not verify({"x-webhook-secret": "nope"}, SECRET)
    assert calls == [(b"nope", SECRET.encode())]


# -- the receiver over real HTTP ---------------------------------------------------------------


@pytest.fixture
def receiver():
    with Receiver(SECRET, max_body=2000) as rec:
        yield rec


def post(url, body, *, secret=SECRET, headers=None):
    extra = {"x-webhook-secret": secret} if secret is not None else {}
    extra.update(headers or {})
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(url, data=data, headers=extra, timeout=5)


TASK = {"task_id": "t-1", "task_type": "luma-ext", "status": "processing", "percentage": "40"}


def test_good_post_is_accepted_and_parsed(receiver):
    seen = []
    receiver.subscribe(seen.append)
    response = post(receiver.url, TASK)
    assert response.status_code == 200
    (task,) = seen
    assert (task.task_id, task.status, task.percentage) == ("t-1", "processing", 40.0)
    assert receiver.last("t-1") == task
    assert receiver.counts == {"accepted": 1}


@pytest.mark.parametrize(
    ("secret", "expected"),
    [(None, 401), ("", 401), ("wrong", 401), (SECRET.upper(), 401), (SECRET, 200)],
)
def test_secret_is_required(receiver, secret, expected):
    seen = []
    receiver.subscribe(seen.append)
    assert post(receiver.url, TASK, secret=secret).status_code == expected
    assert len(seen) == (1 if expected == 200 else 0)
    assert receiver.last("t-1") is (None if expected != 200 else seen[0])


def test_oversized_body_is_refused_without_reading_it(receiver):
    assert post(receiver.url, {**TASK, "pad": "x" * 3000}).status_code == 413
    # A huge announced length is refused at once, before any of it is sent.
    conn = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=5)
    conn.putrequest("POST", "/luma-webhook")
    conn.putheader("x-webhook-secret", SECRET)
    conn.putheader("Content-Length", str(10**9))
    conn.endheaders()
    response = conn.getresponse()
    assert response.status == 413
    conn.close()
    assert receiver.counts["too_large"] == 2
    assert post(receiver.url, TASK).status_code == 200  # still serving


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"<html>502</html>", b"[1, 2]", b'"a string"', b"null", b"\xff\xfe", b"", b"{"],
)
def test_non_json_or_non_object_bodies_get_400(receiver, raw):
    seen = []
    receiver.subscribe(seen.append)
    assert post(receiver.url, raw).status_code == 400
    assert seen == []


def test_only_post_on_the_receiver_path(receiver):
    assert requests.get(receiver.url, timeout=5).status_code == 405
    assert requests.put(receiver.url, data=b"{}", timeout=5).status_code == 405
    wrong = receiver.url.replace("/luma-webhook", "/other")
    assert post(wrong, TASK).status_code == 404


def test_a_failing_callback_does_not_break_delivery(receiver):
    def broken(task):
        raise RuntimeError("boom")

    seen = []
    receiver.subscribe(broken)
    receiver.subscribe(seen.append)
    assert post(receiver.url, TASK).status_code == 200
    assert len(seen) == 1


def test_unsubscribe(receiver):
    seen = []
    stop = receiver.subscribe(seen.append)
    stop()
    post(receiver.url, TASK)
    assert seen == []


def test_a_late_progress_post_never_undoes_the_end(receiver):
    post(receiver.url, {"task_id": "t-1", "video_url": "https://cdn.example/v.mp4"})
    post(receiver.url, TASK)
    assert receiver.last("t-1").is_finished
    assert receiver.last("t-1").video_url == "https://cdn.example/v.mp4"


def test_stop_joins_and_frees_the_port():
    receiver = Receiver(SECRET).start()
    url = receiver.url
    receiver.stop()
    assert receiver._thread is None
    with pytest.raises(requests.ConnectionError):
        requests.post(url, data=b"{}", timeout=2)
    receiver.stop()  # idempotent
    with pytest.raises(RuntimeError):
        receiver.url  # noqa: B018


@pytest.mark.parametrize(
    "kwargs", [{"secret": ""}, {"secret": "  "}, {"secret": None}, {"secret": "s", "max_body": 0}]
)
def test_bad_receiver_settings(kwargs):
    with pytest.raises(ValidationError):
        Receiver(**kwargs)


# -- end to end with the sandbox's webhooks ----------------------------------------------------


def test_sandbox_webhooks_finish_the_job_without_a_single_fetch(sandbox):
    # Waiting on the watcher: the webhooks come before its first look is due (5 s), and each
    # one puts the next look off, so it never polls.
    client = LumaClient(sandbox.api_key, base_url=sandbox.base_url, poll=FixedPolicy(5.0))
    statuses = []
    with Receiver(SECRET) as receiver:
        receiver.subscribe(lambda task: statuses.append(task.status))
        job = client.extend(
            sandbox.demo_parents[0].task_id,
            "the camera rises over the city",
            webhook_url=receiver.url,
            webhook_secret=SECRET,
        )
        watch = job.watch()  # watched first: an early webhook then puts the first look off
        receiver.track(job)
        task = watch.wait(30)
        assert sandbox.wait_webhooks(10)
    assert task.is_finished and task.video_url
    assert job.done and job.task == task
    assert job.wait(timeout=5) == task  # already known: no polling
    assert "processing" in statuses and statuses[-1] == "finished"
    assert sandbox.count("/fetch") == 0 and sandbox.count("/fetch-many") == 0
    entry = client.journal.entries()[0]
    assert entry.status == "finished" and entry.video_url == task.video_url
    deliveries = [d for d in sandbox.webhooks if d.body.get("task_id") == job.task_id]
    assert deliveries and all(d.status == 200 for d in deliveries)


def test_webhooks_drive_a_watched_progress_without_polls(sandbox):
    # The watcher stays the single writer of views: updates reach listeners through it, and the
    # polls it would have made are put off while webhooks keep coming.
    client = LumaClient(sandbox.api_key, base_url=sandbox.base_url, poll=FixedPolicy(5.0))
    heard = []
    with Receiver(SECRET) as receiver:
        job = client.extend(
            sandbox.demo_parents[0].task_id,
            "watched by webhook",
            webhook_url=receiver.url,
            webhook_secret=SECRET,
        )
        watch = job.watch()
        receiver.track(job)
        watch.add_listener(lambda w: heard.append((threading.current_thread().name, w.state)))
        assert watch.wait(30).is_finished
    assert watch.state == "finished" and job.task.video_url
    assert {name for name, _ in heard} == {"luma-nb-watcher"}
    assert heard[-1][1] == "finished"
    assert sandbox.count("/fetch") == 0 and sandbox.count("/fetch-many") == 0


def test_sandbox_webhooks_with_a_wrong_secret_are_refused(sandbox):
    client = LumaClient(sandbox.api_key, base_url=sandbox.base_url, poll=FAST)
    with Receiver(SECRET) as receiver:
        job = client.imagine(
            "an impostor", webhook_url=receiver.url, webhook_secret="not-the-secret"
        )
        receiver.track(job)
        eventually(
            lambda: receiver.counts.get("unauthorized", 0) >= 2, what="two refused deliveries"
        )
        assert receiver.last(job.task_id) is None
        assert job.status == "pending"  # nothing reached the job
        assert "accepted" not in receiver.counts
    first = next(d for d in sandbox.webhooks if d.body.get("task_id") == job.task_id)
    assert first.status == 401 and not first.delivered


def test_sandbox_webhook_of_a_failed_task(sandbox):
    client = LumaClient(sandbox.api_key, base_url=sandbox.base_url, poll=FixedPolicy(5.0))
    sandbox.faults.next_task(fail="GPU quota exceeded")
    with Receiver(SECRET) as receiver:
        job = client.imagine("doomed", webhook_url=receiver.url, webhook_secret=SECRET)
        watch = job.watch()
        receiver.track(job)
        with pytest.raises(TaskFailedError, match="GPU quota exceeded"):
            watch.wait(30)
    assert job.task is not None and job.task.is_failed
    assert client.journal.entries()[0].error == "GPU quota exceeded"
    assert sandbox.count("/fetch") == 0


def test_a_webhook_is_journaled_before_a_waiting_watch_hears_of_it(sandbox, make_client):
    # A wait that returns on a webhook's news must find that news in the journal already.
    client = make_client(sandbox, poll=FixedPolicy(5.0))
    journal, states_when_journaled = client.journal, []

    def observe(task):
        if task.is_failed:
            states_when_journaled.append(watch.state)
        Journal.observe(journal, task)

    journal.observe = observe
    sandbox.faults.next_task(fail="GPU quota exceeded")
    with Receiver(SECRET) as receiver:
        job = client.imagine("doomed", webhook_url=receiver.url, webhook_secret=SECRET)
        watch = job.watch()
        receiver.track(job)
        with pytest.raises(TaskFailedError):
            watch.wait(30)
    assert states_when_journaled == ["watching"]
    assert journal.entries()[0].error == "GPU quota exceeded"
    assert sandbox.count("/fetch") == 0
