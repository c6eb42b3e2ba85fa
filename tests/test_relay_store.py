"""The relay store's contract, run on every backend: SQLite (a file) and PostgreSQL (a real
server the suite starts, tests/pg_support.py).

Each test gets ``open_store(clock=...)``: a factory of stores on one fresh database, so a test
can open a second store on it (a second relay process, or a ``luma-nb class`` command).
A method missing or wrong on one backend fails here for that backend.
"""

from __future__ import annotations

import contextlib
import inspect
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from luma_nb.relay.backends import describe, open_store
from luma_nb.relay.postgres import PostgresStore, redact
from luma_nb.relay.sqlite import SQLiteStore
from luma_nb.relay.store import Budgets, Refusal, RelayStore, TaskUpdate
from tests.pg_support import PASSWORD
from tests.store_support import BACKENDS

NO_LIMIT = Budgets()


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
def store(make: Callable[..., RelayStore], clock: Clock) -> RelayStore:
    return make(clock)


def _protocol_methods() -> list[str]:
    return sorted(
        name
        for name, value in vars(RelayStore).items()
        if not name.startswith("_") and inspect.isfunction(value)
    )


@pytest.mark.parametrize("kind", [SQLiteStore, PostgresStore], ids=BACKENDS)
def test_every_backend_has_every_method_of_the_protocol(kind: type) -> None:
    for name in _protocol_methods():
        implementation = getattr(kind, name, None)
        assert callable(implementation), f"{kind.__name__} lacks RelayStore.{name}"
        wanted = list(inspect.signature(getattr(RelayStore, name)).parameters)
        assert list(inspect.signature(implementation).parameters) == wanted, name


def test_open_store_picks_the_backend_by_the_db_setting(where: str, backend: str) -> None:
    store = open_store(where)
    try:
        assert isinstance(store, SQLiteStore if backend == "sqlite" else PostgresStore)
        assert PASSWORD not in repr(store) and PASSWORD not in describe(where)
    finally:
        store.close()


def test_meta_and_students(store: RelayStore) -> None:
    assert store.get_meta("class_name") is None
    store.set_meta("class_name", "Year 9")
    store.set_meta("class_name", "Year 10")
    assert store.get_meta("class_name") == "Year 10"
    ada = store.add_student("ada", "h-ada")
    bob = store.add_student("bob", "h-bob")
    assert ada.id != bob.id
    with pytest.raises(ValueError, match="already in the class"):
        store.add_student("ada", "h-other")
    assert store.student_by_hash("h-bob") == bob
    assert store.student_by_hash("nope") is None
    assert store.revoke("bob") is True
    assert store.revoke("bob") is True  # known, already revoked
    assert store.revoke("carol") is False
    assert store.student_by_hash("h-bob") is None
    assert [(s.name, s.revoked) for s in store.students()] == [("ada", False), ("bob", True)]


def test_enroll_by_name_for_hub_users(make: Callable[..., RelayStore]) -> None:
    store, other = make(), make()  # a second relay process on the same class
    ada = store.add_student("ada", "h-ada")
    carl = store.enroll("carl")
    assert carl is not None and other.enroll("carl") == carl  # once, whoever asks first
    assert store.enroll("ada") == ada  # a token student of that name is that student
    assert store.revoke("carl") is True
    assert store.enroll("carl") is None and other.enroll("carl") is None
    assert [(s.name, s.revoked) for s in store.students()] == [("ada", False), ("carl", True)]


def test_reserve_checks_both_budgets(store: RelayStore) -> None:
    ada, bob = store.add_student("ada", "a"), store.add_student("bob", "b")
    budgets = Budgets(class_budget=18, student_budget=12)
    assert isinstance(store.reserve(ada, "/luma-extend", {"p": 1}, 6, budgets), int)
    assert isinstance(store.reserve(ada, "/luma-extend", {"p": 2}, 6, budgets), int)
    refused = store.reserve(ada, "/luma-extend", {"p": 3}, 6, budgets)
    assert isinstance(refused, Refusal) and "Your budget" in refused.message
    assert isinstance(store.reserve(bob, "/luma-imagine", {"p": 4}, 6, budgets), int)
    refused = store.reserve(bob, "/luma-imagine", {"p": 5}, 6, budgets)
    assert isinstance(refused, Refusal) and "class budget" in refused.message
    assert store.spent() == 18 and store.spent(ada) == 12 and store.spent(bob) == 6
    assert [s.request for s in store.submits()] == [{"p": 1}, {"p": 2}, {"p": 4}]
    assert {s.state for s in store.submits()} == {"reserved"}
    assert [e.kind for e in store.ledger()] == ["reserve"] * 3


