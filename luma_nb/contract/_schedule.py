"""The schedule of :class:`~luma_nb.DefaultPolicy`: one task's observations, the next delay.

The end of a task is estimated as a window ``[lo, hi]``; looks are sparse before it, every
``dense`` seconds inside it and slowly wider past it. Where the window comes from depends on
what the service shows: a rate for fine percentages, a step period for coarse ones, the
duration prior for none. What a finished task taught (queue time, the lingering of the last
percentage, the tail after the last coarse step, the duration) goes into the policy's memory.
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .polling import DefaultPolicy

__all__ = ("step_size",)

_WAITING = frozenset({"pending", "staged", "starting"})
#: Learned samples needed before a learned quantile is used.
_MIN_LEARNED = 3
#: A percentage step at least this big is "coarse": its timing is learned step by step.
_COARSE = 5.0
#: The share of the run over which the recent rate is measured.
_RECENT = 0.3


def step_size(values: list[float]) -> float:
    """The step of a percentage: the greatest common divisor of the distinct values seen.

    0 when fewer than two values are known, 1 as soon as a value is not a whole number.
    """
    if len(values) < 2:
        return 0.0
    ints = []
    for value in values:
        if abs(value - round(value)) > 1e-6:
            return 1.0
        ints.append(round(value))
    step = 0
    for a, b in itertools.pairwise(ints):
        step = math.gcd(step, abs(b - a))
    return float(step)


def _mid(a: float | None, b: float) -> float:
    return b if a is None else 0.5 * (a + b)


class _DefaultSchedule:
    def __init__(self, policy: DefaultPolicy, now: float, fresh: bool) -> None:
        self.policy = policy
        self.started = now
        self.fresh = fresh
        self.looks = 0
        self.failures = 0
        self.queue_delay = 0.0
        self.last_look: float | None = None
        self.queued_until: float | None = None
        self.processing_at: float | None = None
        # Fine percentages: where the rate is measured from (the last look before the first
        # move), the latest change (first look that saw it) and the change before it.
        self.anchor: tuple[float, float] | None = None
        self.latest: tuple[float, float] | None = None
        self.previous: tuple[float, float] | None = None
        self.seen_at = 0.0
        # Every distinct value, and each change as (last look at the old value, first look
        # at the new one, new value); the first value's look count, for coarse steps.
        self.values: list[float] = []
        self.changes: list[tuple[float, float, float]] = []
        self.processing_looks = 0
        self.expected_end: float | None = None
        self.window: tuple[float, float] | None = None
        self.step = 0.0
        self.top_base: float | None = None
        self.tail: tuple[float, float] | None = None
        self.ended = False

    # -- the Schedule protocol ---------------------------------------------------------------

    def first_delay(self) -> float:
        return self.policy.spread(self.policy.first) if self.fresh else 0.0

    def observe(self, now: float, status: str, percentage: float | None) -> float:
        previous_look, self.last_look = self.last_look, now
        self.looks += 1
        self.failures = 0
        if status in ("finished", "failed"):
            if not self.ended:
                self.ended = True
                self._learn_end(_mid(previous_look, now), status)
            return 0.0
        processing = status == "processing" or (percentage is not None and status not in _WAITING)
        if not processing:
            self.queued_until = now
            return self.policy.spread(self._queue_delay(now))
        if self.processing_at is None:
            self._start_processing(now)
        if percentage is None:
            return self.policy.spread(self._blind_delay(now))
        return self.policy.spread(self._progress_delay(now, percentage))

    def error(self, now: float, retry_after: float | None = None) -> float:
        policy = self.policy
        self.failures += 1
        backoff = min(policy.error_max, policy.error_base * 2 ** (self.failures - 1))
        delay = policy.spread(backoff)
        if retry_after is not None and retry_after > delay:
            # Honour the server's advice exactly, plus a little jitter upwards only.
            delay = policy.upward(retry_after)
        return delay

    # -- learning ----------------------------------------------------------------------------

    def _start_processing(self, now: float) -> None:
        policy = self.policy
        start = _mid(self.queued_until if self.queued_until is not None else None, now)
        if self.queued_until is None and self.fresh:
            start = _mid(self.started, now)
        self.processing_at = start
        if self.fresh and policy.learn and self.queued_until is not None:
            policy.memory.queue.add(start - self.started)

    def _learn_end(self, end: float, status: str) -> None:
        policy = self.policy
        if not policy.learn or status != "finished":
            return
        memory = policy.memory
        with memory.lock:
            memory.finished += 1
        if self.fresh:
            policy.prior.add(end - self.started, source="session")
        if self.top_base is not None:
            memory.top_excess.add(end - self.top_base)
        if self.tail is not None:
            last, period = self.tail
            if period > 0:
                memory.step_tail.add((end - last) / period)
        if len(self.changes) >= 2 and self.step >= _COARSE:
            memory.step = self.step

    # -- delays ------------------------------------------------------------------------------

    def _queue_delay(self, now: float) -> float:
        policy = self.policy
        learned = policy.memory.queue
        if self.fresh and policy.learn and len(learned) >= _MIN_LEARNED:
            elapsed = now - self.started
            low = learned.quantile(0.05, above=elapsed)
            if low is not None and low - elapsed > policy.queue_max:
                # No earlier job left the queue this soon: skip ahead, back off again after.
                self.queue_delay = 0.0
                return min(policy.sparse_max, (low - elapsed) * policy.sparse_fraction)
        return self._backoff(policy.queue_max)

    def _backoff(self, cap: float) -> float:
        policy = self.policy
        if self.queue_delay <= 0.0:
            self.queue_delay = policy.queue_start
        else:
            self.queue_delay = self.queue_delay * policy.queue_growth
        return min(cap, max(policy.minimum, self.queue_delay))

    def _blind_delay(self, now: float) -> float:
        """Processing without a percentage: the duration prior says when the end is likely."""
        policy = self.policy
        if not self.fresh:
            return policy.blind
        elapsed = now - self.started
        low = policy.prior.quantile(0.03)
        if low is None or low <= elapsed:
            return policy.blind
        self.window = (self.started + low, math.inf)
        return max(policy.blind, min(policy.sparse_max, (low - elapsed) * policy.sparse_fraction))

    def _toward(self, now: float, low: float, high: float) -> float:
        """Sparse before the window, dense inside, slowly wider past it."""
        policy = self.policy
        self.window = (low, high)
        if now < low:
            delay = max(policy.dense, min(policy.sparse_max, (low - now) * policy.sparse_fraction))
        elif now <= high:
            delay = policy.dense
        else:
            delay = min(policy.late_max, policy.dense + (now - high) * policy.late_widening)
        return max(policy.minimum, delay)

    def _record(self, now: float, percentage: float) -> bool:
        """Note a value; False when it went back (the estimate restarts)."""
        self.processing_looks += 1
        if self.values and percentage < self.values[-1]:
            self.values = [percentage]
            self.changes = []
            self.processing_looks = 1
            self.top_base = self.tail = None
            return False
        if not self.values:
            self.values.append(percentage)
        elif percentage > self.values[-1]:
            self.values.append(percentage)
            self.changes.append((self.seen_at, now, percentage))
        return True

    def _progress_delay(self, now: float, percentage: float) -> float:
        policy = self.policy
        if not self._record(now, percentage) or self.anchor is None:
            self.anchor = (now, percentage)
            self.latest = (now, percentage)
            self.previous = None
            self.seen_at = now
            self.expected_end = None
            # One more look soon to measure the rate.
            return max(policy.minimum, min(policy.queue_max, policy.queue_start * 2))
        self.step = step_size(self.values)
        if len(self.changes) == 1 and policy.learn:
            # One jump so far: coarse if earlier jobs stepped by a divisor of it.
            known = policy.memory.step
            if known >= _COARSE and self.step % known == 0:
                self.step = known
            else:
                self.step = 1.0
        coarse = (
            self.step >= _COARSE
            and self.changes
            and self.processing_looks >= 2 * len(self.changes) + 1
        )
        if coarse:
            delay = self._coarse_delay(now)
            self._fine_update(now, percentage)
            if delay is not None:
                return delay
            return self._fine_delay(now, percentage)
        self._fine_update(now, percentage)
        return self._fine_delay(now, percentage)

    def _fine_update(self, now: float, percentage: float) -> None:
        assert self.anchor is not None
        if self.latest is None or percentage > self.latest[1]:
            # The change happened after the last look at the old value: rates are timed from
            # that look, so a stall before a jump does not dilute the rate.
            old = self.latest[1] if self.latest is not None else percentage
            self.previous = (self.seen_at, old)
            if old == self.anchor[1]:
                self.anchor = (self.seen_at, old)
            self.latest = (now, percentage)
        self.seen_at = now

    def _fine_delay(self, now: float, percentage: float) -> float:
        policy = self.policy
        assert self.anchor is not None and self.latest is not None
        t0, p0 = self.anchor
        t1, p1 = self.latest
        if p1 <= p0 or t1 <= t0:
            # No movement yet: the end is not near; back off a little further than queued.
            return self._backoff(2 * policy.queue_max)
        # The recent rate (or the whole run's, early on) or the latest one, whichever is
        # faster: the earliest plausible end, following a job that slows down.
        rate = self._recent_rate(t0, p0, t1, p1) or (p1 - p0) / (t1 - t0)
        latest = self._latest_rate(t1)
        if latest is not None:
            rate = max(rate, latest)
        self.expected_end = t1 + (100.0 - p1) / rate
        low, high = self.expected_end - 2 * policy.dense, self.expected_end
        if percentage >= 100.0 - max(1.0, self.step):
            low, high = self._at_top(low, high)
        return self._toward(now, low, high)

    def _latest_rate(self, t1: float) -> float | None:
        """The rate of the latest change, timed from the last look at the old value (so a
        stall before a jump does not dilute it)."""
        if self.previous is None or t1 <= self.previous[0]:
            return None
        assert self.latest is not None
        before, old = self.previous
        return (self.latest[1] - old) / (t1 - before)

    def _recent_rate(self, t0: float, p0: float, t1: float, p1: float) -> float | None:
        """The rate over the recent part of the run (it follows a job that speeds up or slows).

        Measured from the latest change at least ``_RECENT`` of the run (and 15 s) before the
        latest one; None while the run is too short for that.
        """
        span = max(15.0, _RECENT * (t1 - t0))
        for _, seen, value in reversed(self.changes):
            if t1 - seen >= span and value < p1:
                return (p1 - value) / (t1 - seen)
        return None

    def _at_top(self, low: float, high: float) -> tuple[float, float]:
        """The last percentage before the end: widen the window by what earlier stalls taught."""
        if self.top_base is None:
            self.top_base = high
        base = self.top_base
        excess = self.policy.memory.top_excess
        if self.policy.learn and len(excess) >= _MIN_LEARNED:
            early = excess.quantile(0.05)
            late = excess.quantile(0.95)
            if early is not None and late is not None:
                return base + early, max(base + late, base + early + self.policy.dense)
        return low, high

    def _coarse_delay(self, now: float) -> float | None:
        """Coarse steps: time the steps; the window of the next change, or of the end."""
        policy = self.policy
        points: list[tuple[float, float]] = []
        if self.processing_at is not None:
            points.append((self.processing_at, self.values[0]))
        points += [(0.5 * (before + seen), value) for before, seen, value in self.changes]
        if len(points) < 2:
            return None
        step = self.step
        periods = []
        for (ta, va), (tb, vb) in itertools.pairwise(points):
            if vb > va:
                periods.append((tb - ta) / ((vb - va) / step))
        (t0, v0), (last, value) = points[0], points[-1]
        period = (last - t0) / ((value - v0) / step) if value > v0 else 0.0
        if period <= 0:
            return None
        spread = (max(periods) - min(periods)) / period / 2 if len(periods) >= 2 else 0.15
        before, seen, _ = self.changes[-1]
        margin = max(0.1, spread) * period + 0.5 * (seen - before)
        if value + step >= 100.0 - 1e-9:
            # The next change is the end: between "progress reaches 100" and "one more step".
            self.tail = (last, period)
            early, late = (100.0 - value) / step, 1.0
            learned = policy.memory.step_tail
            if policy.learn and len(learned) >= _MIN_LEARNED:
                # The learned tail already holds the steps' unevenness.
                early = learned.quantile(0.05) or early
                late = learned.quantile(0.95) or late
                margin = 0.5 * (seen - before)
            low, high = last + early * period - margin, last + late * period + margin
            return self._toward(now, low, high)
        # Steps remain before the last one: sparse toward the end; around the expected time
        # of the last step, now and then, so the end window can be timed from it.
        to_last = math.ceil((100.0 - value) / step - 1.0 - 1e-9)
        last_step = last + to_last * period
        look = min(8.0, max(2 * policy.dense, 0.1 * period))
        if now < last_step - margin:
            gap = (last_step - margin - now) * policy.sparse_fraction
            return max(look, min(policy.sparse_max, gap))
        return look
