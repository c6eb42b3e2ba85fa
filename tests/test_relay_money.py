"""The relay's money and safety: budgets, the rate, concurrent submits that must not overspend,
a lost upstream answer, a failed task's refund, a restart mid-job, one poller for the class."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import pytest

from luma_nb.contract.errors import InsufficientCreditsError, RateLimitError, SubmitUncertainError
from luma_nb.contract.polling import FixedPolicy
from tests.relay_support import Classroom


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def kinds(room: Classroom) -> list[tuple[str, str | None, float]]:
    return [(e.kind, e.student, e.credits) for e in room.relay.ledger()]


def test_the_student_budget_refuses_with_402_before_the_upstream_is_charged(sandbox, tmp_path):
    room = Classroom(sandbox, tmp_path, student_budget=12)
    try:
        client = room.client(0)
        client.imagine("one")
        client.imagine("two")
        assert client.account().credits == 0
        with pytest.raises(InsufficientCreditsError, match="0 credits left"):
            client.imagine("three")
        assert room.upstream_submits() == 2
        assert room.client(1).account().credits == 12  # the neighbour's budget is their own
        assert [k for k, _, _ in kinds(room)] == ["reserve", "charge", "reserve", "charge"]
    finally:
        room.close()


def test_the_class_budget_is_shared(sandbox, tmp_path):
    room = Classroom(
        sandbox, tmp_path, class_budget=12, student_budget=100, costs={"/luma-imagine": 4}
    )
    try:
        room.client(0).imagine("a")
        room.client(1).imagine("b")
        room.client(0).imagine("c")
        assert room.client(1).account().credits == 0
        answer = room.post("/luma-imagine", {"prompt": "d"}, 1)
        assert answer.status_code == 402
        assert "whole class" in answer.json()["errors"][0]["msg"]
        assert room.upstream_submits() == 3
    finally:
        room.close()


def test_fifty_concurrent_submits_against_room_for_ten_forward_exactly_ten(sandbox, tmp_path):
    room = Classroom(sandbox, tmp_path, students=5, class_budget=60)
    try:

        def submit(i: int) -> int:
            return room.extend(i % 5, f"variation {i}").status_code

        with ThreadPoolExecutor(max_workers=25) as pool:
            statuses = list(pool.map(submit, range(50)))
        assert sorted(statuses) == [200] * 10 + [402] * 40
        assert room.upstream_submits() == 10
        assert room.relay.store.spent() == 60
    finally:
        room.close()


def test_the_rate_limit_answers_429_with_retry_after(sandbox, tmp_path):
    clock = Clock()
    room = Classroom(sandbox, tmp_path, rate=2, rate_clock=clock)
    try:
        assert [room.extend(0).status_code for _ in range(2)] == [200, 200]
        refused = room.extend(0)
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "60"
        with pytest.raises(RateLimitError) as caught:
            room.client(0).imagine("again")
        assert caught.value.retry_after == 60
        assert room.extend(1).status_code == 200  # per student
        clock.now += 61
        assert room.extend(0).status_code == 200
        assert room.upstream_submits() == 4
    finally:
        room.close()


def test_a_lost_upstream_answer_is_uncertain_never_resent_and_stays_reserved(sandbox, tmp_path):
    room = Classroom(sandbox, tmp_path, student_budget=12)
    try:
        sandbox.faults.add(path="/luma-extend", kind="drop")
        client = room.client(0)
        with pytest.raises(SubmitUncertainError):
            client.extend(sandbox.demo_parents[0].task_id, "lost in the post")
        assert sandbox.count("/luma-extend") == 1  # forwarded once, never again
        (record,) = room.relay.uncertain()
        assert (record.student, record.state, record.cost) == ("student-01", "uncertain", 6)
        assert record.request["prompt"] == "lost in the post"
        assert client.account().credits == 6  # held, not refunded behind anyone's back
        assert [k for k, _, _ in kinds(room)] == ["reserve"]
    finally:
        room.close()


def test_a_task_that_fails_upstream_gives_its_credits_back(sandbox, tmp_path):
    room = Classroom(sandbox, tmp_path, student_budget=6)
    try:
        sandbox.faults.next_task(fail="GPU quota exceeded")
        client = room.client(0)
        job = client.imagine("doomed")
        with pytest.raises(Exception, match="GPU quota exceeded"):
            job.wait(timeout=30)
        assert client.account().credits == 6
        refund = room.relay.ledger()[-1]
        assert (refund.kind, refund.credits, refund.task_id) == ("refund", 6, job.task_id)
        assert "GPU quota exceeded" in refund.reason
    finally:
        room.close()


def test_an_upstream_refusal_releases_the_reservation(sandbox, tmp_path):
    room = Classroom(sandbox, tmp_path, student_budget=6)
    try:
        sandbox.credits = 0  # the teacher's account is empty
        answer = room.extend(0)
        assert answer.status_code == 402
        assert "class account" in answer.json()["errors"][0]["msg"]
        assert [k for k, _, _ in kinds(room)] == ["reserve", "release"]
        assert room.client(0).account().credits == 6
    finally:
        room.close()


def test_a_restart_mid_job_loses_no_task_and_no_ledger_entry(make_sandbox, tmp_path):
    sandbox = make_sandbox(speed=1.0)  # jobs take minutes: still running across the restart
    room = Classroom(sandbox, tmp_path, student_budget=12)
    try:
        client = room.client(0)
        job = client.imagine("a long shot")
        before = room.relay.ledger()
        room.restart()
        assert room.relay.ledger() == before
        assert room.relay.poller.watching == 1  # picked up again from the store
        sandbox.complete(job.task_id)
        task = job.wait(timeout=30)  # the same token, the same task id, a new relay
        assert task.is_finished
        assert client.account().credits == 6
    finally:
        room.close()


def test_a_submit_caught_by_a_crash_is_uncertain_after_the_restart(sandbox, tmp_path):
    room = Classroom(sandbox, tmp_path, student_budget=12)
    try:
        student = room.relay.store.students()[0]
        # What a crash between holding the credits and hearing from the upstream leaves.
        room.relay.store.reserve(student, "/luma-imagine", {"prompt": "x"}, 6, room.relay.budgets)
        room.restart()
        (record,) = room.relay.uncertain()
        assert "stopped" in (record.note or "")
        assert room.client(0).account().credits == 6
    finally:
        room.close()


def test_one_poller_for_the_class_not_one_per_student(sandbox, tmp_path):
    # The poller's own pacing is made very slow, so the test drives its ticks.
    room = Classroom(sandbox, tmp_path, students=25, poll=FixedPolicy(3600))
    try:
        ids = [room.extend(i, f"idea {i}").json()["task_id"] for i in range(25)]
        sandbox.clear_requests()
        for _ in range(4):  # every student polls four times: answered from the relay's store
            for i, task_id in enumerate(ids):
                assert room.post("/fetch", {"task_id": task_id}, i).json()["status"] == "pending"
        assert sandbox.requests == []
        for task_id in ids:
            sandbox.complete(task_id)
        room.relay.poller.tick()
        assert sandbox.count("/fetch-many") == math.ceil(25 / 20)
        assert sandbox.count("/fetch") == 0
        for i, task_id in enumerate(ids):
            assert room.post("/fetch", {"task_id": task_id}, i).json()["video_url"]
        assert room.relay.poller.watching == 0
    finally:
        room.close()


def test_a_relay_killed_mid_burst_and_restarted_at_once_shows_its_submits_uncertain(
    sandbox, tmp_path
):
    import contextlib
    import subprocess
    import sys
    import threading
    import time

    import requests

    from luma_nb.relay.sqlite import SQLiteStore
    from luma_nb.relay.tokens import issue
    from tests.relay_procs import RelayProcess

    db = str(tmp_path / "class.sqlite")
    store = SQLiteStore(db)
    tokens = [t.token for t in issue(store, 28)]  # a class's burst, as it was reported
    # The upstream takes its time to answer: the submits are on their way when the relay dies.
    sandbox.faults.add(path="/luma-imagine", kind="slow", times=None, seconds=30)
    first = RelayProcess(sandbox.base_url, sandbox.api_key, db)

    def submit(token: str) -> None:
        with contextlib.suppress(requests.RequestException):  # the relay dies under it
            requests.post(
                first.url + "/luma-imagine",
                json={"prompt": "a burst"},
                headers={"Authorization": token},
                timeout=60,
            )

    burst = [threading.Thread(target=submit, args=(t,), daemon=True) for t in tokens]
    for thread in burst:
        thread.start()
    deadline = time.monotonic() + 30
    while len(store.submits("reserved")) < len(tokens):
        assert time.monotonic() < deadline, store.submits()
        time.sleep(0.05)
    first.kill()  # SIGKILL: its heartbeat and leases stay in the class file
    sandbox.faults.clear()
    with RelayProcess(sandbox.base_url, sandbox.api_key, db):  # restarted at once
        assert len(store.submits("uncertain")) == len(tokens)
        status = subprocess.run(
            [sys.executable, "-m", "luma_nb.cli", "class", "status", "--db", db],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        assert f"uncertain submits: {len(tokens)}" in status
        assert store.submits("reserved") == []
    first.stop()
    store.close()


def test_only_a_gone_process_of_this_host_is_a_dead_predecessor():
    import os
    import socket
    import subprocess
    import sys

    from luma_nb.relay.poller import gone, new_holder

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        host = socket.gethostname()
        assert not gone(new_holder())  # this very process
        assert not gone(f"relay-{child.pid}-0a1b2c3d@{host}")  # alive
        child.kill()
        child.wait(10)
        assert gone(f"relay-{child.pid}-0a1b2c3d@{host}")  # killed, on this host
        assert not gone(f"relay-{child.pid}-0a1b2c3d@another-{host}")  # its lease decides
        assert not gone(f"relay-{child.pid}-0a1b2c3d")  # a name from before hosts were in it
        assert not gone(f"relay-{os.getpid()}-zz@{host}")
    finally:
        child.kill()
        child.wait(10)