def test_forwarded_charges_and_opens_the_task(store: RelayStore) -> None:
    ada = store.add_student("ada", "a")
    sid = store.reserve(ada, "/luma-extend", {"prompt": "x"}, 6, NO_LIMIT)
    assert isinstance(sid, int)
    store.forwarded(sid, "task-1", "luma-ext")
    (record,) = store.submits("forwarded")
    assert (record.id, record.task_id, record.student, record.cost) == (sid, "task-1", "ada", 6)
    assert store.task_body("task-1", ada) == {
        "task_id": "task-1",
        "task_type": "luma-ext",
        "status": "pending",
    }
    assert store.task_count(ada) == 1 and store.open_tasks() == ["task-1"]
    assert [(e.kind, e.task_id, e.student) for e in store.ledger()] == [
        ("reserve", None, "ada"),
        ("charge", "task-1", "ada"),
    ]
    assert store.spent(ada) == 6  # a charge confirms the hold; it is not spent twice
    store.release(sid, "too late")  # a forwarded submit is settled: nothing changes
    assert store.spent(ada) == 6 and store.submits("refused") == []


def test_release_gives_back_once_and_uncertain_keeps(store: RelayStore) -> None:
    ada = store.add_student("ada", "a")
    first = store.reserve(ada, "/luma-extend", {}, 6, NO_LIMIT)
    second = store.reserve(ada, "/luma-extend", {}, 6, NO_LIMIT)
    third = store.reserve(ada, "/luma-extend", {}, 6, NO_LIMIT)
    assert isinstance(first, int) and isinstance(second, int) and isinstance(third, int)
    store.release(first, "upstream said no")
    store.release(first, "again")
    store.uncertain(second, "answer lost")
    assert store.spent(ada) == 12
    assert [(s.id, s.note) for s in store.submits("refused")] == [(first, "upstream said no")]
    assert [s.id for s in store.submits("uncertain")] == [second]
    assert store.recover("the relay stopped") == 1  # only ``third`` was still on its way
    assert {s.id for s in store.submits("uncertain")} == {second, third}
    assert store.recover("again") == 0
    kinds = [(e.kind, e.submit_id, e.reason) for e in store.ledger()]
    assert ("release", first, "upstream said no") in kinds
    assert sum(1 for k in kinds if k[0] == "release") == 1


def test_update_task_refunds_a_failure_once(store: RelayStore, clock: Clock) -> None:
    ada = store.add_student("ada", "a")
    ok, bad = (store.reserve(ada, "/luma-imagine", {}, 6, NO_LIMIT) for _ in range(2))
    assert isinstance(ok, int) and isinstance(bad, int)
    store.forwarded(ok, "t-ok", "luma")
    store.forwarded(bad, "t-bad", "luma")
    store.update_task(
        "t-ok", {"task_id": "t-ok", "status": "processing"}, terminal=False, failure=None
    )
    assert store.task_body("t-ok", ada) == {"task_id": "t-ok", "status": "processing"}
    clock.now += 1
    store.update_task(
        "t-ok",
        {"task_id": "t-ok", "status": "finished", "video_url": "v"},
        terminal=True,
        failure=None,
    )
    store.update_task(
        "t-bad", {"task_id": "t-bad", "status": "failed"}, terminal=True, failure="moderation"
    )
    store.update_task(
        "t-bad", {"task_id": "t-bad", "status": "failed"}, terminal=True, failure="moderation"
    )
    store.update_task(
        "t-ok", {"task_id": "t-ok", "status": "processing"}, terminal=False, failure=None
    )  # a late answer after the end changes nothing
    store.update_task("unknown", {"status": "finished"}, terminal=True, failure=None)
    assert store.task_body("t-ok", ada) == {
        "task_id": "t-ok",
        "status": "finished",
        "video_url": "v",
    }
    assert store.open_tasks() == []
    refunds = [e for e in store.ledger() if e.kind == "refund"]
    assert [(e.task_id, e.credits) for e in refunds] == [("t-bad", 6)]
    assert "moderation" in refunds[0].reason
    assert store.spent(ada) == 6


def test_open_tasks_in_the_order_they_came(store: RelayStore, clock: Clock) -> None:
    ada = store.add_student("ada", "a")
    for name in ("c", "a", "b"):  # same clock reading: the order of arrival decides
        sid = store.reserve(ada, "/luma-imagine", {}, 1, NO_LIMIT)
        assert isinstance(sid, int)
        store.forwarded(sid, name, "luma")
    clock.now += 5
    store.publish("z")
    assert store.open_tasks() == ["c", "a", "b", "z"]


