"""When to look at a task again: pure polling policies, simulated without sleeping.

A policy makes one :class:`Schedule` per watched task. The schedule is fed observations (the time,
the status and percentage seen, or an error) and answers with the delay before the next look.
Nothing here sleeps or does I/O, so thousands of jobs can be simulated in a benchmark, and a test
can inject a policy with zero delays.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Protocol

#: How fast looks widen (seconds of delay per second of lateness) past the estimated end.
_LATE_WIDENING = 0.2

__all__ = (
    "DefaultPolicy",
    "FixedPolicy",
    "PollPolicy",
    "Schedule",
)


class Schedule(Protocol):
    """The per-task state of a policy."""

    def first_delay(self) -> float:
        """Delay before the first look after watching starts."""
        ...

    def observe(self, now: float, status: str, percentage: float | None) -> float:
        """Record what was seen at ``now``; return the delay before the next look."""
        ...

    def error(self, now: float, retry_after: float | None = None) -> float:
        """Record a transient failure at ``now``; return the delay before trying again."""
        ...


class PollPolicy(Protocol):
    """Something that makes a :class:`Schedule` for each watched task."""

    def schedule(self, now: float, *, fresh: bool = True) -> Schedule:
        """A schedule for a task watched from ``now``; ``fresh`` if it was just submitted."""
        ...


@dataclass
class FixedPolicy:
    """Look every ``interval`` seconds, whatever happens (the simple baseline)."""

    interval: float = 3.0
    """Seconds between looks."""

    def schedule(self, now: float, *, fresh: bool = True) -> _FixedSchedule:
        """A schedule that always answers ``interval``."""
        return _FixedSchedule(self.interval, fresh)


@dataclass
class _FixedSchedule:
    interval: float
    fresh: bool
    failures: int = 0

    def first_delay(self) -> float:
        return self.interval if self.fresh else 0.0

    def observe(self, now: float, status: str, percentage: float | None) -> float:
        self.failures = 0
        return self.interval

    def error(self, now: float, retry_after: float | None = None) -> float:
        self.failures += 1
        return max(self.interval, retry_after or 0.0)


@dataclass
class DefaultPolicy:
    """Patient with the service, quick to notice the end.

    - A quick first look after a submit (``first``), then capped backoff while the task waits in
      the queue (``queue_growth`` up to ``queue_max``).
    - Once ``percentage`` moves, the finish time is estimated from its rate (the faster of the
      rate since the first move and the latest rate, so the estimate errs early): looks are
      sparse while the end is far (``sparse_fraction`` of the estimated remaining time, at most
      ``sparse_max``) and dense near it (``dense``), widening again slowly if the end comes
      later than expected.
    - With no percentage at all, backoff is capped at ``blind_max`` so the end is not missed long.
    - Transient errors back off exponentially from ``error_base`` to ``error_max``; a server's
      ``Retry-After`` is always honoured.
    - Every delay gets ``jitter`` (a fraction, both ways) so many clients do not poll in step.
    """

    first: float = 1.5
    """Seconds before the first look after a submit."""
    queue_start: float = 2.0
    """First backoff step while queued (pending, staged, starting, retry, unknown statuses)."""
    queue_growth: float = 1.5
    """Factor by which the queue backoff grows at each look."""
    queue_max: float = 8.0
    """Longest delay while queued."""
    blind_max: float = 4.0
    """Longest delay while processing without a percentage, or later than estimated."""
    sparse_fraction: float = 0.5
    """Share of the estimated remaining time to wait while the end is far."""
    sparse_max: float = 20.0
    """Longest delay while processing with a percentage (bounds the miss if progress speeds up)."""
    dense: float = 1.0
    """Delay near the estimated end: the detection lag is at most about this."""
    minimum: float = 0.5
    """Shortest delay between two looks at a task still running."""
    error_base: float = 1.0
    """First backoff after a transient error."""
    error_max: float = 30.0
    """Longest backoff after repeated transient errors (a longer ``Retry-After`` still wins)."""
    jitter: float = 0.1
    """Random spread of every delay, as a fraction both ways."""
    seed: int | None = None
    """Seed of the jitter's random generator (for reproducible simulations)."""
    _rng: random.Random = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)  # noqa: S311 - jitter, not security

    def schedule(self, now: float, *, fresh: bool = True) -> _DefaultSchedule:
        """A schedule for one task watched from ``now``."""
        return _DefaultSchedule(self, now, fresh)


