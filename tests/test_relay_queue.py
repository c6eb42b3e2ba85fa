"""The class's submit queue at the relay, over real HTTP in front of a real sandbox: submits past
``max_running`` or refused upstream with 429 wait at the relay under an id of their own and go
in arrival order as room opens; they survive a restart, the teacher sees and cancels them, two
relays on one PostgreSQL share one line, and a lost answer is never sent again."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from luma_nb.contract.errors import TaskFailedError
from luma_nb.contract.polling import FixedPolicy
from luma_nb.sandbox import Sandbox
from tests.relay_support import POLL, Classroom, TeacherSession


def _until(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.05)


def _imagines(sandbox: Sandbox) -> list[str]:
    """The prompts of the tasks the sandbox made, oldest first."""
    return [sandbox.task(t)["prompt"] for t in sandbox.task_ids]


def _finish_all(room: Classroom, count: int) -> None:
    """Complete the upstream tasks as they come until ``count`` were made and all ended."""

    def step() -> bool:
        made = room.sandbox.task_ids
        for task_id in made:
            room.sandbox.complete(task_id)
        return len(made) == count

    _until(step, f"{count} tasks made upstream and finished", 60)


def _note(room: Classroom, task_id: str, student: int) -> tuple[str, str | None]:
    body = room.post("/fetch", {"task_id": task_id}, student).json()
    return body["status"], body.get("progress_note")


def test_past_max_running_submits_wait_at_the_relay_and_go_in_arrival_order(
    make_sandbox: Any, tmp_path: Any
) -> None:
    sandbox = make_sandbox(speed=1.0)  # jobs run for minutes unless the test completes them
    room = Classroom(sandbox, tmp_path, students=3, max_running=2)
    try:
        answers = [room.post("/luma-imagine", {"prompt": f"idea {n}"}, n % 3) for n in range(5)]
        assert [a.status_code for a in answers] == [200] * 5
        ids = [a.json()["task_id"] for a in answers]
        assert room.upstream_submits() == 2 and _imagines(sandbox) == ["idea 0", "idea 1"]
        assert [_note(room, ids[n], n % 3) for n in (2, 3, 4)] == [
            ("pending", "queued at the class relay: 1st in line"),
            ("pending", "queued at the class relay: 2nd in line"),
            ("pending", "queued at the class relay: 3rd in line"),
        ]
        heard: list[Any] = []
        client = room.client(1)
        waiter = threading.Thread(
            target=lambda: heard.append(client.wait(ids[4], timeout=90, on_progress=heard.append))
        )
        waiter.start()
        _until(lambda: heard, "the waiting script hears its place at once")
        assert heard[0].note == "queued at the class relay: 3rd in line"

        sandbox.complete(sandbox.task_ids[0])  # one ends upstream: the first in line goes
        _until(lambda: room.upstream_submits() == 3, "the first in line forwarded")
        assert _imagines(sandbox) == ["idea 0", "idea 1", "idea 2"]
        assert _note(room, ids[3], 0) == ("pending", "queued at the class relay: 1st in line")
        assert room.relay.store.running() == 2  # never past the class's limit

        _finish_all(room, 5)
        waiter.join(90)
        assert heard[-1].is_finished and heard[-1].task_id == ids[4]  # the same id throughout
        assert "queued at the class relay: 2nd in line" in [t.note for t in heard]
        assert _imagines(sandbox) == [f"idea {n}" for n in range(5)]  # arrival order, once each
        kinds = [e.kind for e in room.relay.ledger()]
        assert kinds.count("reserve") == kinds.count("charge") == 5 and "release" not in kinds
    finally:
        room.close()


def test_a_submit_refused_upstream_with_429_waits_and_is_sent_once_after_retry_after(
    make_sandbox: Any, tmp_path: Any
) -> None:
    sandbox = make_sandbox(speed=1.0, max_running=2)  # the provider's plan: 2 at once
    room = Classroom(sandbox, tmp_path, students=2)
    try:
        client = room.client(0)
        jobs = [client.imagine(f"wave {n}") for n in range(4)]  # the notebook's own client
        assert len({j.task_id for j in jobs}) == 4
        assert len(sandbox.task_ids) == 2
        assert client.fetch(jobs[2].task_id).note == "queued at the class relay: 1st in line"
        assert client.fetch(jobs[3].task_id).note == "queued at the class relay: 2nd in line"
        _finish_all(room, 4)
        for job in jobs:
            assert job.wait(timeout=60).is_finished
        assert sorted(_imagines(sandbox)) == [f"wave {n}" for n in range(4)]  # made once each
        assert _imagines(sandbox)[2] == "wave 2"  # in arrival order
        kinds = [e.kind for e in room.relay.ledger()]
        assert kinds.count("charge") == 4 and "release" not in kinds
        assert room.relay.store.get_meta("queue_retry_at")  # the upstream's Retry-After was kept
    finally:
        room.close()


def test_the_queue_survives_a_restart_and_the_teacher_cancels_one(
    make_sandbox: Any, tmp_path: Any
) -> None:
    sandbox = make_sandbox(speed=1.0)
    room = Classroom(sandbox, tmp_path, students=2, max_running=1, student_budget=18)
    try:
        teacher = TeacherSession(room)
        first = room.client(0).imagine("first")
        second = room.client(1).imagine("second")
        third = room.client(1).imagine("third")
        live = teacher.live()
        queue = live["state"]["queue"]
        assert [(q["position"], q["student"], q["prompt"]) for q in queue] == [
            (1, "student-02", "second"),
            (2, "student-02", "third"),
        ]
        assert [q["task_id"] for q in queue] == [second.task_id, third.task_id]
        html = live["html"]["queue"]
        assert "1 running at the video service (at most 1 at once)" in html
        assert "wants a new video" in html and "Cancel" in html
        assert room.client(1).account().credits == 6  # 18 - two held in the queue

        outcome = teacher.act("cancel", submit_id=str(queue[1]["submit_id"]))
        assert outcome["ok"], outcome
        assert not teacher.act("cancel", submit_id=str(queue[1]["submit_id"]))["ok"]
        with pytest.raises(TaskFailedError) as caught:
            third.wait(timeout=30)
        assert "cancelled" in (caught.value.task.error or "")
        assert room.client(1).account().credits == 12  # its credits are back

        room.restart()  # the line is in the class file
        assert [q["prompt"] for q in teacher.live()["state"]["queue"]] == ["second"]
        assert len(sandbox.task_ids) == 1
        _finish_all(room, 2)
        assert first.wait(timeout=60).is_finished and second.wait(timeout=60).is_finished
        assert _imagines(sandbox) == ["first", "second"]
        assert teacher.live()["state"]["queue"] == []
    finally:
        room.close()


def test_a_lost_answer_from_the_queue_is_uncertain_and_never_sent_again(
    make_sandbox: Any, tmp_path: Any
) -> None:
    sandbox = make_sandbox(speed=1.0)
    room = Classroom(sandbox, tmp_path, students=1, max_running=1)
    try:
        client = room.client(0)
        client.imagine("runs first")
        lost = client.imagine("its answer is lost")
        sandbox.faults.add(path="/luma-imagine", kind="drop")  # made upstream, answer lost
        sandbox.complete(sandbox.task_ids[0])
        _until(lambda: room.relay.uncertain(), "the queued submit is uncertain")
        assert len(sandbox.task_ids) == 2  # it was made upstream once
        posts = sandbox.count("/luma-imagine")
        time.sleep(2 * POLL + 1.0)  # the dispatcher and the poller go on looking
        assert sandbox.count("/luma-imagine") == posts  # never sent again
        task = client.fetch(lost.task_id)
        assert task.status == "pending" and "teacher" in (task.note or "")
        assert room.relay.store.spent() == 12  # its credits stay held for the teacher
    finally:
        room.close()


def test_two_relays_on_one_postgresql_share_one_queue(make_sandbox: Any, pg_dsn: str) -> None:
    from luma_nb.relay import Relay

    sandbox = make_sandbox(speed=1.0)
    options: dict[str, Any] = {
        "api_key": sandbox.api_key,
        "db": pg_dsn,
        "max_running": 1,
        "poll": FixedPolicy(POLL),
    }
    with Relay(sandbox.base_url, **options) as a, Relay(sandbox.base_url, **options) as b:
        [one, two] = a.add_students(2)

        def imagine(relay: Relay, token: str, prompt: str) -> str:
            answer = requests.post(
                relay.base_url + "/luma-imagine",
                json={"prompt": prompt},
                headers={"Authorization": token},
                timeout=30,
            )
            assert answer.status_code == 200, answer.text
            return str(answer.json()["task_id"])

        imagine(a, one.token, "through a")
        waiting = [imagine(b, two.token, "through b"), imagine(a, one.token, "a again")]
        assert len(sandbox.task_ids) == 1  # b counted a's running job: one line, one limit
        assert [s.task_id for s in b.store.submits("queued")] == waiting
        for n in (2, 3):
            sandbox.complete(sandbox.task_ids[-1])
            _until(lambda n=n: len(sandbox.task_ids) == n, f"{n} made upstream")  # type: ignore[misc]
            assert a.store.running() <= 1
        sandbox.complete(sandbox.task_ids[-1])
        assert _imagines(sandbox) == ["through a", "through b", "a again"]
        assert a.queue.forwarded + b.queue.forwarded == 2


def test_an_approved_submit_in_a_full_class_waits_in_the_queue_under_its_id(
    make_sandbox: Any, tmp_path: Any
) -> None:
    import subprocess
    import sys

    from luma_nb.relay.teacher import APPROVAL_NOTE

    sandbox = make_sandbox(speed=1.0)
    room = Classroom(sandbox, tmp_path, students=2, max_running=1)
    try:
        teacher = TeacherSession(room)
        running = room.client(0).imagine("running")
        assert teacher.act("approve-mode", on="1")["ok"]
        client = room.client(1)
        held = client.imagine("held, then approved")
        assert client.fetch(held.task_id).note == APPROVAL_NOTE
        [card] = _until(lambda: teacher.live()["state"]["held"], "a held submit")
        outcome = teacher.act("approve", submit_id=str(card["submit_id"]))
        assert outcome["ok"] and "waits in the class's queue" in outcome["message"], outcome
        assert client.fetch(held.task_id).note == "queued at the class relay: 1st in line"
        status = subprocess.run(
            [sys.executable, "-m", "luma_nb.cli", "class", "status", "--db", str(room.db)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        assert "waiting in the class's queue: 1" in status
        _finish_all(room, 2)
        assert running.wait(timeout=60).is_finished
        assert held.wait(timeout=60).task_id == held.task_id
    finally:
        room.close()


def test_the_serve_command_takes_max_running() -> None:
    import argparse

    from luma_nb.relay.cli import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args(["serve", "--max-running", "10"]).max_running == 10
    assert parser.parse_args(["serve"]).max_running is None
    for bad in ("0", "ten"):
        with pytest.raises(SystemExit):
            parser.parse_args(["serve", "--max-running", bad])
