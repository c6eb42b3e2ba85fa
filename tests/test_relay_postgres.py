"""Two relay processes (``luma-nb class serve``) sharing one class in one real PostgreSQL.

The sandbox runs in this process, so its request log shows every upstream request, with the
header that names the relay whose poller sent it. The relays are child processes on their own
ports; the database is a real PostgreSQL server the suite starts (tests/pg_support.py). The
last test shows the same leases at work for two relays on one SQLite file.
"""

from __future__ import annotations

import csv
import io
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from luma_nb import cli
from luma_nb.relay.postgres import PostgresStore
from luma_nb.sandbox import Sandbox
from tests.pg_support import PASSWORD
from tests.relay_procs import RelayProcess, polls_by_task, runs

#: How often the relays' pollers look (the sandbox is fast too).
POLL = "0.05"


def _tokens(capsys: pytest.CaptureFixture[str], dsn: str, count: int) -> list[str]:
    """``luma-nb class tokens --db postgresql://...``: the tokens, from its CSV."""
    code = cli.main(["class", "tokens", "--count", str(count), "--db", dsn, "--name", "Lab"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert PASSWORD not in out + err
    return [row["token"] for row in csv.DictReader(io.StringIO(out))]


@pytest.fixture
def relays(make_sandbox: Any, pg_dsn: str) -> Iterator[tuple[Sandbox, str, Any]]:
    """A sandbox (unlimited credits) and a factory of relay processes on one database."""
    sandbox = make_sandbox(credits=None)
    started: list[RelayProcess] = []

    def start(*options: str) -> RelayProcess:
        relay = RelayProcess(sandbox.base_url, sandbox.api_key, pg_dsn, *options)
        started.append(relay)
        return relay

    yield sandbox, pg_dsn, start
    for relay in started:
        relay.stop()
    for relay in started:
        assert PASSWORD not in relay.output(), "a relay printed the database password"


def _imagine(url: str, token: str, prompt: str) -> requests.Response:
    return requests.post(
        url + "/luma-imagine",
        json={"prompt": prompt},
        headers={"Authorization": token},
        timeout=60,
    )


def _wait_finished(url: str, token: str, task_id: str, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    with requests.Session() as session:
        session.headers["Authorization"] = token
        while True:
            answer = session.post(url + "/fetch", json={"task_id": task_id}, timeout=30)
            assert answer.status_code == 200, answer.text
            body: dict[str, Any] = answer.json()
            if "video_url" in body or body.get("status") == "failed":
                return body
            assert time.monotonic() < deadline, f"{task_id} not finished: {body}"
            time.sleep(0.05)


def test_budgets_stay_exact_under_concurrent_submits_on_two_relays(
    relays: tuple[Sandbox, str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    sandbox, dsn, start = relays
    tokens = _tokens(capsys, dsn, 20)
    budget = ("--class-budget", "90", "--student-budget", "6", "--poll-interval", POLL)
    a, b = start(*budget), start(*budget)
    # 20 students with room for one submit each, a class with room for 15: every student
    # submits through both relays at the same instant (40 threads, 2 submits each), so each
    # student's budget and the class's are raced for across the two processes.
    answers: list[tuple[int, int, str]] = []  # (student, status, body)
    lock = threading.Lock()
    go = threading.Barrier(40)

    def student(n: int) -> None:
        go.wait()
        for k in range(2):
            url = (a, b)[(n // 20 + k) % 2].url
            answer = _imagine(url, tokens[n % 20], f"student {n % 20}, try {k}")
            with lock:
                answers.append((n % 20, answer.status_code, answer.text))

    threads = [threading.Thread(target=student, args=(n,)) for n in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    assert len(answers) == 80
    accepted = [s for s, status, _ in answers if status == 200]
    refused = [(status, text) for _, status, text in answers if status != 200]
    assert all(accepted.count(n) <= 1 for n in range(20)), sorted(accepted)  # 6 credits each
    assert len(accepted) == 15, refused[:3]  # exactly what the class budget holds
    assert all(status == 402 for status, _ in refused), {s for s, _ in refused}
    assert sandbox.count("/luma-imagine") == 15  # each accepted submit went upstream once

    store = PostgresStore(dsn)
    try:
        ledger = store.ledger()
        reserves = [e for e in ledger if e.kind == "reserve"]
        charges = [e for e in ledger if e.kind == "charge"]
        assert len(reserves) == len(charges) == 15
        assert sum(e.credits for e in reserves) == store.spent() == 90
        assert all(store.spent(s) <= 6 for s in store.students())
        assert {e.submit_id for e in reserves} == {e.submit_id for e in charges}
    finally:
        store.close()
    # The other class commands read the same database.
    assert cli.main(["class", "status", "--db", dsn]) == 0
    out, err = capsys.readouterr()
    assert "credits spent: 90" in out and PASSWORD not in out + err


def test_one_relay_polls_each_task_and_students_see_fresh_state_through_either(
    relays: tuple[Sandbox, str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    sandbox, dsn, start = relays
    tokens = _tokens(capsys, dsn, 4)
    a = start("--poll-interval", POLL, "--lease", "3")
    b = start("--poll-interval", POLL, "--lease", "3")
    submitted: list[tuple[str, int]] = []
    for n in range(8):
        via = (a, b)[n % 2]
        answer = _imagine(via.url, tokens[n % 4], f"shared class {n}")
        assert answer.status_code == 200, answer.text
        submitted.append((answer.json()["task_id"], n))
    woke: dict[str, Any] = {}

    def long_poll() -> None:  # a gallery on B, waiting for the first video of the class
        woke["body"] = requests.get(
            b.url + "/class/gallery",
            params={"after": 0, "wait": 30},
            headers={"Authorization": tokens[1]},
            timeout=90,
        ).json()

    waiter = threading.Thread(target=long_poll)
    waiter.start()
    for task_id, n in submitted:
        other = (b, a)[n % 2]  # asked through the relay the student did not submit to
        body = _wait_finished(other.url, tokens[n % 4], task_id)
        assert body["task_id"] == task_id and "video_url" in body

    waiter.join(90)
    assert woke["body"]["videos"], woke  # woken by a change either relay made
    gallery = requests.get(
        a.url + "/class/gallery", headers={"Authorization": tokens[2]}, timeout=30
    ).json()
    assert {v["task_id"] for v in gallery["videos"]} == {t for t, _ in submitted}

    polls = polls_by_task(sandbox.requests)
    holders = {h for task_id, _ in submitted for h, _ in polls.get(task_id, [])}
    pids = {a.proc.pid, b.proc.pid}
    assert {int(h.split("-")[1]) for h in holders} <= pids
    for task_id, _ in submitted:
        assert polls.get(task_id), f"nobody polled {task_id}"
        assert len({h for h, _ in polls[task_id]}) == 1, runs(h for h, _ in polls[task_id])


def test_the_other_relay_takes_over_the_tasks_of_a_relay_that_died(
    relays: tuple[Sandbox, str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    sandbox, dsn, start = relays
    tokens = _tokens(capsys, dsn, 2)
    lease = ("--poll-interval", POLL, "--lease", "1.5")
    a = start(*lease)
    sandbox.pause_renders()  # the tasks stay open until the sandbox goes on
    ids = []
    for n in range(4):
        answer = _imagine(a.url, tokens[n % 2], f"before the crash {n}")
        assert answer.status_code == 200, answer.text
        ids.append(answer.json()["task_id"])
    deadline = time.monotonic() + 30
    while not all(polls_by_task(sandbox.requests).get(t) for t in ids):
        assert time.monotonic() < deadline, "relay A never polled its tasks"
        time.sleep(0.05)
    b = start(*lease)  # adopts A's open tasks from the database, but A holds their leases
    time.sleep(1.0)  # B's beats (every lease / 3) find the tasks while A polls them
    seen = requests.post(
        b.url + "/fetch", json={"task_id": ids[0]}, headers={"Authorization": tokens[0]}, timeout=30
    )
    assert seen.status_code == 200, seen.text
    # B has polled nothing itself, yet tells how fresh the shared state is (A's last look).
    assert float(seen.headers["X-Luma-NB-Polled-At"]) > time.time() - 30
    a.kill()
    killed_at = time.monotonic()
    sandbox.pause_renders(False)
    for n, task_id in enumerate(ids):
        body = _wait_finished(b.url, tokens[n % 2], task_id)
        assert "video_url" in body

    polls = polls_by_task(sandbox.requests)
    a_pid, b_pid = str(a.proc.pid), str(b.proc.pid)
    for task_id in ids:
        order = runs(h.split("-")[1] for h, _ in polls[task_id])
        assert order == [a_pid, b_pid], order  # A, then B, never both in turn
        b_first = min(t for h, t in polls[task_id] if h.split("-")[1] == b_pid)
        assert b_first > killed_at  # B waited for A's lease; it did not poll beside A


def test_relay_with_a_postgresql_url_and_the_class_commands(
    make_sandbox: Any, pg_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from luma_nb.contract.polling import FixedPolicy
    from luma_nb.relay import Relay

    sandbox = make_sandbox()
    tokens = _tokens(capsys, pg_dsn, 2)
    relay = Relay(sandbox.base_url, api_key=sandbox.api_key, db=pg_dsn, poll=FixedPolicy(0.05))
    with relay:
        assert isinstance(relay.store, PostgresStore)
        assert PASSWORD not in repr(relay.store) and relay.class_name == "Lab"
        answer = _imagine(relay.base_url, tokens[0], "a class on PostgreSQL")
        assert answer.status_code == 200, answer.text
        assert "video_url" in _wait_finished(relay.base_url, tokens[0], answer.json()["task_id"])
        names = [s.name for s in relay.store.students()]
        assert cli.main(["class", "revoke", names[1], "--db", pg_dsn]) == 0
        assert _imagine(relay.base_url, tokens[1], "revoked elsewhere").status_code == 401
    out, err = capsys.readouterr()
    assert PASSWORD not in out + err
    assert cli.main(["class", "status", "--db", pg_dsn]) == 0
    out, _ = capsys.readouterr()
    assert "credits spent: 6" in out and "(revoked)" in out


def test_two_relays_on_one_sqlite_file_share_the_polling_too(
    make_sandbox: Any, tmp_path: Any
) -> None:
    """The lease is the store's, written once: two relays on one SQLite file poll apart."""
    from luma_nb.contract.polling import FixedPolicy
    from luma_nb.relay import Relay

    sandbox = make_sandbox(credits=None)
    db = tmp_path / "class.sqlite"
    options: dict[str, Any] = {"api_key": sandbox.api_key, "poll": FixedPolicy(0.05), "lease": 3}
    with (
        Relay(sandbox.base_url, db=db, **options) as a,
        Relay(sandbox.base_url, db=db, **options) as b,
    ):
        (token,) = a.add_students(1)
        ids = []
        for n in range(6):
            answer = _imagine((a, b)[n % 2].base_url, token.token, f"on one file {n}")
            assert answer.status_code == 200, answer.text
            ids.append(answer.json()["task_id"])
        for n, task_id in enumerate(ids):
            _wait_finished((b, a)[n % 2].base_url, token.token, task_id)
        holders = {a.poller.holder, b.poller.holder}
    polls = polls_by_task(sandbox.requests)
    for task_id in ids:
        assert polls.get(task_id), task_id
        assert len({h for h, _ in polls[task_id]}) == 1 and polls[task_id][0][0] in holders


def test_a_relay_starting_beside_a_live_one_leaves_its_submits_on_their_way(
    make_sandbox: Any, pg_dsn: str
) -> None:
    from luma_nb.relay import Relay
    from luma_nb.relay.store import Budgets

    sandbox = make_sandbox()
    with Relay(sandbox.base_url, api_key=sandbox.api_key, db=pg_dsn) as a:
        a.add_students(1)
        student = a.store.students()[0]
        # A submit of A's, between holding its credits and hearing from the upstream.
        on_its_way = a.store.reserve(student, "/luma-imagine", {"prompt": "x"}, 6, Budgets())
        with Relay(sandbox.base_url, api_key=sandbox.api_key, db=pg_dsn) as b:
            assert [s.id for s in b.store.submits("reserved")] == [on_its_way]
            a.store.release(on_its_way, "the upstream said no")  # A settles it: released
            assert b.store.spent() == 0
    # Alone again (both stopped cleanly), a restart recovers what was left at once.
    store = PostgresStore(pg_dsn)
    try:
        left = store.reserve(student, "/luma-imagine", {"prompt": "y"}, 6, Budgets())
    finally:
        store.close()
    with Relay(sandbox.base_url, api_key=sandbox.api_key, db=pg_dsn) as c:
        assert [s.id for s in c.uncertain()] == [left]


@pytest.mark.parametrize("class_budget", [None, 60.0])
def test_reservations_raced_from_two_stores_stay_exact(pg_dsn: str, class_budget: Any) -> None:
    """Two stores (two relays' connections) and many threads reserve at once: with only
    students' budgets each student's reservations wait for each other alone; with a class
    budget every reservation of the class does. Either way nothing is overspent."""
    from luma_nb.relay.store import Budgets

    stores = [PostgresStore(pg_dsn), PostgresStore(pg_dsn)]
    try:
        students = [stores[0].add_student(f"s{n}", f"h{n}") for n in range(4)]
        budgets = Budgets(class_budget=class_budget, student_budget=30.0)
        accepted: list[int] = []
        refused: list[str] = []
        lock = threading.Lock()
        go = threading.Barrier(16)

        def race(n: int) -> None:
            go.wait()
            for k in range(4):  # 16 threads x 4 = 64 submits of 6 credits, 16 per student
                student = students[(n + k) % 4]
                got = stores[n % 2].reserve(student, "/luma-imagine", {"prompt": "p"}, 6.0, budgets)
                with lock:
                    (accepted if isinstance(got, int) else refused).append(
                        student.id if isinstance(got, int) else got.message
                    )

        threads = [threading.Thread(target=race, args=(n,)) for n in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        per_student = [accepted.count(s.id) for s in students]
        if class_budget is None:
            assert per_student == [5, 5, 5, 5]  # 30 credits each: exactly 5 submits
            assert all(m.startswith("Your budget is used up") for m in refused)
        else:
            assert len(accepted) == 10 and max(per_student) <= 5  # the class holds 10
            assert any(m.startswith("The class budget is used up") for m in refused)
        assert len(refused) == 64 - len(accepted)
        assert stores[1].spent() == 6.0 * len(accepted)
        assert [stores[1].spent(s) for s in students] == [6.0 * c for c in per_student]
    finally:
        for store in stores:
            store.close()