@dataclass
class _DefaultSchedule:
    policy: DefaultPolicy
    started: float
    fresh: bool
    looks: int = 0
    queue_delay: float = 0.0
    failures: int = 0
    # (time, percentage): where the rate is measured from (the last look before the first
    # move), the latest change (first look that saw it) and the change before it.
    anchor: tuple[float, float] | None = None
    latest: tuple[float, float] | None = None
    previous: tuple[float, float] | None = None
    seen_at: float = 0.0
    expected_end: float | None = None

    def first_delay(self) -> float:
        return self._jitter(self.policy.first) if self.fresh else 0.0

    def observe(self, now: float, status: str, percentage: float | None) -> float:
        policy = self.policy
        self.looks += 1
        self.failures = 0
        if status in ("finished", "failed"):
            return 0.0
        if percentage is not None and status not in ("pending", "staged", "starting"):
            return self._jitter(self._progress_delay(now, percentage))
        if status == "processing":
            # Processing without a percentage: no way to estimate, stay close.
            return self._jitter(self._blind_delay(policy.blind_max))
        return self._jitter(self._blind_delay(policy.queue_max))

    def error(self, now: float, retry_after: float | None = None) -> float:
        policy = self.policy
        self.failures += 1
        backoff = min(policy.error_max, policy.error_base * 2 ** (self.failures - 1))
        delay = self._jitter(backoff)
        if retry_after is not None and retry_after > delay:
            # Honour the server's advice exactly, plus a little jitter upwards only.
            delay = retry_after * (1.0 + policy._rng.uniform(0.0, policy.jitter))
        return delay

    def _blind_delay(self, cap: float) -> float:
        policy = self.policy
        if self.queue_delay <= 0.0:
            self.queue_delay = policy.queue_start
        else:
            self.queue_delay = self.queue_delay * policy.queue_growth
        return min(cap, max(policy.minimum, self.queue_delay))

    def _progress_delay(self, now: float, percentage: float) -> float:
        policy = self.policy
        if self.anchor is None or percentage < self.anchor[1]:
            self.anchor = (now, percentage)
            self.latest = (now, percentage)
            self.previous = None
            self.seen_at = now
            self.expected_end = None
            # One more look soon to measure the rate.
            return max(policy.minimum, min(policy.queue_max, policy.queue_start * 2))
        if self.latest is None or percentage > self.latest[1]:
            # The change happened after the last look at the old value: rates are timed from
            # that look, so a stall before a jump does not dilute the rate.
            old = self.latest[1] if self.latest is not None else percentage
            self.previous = (self.seen_at, old)
            if old == self.anchor[1]:
                self.anchor = (self.seen_at, old)
            self.latest = (now, percentage)
        self.seen_at = now
        t0, p0 = self.anchor
        t1, p1 = self.latest
        if p1 <= p0 or t1 <= t0:
            # No movement yet: keep looking at the queue pace.
            return self._blind_delay(policy.queue_max)
        rate = (p1 - p0) / (t1 - t0)
        if self.previous is not None and t1 > self.previous[0]:
            # The faster of the whole-run and the latest rate: the earliest plausible end.
            rate = max(rate, (p1 - self.previous[1]) / (t1 - self.previous[0]))
        self.expected_end = t1 + (100.0 - p1) / rate
        remaining = self.expected_end - now
        if remaining > 2 * policy.dense:
            return max(policy.minimum, min(policy.sparse_max, remaining * policy.sparse_fraction))
        if remaining > 0:
            return max(policy.minimum, min(policy.dense, remaining))
        # Late: the estimate was optimistic. Widen slowly, never beyond the blind cap.
        lateness = -remaining
        return max(policy.minimum, min(policy.blind_max, policy.dense + lateness * _LATE_WIDENING))

    def _jitter(self, delay: float) -> float:
        spread = self.policy.jitter
        if spread <= 0 or delay <= 0:
            return delay
        return max(0.0, delay * (1.0 + self.policy._rng.uniform(-spread, spread)))
