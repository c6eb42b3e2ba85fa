"""The teacher's controls over a real relay in front of a real sandbox: pause, budgets kept in
the store, approve mode (a real LumaClient job waits, then runs or fails), and uncertain
submits resolved either way. The dashboard's actions are driven over HTTP as its page does."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from luma_nb import LumaClient
from luma_nb.contract.errors import APIError, BadRequestError, TaskFailedError
from luma_nb.relay.teacher import APPROVAL_NOTE
from luma_nb.sandbox import Sandbox
from tests.relay_support import Classroom, TeacherSession

PROMPT = "a red kite over the dunes"


@pytest.fixture
def room(sandbox: Sandbox, tmp_path) -> Iterator[Classroom]:
    classroom = Classroom(sandbox, tmp_path, publish=[sandbox.demo_parents[0].task_id])
    yield classroom
    classroom.close()


@pytest.fixture
def teacher(room: Classroom) -> TeacherSession:
    return TeacherSession(room)


def _held(teacher: TeacherSession, count: int = 1, timeout: float = 20.0) -> list[dict[str, Any]]:
    """The held submits, once there are ``count`` of them."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        held: list[dict[str, Any]] = teacher.live()["state"]["held"]
        if len(held) >= count or time.monotonic() > deadline:
            return held
        time.sleep(0.05)


def test_a_paused_class_refuses_submits_before_reserving_and_fetches_keep_working(room, teacher):
    client = room.client(0)
    done = client.imagine("before the pause").wait(timeout=30)
    assert teacher.act("pause", paused="1")["ok"]
    with pytest.raises(APIError) as caught:
        client.imagine("during the pause")
    assert caught.value.status_code == 403
    assert "teacher paused submits for the whole class" in str(caught.value)
    assert client.fetch(done.task_id).is_finished  # fetches keep working
    assert [e.kind for e in room.relay.ledger()] == ["reserve", "charge"]  # nothing reserved
    assert room.upstream_submits() == 1
    assert teacher.act("pause", paused="0")["ok"]
    assert client.imagine("after the pause").wait(timeout=30).is_finished


def test_pausing_one_student_leaves_the_others_submitting(room, teacher):
    assert teacher.act("pause", name="student-02", paused="1")["ok"]
    with pytest.raises(APIError) as caught:
        room.client(1).imagine("mine is paused")
    assert caught.value.status_code == 403
    assert "teacher paused your submits" in str(caught.value)
    assert room.client(0).imagine("mine is not").wait(timeout=30).is_finished
    [row] = [s for s in teacher.live()["state"]["students"] if s["name"] == "student-02"]
    assert row["paused"] and "paused your submits" in row["last_error"]
    assert not teacher.act("pause", name="nobody", paused="1")["ok"]
    assert teacher.act("pause", name="student-02", paused="0")["ok"]
    assert room.client(1).imagine("resumed").wait(timeout=30).is_finished