def test_task_body_visibility_own_or_published(store: RelayStore) -> None:
    ada, bob = store.add_student("ada", "a"), store.add_student("bob", "b")
    sid = store.reserve(ada, "/luma-imagine", {}, 6, NO_LIMIT)
    assert isinstance(sid, int)
    store.forwarded(sid, "ada-task", "luma")
    assert store.task_body("ada-task", ada) is not None
    assert store.task_body("ada-task", bob) is None
    assert store.task_body("missing", ada) is None
    store.publish("ada-task")
    assert store.task_body("ada-task", bob) is not None
    store.publish("parent", {"task_id": "parent", "status": "finished"})
    store.publish("parent", {"task_id": "parent", "status": "overwritten?"})  # kept as it was
    assert store.task_body("parent", bob) == {"task_id": "parent", "status": "finished"}
    assert store.task_count(bob) == 0 and store.task_count(ada) == 1


def test_the_ledger_is_append_only_in_the_database(
    store: RelayStore, backend: str, where: str
) -> None:
    ada = store.add_student("ada", "a")
    store.reserve(ada, "/luma-imagine", {}, 6, NO_LIMIT)
    statements = ("UPDATE ledger SET credits = 0", "DELETE FROM ledger")
    if backend == "sqlite":
        with contextlib.closing(sqlite3.connect(where)) as raw:
            for statement in statements:
                with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                    raw.execute(statement)
    else:
        import psycopg

        with psycopg.connect(where, autocommit=True) as raw:
            for statement in (*statements, "TRUNCATE ledger"):
                with pytest.raises(psycopg.Error, match="append-only"):
                    raw.execute(statement)
    assert [(e.kind, e.credits) for e in store.ledger()] == [("reserve", 6)]


def test_a_second_store_on_the_same_database_sees_everything(
    store: RelayStore, make: Callable[..., RelayStore]
) -> None:
    ada = store.add_student("ada", "a")
    sid = store.reserve(ada, "/luma-imagine", {"prompt": "p"}, 6, NO_LIMIT)
    assert isinstance(sid, int)
    store.forwarded(sid, "t", "luma")
    other = make()  # the schema is made again, idempotently
    assert other.student_by_hash("a") == ada
    other.update_task("t", {"task_id": "t", "status": "finished"}, terminal=True, failure=None)
    assert store.task_body("t", ada) == {"task_id": "t", "status": "finished"}  # fresh
    assert other.spent() == store.spent() == 6
    assert [e.id for e in other.ledger()] == [e.id for e in store.ledger()]


def test_leases_one_holder_at_a_time(store: RelayStore, clock: Clock) -> None:
    for task_id in ("t1", "t2", "t3"):
        store.publish(task_id)
    assert store.claim([], "a", 10) == []
    assert store.claim(["unknown"], "a", 10) == []  # only the class's open tasks are leased
    assert store.claim(["t1", "t2", "t1"], "a", 10) == ["t1", "t2"]
    assert store.claim(["t1", "t2", "t3"], "b", 10) == ["t3"]
    clock.now += 6
    assert sorted(store.claim(["t1"], "a", 10)) == ["t1"]  # renewed until now + 10
    clock.now += 5  # t2's lease (not renewed) has expired, t1's has not
    assert sorted(store.claim(["t1", "t2"], "b", 10)) == ["t2"]
    leases = store.leases()
    assert leases["t1"] == ("a", clock.now - 5 + 10) and leases["t2"][0] == "b"
    store.drop_leases("a")
    assert sorted(store.leases()) == ["t2", "t3"]
    assert store.claim(["t1"], "b", 10) == ["t1"]


def test_a_settled_task_gives_up_its_lease(store: RelayStore) -> None:
    ada = store.add_student("ada", "a")
    sid = store.reserve(ada, "/luma-imagine", {}, 6, NO_LIMIT)
    assert isinstance(sid, int)
    store.forwarded(sid, "t", "luma")
    assert store.claim(["t"], "a", 30) == ["t"]
    store.update_task("t", {"status": "finished"}, terminal=True, failure=None)
    assert store.leases() == {}
    assert store.claim(["t"], "b", 30) == []  # a settled task is polled by nobody


