"""The class gallery's side of the relay store: what is visible, and a change sequence that
lets a live gallery ask only for what changed."""

from __future__ import annotations

import sqlite3

from luma_nb.relay.sqlite import SQLiteStore
from luma_nb.relay.store import Budgets

FINISHED = {"status": "finished", "video_url": "https://cdn.example/v.mp4", "percentage": 100}


def _class(tmp_path):
    store = SQLiteStore(tmp_path / "class.sqlite")
    ada = store.add_student("ada", "h-ada")
    bo = store.add_student("bo", "h-bo")
    return store, ada, bo


def _task(store, student, task_id, prompt="a fox"):
    body = {"parent_task_id": "p", "prompt": prompt}
    submit = store.reserve(student, "/luma-extend", body, 6.0, Budgets())
    store.forwarded(submit, task_id, "luma-ext")


def test_a_task_enters_the_gallery_when_it_finishes_shared_by_default(tmp_path):
    store, ada, _ = _class(tmp_path)
    _task(store, ada, "t1", prompt="a red fox")
    assert store.gallery() == (0, [])  # running tasks are not in the gallery yet
    running = {"status": "processing", "percentage": 40}
    store.update_task("t1", running, terminal=False, failure=None)
    assert store.gallery()[1] == []
    store.update_task("t1", FINISHED, terminal=True, failure=None)
    latest, items = store.gallery()
    assert latest == 1
    [item] = items
    assert (item.task_id, item.student, item.prompt, item.seq) == ("t1", "ada", "a red fox", 1)
    assert item.visible and item.shared and not item.hidden
    assert item.video_url == FINISHED["video_url"]


def test_a_failed_task_is_in_the_feed_but_never_visible(tmp_path):
    store, ada, _ = _class(tmp_path)
    _task(store, ada, "t1")
    store.update_task("t1", {"status": "failed", "error": "x"}, terminal=True, failure="x")
    [item] = store.gallery()[1]
    assert not item.finished and not item.visible


def test_changes_after_a_sequence_number_bring_additions_and_removals(tmp_path):
    store, ada, bo = _class(tmp_path)
    _task(store, ada, "t1")
    _task(store, bo, "t2")
    store.update_task("t1", FINISHED, terminal=True, failure=None)
    store.update_task("t2", FINISHED, terminal=True, failure=None)
    seen, items = store.gallery()
    assert [i.task_id for i in items] == ["t1", "t2"] and seen == 2
    assert store.gallery(seen) == (2, [])

    assert store.set_hidden("t1", True)  # the teacher hides ada's video
    assert not store.set_shared("t2", ada, False)  # ada cannot unshare bo's video
    assert store.set_shared("t2", bo, False)  # bo unshares his own
    seen2, changes = store.gallery(seen)
    assert seen2 == 4
    assert [(i.task_id, i.visible, i.hidden, i.shared) for i in changes] == [
        ("t1", False, True, True),
        ("t2", False, False, False),
    ]
    assert store.set_hidden("t1", False)
    [back] = store.gallery(seen2)[1]
    assert back.task_id == "t1" and back.visible
    assert not store.set_hidden("nope", True)


def test_a_late_answer_after_the_end_does_not_move_the_sequence(tmp_path):
    store, ada, _ = _class(tmp_path)
    _task(store, ada, "t1")
    store.update_task("t1", FINISHED, terminal=True, failure=None)
    store.update_task("t1", FINISHED, terminal=True, failure=None)
    assert store.gallery()[0] == 1


def test_teacher_published_parents_are_not_students_gallery_items(tmp_path):
    store, _, _ = _class(tmp_path)
    store.publish("parent", FINISHED)
    assert store.gallery() == (0, [])
    store.publish("later", {"status": "processing"})
    store.update_task("later", FINISHED, terminal=True, failure=None)  # the poller saw it end
    assert store.gallery() == (0, [])  # no news for the class
    assert not store.set_hidden("parent", True)


def test_a_class_file_from_before_the_gallery_gets_its_columns(tmp_path):
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE tasks (task_id TEXT PRIMARY KEY, student_id INTEGER, submit_id INTEGER, "
        "body TEXT NOT NULL, terminal INTEGER NOT NULL DEFAULT 0, "
        "published INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL, updated REAL NOT NULL);"
        "INSERT INTO tasks VALUES ('old', NULL, NULL, '{}', 1, 1, 0, 0);"
    )
    db.commit()
    db.close()
    store = SQLiteStore(path)
    columns = {r[1] for r in store._db.execute("PRAGMA table_info(tasks)")}
    assert {"shared", "hidden", "seq"} <= columns
    store.close()


def test_the_gallery_asks_by_an_index_on_the_change_sequence(tmp_path):
    store, _, _ = _class(tmp_path)
    plan = store._db.execute(
        "EXPLAIN QUERY PLAN SELECT task_id FROM tasks WHERE seq > ? ORDER BY seq", (5,)
    ).fetchall()
    assert any("tasks_seq" in str(tuple(row)) for row in plan), plan
    store.close()