def test_budgets_set_by_the_teacher_are_stored_and_win_over_a_restart(sandbox, tmp_path):
    room = Classroom(sandbox, tmp_path, student_budget=6, class_budget=100)
    try:
        teacher = TeacherSession(room)
        room.client(0).imagine("one").wait(timeout=30)
        with pytest.raises(APIError) as caught:
            room.client(0).imagine("two")
        assert caught.value.status_code == 402
        assert teacher.act("budget", scope="student", value="12")["ok"]
        assert room.client(0).account().credits == 6
        assert room.client(1).account().credits == 12
        assert teacher.act("budget", scope="one", name="student-02", value="30")["ok"]
        assert room.client(1).account().credits == 30
        assert teacher.act("budget", scope="class", value="18")["ok"]
        assert room.client(1).account().credits == 12  # the class's 18 - 6 is the smaller
        assert not teacher.act("budget", scope="class", value="-1")["ok"]
        assert not teacher.act("budget", scope="class", value="lots")["ok"]

        room.restart()  # the relay is started again with student_budget=6, class_budget=100
        assert room.client(0).account().credits == 6
        assert room.client(1).account().credits == 12
        state = teacher.live()["state"]  # the session outlives the restart too
        assert (state["class_budget"], state["student_budget"]) == (18, 12)
        status = subprocess.run(
            [sys.executable, "-m", "luma_nb.cli", "class", "status", "--db", str(room.db)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        assert "class 18 (set on the dashboard), each student 12 (set on the dashboard)" in status
        assert "student-02: 0 (own budget 30)" in status
        assert teacher.act("budget", scope="one", name="student-02", value="")["ok"]
        assert room.client(1).account().credits == 12  # back to the class's rule
    finally:
        room.close()


def test_approve_mode_a_real_job_waits_for_the_teacher_then_runs(room, teacher):
    assert teacher.act("approve-mode", on="1")["ok"]
    client = room.client(0)
    job = client.extend(room.sandbox.demo_parents[0].task_id, PROMPT)
    mine = job.task_id
    waiting = client.fetch(mine)
    assert (waiting.status, waiting.note) == ("pending", APPROVAL_NOTE)
    assert APPROVAL_NOTE in waiting.describe()
    assert room.upstream_submits() == 0
    assert room.client(0).account().credits is None
    results: list[Any] = []
    waiter = threading.Thread(target=lambda: results.append(job.wait(timeout=60)))
    waiter.start()

    [held] = _held(teacher)
    assert (held["student"], held["prompt"], held["task_id"]) == ("student-01", PROMPT, mine)
    outcome = teacher.act("approve", submit_id=str(held["submit_id"]))
    assert outcome["ok"], outcome
    assert not teacher.act("approve", submit_id=str(held["submit_id"]))["ok"]  # once only
    waiter.join(60)
    [task] = results
    assert task.is_finished and task.video_url
    assert task.task_id == mine  # the id the student holds is stable in every body
    assert room.upstream_submits() == 1
    [upstream] = room.sandbox.task_ids[-1:]
    assert upstream != mine
    assert client.fetch_many([mine])[0].task_id == mine

    # Extending the approved video: the relay maps the student's id to the upstream one.
    assert teacher.act("approve-mode", on="0")["ok"]
    child = client.extend(mine, "and then it lands").wait(timeout=60)
    assert child.is_finished
    sent = [r.body for r in room.sandbox.requests if r.path == "/luma-extend"]
    assert sent[-1]["parent_task_id"] == upstream
    kinds = [(e.kind, e.task_id) for e in room.relay.ledger()]
    assert kinds[:2] == [("reserve", None), ("charge", mine)]


def test_approve_mode_a_rejected_prompt_fails_with_the_reason_and_costs_nothing(room, teacher):
    assert teacher.act("approve-mode", on="1")["ok"]
    client = room.client(1)
    job = client.imagine('a "scary" <monster>')
    with pytest.raises(BadRequestError):
        client.extend(job.task_id, "not approved yet")  # the parent waits for approval
    [held] = _held(teacher)
    assert teacher.act("reject", submit_id=str(held["submit_id"]), reason="too  scary")["ok"]
    with pytest.raises(TaskFailedError) as caught:
        job.wait(timeout=30)
    assert caught.value.task.error == "Your teacher did not approve this prompt: too scary"
    assert caught.value.task.task_id == job.task_id
    assert room.relay.store.spent() == 0
    assert [e.kind for e in room.relay.ledger()] == ["reserve", "release"]
    assert room.upstream_submits() == 0
    assert not teacher.act("approve", submit_id=str(held["submit_id"]))["ok"]


def test_held_submits_survive_a_restart_and_are_approved_after_it(room, teacher):
    assert teacher.act("approve-mode", on="1")["ok"]
    job = room.client(0).imagine("after the bell")
    room.restart()
    [held] = _held(teacher)
    assert teacher.act("approve", submit_id=str(held["submit_id"]))["ok"]
    assert room.client(0).fetch(job.task_id).task_id == job.task_id
    assert job.wait(timeout=60).is_finished


def _uncertain(room: Classroom, student: int = 0) -> int:
    """A submit whose upstream answer was lost (what a crash mid-submit leaves)."""
    store = room.relay.store
    who = store.students()[student]
    submit = store.reserve(who, "/luma-imagine", {"prompt": "lost"}, 6, room.relay.budgets)
    assert isinstance(submit, int)
    store.uncertain(submit, "the answer was lost")
    return submit


def test_an_uncertain_submit_resolved_with_its_task_is_charged_and_watched(room, teacher):
    submit = _uncertain(room)
    [shown] = teacher.live()["state"]["uncertain"]
    assert (shown["submit_id"], shown["note"]) == (submit, "the answer was lost")
    # The task the lost submit made, as the teacher finds it at the provider.
    with LumaClient(room.sandbox.api_key, base_url=room.sandbox.base_url, journal=None) as up:
        made = up.imagine("lost").task_id
    assert not teacher.act("resolve", submit_id=str(submit), ran="1", task_id="  ")["ok"]
    outcome = teacher.act("resolve", submit_id=str(submit), ran="1", task_id=made)
    assert outcome["ok"], outcome
    assert not teacher.act("resolve", submit_id=str(submit), ran="0")["ok"]  # settled already
    assert room.client(0).wait(made, timeout=30).is_finished  # the poller watches it
    assert [e.kind for e in room.relay.ledger()] == ["reserve", "charge"]
    assert room.relay.uncertain() == []


def test_an_uncertain_submit_that_never_ran_gives_the_credits_back(room, teacher):
    submit = _uncertain(room, 1)
    assert room.relay.store.spent() == 6
    assert teacher.act("resolve", submit_id=str(submit), ran="0")["ok"]
    assert room.relay.store.spent() == 0
    [reserve, release] = room.relay.ledger()
    assert (reserve.kind, release.kind, release.reason) == (
        "reserve",
        "release",
        "the teacher found it never ran",
    )
    assert teacher.live()["state"]["uncertain"] == []


def test_the_teacher_token_command_shows_it_once_and_stores_its_hash(room):
    made = subprocess.run(
        [sys.executable, "-m", "luma_nb.cli", "class", "teacher-token", "--db", str(room.db)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    token = made.stdout.strip()
    assert token.startswith("lnbt_") and "shown only this once" in made.stderr
    files = [room.db, room.db.with_name(room.db.name + "-wal")]
    stored = b"".join(f.read_bytes() for f in files if f.exists())
    assert token.encode() not in stored  # only its hash is kept
    teacher = TeacherSession(room, token)
    assert teacher.get("/teacher").status_code == 200
    again = subprocess.run(
        [sys.executable, "-m", "luma_nb.cli", "class", "teacher-token", "--db", str(room.db)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    assert again != token
    assert teacher.get("/teacher/live.json").status_code == 403  # the new token ends it


def test_approved_submits_the_upstream_refuses_loses_or_fails_end_for_the_student(room, teacher):
    assert teacher.act("approve-mode", on="1")["ok"]
    client = room.client(0)
    refused, lost, failing = (client.imagine(p) for p in ("refused", "lost", "failing"))
    held = {h["prompt"]: str(h["submit_id"]) for h in _held(teacher, 3)}

    room.sandbox.faults.add(path="/luma-imagine", kind="500")
    outcome = teacher.act("approve", submit_id=held["refused"])
    assert not outcome["ok"] and "not accepted" in outcome["message"]
    with pytest.raises(TaskFailedError):
        refused.wait(timeout=30)

    room.sandbox.faults.add(path="/luma-imagine", kind="drop")
    assert not teacher.act("approve", submit_id=held["lost"])["ok"]
    still = client.fetch(lost.task_id)
    assert still.status == "pending" and "teacher" in (still.note or "")
    [uncertain] = teacher.live()["state"]["uncertain"]
    assert teacher.act("resolve", submit_id=str(uncertain["submit_id"]), ran="0")["ok"]
    with pytest.raises(TaskFailedError):
        lost.wait(timeout=30)

    room.sandbox.faults.next_task(fail="GPU quota exceeded")
    assert teacher.act("approve", submit_id=held["failing"])["ok"]
    with pytest.raises(TaskFailedError) as caught:
        failing.wait(timeout=30)
    assert caught.value.task.task_id == failing.task_id
    assert "GPU quota exceeded" in (caught.value.task.error or "")
    assert room.relay.store.spent() == 0  # released, released, refunded
    assert [e.kind for e in room.relay.ledger()].count("refund") == 1


def test_a_script_waiting_for_approval_hears_the_note_at_once(room, teacher):
    assert teacher.act("approve-mode", on="1")["ok"]
    job = room.client(0).imagine(PROMPT)
    heard: list[Any] = []
    noted = threading.Event()

    def on_progress(task: Any) -> None:
        heard.append(task)
        if task.note == APPROVAL_NOTE:
            noted.set()

    waiter = threading.Thread(target=lambda: job.wait(timeout=60, on_progress=on_progress))
    waiter.start()
    assert noted.wait(20), [t.describe() for t in heard]  # before the teacher does anything
    assert heard[0].status == "pending" and APPROVAL_NOTE in heard[0].describe()
    assert APPROVAL_NOTE in job.task.describe()
    [held] = _held(teacher)
    assert teacher.act("approve", submit_id=str(held["submit_id"]))["ok"]
    waiter.join(60)
    assert heard[-1].is_finished and heard[-1].note is None


def test_after_resume_the_last_error_no_longer_says_paused(room, teacher):
    assert teacher.act("pause", name="student-01", paused="1")["ok"]
    assert teacher.act("pause", paused="1")["ok"]
    for student in (0, 1):
        with pytest.raises(APIError):
            room.client(student).imagine("while paused")
    rows = {s["name"]: s for s in teacher.live()["state"]["students"]}
    assert "paused" in rows["student-01"]["last_error"]
    assert "paused" in rows["student-02"]["last_error"]
    assert teacher.act("pause", paused="0")["ok"]
    rows = {s["name"]: s for s in teacher.live()["state"]["students"]}
    assert rows["student-02"]["last_error"] == ""
    assert teacher.act("pause", name="student-01", paused="0")["ok"]
    rows = {s["name"]: s for s in teacher.live()["state"]["students"]}
    assert rows["student-01"]["last_error"] == ""


def test_an_approval_card_says_what_the_student_asked_for_in_words(room, teacher):
    assert teacher.act("approve-mode", on="1")["ok"]
    room.client(0).extend(room.sandbox.demo_parents[0].task_id, "the sail fills")
    room.client(1).imagine("a new harbour")
    _held(teacher, 2)
    held = teacher.live()["html"]["held"]
    assert "luma-extend" not in held and "luma-imagine" not in held and "#" not in held
    assert "wants to extend a video" in held and "wants a new video" in held


def _status(room: Classroom) -> str:
    """``luma-nb class status`` on the room's class file, as the teacher runs it."""
    return subprocess.run(
        [sys.executable, "-m", "luma_nb.cli", "class", "status", "--db", str(room.db)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout


def test_the_budgets_enforced_are_the_ones_every_view_shows_with_their_origin(sandbox, tmp_path):
    # What `luma-nb class serve --class-budget 600 --student-budget 36` starts.
    room = Classroom(sandbox, tmp_path, class_budget=600, student_budget=36)
    try:
        teacher = TeacherSession(room)
        assert room.client(0).account().credits == 36  # enforced
        assert (
            "budgets: class 600 (from --class-budget), each student 36 (from --student-budget)"
            in _status(room)
        )
        live = teacher.live()
        state, controls = live["state"], live["html"]["controls"]
        assert (state["class_budget"], state["student_budget"]) == (600, 36)
        assert (state["class_budget_from"], state["student_budget_from"]) == (
            "--class-budget",
            "--student-budget",
        )
        assert "Class budget: 600 (from --class-budget)" in controls
        assert "each student: 36 (from --student-budget)" in controls
        assert 'name="value" value="600"' in controls and 'name="value" value="36"' in controls

        assert teacher.act("budget", scope="student", value="30")["ok"]
        assert room.client(0).account().credits == 30
        assert "class 600 (from --class-budget), each student 30 (set on the dashboard)" in (
            _status(room)
        )
        controls = teacher.live()["html"]["controls"]
        assert "each student: 30 (set on the dashboard)" in controls
        assert teacher.act("budget", scope="class", value="")["ok"]  # no limit, by the teacher
        assert room.client(1).account().credits == 30
        assert "class no limit (set on the dashboard)" in _status(room)
    finally:
        room.close()
