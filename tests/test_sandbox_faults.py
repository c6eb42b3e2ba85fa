"""Fault injection in the sandbox: each HTTP fault kind, task faults, CLI specs."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
import requests

from luma_nb.sandbox import DEMO_PARENTS, Fault, Sandbox, TaskFault
from luma_nb.sandbox.faults import parse_fault_spec
from tests.support import SandboxHTTP

FETCH_DEMO = {"task_id": DEMO_PARENTS[0].task_id}


def test_no_faults_by_default(sandbox: Sandbox) -> None:
    assert sandbox.faults.pending == []


def test_500_times_two_then_normal(sandbox: Sandbox, sandbox_http: SandboxHTTP) -> None:
    sandbox.faults.add(path="/fetch", kind="500", times=2)
    answers = [sandbox_http.post("/fetch", FETCH_DEMO) for _ in range(3)]
    assert [r.status_code for r in answers] == [500, 500, 200]
    assert answers[0].json() == {} and answers[1].json() == {}
    assert sandbox.faults.pending == []


def test_faults_only_hit_their_path_and_method(sandbox: Sandbox, sandbox_http: SandboxHTTP) -> None:
    sandbox.faults.add(path="/fetch", kind="500", method="GET")
    sandbox.faults.add(path="/luma-*", kind="503")
    assert sandbox_http.post("/fetch", FETCH_DEMO).status_code == 200
    assert sandbox_http.get("/account").status_code == 200
    assert sandbox_http.post("/luma-extend", {}).status_code == 503
    assert sandbox_http.post("/luma-extend", {}).status_code == 400


def test_forever_and_clear(sandbox: Sandbox, sandbox_http: SandboxHTTP) -> None:
    sandbox.faults.add(path="*", kind="500", times=None)
    assert all(sandbox_http.get("/account").status_code == 500 for _ in range(5))
    sandbox.faults.clear()
    assert sandbox_http.get("/account").status_code == 200


def test_502_is_an_html_page(sandbox: Sandbox, sandbox_http: SandboxHTTP) -> None:
    sandbox.faults.add(path="/luma-extend", kind="502")
    response = sandbox_http.post("/luma-extend", {"parent_task_id": "x", "prompt": "y"})
    assert response.status_code == 502
    assert response.headers["Content-Type"].startswith("text/html")
    assert "<html>" in response.text
    with pytest.raises(ValueError):
        response.json()
    assert sandbox.task_ids == []


def test_429_and_503_carry_retry_after(sandbox: Sandbox, sandbox_http: SandboxHTTP) -> None:
    sandbox.faults.add(path="/fetch", kind="429", retry_after=3)
    sandbox.faults.add(path="/account", kind="503", retry_after=2)
    limited = sandbox_http.post("/fetch", FETCH_DEMO)
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "3"
    assert limited.json()["errors"][0]["msg"]
    unavailable = sandbox_http.get("/account")
    assert unavailable.status_code == 503 and unavailable.headers["Retry-After"] == "2"


def test_reset_processes_nothing(sandbox: Sandbox, sandbox_http: SandboxHTTP) -> None:
    credits = sandbox.credits
    sandbox.faults.add(path="/luma-imagine", kind="reset")
    with pytest.raises(requests.ConnectionError):
        sandbox_http.post("/luma-imagine", {"prompt": "lost before processing"})
    assert sandbox.task_ids == [] and sandbox.credits == credits
    assert sandbox.count("/luma-imagine") == 1
    assert sandbox_http.imagine()  # the next request works


def test_drop_after_submit_creates_and_charges(sandbox: Sandbox, sandbox_http: SandboxHTTP) -> None:
    credits = sandbox.credits
    sandbox.faults.add(path="/luma-extend", kind="drop")
    with pytest.raises(requests.ConnectionError):
        sandbox_http.post(
            "/luma-extend",
            {"parent_task_id": DEMO_PARENTS[2].task_id, "prompt": "the answer is lost"},
        )
    assert len(sandbox.task_ids) == 1 and sandbox.credits == credits - 6
    view = sandbox.task(sandbox.task_ids[0])
    assert view["prompt"] == "the answer is lost" and view["task_type"] == "luma-ext"
    assert sandbox.requests[-1].status is not None  # processed; only the answer was swallowed


def test_slow_triggers_a_read_timeout(sandbox: Sandbox, sandbox_http: SandboxHTTP) -> None:
    sandbox.faults.add(path="/account", kind="slow", seconds=1.5)
    with pytest.raises(requests.ReadTimeout):
        sandbox_http.get("/account", timeout=0.3)
    assert sandbox_http.get("/account", timeout=5).status_code == 200  # one slow answer only


def test_slow_then_answers(sandbox: Sandbox, sandbox_http: SandboxHTTP) -> None:
    # The slow answer is held while another request, sent after it, is answered first.
    sandbox.faults.add(path="/account", kind="slow", seconds=3.0)
    finished: list[str] = []
    statuses: list[int] = []

    def slow() -> None:
        statuses.append(sandbox_http.get("/account", timeout=30).status_code)
        finished.append("slow")

    thread = threading.Thread(target=slow)
    thread.start()
    while not any(r.path == "/account" for r in sandbox.requests):  # the slow one has arrived
        thread.join(0.01)
    assert sandbox_http.post("/fetch", FETCH_DEMO).status_code == 200
    finished.append("fast")
    thread.join(30)
    assert finished == ["fast", "slow"] and statuses == [200]


def test_malformed_json(sandbox: Sandbox, sandbox_http: SandboxHTTP) -> None:
    sandbox.faults.add(path="/fetch", kind="malformed")
    response = sandbox_http.post("/fetch", FETCH_DEMO)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    with pytest.raises(ValueError):
        response.json()


def test_task_fails_with_the_message(sandbox: Sandbox, sandbox_http: SandboxHTTP) -> None:
    sandbox.faults.next_task(fail="GPU quota exceeded")
    failing = sandbox_http.imagine()
    healthy = sandbox_http.imagine()
    body = sandbox_http.wait(failing)
    assert body == {
        "task_id": failing,
        "task_type": "luma",
        "status": "failed",
        "message": "GPU quota exceeded",
    }
    assert "video_url" in sandbox_http.wait(healthy)


def test_task_stalls_forever(sandbox: Sandbox, sandbox_http: SandboxHTTP) -> None:
    sandbox.faults.next_task(stall=True)
    task_id = sandbox_http.imagine()
    sandbox.advance(1_000)
    first = sandbox_http.fetch(task_id)
    sandbox.advance(100_000)
    second = sandbox_http.fetch(task_id)
    assert first["status"] == second["status"] == "processing"
    assert first["percentage"] == second["percentage"]
    assert int(first["percentage"]) < 100


def test_unknown_status_then_finishes(sandbox: Sandbox, sandbox_http: SandboxHTTP) -> None:
    sandbox.faults.next_task(unknown_status="queued_elsewhere")
    task_id = sandbox_http.imagine()
    statuses: list[str] = []
    final = sandbox_http.wait(task_id, on_body=lambda b: statuses.append(b.get("status", "")))
    assert "queued_elsewhere" in statuses
    assert "video_url" in final


def test_complete_skips_the_wait(make_sandbox: Callable[..., Sandbox]) -> None:
    slow = make_sandbox(speed=1)
    http = SandboxHTTP(slow)
    task_id = http.imagine()
    assert http.fetch(task_id)["status"] == "pending"
    assert slow.complete(task_id)["status"] == "finished"
    assert "video_url" in http.fetch(task_id)
    http.close()


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("/fetch:500:2", Fault(path="/fetch", kind="500", times=2)),
        ("/luma-extend:drop", Fault(path="/luma-extend", kind="drop")),
        ("/fetch:429:3:5", Fault(path="/fetch", kind="429", times=3, retry_after=5)),
        ("*:slow:*:1.5", Fault(path="*", kind="slow", times=None, seconds=1.5)),
        ("/media/*:reset", Fault(path="/media/*", kind="reset")),
        ("task:fail=GPU: out of memory", (TaskFault(fail="GPU: out of memory"), 1)),
        ("task:stall:2", (TaskFault(stall=True), 2)),
        ("task:unknown=queued_elsewhere", (TaskFault(unknown_status="queued_elsewhere"), 1)),
    ],
)
def test_fault_specs(spec: str, expected: object) -> None:
    assert parse_fault_spec(spec) == expected


@pytest.mark.parametrize(
    "spec",
    [
        "/fetch",
        "/fetch:418",
        ":500",
        "/fetch:500:0",
        "/fetch:500:x",
        "task:explode",
        "task:unknown",
    ],
)
def test_bad_fault_specs(spec: str) -> None:
    with pytest.raises(ValueError, match="bad fault spec"):
        parse_fault_spec(spec)


def test_apply_spec_from_the_cli(sandbox: Sandbox, sandbox_http: SandboxHTTP) -> None:
    sandbox.faults.apply_spec("/account:500:1")
    sandbox.faults.apply_spec("task:fail=boom")
    assert sandbox_http.get("/account").status_code == 500
    assert sandbox_http.wait(sandbox_http.imagine())["message"] == "boom"


def test_bad_fault_kind_in_python(sandbox: Sandbox) -> None:
    with pytest.raises(ValueError):
        sandbox.faults.add(path="/fetch", kind="teapot")
    with pytest.raises(ValueError):
        sandbox.faults.next_task()
