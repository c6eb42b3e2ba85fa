"""What DefaultPolicy learns (step size, stalls near 100 %, queue times, durations) and batching.

Everything is simulated: observations at made-up times, no sleeping, no HTTP (except the
journal test, which reads a real SQLite journal).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from luma_nb import LumaClient
from luma_nb.client.batching import pick, requests_for, when
from luma_nb.client.journal import Journal
from luma_nb.contract._schedule import step_size
from luma_nb.contract.models import Task
from luma_nb.contract.polling import DefaultPolicy, DurationPrior, FixedPolicy, PollPolicy
from luma_nb.contract.priors import Samples

State = tuple[str, float | None]


def steady(**kw: object) -> DefaultPolicy:
    return DefaultPolicy(jitter=0.0, **kw)  # type: ignore[arg-type]


def play(policy: PollPolicy, at: Callable[[float], State], end: float) -> list[tuple[float, float]]:
    """Looks at one job until it is seen finished: [(time, delay given)]."""
    schedule = policy.schedule(0.0)
    now, looks = schedule.first_delay(), []
    while True:
        status, pct = at(now)
        delay = schedule.observe(now, status, pct)
        looks.append((now, delay))
        if status == "finished":
            return looks
        assert len(looks) < 10_000 and now < end + 600
        now += max(1e-3, delay)


def steps(period: float, queued: float = 5.0) -> tuple[Callable[[float], State], float]:
    """0 -> 40 -> 80 -> finished, one step every ``period`` seconds after ``queued``."""

    def at(t: float) -> State:
        if t < queued:
            return "pending", None
        k = int((t - queued) // period)
        return ("finished", None) if k >= 3 else ("processing", 40.0 * k)

    return at, queued + 3 * period


def stall(hang: float, processing: float = 100.0) -> tuple[Callable[[float], State], float]:
    """Queued 5 s, 1 % per second to 99 %, then ``hang`` seconds at 99 %."""

    def at(t: float) -> State:
        if t < 5.0:
            return "pending", None
        x = t - 5.0
        if x >= processing + hang:
            return "finished", None
        return "processing", min(99.0, float(math.floor(100 * x / processing)))

    return at, 5.0 + processing + hang


def blind(total: float) -> tuple[Callable[[float], State], float]:
    def at(t: float) -> State:
        return ("finished", None) if t >= total else ("processing", None)

    return at, total


def test_step_size_is_the_common_divisor_of_the_values_seen() -> None:
    assert step_size([0.0]) == 0.0
    assert step_size([0.0, 40.0, 80.0]) == 40.0
    assert step_size([0.0, 10.0, 30.0, 60.0]) == 10.0
    assert step_size([0.0, 37.0, 50.0]) == 1.0
    assert step_size([10.5, 20.0]) == 1.0


def test_after_0_40_80_the_next_change_is_the_end() -> None:
    policy = steady()
    at, end = steps(60.0)
    looks = play(policy, at, end)
    schedule = policy.schedule(0.0)
    t = 0.0
    for t, pct in ((5.0, 0.0), (7.0, 0.0), (40.0, 0.0), (64.0, 0.0), (66.0, 40.0)):
        schedule.observe(t, "processing", pct)
    for t in (90.0, 110.0, 124.0, 126.0):
        schedule.observe(t, "processing", 40.0 if t < 125 else 80.0)
    assert schedule.step == 40.0
    low, high = schedule.window or (0.0, 0.0)
    # The end is one step (about 60 s) after 80 % appeared, not 20/40 of one, nor later.
    assert 125.0 + 20.0 <= low < 125.0 + 60.0 < high <= 125.0 + 90.0
    # The first such job costs fewer looks than fixed 3 s and is found quickly...
    assert len(looks) < end / 3.0
    assert looks[-1][0] - end <= policy.dense
    assert policy.memory.step == 40.0
    # ... and once a few have shown how the last step ends, far fewer.
    for _ in range(3):
        second = play(policy, at, end)
    assert len(second) < 0.5 * end / 3.0
    assert second[-1][0] - end <= policy.dense


def test_the_learned_step_tail_narrows_the_end_window() -> None:
    policy = steady()
    first = play(policy, *steps(60.0))
    for _ in range(4):
        play(policy, *steps(60.0))
    later = play(policy, *steps(60.0))
    assert len(policy.memory.step_tail) >= 5
    assert len(later) < len(first)
    assert later[-1][0] - steps(60.0)[1] <= policy.dense


def test_a_stall_near_100_is_learned_and_looked_through_sparsely() -> None:
    policy = steady()
    at, end = stall(60.0)
    first = play(policy, at, end)
    for _ in range(4):
        play(policy, at, end)
    later = play(policy, at, end)
    in_stall = [t for t, _ in later if end - 60.0 <= t < end]
    assert len(policy.memory.top_excess) >= 5
    assert len(in_stall) < len([t for t, _ in first if end - 60.0 <= t < end])
    assert len(in_stall) < 60.0 / 3.0 / 2
    assert later[-1][0] - end <= policy.dense  # still found at once


def test_queue_time_is_learned() -> None:
    policy = steady()
    for _ in range(4):
        play(policy, *stall(0.0, processing=60.0))
    assert len(policy.memory.queue) == 4

    def long_queue(t: float) -> State:
        if t < 200.0:
            return "pending", None
        return ("processing", (t - 200.0) * 2) if t < 250.0 else ("finished", None)

    learned = steady()
    for _ in range(4):
        play(learned, long_queue, 250.0)
    assert min(learned.memory.queue.values()) > 190.0
    cold = steady().schedule(0.0)
    warm = learned.schedule(0.0)
    # Every earlier job waited 200 s: the second look of a new one skips well ahead.
    assert warm.observe(1.5, "pending", None) > cold.observe(1.5, "pending", None)


def test_the_duration_prior_is_used_without_a_percentage() -> None:
    prior = DurationPrior()
    assert prior.quantile(0.0) == 60.0 and prior.quantile(1.0) == 300.0
    assert prior.quantile(0.5, above=250.0) is not None
    assert prior.quantile(0.5, above=301.0) is None
    # Jobs of this session took 20 s: a new blind job is looked at sooner than 1-5 min says.
    session = steady()
    for _ in range(6):
        play(session, *blind(20.0))
    assert session.prior.seen == 6
    documented = steady().schedule(0.0).observe(5.0, "processing", None)
    learned = session.schedule(0.0).observe(5.0, "processing", None)
    assert learned < documented
    lag = play(session, *blind(21.0))[-1][0] - 21.0
    assert lag <= session.blind


def test_blind_looks_beat_fixed_5_s_with_the_prior() -> None:
    policy = steady()
    ours = fixed = 0
    for total in range(60, 301, 20):
        looks = play(policy, *blind(float(total)))
        assert looks[-1][0] - total <= policy.blind + 1e-9
        ours += len(looks)
        fixed += len(play(FixedPolicy(5.0), *blind(float(total))))
    assert ours < fixed


def test_learning_can_be_turned_off_and_is_deterministic_under_a_seed() -> None:
    off = steady(learn=False)
    play(off, *stall(60.0))
    assert len(off.memory.top_excess) == 0 and off.prior.seen == 0
    runs = []
    for _ in range(2):
        policy = DefaultPolicy(seed=42)
        runs.append([play(policy, *stall(hang)) for hang in (0.0, 30.0, 60.0, 60.0)])
    assert runs[0] == runs[1]


def test_samples_quantiles() -> None:
    samples = Samples(limit=3)
    for value in (5.0, 1.0, 3.0, 100.0):
        samples.add(value)
    assert samples.values() == [1.0, 3.0, 100.0]  # the oldest went
    assert samples.quantile(0.0) == 1.0 and samples.quantile(1.0) == 100.0
    assert samples.quantile(0.5, above=2.0) == 3.0
    assert Samples().quantile(0.5) is None


def test_the_journal_feeds_the_prior_once(tmp_path) -> None:
    journal = Journal(tmp_path / "journal.sqlite3", service="https://example.invalid")
    for n in range(3):
        entry = journal.intent("/luma-imagine", {"prompt": f"clip {n}"})
        journal.submitted(entry, f"t-{n}")
        journal.observe(Task(f"t-{n}", status="finished", video_url="https://x.invalid/a.mp4"))
    open_entry = journal.intent("/luma-imagine", {"prompt": "still running"})
    journal.submitted(open_entry, "t-open")
    assert len(journal.durations("https://example.invalid")) == 3
    assert journal.durations("sandbox") == []
    policy = DefaultPolicy()
    client = LumaClient("k", base_url="https://example.invalid", journal=journal.path, poll=policy)
    assert policy.prior.seen == 0  # building a client does no hidden work
    assert client.journal is not None  # first use: the journal opens and teaches the policy
    assert policy.prior.seen == 3
    again = LumaClient("k", base_url="https://example.invalid", journal=journal.path, poll=policy)
    assert again.journal is not None
    assert policy.prior.seen == 3  # the same journal is not counted twice
    client.close()
    again.close()


# -- batching -------------------------------------------------------------------------------


def test_pick_fills_the_needed_chunks_with_the_soonest_riders() -> None:
    jobs = [("due", 10.0, 5.0), ("soon", 12.0, 5.0), ("later", 30.0, 25.0), ("far", 99.0, 5.0)]
    assert pick(9.0, jobs) == []
    assert pick(10.0, jobs) == ["due", "soon", "later"]  # "far" is due beyond its own delay
    assert pick(10.0, jobs, ride=0.0, window=2.0) == ["due", "soon"]
    many = [(n, 10.0, 5.0) for n in range(21)] + [("rider", 11.0, 5.0)]
    picked = pick(10.0, many)
    assert len(picked) == 22 and requests_for(len(picked)) == 2  # riders fill, never add
    full = [(n, 10.0, 5.0) for n in range(20)] + [("rider", 11.0, 5.0)]
    assert "rider" not in pick(10.0, full)


def test_twenty_jobs_at_once_share_their_requests() -> None:
    """The watcher's rule on simulated jobs: the 20 share their requests."""

    def requests(count: int, spread: float) -> tuple[int, int]:
        policy = DefaultPolicy(seed=5)
        jobs = [stall(0.0, processing=60.0 + spread * n) for n in range(count)]
        schedules = [policy.schedule(0.0) for _ in jobs]
        due = {k: s.first_delay() for k, s in enumerate(schedules)}
        delay = dict.fromkeys(due, 0.0)
        sent = looks = 0
        while due:
            now = when([(k, due[k], delay[k]) for k in due]) or 0.0
            keys = pick(now, [(k, due[k], delay[k]) for k in due])
            sent += requests_for(len(keys))
            for k in keys:
                looks += 1
                status, pct = jobs[k][0](now)
                delay[k] = schedules[k].observe(now, status, pct)
                due[k] = now + delay[k]
                if status == "finished":
                    assert now - jobs[k][1] <= policy.dense * 1.2 + 1.0  # + the slack
                    del due[k], delay[k]
        return sent, looks

    one, _ = requests(1, spread=0.0)
    # Jobs alike (one parent, one prompt length: durations within a few %): as one job.
    alike, looks = requests(20, spread=0.3)
    assert alike <= 1.5 * one
    assert alike < looks / 10  # without fetch-many, every look would be a request
    # Durations spread over minutes: each end needs a look of its own, the rest is shared.
    apart, looks = requests(20, spread=9.0)
    assert apart < looks / 4


def test_a_real_wait_teaches_the_clients_policy(sandbox) -> None:
    policy = DefaultPolicy(seed=3)
    client = LumaClient(sandbox.api_key, base_url=sandbox.base_url, journal=None, poll=policy)
    first, second = client.imagine("one"), client.imagine("two")
    first.wait(timeout=120)
    second.watch(timeout=120).wait(130)  # the watcher thread's waits teach it too
    assert policy.memory.finished == 2
    assert policy.prior.seen == 2
    # Seconds-long sandbox jobs: the session's durations now outweigh "1-5 minutes".
    assert (policy.prior.quantile(0.5) or 0.0) < 60.0
    client.close()
