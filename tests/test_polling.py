"""Pure polling policies: fed observations at simulated times, never sleeping."""

from __future__ import annotations

import pytest

from luma_nb.contract.polling import DefaultPolicy, FixedPolicy


def steady() -> DefaultPolicy:
    """The default policy without jitter, so delays can be compared exactly."""
    return DefaultPolicy(jitter=0.0)


def test_first_look_is_quick_after_a_submit_and_immediate_on_reattach() -> None:
    policy = steady()
    assert 0 < policy.schedule(0.0, fresh=True).first_delay() <= 2.0
    assert policy.schedule(0.0, fresh=False).first_delay() == 0.0


def test_queue_backoff_grows_and_is_capped() -> None:
    policy = steady()
    schedule = policy.schedule(0.0)
    now, delays = 0.0, []
    for _ in range(20):
        delay = schedule.observe(now, "pending", None)
        delays.append(delay)
        now += delay
    assert delays == sorted(delays)
    assert delays[0] < policy.queue_max
    assert max(delays) == policy.queue_max
    assert delays[-1] == policy.queue_max


@pytest.mark.parametrize("status", ["staged", "starting", "retry", "warming-up"])
def test_other_waiting_statuses_and_unknown_ones_are_treated_as_queued(status: str) -> None:
    policy = steady()
    schedule = policy.schedule(0.0)
    delays = [schedule.observe(float(t), status, None) for t in range(15)]
    assert all(0 < d <= policy.queue_max for d in delays)


def test_processing_without_percentage_waits_for_the_likely_end_then_looks_often() -> None:
    policy = steady()  # the documented prior: 1-5 minutes from submit
    schedule = policy.schedule(0.0)
    early = schedule.observe(10.0, "processing", None)
    assert early > 4 * policy.blind  # "finished 10 s after starting" is unlikely
    assert 10.0 + early < 60.0  # ... but the first likely minute is not skipped
    likely = [schedule.observe(float(t), "processing", None) for t in range(70, 300, 5)]
    assert set(likely) == {policy.blind}


def test_a_reattached_task_without_percentage_looks_at_the_blind_pace() -> None:
    policy = steady()
    schedule = policy.schedule(0.0, fresh=False)  # its age is unknown
    assert schedule.observe(1.0, "processing", None) == policy.blind


def test_terminal_statuses_need_no_further_look() -> None:
    schedule = steady().schedule(0.0)
    assert schedule.observe(1.0, "finished", 100.0) == 0.0
    assert schedule.observe(1.0, "failed", None) == 0.0


def test_retry_after_is_honoured() -> None:
    policy = DefaultPolicy(jitter=0.1, seed=3)
    for _ in range(50):
        delay = policy.schedule(0.0).error(5.0, retry_after=45.0)
        assert 45.0 <= delay <= 45.0 * 1.1
    # A Retry-After shorter than the backoff does not shorten it.
    schedule = steady().schedule(0.0)
    for _ in range(6):
        schedule.error(0.0)
    assert schedule.error(0.0, retry_after=0.1) == steady().error_max


def test_error_backoff_doubles_up_to_its_cap_and_resets_on_success() -> None:
    policy = steady()
    schedule = policy.schedule(0.0)
    delays = [schedule.error(float(n)) for n in range(10)]
    assert delays[:3] == [policy.error_base, policy.error_base * 2, policy.error_base * 4]
    assert max(delays) == policy.error_max
    schedule.observe(20.0, "pending", None)
    assert schedule.error(21.0) == policy.error_base


def simulate_linear(policy: DefaultPolicy, start: float, per_percent: float):
    """Observations of a task queued until ``start``, then 1 % every ``per_percent`` seconds."""
    end = start + 100 * per_percent
    schedule = policy.schedule(0.0, fresh=True)
    now = schedule.first_delay()
    looks = []
    while now < end:
        if now < start:
            delay = schedule.observe(now, "pending", None)
        else:
            pct = float(int((now - start) / per_percent))
            delay = schedule.observe(now, "processing", pct)
        looks.append((now, delay))
        now += delay
    return looks, now - end


def test_looks_are_sparse_early_and_dense_near_the_estimated_end() -> None:
    policy = steady()
    looks, lag = simulate_linear(policy, start=10.0, per_percent=1.5)  # ends at 160 s
    end = 160.0
    early = [d for t, d in looks if 30.0 <= t <= end - 40.0]
    late = [d for t, d in looks if t >= end - 2.0]
    assert early and min(early) > policy.dense
    assert max(early) <= policy.sparse_max
    assert late and max(late) <= policy.dense
    assert 0 <= lag <= policy.dense
    # Far fewer looks than a fixed 3-second interval over the same 160 s.
    assert len(looks) < 0.4 * (end / 3.0)


def test_sparse_looks_never_jump_past_the_estimated_end() -> None:
    policy = steady()
    looks, _ = simulate_linear(policy, start=5.0, per_percent=2.0)
    for now, delay in looks:
        assert now + delay <= 205.0 + policy.dense


