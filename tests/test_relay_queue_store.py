"""The class's submit queue in the relay store, on every backend (SQLite and a real
PostgreSQL): admission past the class's running limit, arrival order, places in line in the
fetch bodies, Retry-After, exactly-once taking, cancelling, and one queue for two stores."""

from __future__ import annotations

import threading

import pytest

from luma_nb.relay.store import Budgets

QUEUED = {"task_type": "luma", "status": "pending"}


class Clock:
    """A wall clock moved by hand."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def school(make, clock):
    store = make(clock)
    return store, store.add_student("ada", "h-ada"), store.add_student("bo", "h-bo")


def _submit(store, student, prompt="a fox"):
    submit = store.reserve(student, "/luma-imagine", {"prompt": prompt}, 6.0, Budgets())
    assert isinstance(submit, int)
    return submit


def _admit(store, submit, max_running, name):
    return store.admit(submit, max_running, name, {"task_id": name, **QUEUED})


def test_without_a_limit_or_a_line_every_submit_goes_up_at_once(school):
    store, ada, _ = school
    submit = _submit(store, ada)
    assert _admit(store, submit, None, "q-1") is None
    assert store.submits()[0].state == "reserved"
    assert store.running() == 1


def test_past_the_running_limit_submits_wait_in_line_in_arrival_order(school):
    store, ada, bo = school
    first, second = _submit(store, ada, "one"), _submit(store, bo, "two")
    assert _admit(store, first, 2, "q-1") is None
    store.forwarded(first, "up-1", "luma")
    assert _admit(store, second, 2, "q-2") is None
    store.forwarded(second, "up-2", "luma")
    assert store.running() == 2
    third, fourth = _submit(store, ada, "three"), _submit(store, bo, "four")
    assert _admit(store, third, 2, "q-3") == "q-3"
    assert _admit(store, fourth, 2, "q-4") == "q-4"
    assert [(s.state, s.task_id) for s in store.submits("queued")] == [
        ("queued", "q-3"),
        ("queued", "q-4"),
    ]
    body = store.task_body("q-4", bo)
    assert body is not None and body["status"] == "pending"
    assert body["progress_note"] == "queued at the class relay: 2nd in line"
    assert store.task_body("q-4", ada) is None  # a queued task is its student's only
    assert store.open_tasks() == ["up-1", "up-2"]  # nothing to poll upstream for the queue
    assert store.upstream_of("q-3") is None  # not to be extended before it ran

    assert store.next_queued(2) is None  # no room yet
    store.update_task("up-1", {"task_id": "up-1", "video_url": "https://v"}, terminal=True,
                      failure=None)  # fmt: skip
    taken = store.next_queued(2)
    assert taken is not None and (taken.id, taken.state, taken.task_id) == (
        third,
        "reserved",
        "q-3",
    )
    assert store.next_queued(2) is None  # the taken one is on its way: the limit holds
    assert store.task_body("q-4", bo)["progress_note"] == "queued at the class relay: 1st in line"
    store.forwarded(third, "up-3", "luma")
    assert store.upstream_of("q-3") == "up-3"
    body = store.task_body("q-3", ada)
    assert body is not None and "progress_note" not in body and body["task_id"] == "q-3"
    charge = store.ledger()[-1]
    assert (charge.kind, charge.task_id) == ("charge", "q-3")


def test_behind_a_line_a_new_submit_waits_even_without_a_limit(school):
    store, ada, bo = school
    first = _submit(store, ada)
    assert store.queue(first, "q-1", {"task_id": "q-1", **QUEUED}) == "q-1"  # a 429
    second = _submit(store, bo)
    assert _admit(store, second, None, "q-2") == "q-2"  # behind the first, in order
    assert [s.id for s in store.submits("queued")] == [first, second]


def test_a_429_keeps_the_place_and_the_retry_after_holds_the_whole_line(school, clock):
    store, ada, _ = school
    first, second = _submit(store, ada, "one"), _submit(store, ada, "two")
    assert store.queue(first, "q-1", {"task_id": "q-1", **QUEUED}, clock.now + 5) == "q-1"
    assert _admit(store, second, None, "q-2") == "q-2"
    assert store.next_queued(None) is None  # Retry-After: 5
    clock.now += 6
    taken = store.next_queued(None)
    assert taken is not None and taken.id == first
    # Refused again with 429: back in line, in its own place, under the same id.
    assert store.queue(first, "ignored", {"task_id": "ignored", **QUEUED}, clock.now + 2) == "q-1"
    assert [s.id for s in store.submits("queued")] == [first, second]
    assert store.task_body("q-1", ada)["progress_note"] == "queued at the class relay: 1st in line"
    assert store.queue(first, "x", QUEUED) is None  # not on its way: nothing to put back
    clock.now += 3
    assert store.next_queued(None).id == first


def test_a_held_submit_approved_into_a_full_class_keeps_its_id_in_line(school):
    store, ada, _ = school
    running = _submit(store, ada)
    store.forwarded(running, "up-1", "luma")
    submit = _submit(store, ada)
    store.hold(submit, "mine-1", {"task_id": "mine-1", **QUEUED, "progress_note": "approval"})
    assert store.take_held(submit) is not None
    assert _admit(store, submit, 1, "unused") == "mine-1"
    body = store.task_body("mine-1", ada)
    assert body["progress_note"] == "queued at the class relay: 1st in line"
    assert store.task_body("unused", ada) is None


def test_the_teacher_cancels_a_queued_submit_and_its_credits_go_back(school):
    store, ada, _ = school
    submit = _submit(store, ada)
    store.queue(submit, "q-1", {"task_id": "q-1", **QUEUED})
    assert store.spent(ada) == 6
    assert store.cancel_queued(submit, "Your teacher cancelled it")
    assert not store.cancel_queued(submit, "twice")
    assert store.spent(ada) == 0
    assert store.task_body("q-1", ada) == {
        "task_id": "q-1",
        "task_type": "luma",
        "status": "failed",
        "message": "Your teacher cancelled it",
    }
    assert store.next_queued(None) is None
    assert [e.kind for e in store.ledger()] == ["reserve", "release"]


def test_two_stores_on_one_database_share_one_line_and_take_each_submit_once(make, school):
    store, ada, bo = school
    other = make()  # a second relay process
    submits = [_submit(store, (ada, bo)[n % 2], f"p{n}") for n in range(12)]
    for n, submit in enumerate(submits):
        store.queue(submit, f"q-{n}", {"task_id": f"q-{n}", **QUEUED})
    taken: list[int] = []
    lock = threading.Lock()

    def drain(s) -> None:
        while True:
            record = s.next_queued(None)
            if record is None:
                return
            with lock:
                taken.append(record.id)

    threads = [threading.Thread(target=drain, args=(s,)) for s in (store, other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(taken) == submits  # each one taken once, by one of the two
    assert other.running() == 12
    assert store.next_queued(3) is None  # 12 on their way: past any limit of 3


def test_a_burst_on_two_stores_never_runs_the_class_past_its_limit(make, school):
    store, ada, bo = school
    other = make()  # a second relay process
    admitted: list[int] = []
    lock = threading.Lock()

    def submit(n: int) -> None:
        s = (store, other)[n % 2]
        sid = _submit(s, (ada, bo)[n % 2], f"burst {n}")
        if _admit(s, sid, 3, f"q-{n}") is None:
            with lock:
                admitted.append(sid)

    threads = [threading.Thread(target=submit, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(admitted) <= 3
    while other.next_queued(3) is not None or store.next_queued(3) is not None:
        pass
    assert store.running() == 3  # exactly the limit: the rest wait, in arrival order
    waiting = [s.id for s in store.submits("queued")]
    assert len(waiting) == 17 and waiting == sorted(waiting)