def test_a_claim_racing_the_settling_of_its_task_does_not_take_it(pg_dsn: str) -> None:
    """Relay A settles a task (one transaction: the task turns terminal, its lease goes) while
    relay B's claim of it is on its way. B's statement read the task as open; once A commits,
    the lease row it waited on is gone, and B's claim must still not come back with the task
    (else B polls a finished task upstream: two relays for one task). PostgreSQL only: SQLite
    runs one write at a time."""
    import psycopg

    a, b = PostgresStore(pg_dsn), PostgresStore(pg_dsn)
    try:
        ada = a.add_student("ada", "a")
        sid = a.reserve(ada, "/luma-imagine", {}, 6, NO_LIMIT)
        assert isinstance(sid, int)
        a.forwarded(sid, "t", "luma")
        assert a.claim(["t"], "relay-a", 30) == ["t"]
        settling = psycopg.connect(pg_dsn, autocommit=False)
        # What A's update_tasks does for a task seen finished, held open mid-way:
        settling.execute("UPDATE tasks SET terminal = 1 WHERE task_id = 't'")
        settling.execute("DELETE FROM leases WHERE task_id = 't'")
        got: dict[str, Any] = {}
        claimer = threading.Thread(target=lambda: got.update(ids=b.claim(["t"], "relay-b", 30)))
        claimer.start()
        watcher = psycopg.connect(pg_dsn, autocommit=True)
        deadline = time.monotonic() + 30
        while not watcher.execute(  # B's claim waits on the lease row A is deleting
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query LIKE 'INSERT INTO leases%'"
        ).fetchone()[0]:  # type: ignore[index]
            assert time.monotonic() < deadline and claimer.is_alive(), got
            time.sleep(0.01)
        settling.commit()
        claimer.join(30)
        watcher.close()
        settling.close()
        assert got["ids"] == []  # a settled task is polled by nobody
        assert a.leases() == {}
    finally:
        a.close()
        b.close()


def test_many_claims_in_one_call(store: RelayStore) -> None:
    ids = [f"task-{n}" for n in range(450)]  # more than one statement's chunk
    for task_id in ids:
        store.publish(task_id)
    assert store.claim(ids, "a", 30) == ids
    assert store.claim(ids, "b", 30) == []