def test_a_stall_before_a_jump_does_not_dilute_the_rate() -> None:
    policy = steady()
    schedule = policy.schedule(0.0)
    for t in range(10, 61, 5):
        schedule.observe(float(t), "processing", 0.0)
    # 10 % in the 5 s after the last look at 0 %: about 45 s remain, not several minutes.
    delay = schedule.observe(65.0, "processing", 10.0)
    assert delay <= 45.0 * policy.sparse_fraction + 1e-9


def test_later_than_estimated_widens_slowly_within_its_cap() -> None:
    policy = steady()
    schedule = policy.schedule(0.0)
    schedule.observe(0.0, "processing", 10.0)
    schedule.observe(10.0, "processing", 90.0)  # estimated end: 12.5 s
    delays = [schedule.observe(12.5 + t, "processing", 99.0) for t in range(0, 60, 2)]
    assert all(policy.minimum <= d <= policy.late_max for d in delays)
    assert delays[-1] == policy.late_max


def test_a_percentage_that_goes_back_restarts_the_estimate() -> None:
    policy = steady()
    schedule = policy.schedule(0.0)
    schedule.observe(0.0, "processing", 50.0)
    schedule.observe(10.0, "processing", 60.0)
    delay = schedule.observe(20.0, "processing", 5.0)
    assert policy.minimum <= delay <= policy.queue_max


def test_jitter_is_bounded() -> None:
    policy = DefaultPolicy(jitter=0.1, seed=7)
    base = steady()
    for _ in range(200):
        schedule = policy.schedule(0.0)
        reference = base.schedule(0.0)
        assert 0.9 * base.first <= schedule.first_delay() <= 1.1 * base.first
        for t in range(8):
            got = schedule.observe(float(t), "pending", None)
            want = reference.observe(float(t), "pending", None)
            assert 0.9 * want - 1e-9 <= got <= 1.1 * want + 1e-9


def test_jitter_spreads_delays() -> None:
    policy = DefaultPolicy(seed=1)
    firsts = {policy.schedule(0.0).first_delay() for _ in range(20)}
    assert len(firsts) > 1


def test_fixed_policy_is_constant() -> None:
    policy = FixedPolicy(3.0)
    schedule = policy.schedule(0.0, fresh=True)
    assert schedule.first_delay() == 3.0
    assert policy.schedule(0.0, fresh=False).first_delay() == 0.0
    statuses = [("pending", None), ("processing", 10.0), ("processing", 99.0), ("weird", None)]
    assert {schedule.observe(float(t), s, p) for t, (s, p) in enumerate(statuses)} == {3.0}
    assert schedule.error(1.0) == 3.0
    assert schedule.error(1.0, retry_after=10.0) == 10.0


def simulate_plan(policy: DefaultPolicy, plan: object, speed: float) -> list[float]:
    """The percentages a client with ``policy`` sees of one sandbox job running ``speed``
    times faster than real time (the sandbox's own timetable, computed without sleeping)."""
    from luma_nb.sandbox.lifecycle import progress

    schedule = policy.schedule(0.0, fresh=True)
    now = schedule.first_delay()
    seen = []
    for _ in range(10_000):
        where = progress(plan, now * speed)  # type: ignore[arg-type]
        if where.status == "finished":
            return seen
        if where.status == "processing":
            seen.append(float(where.percentage or 0))
        now += schedule.observe(now, where.status, where.percentage)
    raise AssertionError("the job never ended")


def test_a_policy_at_the_sandbox_speed_sees_every_short_demo_job_move() -> None:
    """At the demo's speed a job takes 5-25 s; the real-time policy's first look at 0 % can
    be its last before the end, the sped-up one sees the bar move in every job."""
    import random

    from luma_nb.sandbox.lifecycle import make_plan

    speed = 12.0
    plans = [make_plan(random.Random(seed)) for seed in range(300)]

    def moving(policy: DefaultPolicy, plan: object) -> int:
        return len([p for p in simulate_plan(policy, plan, speed) if 0 < p < 100])

    real_time = [moving(DefaultPolicy(seed=1, learn=False), plan) for plan in plans]
    sped_up = [moving(DefaultPolicy.at_speed(speed, seed=1, learn=False), plan) for plan in plans]
    assert min(real_time) <= 1  # some short jobs show at most one step before 100 %
    assert min(sped_up) >= 4, sorted(sped_up)[:10]


def test_at_speed_divides_every_delay_and_the_documented_durations_down_to_a_floor() -> None:
    policy = DefaultPolicy.at_speed(10.0)
    base = DefaultPolicy()
    assert policy.sparse_max == base.sparse_max / 10 and policy.error_max == base.error_max / 10
    assert policy.first == policy.dense == policy.minimum == 0.5  # 0.15, 0.2, 0.05: floored
    assert policy.late_widening == base.late_widening  # seconds per second
    assert policy.prior.quantile(0.0) == pytest.approx(6.0)
    assert policy.prior.quantile(1.0) == pytest.approx(30.0)
    assert DefaultPolicy.at_speed(1.0).first == base.first
    with pytest.raises(ValueError, match="speed must be positive"):
        DefaultPolicy.at_speed(0.0)
