"""When to look at a task again: pure polling policies, simulated without sleeping.

A policy makes one :class:`Schedule` per watched task. The schedule is fed observations (the time,
the status and percentage seen, or an error) and answers with the delay before the next look.
Nothing here sleeps or does I/O, so thousands of jobs can be simulated in a benchmark, and a test
can inject a policy with zero delays. :class:`DefaultPolicy` also learns from the jobs it has
watched (queue times, how percentages step, how long a task sits near 100 %); with the same seed
and the same observations it makes the same decisions.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Protocol

from ._schedule import _DefaultSchedule
from .priors import DOCUMENTED_DURATIONS, DurationPrior, Samples

__all__ = (
    "DefaultPolicy",
    "DurationPrior",
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


#: The fields of :class:`DefaultPolicy` that are seconds (what :meth:`DefaultPolicy.at_speed`
#: divides); ``late_widening`` is seconds per second and stays.
_DURATION_FIELDS = (
    "first",
    "queue_start",
    "queue_max",
    "blind",
    "sparse_max",
    "dense",
    "late_max",
    "minimum",
    "error_base",
    "error_max",
)


class Memory:
    """What a :class:`DefaultPolicy` learned from the jobs it watched to their end."""

    def __init__(self) -> None:
        self.queue = Samples(100)
        """Seconds from submit to the first look at ``processing``."""
        self.top_excess = Samples(100)
        """How much later than estimated a task ended once it showed its last percentage."""
        self.step_tail = Samples(100)
        """For coarse steps: time from the last step to the end, in step periods."""
        self.step = 0.0
        """The coarse step size the last coarse job showed (0: none seen)."""
        self.finished = 0
        """Jobs seen to their end."""
        self.lock = threading.Lock()


@dataclass
class DefaultPolicy:
    """Patient with the service, quick to notice the end, learning from every job it watches.

    - While a task waits in the queue, looks back off from ``queue_start`` (factor
      ``queue_growth``) up to ``queue_max``; once the policy has seen queue times, it skips
      the part of the queue no earlier job left before.
    - Once ``percentage`` moves, the end is estimated as a window: from the rate (the faster
      of the whole-run and the latest rate, so it errs early) for fine percentages; from the
      step size and period when the percentage moves in coarse steps (having seen 0, 40 and
      80, the next change is the end). Looks are sparse while the window is far
      (``sparse_fraction`` of the time left to it, at most ``sparse_max``), every ``dense``
      seconds inside it, and widen slowly past it. A last percentage that lingers (a stall at
      99 %) is learned: later jobs look sparsely through the usual stall.
    - With no percentage at all, a :class:`DurationPrior` (the documented 1-5 minutes,
      durations from the journal, jobs of this session) says when the end becomes likely;
      looks are sparse before that and every ``blind`` seconds after it.
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
    """Longest delay while queued, once the learned queue time has passed."""
    blind: float = 4.5
    """Delay while processing without a percentage, once the end is likely."""
    sparse_fraction: float = 0.5
    """Share of the time left to the end window to wait while it is far."""
    sparse_max: float = 30.0
    """Longest delay while processing (bounds the miss if progress speeds up)."""
    dense: float = 2.0
    """Delay inside the end window: the detection lag is at most about this."""
    late_widening: float = 0.15
    """Seconds of extra delay per second past the end window."""
    late_max: float = 4.0
    """Longest delay once the end is later than the window."""
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
    prior: DurationPrior = field(default_factory=DurationPrior)
    """Durations from submit to finished known so far (documented, journal, this session)."""
    learn: bool = True
    """Learn from watched jobs (queue times, stalls near 100 %, step tails, durations)."""
    _rng: random.Random = field(init=False, repr=False, compare=False)
    memory: Memory = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)  # noqa: S311 - jitter, not security
        self.memory = Memory()

    @classmethod
    def at_speed(
        cls, speed: float, *, floor: float = 0.5, seed: int | None = None, learn: bool = True
    ) -> DefaultPolicy:
        """The policy for a service whose clock runs ``speed`` times faster than the real one
        (the demo sandbox): every delay and the documented durations are divided by ``speed``,
        no delay below ``floor`` seconds. A job then gets as many looks as it would get from
        the real service, so a 6-second demo job shows its bar moving instead of 0 % then
        done."""
        if not speed > 0:
            raise ValueError(f"speed must be positive, got {speed!r}")
        base = cls()
        timed = {name: max(floor, float(getattr(base, name)) / speed) for name in _DURATION_FIELDS}
        low, high = DOCUMENTED_DURATIONS
        prior = DurationPrior(documented=(low / speed, high / speed))
        return cls(**timed, prior=prior, seed=seed, learn=learn)

    def schedule(self, now: float, *, fresh: bool = True) -> _DefaultSchedule:
        """A schedule for one task watched from ``now``."""
        return _DefaultSchedule(self, now, fresh)

    def spread(self, delay: float) -> float:
        """``delay`` with the policy's jitter (never negative)."""
        if self.jitter <= 0 or delay <= 0:
            return delay
        with self.memory.lock:
            factor = 1.0 + self._rng.uniform(-self.jitter, self.jitter)
        return max(0.0, delay * factor)

    def upward(self, delay: float) -> float:
        """``delay`` plus jitter upwards only (for a server's ``Retry-After``)."""
        if self.jitter <= 0:
            return delay
        with self.memory.lock:
            factor = 1.0 + self._rng.uniform(0.0, self.jitter)
        return delay * factor
