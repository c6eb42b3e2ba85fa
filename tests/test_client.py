"""LumaClient against a scripted server on 127.0.0.1: wire format, payload shapes, errors, waits."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from luma_nb import (
    APIError,
    AuthenticationError,
    BadRequestError,
    FixedPolicy,
    InsufficientCreditsError,
    LumaClient,
    LumaError,
    MissingAPIKeyError,
    RateLimitError,
    ServerError,
    SubmitUncertainError,
    TaskFailedError,
    TransportError,
    ValidationError,
    WaitTimeout,
)

from .scripted import Reply
from .support import KEY

TID = "29e983ca-7e86-4017-a9e3-ef6fe9cd5f2a"


def processing(pct):
    return {"task_id": TID, "task_type": "luma-ext", "status": "processing", "percentage": pct}


FINISHED = {"task_id": TID, "task_type": "luma-ext", "video_url": "https://cdn.example/x.mp4"}


# -- wire format -------------------------------------------------------------------------------


def test_extend_sends_documented_request_and_returns_job(scripted, scripted_client):
    scripted.queue("/luma-extend", Reply(200, {"task_id": TID}))
    job = scripted_client.extend("parent-1", "  a mech walks  ")
    (seen,) = scripted.requests_to("/luma-extend")
    assert seen.method == "POST"
    assert seen.headers["Authorization"] == KEY  # raw key, no Bearer
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.json == {
        "parent_task_id": "parent-1",
        "prompt": "a mech walks",
        "enhance_prompt": False,
        "aspect_ratio": "1:1",
    }
    assert job.task_id == TID
    assert job.task is not None and job.task.task_type == "luma-ext"
    assert job.prompt == "a mech walks" and job.parent_task_id == "parent-1"


def test_optional_fields_are_sent_only_when_set(scripted, scripted_client):
    scripted.queue("/luma-extend", Reply(200, {"task_id": TID}))
    scripted_client.extend(
        "p",
        "x",
        image_url="https://img.example/a.png",
        end_image_url="http://img.example/b.jpg",
        enhance_prompt=True,
        aspect_ratio="16:9",
        webhook_url="https://hook.example/h",
        webhook_secret="s3cret",
    )
    body = scripted.requests_to("/luma-extend")[0].json
    assert body == {
        "parent_task_id": "p",
        "prompt": "x",
        "image_url": "https://img.example/a.png",
        "end_image_url": "http://img.example/b.jpg",
        "enhance_prompt": True,
        "aspect_ratio": "16:9",
        "webhook_url": "https://hook.example/h",
        "webhook_secret": "s3cret",
    }
    assert None not in body.values()


def test_imagine_sends_loop_only_when_given(scripted, scripted_client):
    scripted.queue("/luma-imagine", Reply(200, {"task_id": "a"}), Reply(200, {"task_id": "b"}))
    scripted_client.imagine("sunrise")
    scripted_client.imagine("sunrise", loop=True)
    first, second = (s.json for s in scripted.requests_to("/luma-imagine"))
    assert "loop" not in first and second["loop"] is True
    assert "parent_task_id" not in first


def test_fetch_sends_task_id(scripted, scripted_client):
    scripted.queue("/fetch", Reply(200, processing("40")))
    task = scripted_client.fetch(TID)
    assert scripted.requests_to("/fetch")[0].json == {"task_id": TID}
    assert task.status == "processing" and task.percentage == 40.0


def test_account(scripted, scripted_client):
    scripted.queue(
        "/account", Reply(200, {"email": "a@b.c", "credits": 994, "total_images": 3, "plan": "pro"})
    )
    account = scripted_client.account()
    assert scripted.requests_to("/account")[0].method == "GET"
    assert (account.email, account.credits, account.total_images, account.plan) == (
        "a@b.c",
        994.0,
        3,
        "pro",
    )


# -- payload shapes of the contract -------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "pct"),
    [
        (processing("40"), "processing", 40.0),
        (processing("40.5"), "processing", 40.5),
        (processing(56), "processing", 56.0),
        (processing(""), "processing", None),
        ({"task_id": TID, "status": "PENDING"}, "pending", None),
        ({"task_id": TID, "status": "staged"}, "staged", None),
        ({"task_id": TID, "status": "starting"}, "starting", None),
        ({"task_id": TID, "status": "retry"}, "retry", None),
        ({"task_id": TID, "status": "warming_up_gpus"}, "warming_up_gpus", None),
        (FINISHED, "finished", 100.0),
        ({**FINISHED, "status": "finished"}, "finished", 100.0),
    ],
)
def test_task_shapes(scripted, scripted_client, body, status, pct):
    scripted.queue("/fetch", Reply(200, body))
    task = scripted_client.fetch(TID)
    assert task.status == status
    assert task.percentage == pct
    assert task.raw == body
    assert task.is_terminal == (status == "finished")
    assert task.is_finished == (status == "finished")


@pytest.mark.parametrize("field", ["message", "error"])
def test_failed_task_reason(scripted, scripted_client, field):
    scripted.queue("/fetch", Reply(200, {"task_id": TID, "status": "failed", field: "GPU melted"}))
    task = scripted_client.fetch(TID)
    assert task.is_failed and task.is_terminal and task.error == "GPU melted"


# -- errors ------------------------------------------------------------------------------------


def test_400_keeps_the_providers_messages(scripted, scripted_client):
    scripted.queue(
        "/luma-extend", Reply(400, {"errors": [{"msg": "Invalid request"}, {"msg": "bad"}]})
    )
    with pytest.raises(BadRequestError) as info:
        scripted_client.extend("p", "x")
    err = info.value
    assert err.status_code == 400 and err.messages == ("Invalid request", "bad")
    assert err.endpoint == "/luma-extend"
    assert str(err) == "HTTP 400 from /luma-extend: Invalid request; bad"
    assert isinstance(err, APIError) and isinstance(err, LumaError)


def test_401_empty_body(scripted, scripted_client):
    scripted.queue("/account", Reply(401, {}))
    with pytest.raises(AuthenticationError, match="APIFRAME_API_KEY") as info:
        scripted_client.account()
    assert info.value.status_code == 401 and info.value.messages == ()
    assert KEY not in str(info.value)


def test_402_and_429(scripted, scripted_client):
    scripted.queue("/luma-extend", Reply(402, {"errors": [{"msg": "Insufficient credits"}]}))
    with pytest.raises(InsufficientCreditsError, match="Insufficient credits"):
        scripted_client.extend("p", "x")
    scripted.queue("/fetch", Reply(429, {}, headers={"Retry-After": "7"}))
    with pytest.raises(RateLimitError) as info:
        scripted_client.fetch(TID)
    assert info.value.retry_after == 7.0 and "retry after 7 s" in str(info.value)


def test_500_empty_and_502_html(scripted, scripted_client):
    scripted.queue("/fetch", Reply(500, {}))
    with pytest.raises(ServerError, match="HTTP 500 from /fetch"):
        scripted_client.fetch(TID)
    scripted.queue("/fetch", Reply(502, "<html><body><h1>502 Bad Gateway</h1></body></html>"))
    with pytest.raises(ServerError) as info:
        scripted_client.fetch(TID)
    assert info.value.status_code == 502 and "HTML page" in str(info.value)


def test_malformed_json_is_a_server_error(scripted, scripted_client):
    scripted.queue("/fetch", Reply(200, '{"task_id": "abc", "status": '))
    with pytest.raises(ServerError, match="not the JSON"):
        scripted_client.fetch(TID)


def test_connection_refused_is_a_transport_error():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    client = LumaClient(KEY, base_url=f"http://127.0.0.1:{port}", timeout=2)
    with pytest.raises(TransportError, match="could not connect"):
        client.fetch(TID)
    # Nothing was sent, so a submit is certain not to exist: a plain transport error.
    with pytest.raises(TransportError):
        client.extend("p", "x")


def test_missing_key_is_clear_and_sends_nothing(scripted, monkeypatch):
    monkeypatch.delenv("APIFRAME_API_KEY", raising=False)
    client = LumaClient(base_url=scripted.url)
    with pytest.raises(MissingAPIKeyError, match="APIFRAME_API_KEY"):
        client.extend("p", "x")
    assert scripted.seen == []


def test_configuration_from_environment(scripted, monkeypatch):
    monkeypatch.setenv("APIFRAME_API_KEY", KEY)
    monkeypatch.setenv("APIFRAME_BASE_URL", scripted.url + "/")
    scripted.queue("/fetch", Reply(200, FINISHED))
    client = LumaClient()
    assert client.base_url == scripted.url and client.has_key
    assert client.fetch(TID).is_finished
    explicit = LumaClient("other", base_url="http://127.0.0.1:9")
    assert explicit.base_url == "http://127.0.0.1:9"


# -- submits are never sent twice ---------------------------------------------------------------


def test_lost_submit_answer_is_uncertain_and_sent_once(scripted, scripted_client):
    scripted.queue("/luma-extend", Reply(drop=True))
    with pytest.raises(SubmitUncertainError) as info:
        scripted_client.extend(
            "p", "x", webhook_url="https://h.example/", webhook_secret="hush-123"
        )
    assert len(scripted.requests_to("/luma-extend")) == 1
    err = info.value
    assert err.request["prompt"] == "x" and "webhook_secret" not in err.request
    assert "hush-123" not in str(err) and "was sent but its answer was lost" in str(err)


def test_submit_read_timeout_is_uncertain(scripted):
    scripted.queue("/luma-imagine", Reply(200, {"task_id": TID}, delay=1.0))
    client = LumaClient(KEY, base_url=scripted.url, timeout=0.2)
    with pytest.raises(SubmitUncertainError, match="read timeout"):
        client.imagine("x")
    assert len(scripted.requests_to("/luma-imagine")) == 1


@pytest.mark.parametrize(
    "reply",
    [Reply(502, "<html>bad gateway</html>"), Reply(200, "not json"), Reply(200, {"id": ""})],
)
def test_ambiguous_submit_answers_are_uncertain(scripted, scripted_client, reply):
    scripted.queue("/luma-extend", reply)
    with pytest.raises(SubmitUncertainError):
        scripted_client.extend("p", "x")
    assert len(scripted.requests_to("/luma-extend")) == 1


def test_submit_500_is_a_server_error_sent_once(scripted, scripted_client):
    scripted.queue("/luma-extend", Reply(500, {}))
    with pytest.raises(ServerError):
        scripted_client.extend("p", "x")
    assert len(scripted.requests_to("/luma-extend")) == 1


# -- validation sends nothing -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda c: c.extend("p", "   "), "prompt"),
        (lambda c: c.extend("p", None), "prompt"),
        (lambda c: c.extend("", "x"), "parent_task_id"),
        (lambda c: c.extend("a b", "x"), "parent_task_id"),
        (lambda c: c.extend("p", "x" * 5001), "prompt"),
        (lambda c: c.extend("p", "x", aspect_ratio="2:1"), "aspect_ratio"),
        (lambda c: c.extend("p", "x", image_url="ftp://a/b.png"), "image_url"),
        (lambda c: c.extend("p", "x", end_image_url="/local/path.png"), "end_image_url"),
        (lambda c: c.extend("p", "x", webhook_url="hook.example"), "webhook_url"),
        (lambda c: c.extend("p", "x", webhook_secret="s"), "webhook_secret"),
        (lambda c: c.extend("p", "x", enhance_prompt="yes"), "enhance_prompt"),
        (lambda c: c.imagine("x", loop="no"), "loop"),
        (lambda c: c.fetch_many(["a", 3]), "task_ids"),
        (lambda c: c.fetch_many("abc"), "task_ids"),
        (lambda c: c.fetch(""), "task_id"),
        (lambda c: c.wait(TID, timeout=-1), "timeout"),
    ],
)
def test_validation_names_the_field_and_sends_nothing(scripted, scripted_client, call, field):
    with pytest.raises(ValidationError) as info:
        call(scripted_client)
    assert info.value.field == field
    assert field.split("[")[0] in str(info.value)
    assert isinstance(info.value, ValueError)
    assert scripted.seen == []


# -- fetch-many --------------------------------------------------------------------------------


def test_fetch_many_chunks_by_twenty_and_lone_id_uses_fetch(scripted, scripted_client):
    ids = [f"t{i:02d}" for i in range(41)]

    def tasks(chunk):
        return Reply(200, {"tasks": [{"task_id": t, "status": "pending"} for t in chunk]})

    scripted.queue("/fetch-many", tasks(ids[:20]), tasks(ids[20:40]))
    scripted.queue(
        "/fetch", Reply(200, {"task_id": "t40", "status": "processing", "percentage": "3"})
    )
    result = scripted_client.fetch_many(ids)
    sent = [s.json["task_ids"] for s in scripted.requests_to("/fetch-many")]
    assert sent == [ids[:20], ids[20:40]]
    assert scripted.requests_to("/fetch")[0].json == {"task_id": "t40"}
    assert [t.task_id for t in result] == ids


def test_fetch_many_leaves_out_unknown_ids(scripted, scripted_client):
    scripted.queue("/fetch-many", Reply(200, {"tasks": [FINISHED]}))
    scripted.queue("/fetch", Reply(400, {"errors": [{"msg": "Task not found"}]}))
    result = scripted_client.fetch_many([TID, "unknown", "alone-unknown"][:2])
    assert [t.task_id for t in result] == [TID]
    assert scripted_client.fetch_many([]) == []


# -- waiting -----------------------------------------------------------------------------------


def test_wait_returns_finished_task_and_reports_changes(scripted, scripted_client):
    scripted.queue(
        "/fetch",
        Reply(200, {"task_id": TID, "status": "pending"}),
        Reply(200, processing("10")),
        Reply(200, processing("10")),
        Reply(200, processing("55")),
        Reply(200, FINISHED),
    )
    seen = []
    task = scripted_client.wait(TID, on_progress=seen.append)
    assert task.is_finished and task.video_url == FINISHED["video_url"]
    assert [t.describe() for t in seen] == [
        "pending",
        "processing 10%",
        "processing 55%",
        "finished",
    ]


def test_wait_survives_transient_errors(scripted, scripted_client):
    scripted.queue(
        "/fetch",
        Reply(500, {}),
        Reply(502, "<html>Bad gateway</html>"),
        Reply(503, {}),
        Reply(429, {}, headers={"Retry-After": "0"}),
        Reply(drop=True),
        Reply(200, "{broken"),
        Reply(200, FINISHED),
    )
    assert scripted_client.wait(TID).is_finished
    assert len(scripted.requests_to("/fetch")) == 7


def test_wait_raises_on_failed_task_with_reason(scripted, scripted_client):
    scripted.queue(
        "/fetch",
        Reply(200, processing("30")),
        Reply(
            200,
            {"task_id": TID, "status": "failed", "message": "Prompt was rejected by moderation"},
        ),
    )
    with pytest.raises(TaskFailedError, match="Prompt was rejected by moderation") as info:
        scripted_client.wait(TID)
    assert info.value.task.is_failed


def test_wait_does_not_retry_auth_errors(scripted, scripted_client):
    scripted.queue("/fetch", Reply(401, {}))
    with pytest.raises(AuthenticationError):
        scripted_client.wait(TID)
    assert len(scripted.requests_to("/fetch")) == 1


def test_wait_keeps_its_deadline(scripted):
    scripted.default("/fetch", Reply(200, {"task_id": TID, "status": "staged"}))
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    client = LumaClient(
        KEY, base_url=scripted.url, poll=FixedPolicy(0.05), clock=lambda: now[0], sleep=sleep
    )
    with pytest.raises(WaitTimeout) as info:
        client.wait(TID, timeout=0.5)
    err = info.value
    assert err.task_id == TID and err.last_status == "staged"
    assert TID in str(err) and "staged" in str(err)
    assert isinstance(err, TimeoutError)
    # It looked every 0.05 s until the deadline and slept no further than it.
    assert sum(slept) == pytest.approx(0.5)
    assert slept[0] == 0.0 and all(s <= 0.05 + 1e-9 for s in slept)
    assert len(scripted.requests_to("/fetch")) == len(slept)


def test_wait_deadline_bounds_a_hanging_fetch(scripted, make_client):
    # The answer comes after 3 s; the client's own request timeout (30 s) would wait for it,
    # the 0.6 s wait must not: it gives up before any answer arrives.
    scripted.default("/fetch", Reply(200, processing("5"), delay=3.0))
    client = make_client(scripted, timeout=30)
    with pytest.raises(WaitTimeout) as info:
        client.wait(TID, timeout=0.6)
    assert info.value.task is None and info.value.last_status is None
    assert len(scripted.requests_to("/fetch")) >= 1


def test_wait_honours_retry_after_with_injected_sleep(scripted):
    slept = []
    scripted.queue("/fetch", Reply(429, {}, headers={"Retry-After": "12"}), Reply(200, FINISHED))
    client = LumaClient(KEY, base_url=scripted.url, poll=FixedPolicy(1.0), sleep=slept.append)
    client.wait(TID)
    assert slept[0] == 0.0 and slept[1] >= 12.0


def test_job_wait_async_and_await(scripted, scripted_client):
    scripted.queue("/luma-extend", Reply(200, {"task_id": TID}))
    scripted.queue("/fetch", Reply(200, processing("50")), Reply(200, FINISHED))
    job = scripted_client.extend("p", "x")
    seen = []

    async def main():
        return await job.wait_async(on_progress=seen.append)

    task = asyncio.run(main())
    assert task.is_finished and job.task == task and job.done
    assert [t.status for t in seen] == ["processing", "finished"]
    # A finished job answers at once, without another request.
    count = len(scripted.requests_to("/fetch"))

    async def again():
        return await job

    assert asyncio.run(again()) == task
    assert len(scripted.requests_to("/fetch")) == count


def test_reattached_job_refresh(scripted, scripted_client):
    scripted.queue("/fetch", Reply(200, processing("70")))
    job = scripted_client.job(TID)
    assert job.task is None and job.status == "unknown"
    assert job.refresh().percentage == 70.0 and job.status == "processing"
    assert TID in repr(job)


# -- secrets -----------------------------------------------------------------------------------


def test_key_never_shown(scripted, scripted_client, caplog):
    caplog.set_level(logging.DEBUG)
    assert KEY not in repr(scripted_client) and KEY not in str(scripted_client)
    scripted.queue("/fetch", Reply(401, {}), Reply(500, {}), Reply(drop=True))
    errors = []
    for _ in range(3):
        try:
            scripted_client.fetch(TID)
        except LumaError as error:
            errors.append(error)
    scripted.queue("/luma-extend", Reply(drop=True))
    with pytest.raises(SubmitUncertainError) as info:
        scripted_client.extend("p", "x")
    errors.append(info.value)
    for error in errors:
        assert KEY not in str(error) and KEY not in repr(error)
        assert KEY not in repr(vars(error))
    assert KEY not in caplog.text


def test_extend_many_validates_everything_before_the_first_submit(scripted, scripted_client):
    with pytest.raises(ValidationError, match="prompt"):
        scripted_client.extend_many("p", ["fine", "  "])
    assert scripted.seen == []
    scripted.queue("/luma-extend", Reply(200, {"task_id": "a"}), Reply(500, {}))
    with pytest.raises(ServerError) as info:
        scripted_client.extend_many("p", ["one", "two", "three"], aspect_ratio="9:16")
    assert [j.task_id for j in info.value.jobs] == ["a"]
    assert len(scripted.requests_to("/luma-extend")) == 2
    assert scripted.requests_to("/luma-extend")[0].json["aspect_ratio"] == "9:16"


def test_the_moved_display_methods_say_where_they_went(client, sandbox):
    from luma_nb.contract.models import Task

    job = client.extend(sandbox.demo_parents[0].task_id, "a quiet harbour")
    with pytest.raises(AttributeError, match=r"Job\.show\(\) is now luma_nb\.show\(job\)"):
        job.show()
    with pytest.raises(AttributeError, match=r"Job\.video\(\) is now luma_nb\.video\(job\)"):
        job.video()
    task = Task.from_json({"task_id": "t1", "status": "finished"})
    with pytest.raises(AttributeError, match=r"Task\.video\(\) is now luma_nb\.video\(task\)"):
        task.video()
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        task.nothing  # noqa: B018
    assert not hasattr(job, "nothing") and getattr(task, "nothing", 7) == 7
