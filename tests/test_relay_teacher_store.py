"""The teacher's side of the relay store, on every backend (SQLite and a real PostgreSQL):
each student's controls, submits held for approval under a relay-made id that later maps to
the upstream task, and uncertain submits resolved."""

from __future__ import annotations

import json

import pytest

from luma_nb.relay.sqlite import SQLiteStore
from luma_nb.relay.store import Budgets, Controls

WAITING = {"task_id": "mine-1", "task_type": "luma", "status": "pending", "progress_note": "w"}
FINISHED = {"status": "finished", "video_url": "https://cdn.example/v.mp4", "percentage": 100}


@pytest.fixture
def school(make):
    store = make()
    return store, store.add_student("ada", "h-ada"), store.add_student("bo", "h-bo")


def _submit(store, student, prompt="a fox"):
    submit = store.reserve(student, "/luma-imagine", {"prompt": prompt}, 6.0, Budgets())
    assert isinstance(submit, int)
    return submit


def test_controls_default_then_set_and_kept_on_reopen(make, school):
    store, _, _ = school
    assert store.controls() == {"ada": Controls(), "bo": Controls()}
    assert store.set_paused("bo", True) and store.set_budget("bo", 30.0)
    assert store.set_budget("ada", 12.5) and store.set_budget("ada", None)
    assert not store.set_paused("nobody", True) and not store.set_budget("nobody", 1.0)
    store.close()
    again = make()
    assert again.controls() == {"ada": Controls(), "bo": Controls(paused=True, budget=30.0)}


def test_one_students_controls_match_the_class_table(school):
    store, ada, bo = school
    assert store.controls_of(ada) == store.controls_of(bo) == Controls()
    store.set_paused("bo", True)
    store.set_budget("ada", 18.0)
    assert store.controls_of(ada) == Controls(budget=18.0) == store.controls()["ada"]
    assert store.controls_of(bo) == Controls(paused=True) == store.controls()["bo"]


def test_a_held_submit_maps_its_relay_id_to_the_upstream_task(school):
    store, ada, _ = school
    submit = _submit(store, ada)
    store.hold(submit, "mine-1", WAITING)
    assert [(s.state, s.task_id) for s in store.submits()] == [("held", "mine-1")]
    assert store.task_body("mine-1", ada) == WAITING
    assert store.open_tasks() == []  # nothing to poll upstream yet
    assert store.upstream_of("mine-1") is None
    assert store.upstream_of("someone-elses") == "someone-elses"

    record = store.take_held(submit)
    assert (
        record is not None and record.state == "reserved" and record.request == {"prompt": "a fox"}
    )
    assert store.take_held(submit) is None  # once only
    store.forwarded(submit, "up-1", "luma")
    assert store.upstream_of("mine-1") == "up-1"
    assert store.open_tasks() == ["up-1"]
    assert [(s.state, s.task_id) for s in store.submits()] == [("forwarded", "mine-1")]

    store.update_task("up-1", {"task_id": "up-1", **FINISHED}, terminal=True, failure=None)
    body = store.task_body("mine-1", ada)
    assert body is not None and body["task_id"] == "mine-1" and body["status"] == "finished"
    assert store.open_tasks() == []
    [task] = store.class_tasks()
    assert (task.task_id, task.student, task.status) == ("mine-1", "ada", "finished")
    assert [i.task_id for i in store.gallery()[1] if i.visible] == ["mine-1"]
    charge = store.ledger()[-1]
    assert (charge.kind, charge.task_id, charge.reason) == (
        "charge",
        "mine-1",
        "forwarded upstream as up-1",
    )


def test_a_rejected_held_submit_fails_and_releases_its_credits(school):
    store, ada, _ = school
    submit = _submit(store, ada)
    store.hold(submit, "mine-1", WAITING)
    assert store.spent(ada) == 6
    assert store.reject(submit, "Your teacher did not approve this prompt: no")
    assert not store.reject(submit, "twice")
    assert not store.reject(999, "unknown")
    assert store.spent(ada) == 0
    body = store.task_body("mine-1", ada)
    assert body is not None
    assert (body["status"], body["message"]) == (
        "failed",
        "Your teacher did not approve this prompt: no",
    )
    assert [(e.kind, e.task_id) for e in store.ledger()] == [
        ("reserve", None),
        ("release", "mine-1"),
    ]
    assert store.take_held(submit) is None


def test_a_taken_held_submit_the_upstream_refuses_fails_for_its_student(school):
    store, ada, _ = school
    submit = _submit(store, ada)
    store.hold(submit, "mine-1", WAITING)
    store.take_held(submit)
    store.release(submit, "upstream refused the request: bad prompt")
    body = store.task_body("mine-1", ada)
    assert body is not None and body["status"] == "failed"
    assert store.spent() == 0


def test_an_uncertain_held_submit_keeps_waiting_with_a_note(school):
    store, ada, _ = school
    submit = _submit(store, ada)
    store.hold(submit, "mine-1", WAITING)
    store.take_held(submit)
    store.uncertain(submit, "answer lost")
    body = store.task_body("mine-1", ada)
    assert body is not None and body["status"] == "pending" and "teacher" in body["progress_note"]
    assert store.resolve(submit, "up-9", "the teacher found its task up-9")
    assert store.upstream_of("mine-1") == "up-9" and store.open_tasks() == ["up-9"]


def test_resolving_uncertain_submits_either_way(school):
    store, ada, bo = school
    ran, lost, fine = _submit(store, ada), _submit(store, bo), _submit(store, bo)
    store.uncertain(ran, "lost")
    store.uncertain(lost, "lost")
    store.forwarded(fine, "up-fine", "luma")
    assert not store.resolve(fine, None, "not uncertain")
    assert not store.resolve(12345, "x", "unknown")
    assert store.resolve(ran, "up-ran", "found it")
    assert store.resolve(lost, None, "never ran")
    assert not store.resolve(lost, "up-late", "settled already")
    states = {s.id: (s.state, s.task_id) for s in store.submits()}
    assert states[ran] == ("forwarded", "up-ran") and states[lost] == ("refused", None)
    assert set(store.open_tasks()) == {"up-fine", "up-ran"}
    assert store.task_body("up-ran", ada) is not None
    assert (store.spent(ada), store.spent(bo)) == (6, 6)
    kinds = [(e.kind, e.submit_id) for e in store.ledger()]
    assert kinds[-2:] == [("charge", ran), ("release", lost)]


def test_a_class_file_from_before_the_controls_gets_them(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite"
    SQLiteStore(path).close()
    with sqlite3.connect(path) as db:  # what an older relay left: no controls, no mapping
        db.execute("DROP TABLE controls")
    store = SQLiteStore(path)
    ada = store.add_student("ada", "h")
    assert store.set_paused("ada", True) and store.controls()["ada"].paused
    submit = _submit(store, ada)
    store.hold(submit, "mine-1", WAITING)
    assert json.loads(json.dumps(store.task_body("mine-1", ada))) == WAITING