def test_concurrent_reserves_on_two_stores_never_overspend(
    store: RelayStore, make: Callable[..., RelayStore]
) -> None:
    """Two stores (two connections, as two relay processes) reserve at once: exact budgets.

    Each student submits through both stores at once, so every student's budget and the
    class's are raced for across the two connections.
    """
    students = [store.add_student(f"s{n}", f"h{n}") for n in range(6)]
    budgets = Budgets(class_budget=90, student_budget=18)

    def slow_clock() -> float:
        # The clock is read between the budget check and the insert: a slow one widens
        # the window in which an unserialised second writer would overspend.
        time.sleep(0.005)
        return time.time()

    stores = [make(slow_clock), make(slow_clock)]
    results: list[tuple[int, int | Refusal]] = []
    lock = threading.Lock()
    start = threading.Barrier(12)

    def student(n: int) -> None:
        start.wait()
        for _ in range(6):
            got = stores[n // 6].reserve(students[n % 6], "/luma-imagine", {}, 6, budgets)
            with lock:
                results.append((n % 6, got))

    threads = [threading.Thread(target=student, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    accepted = [(who, r) for who, r in results if isinstance(r, int)]
    assert len(results) == 72
    assert len(accepted) == 15  # 90 credits / 6; the students could take 18
    assert all(sum(1 for who, _ in accepted if who == n) <= 3 for n in range(6))
    assert store.spent() == 90
    assert all(store.spent(s) <= 18 for s in students)
    reserves = [e for e in store.ledger() if e.kind == "reserve"]
    assert sorted(e.submit_id for e in reserves) == sorted(r for _, r in accepted)


def test_redact_hides_the_password_in_every_form() -> None:
    assert redact("postgresql://u:s3cret@h:5/db") == "postgresql://u:***@h:5/db"
    assert redact("postgresql://u@h/db") == "postgresql://u@h/db"
    assert "s3cret" not in redact("postgresql://h/db?password=s3cret&sslmode=require")
    assert describe("class.sqlite") == "class.sqlite"


def test_an_unreachable_database_says_where_without_the_password() -> None:
    dsn = f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/none?connect_timeout=2"
    with pytest.raises(ConnectionError) as caught:
        open_store(dsn)
    assert "127.0.0.1" in str(caught.value) and PASSWORD not in str(caught.value)


FINISHED = {"status": "finished", "video_url": "https://cdn.example/v.mp4", "percentage": 100}


def _task(store: RelayStore, student: Any, task_id: str, prompt: str = "a fox") -> None:
    sid = store.reserve(student, "/luma-extend", {"prompt": prompt}, 6, NO_LIMIT)
    assert isinstance(sid, int)
    store.forwarded(sid, task_id, "luma-ext")


def test_gallery_sequence_visibility_and_choices(store: RelayStore) -> None:
    ada, bob = store.add_student("ada", "a"), store.add_student("bob", "b")
    _task(store, ada, "t1", "a red fox")
    _task(store, bob, "t2", "a blue owl")
    store.publish("parent")  # the class's own parents are not students' videos
    assert store.gallery() == (0, [])
    store.update_task("t1", FINISHED, terminal=True, failure=None)
    latest, items = store.gallery()
    assert latest == 1 and [(i.task_id, i.student, i.prompt, i.seq) for i in items] == [
        ("t1", "ada", "a red fox", 1)
    ]
    assert items[0].visible and items[0].video_url == FINISHED["video_url"]
    assert store.set_shared("t1", bob, False) is False  # not bob's
    assert store.set_shared("t1", ada, False) is True
    assert store.set_hidden("t2", True) is True
    assert store.set_hidden("parent", True) is False and store.set_hidden("nope", True) is False
    latest, items = store.gallery(after=1)
    assert latest == 3 and [(i.task_id, i.seq) for i in items] == [("t1", 2), ("t2", 3)]
    assert not items[0].visible and not items[0].shared
    assert items[1].hidden and not items[1].finished
    assert store.gallery(after=3) == (3, [])


def test_a_parent_may_be_extended_when_own_published_or_in_the_gallery(
    store: RelayStore,
) -> None:
    ada, bob = store.add_student("ada", "a"), store.add_student("bob", "b")
    _task(store, ada, "t1")
    _task(store, ada, "t2")
    store.publish("parent")
    assert store.may_extend("t1", ada) and store.may_extend("parent", bob)
    assert not store.may_extend("t1", bob)  # running: not in the gallery yet
    assert not store.may_extend("nope", ada)
    store.update_task("t1", FINISHED, terminal=True, failure=None)
    store.update_task("t2", FINISHED, terminal=True, failure=None)
    assert store.may_extend("t1", bob)  # shown in the class gallery
    store.set_shared("t1", ada, False)
    store.set_hidden("t2", True)
    assert not store.may_extend("t1", bob) and not store.may_extend("t2", bob)
    assert store.may_extend("t1", ada) and store.may_extend("t2", ada)  # always one's own


def test_update_tasks_in_one_call(store: RelayStore, clock: Clock) -> None:
    ada = store.add_student("ada", "a")
    ids = [f"t{n}" for n in range(120)]  # more than one transaction's chunk
    for task_id in ids:
        _task(store, ada, task_id)
    updates = [TaskUpdate(t, {"task_id": t, "status": "processing"}, False) for t in ids]
    updates[7] = TaskUpdate("t7", {"task_id": "t7", "status": "failed"}, True, "no reason")
    updates.append(TaskUpdate("unknown", {"status": "finished"}, True))
    store.update_tasks(updates)
    assert store.task_body("t119", ada) == {"task_id": "t119", "status": "processing"}
    assert store.open_tasks() == [t for t in ids if t != "t7"]
    assert [e.task_id for e in store.ledger() if e.kind == "refund"] == ["t7"]
    clock.now += 10
    store.update_tasks(updates[:3])  # the same answers again: the tasks are as they were
    assert [store.task_body(t, ada) for t in ids[:3]] == [u.body for u in updates[:3]]
    assert [e.task_id for e in store.ledger() if e.kind == "refund"] == ["t7"]


def test_without_postgresql_the_tests_fail_saying_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests import pg_support

    monkeypatch.setattr(pg_support, "bin_dir", lambda: None)
    with pytest.raises(pg_support.PostgresMissing, match=r"apt-get install -y postgresql"):
        pg_support.PostgresServer()


def test_recover_before_a_time_and_heartbeats(store: RelayStore, clock: Clock) -> None:
    ada = store.add_student("ada", "a")
    old = store.reserve(ada, "/luma-imagine", {}, 6, NO_LIMIT)
    clock.now += 100
    new = store.reserve(ada, "/luma-imagine", {}, 6, NO_LIMIT)
    assert store.recover("too old", before=clock.now - 50) == 1
    assert [s.id for s in store.submits("uncertain")] == [old]
    assert [s.id for s in store.submits("reserved")] == [new]
    store.heartbeat("relay-a", 10)
    store.heartbeat("relay-b", 30)
    assert store.live_relays() == ["relay-a", "relay-b"]
    clock.now += 20
    assert store.live_relays() == ["relay-b"]
    store.drop_leases("relay-b")
    assert store.live_relays() == []
