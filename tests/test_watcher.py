"""The one background watcher, against the real sandbox over HTTP (no mocked requests)."""

from __future__ import annotations

import _thread
import asyncio
import io
import math
import threading

import pytest

from luma_nb import FixedPolicy, LumaClient, LumaError, TaskFailedError, WaitTimeout
from luma_nb.client.batching import SLACK
from luma_nb.client.watcher import WatchCancelled, Watcher, get_watcher
from luma_nb.notebook.showing import show_blocking

from .support import FAST


@pytest.fixture(autouse=True)
def _clean_global_watcher():
    yield
    watcher = get_watcher()
    for watch in watcher.watches:
        watcher.unwatch(watch.job)


def parent_of(sandbox) -> str:
    return sandbox.demo_parents[0].task_id


def fetch_requests(sandbox):
    return [r for r in sandbox.requests if r.path in ("/fetch", "/fetch-many")]


class Clock:
    """A clock the test moves by hand (the watcher's own ``clock`` argument)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("count", [1, 20, 21, 45])
def test_one_tick_fetches_all_due_jobs_in_ceil_n_over_20_calls(sandbox, client, count):
    jobs = client.extend_many(parent_of(sandbox), [f"clip {i}" for i in range(count)])
    clock = Clock()
    watcher = Watcher(autostart=False, clock=clock)
    for job in jobs:
        watcher.watch(job)
    clock.now += FAST.interval * 1.5  # every job is due (FixedPolicy: first look after interval)
    sandbox.clear_requests()
    watcher.tick()
    calls = fetch_requests(sandbox)
    assert len(calls) == math.ceil(count / 20)
    many = [r for r in calls if r.path == "/fetch-many"]
    assert all(len(r.body["task_ids"]) <= 20 for r in many)
    asked = [tid for r in many for tid in r.body["task_ids"]]
    asked += [r.body["task_id"] for r in calls if r.path == "/fetch"]
    assert sorted(asked) == sorted(j.task_id for j in jobs)
    assert watcher.fetch_calls == 1


def test_jobs_due_soon_join_the_batch_and_others_wait(sandbox, client):
    slow = LumaClient(
        sandbox.api_key, base_url=sandbox.base_url, poll=FixedPolicy(30.0), journal=None
    )
    now = [1000.0]
    watcher = Watcher(autostart=False, clock=lambda: now[0], batch_window=1.0)
    a, b = client.extend_many(parent_of(sandbox), ["a", "b"])
    late = slow.extend(parent_of(sandbox), "late")
    step = FAST.interval  # a's first look is due one step after it is watched
    watcher.watch(a)
    now[0] += step * 0.4
    watcher.watch(b)  # due 0.4 steps after a (well within the batch window): joins a's batch
    watcher.watch(late)  # due in 30 s on another client: not fetched
    now[0] += step * 0.8  # a is due, b is due in 0.2 steps
    sandbox.clear_requests()
    watcher.tick()
    calls = fetch_requests(sandbox)
    assert [r.path for r in calls] == ["/fetch-many"]
    assert sorted(calls[0].body["task_ids"]) == sorted([a.task_id, b.task_id])
    slow.close()


def test_a_job_due_later_rides_along_and_falls_into_step(sandbox):
    client = LumaClient(
        sandbox.api_key, base_url=sandbox.base_url, poll=FixedPolicy(30.0), journal=None
    )
    clock = Clock()
    watcher = Watcher(autostart=False, clock=clock)
    a, b = client.extend_many(parent_of(sandbox), ["a", "b"])
    watcher.watch(a)  # first look due at +30 s
    clock.now += 20.0
    wb = watcher.watch(b)  # due at +50 s: 20 s after a, far beyond the batch window
    clock.now += 9.0
    # a is due in 1 s; the thread then waits its slack (1 s) for others to fall due.
    assert watcher.tick() == pytest.approx(2.0)
    clock.now += 2.0
    sandbox.clear_requests()
    watcher.tick()
    calls = fetch_requests(sandbox)
    assert [r.path for r in calls] == ["/fetch-many"]  # one request carries both
    assert sorted(calls[0].body["task_ids"]) == sorted([a.task_id, b.task_id])
    assert wb.due == pytest.approx(clock.now + 30.0)  # b now runs in step with a
    client.close()


def test_unwatch_stops_polling_and_tells_listeners(sandbox, client):
    a, b = client.extend_many(parent_of(sandbox), ["a", "b"])
    clock = Clock()
    watcher = Watcher(autostart=False, clock=clock)
    heard: list[str] = []
    wa = watcher.watch(a, listener=lambda w: heard.append(w.state))
    watcher.watch(b)
    assert watcher.unwatch(a) is wa
    clock.now += FAST.interval * 1.5
    sandbox.clear_requests()
    watcher.tick()
    calls = fetch_requests(sandbox)
    assert [(r.path, r.body) for r in calls] == [("/fetch", {"task_id": b.task_id})]
    assert heard == ["cancelled"]
    assert wa.done and wa.state == "cancelled"
    with pytest.raises(WatchCancelled, match="keeps running at the service"):
        wa.result()
    assert watcher.unwatch(a) is None


def test_background_thread_finishes_many_jobs_and_is_the_only_caller(sandbox, client):
    jobs = client.extend_many(parent_of(sandbox), [f"clip {i}" for i in range(6)])
    threads: set[threading.Thread] = set()
    existing = set(threading.enumerate())  # the shared watcher's thread may be among them
    watcher = Watcher()
    watches = [
        watcher.watch(j, listener=lambda w: threads.add(threading.current_thread())) for j in jobs
    ]
    tasks = [w.wait(30) for w in watches]
    assert all(t.is_finished and t.video_url for t in tasks)
    assert all(j.done for j in jobs)
    # Every listener ran on one thread, new with this watcher: not the caller's, not the
    # shared watcher's.
    assert len(threads) == 1
    (thread,) = threads
    assert thread.name == "luma-nb-watcher" and thread.daemon
    assert thread not in existing and thread is not threading.current_thread()
    assert watcher.watches == []
    # The caller's waits polled nothing: every fetch was one of the watcher's calls.
    fetches = fetch_requests(sandbox)
    assert len(fetches) == watcher.fetch_calls


def test_transient_error_backs_off_and_goes_on(sandbox, client):
    a, b = client.extend_many(parent_of(sandbox), ["a", "b"])
    clock = Clock()
    watcher = Watcher(autostart=False, clock=clock)
    wa, wb = watcher.watch(a), watcher.watch(b)
    sandbox.faults.add(path="/fetch-many", kind="500", times=1)
    clock.now += FAST.interval * 1.5
    sandbox.clear_requests()
    backoff = watcher.tick()  # the 500: both watches back off and stay on
    assert not wa.done and not wb.done and wa.state == wb.state == "watching"
    # FixedPolicy.error: its interval again (plus the slack a due job waits for others).
    assert backoff == pytest.approx(FAST.interval * (1 + SLACK))
    assert [r.path for r in fetch_requests(sandbox)] == ["/fetch-many"]
    clock.now += backoff / 2
    watcher.tick()  # not due yet: nothing asked
    assert len(fetch_requests(sandbox)) == 1
    clock.now += backoff
    watcher.tick()  # due again: asked again, and this time answered
    assert [r.path for r in fetch_requests(sandbox)] == ["/fetch-many"] * 2
    assert a.task is not None and b.task is not None
    assert wa.state in ("watching", "finished") and wb.state in ("watching", "finished")


def test_non_transient_error_ends_the_watch_with_that_error(make_sandbox):
    sandbox = make_sandbox(api_key="the-right-key")
    good = LumaClient("the-right-key", base_url=sandbox.base_url, poll=FAST, journal=None)
    bad = LumaClient("a-wrong-key", base_url=sandbox.base_url, poll=FAST, journal=None)
    job = good.extend(parent_of(sandbox), "a")
    watcher = Watcher(autostart=False)
    heard = []
    watch = watcher.watch(bad.job(job.task_id), listener=heard.append)
    watcher.tick()
    assert watch.state == "error" and heard == [watch]
    assert "401" in str(watch.error)
    with pytest.raises(LumaError, match="401"):
        watch.result()


def test_failed_task_ends_with_its_reason(sandbox, client):
    sandbox.faults.next_task(fail="GPU quota exceeded")
    job = client.extend(parent_of(sandbox), "doomed")
    watch = Watcher().watch(job)
    with pytest.raises(TaskFailedError, match="GPU quota exceeded"):
        watch.wait(30)
    assert watch.state == "failed"


def test_unknown_task_ends_after_a_few_misses(sandbox, client):
    a = client.extend(parent_of(sandbox), "a")
    ghost = client.job("00000000-0000-0000-0000-000000000000")
    clock = Clock()
    watcher = Watcher(autostart=False, clock=clock)
    watcher.watch(a)
    wg = watcher.watch(ghost)
    asks = 0
    while not wg.done and asks < 10:
        clock.now += FAST.interval * 1.5
        before = len(fetch_requests(sandbox))
        watcher.tick()
        asks += len(fetch_requests(sandbox)) - before
    assert wg.state == "error" and asks == 3  # three misses in a row, then it ends
    assert "does not know task" in str(wg.error)


def test_deadline_ends_with_wait_timeout(sandbox, client):
    now = [0.0]
    watcher = Watcher(autostart=False, clock=lambda: now[0])
    job = client.extend(parent_of(sandbox), "slow")
    watch = watcher.watch(job, timeout=5)
    now[0] = 6.0
    sandbox.clear_requests()
    watcher.tick()
    assert watch.state == "timeout" and isinstance(watch.error, WaitTimeout)
    assert fetch_requests(sandbox) == []


def test_watching_a_finished_job_ends_at_once_without_requests(sandbox, client):
    job = client.extend(parent_of(sandbox), "a")
    job.wait()
    sandbox.clear_requests()
    watcher = Watcher(autostart=False)
    heard = []
    watch = watcher.watch(job, listener=heard.append)
    assert watch.state == "finished" and not watch.done  # listeners first, then waiters
    watcher.tick()
    assert heard == [watch] and watch.done and fetch_requests(sandbox) == []


def test_listener_errors_are_kept_and_do_not_stop_the_loop(sandbox, client):
    job = client.extend(parent_of(sandbox), "a")

    def broken(watch):
        raise RuntimeError("listener bug")

    watch = Watcher().watch(job, listener=broken)
    assert watch.wait(30).is_finished
    assert isinstance(watch.listener_error, RuntimeError)


def test_watch_is_awaitable_without_polling_again(sandbox, client):
    job = client.extend(parent_of(sandbox), "a")
    watch = job.watch()
    before = len(fetch_requests(sandbox))

    async def main():
        return await watch

    task = asyncio.run(main())
    assert task.is_finished
    # The await added no polling of its own: only the watcher's looks happened.
    assert watch.watcher is get_watcher()
    assert len(fetch_requests(sandbox)) >= before


def test_same_job_watched_twice_shares_one_watch(sandbox, client):
    job = client.extend(parent_of(sandbox), "a")
    watcher = Watcher(autostart=False)
    first, second = watcher.watch(job), watcher.watch(job)
    assert first is second and len(watcher.watches) == 1


def test_keyboard_interrupt_in_job_wait_leaves_no_watcher_entry(sandbox, client):
    job = client.extend(parent_of(sandbox), "a")

    def interrupt(task):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        job.wait(on_progress=interrupt)
    assert get_watcher().watching(job) is None


def test_keyboard_interrupt_in_blocking_show_leaves_no_watcher_entry(sandbox, client):
    sandbox.faults.next_task(stall=True)
    job = client.extend(parent_of(sandbox), "stalls forever")
    printed = threading.Event()
    stop = threading.Event()

    class Out(io.StringIO):
        def write(self, text: str) -> int:
            printed.set()
            return super().write(text)

    out = Out()

    def interrupt_once_shown() -> None:
        # Ctrl-C arrives while the show is blocked: after its first line.
        while not stop.wait(0.01):
            if printed.is_set():
                watched.append(get_watcher().watching(job) is not None)
                _thread.interrupt_main()
                return

    watched: list[bool] = []
    thread = threading.Thread(target=interrupt_once_shown)
    thread.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            show_blocking(job, timeout=60, out=out)
    finally:
        stop.set()
        thread.join(10)
    assert watched == [False]  # a blocking show waits with job.wait: no watcher at all
    assert get_watcher().watching(job) is None
    assert job.task_id in out.getvalue()
