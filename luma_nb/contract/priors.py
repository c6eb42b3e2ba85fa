"""What a polling policy knows before and learns while watching: durations, queues, last steps.

Pure objects (no I/O, no clock): samples go in, quantiles come out. A :class:`DurationPrior`
starts from the provider's documented typical durations and is sharpened by durations seen
earlier - those of this machine's journal (fed by the jobs layer) and those of earlier jobs of
the same session (fed by the policy itself).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ("DOCUMENTED_DURATIONS", "DurationPrior", "Samples")

#: Typical durations of a video job, submit to finished, in seconds: "1–5 minutes" (CONTRACT).
DOCUMENTED_DURATIONS = (60.0, 300.0)


class Samples:
    """A bounded set of weighted observations with (conditional) quantiles; thread-safe."""

    def __init__(self, limit: int = 200) -> None:
        self._items: deque[tuple[float, float]] = deque(maxlen=limit)
        self._lock = threading.Lock()

    def add(self, value: float, weight: float = 1.0) -> None:
        """Record one observation (the oldest is dropped past the limit)."""
        if weight > 0 and value == value:  # NaN never enters
            with self._lock:
                self._items.append((float(value), float(weight)))

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def weight(self) -> float:
        """Total weight recorded."""
        with self._lock:
            return sum(w for _, w in self._items)

    def quantile(self, q: float, *, above: float = float("-inf")) -> float | None:
        """The ``q`` quantile (0..1) of the values above ``above``; None if there are none."""
        with self._lock:
            items = sorted((v, w) for v, w in self._items if v > above)
        if not items:
            return None
        total = sum(w for _, w in items)
        target = min(max(q, 0.0), 1.0) * total
        cumulative = 0.0
        for value, w in items:
            cumulative += w
            if cumulative >= target - 1e-12:
                return value
        return items[-1][0]

    def values(self) -> list[float]:
        """The values recorded, oldest first."""
        with self._lock:
            return [v for v, _ in self._items]


def _spread(low: float, high: float, count: int) -> list[float]:
    step = (high - low) / max(1, count - 1)
    return [low + step * k for k in range(count)]


@dataclass
class DurationPrior:
    """How long a job takes from submit to finished, before any progress is seen.

    The documented range (``documented``, as ``points`` evenly spaced values of total weight
    ``documented_weight``) is a starting belief; every duration added (from the journal with
    weight 1, from this session with ``session_weight``) counts beside it, so a few real
    durations soon outweigh it. Quantiles can be taken of the durations longer than the time a
    job has already run.
    """

    documented: tuple[float, float] | None = DOCUMENTED_DURATIONS
    """The documented typical range in seconds, or None to start from nothing."""
    documented_weight: float = 4.0
    """Total weight of the documented range (as many jobs' worth of evidence)."""
    session_weight: float = 2.0
    """Weight of a duration seen in this session (a journal's durations weigh 1)."""
    points: int = 21
    """How many values stand for the documented range."""
    fed: set[str] = field(default_factory=set, repr=False, compare=False)
    """Which journals already gave their durations (so a second client adds none twice)."""
    _seen: Samples = field(init=False, repr=False, compare=False)
    _documented: Samples = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._seen = Samples(400)
        self._documented = Samples(self.points)
        if self.documented is not None:
            low, high = self.documented
            for value in _spread(low, high, self.points):
                self._documented.add(value, self.documented_weight / self.points)

    def add(self, seconds: float, *, source: str = "session") -> None:
        """Record a duration seen (``source`` is ``"session"`` or ``"journal"``)."""
        if 0 < seconds < 24 * 3600:
            weight = self.session_weight if source == "session" else 1.0
            self._seen.add(seconds, weight)

    def extend(self, durations: Iterable[float], *, source: str = "journal") -> None:
        """Record several durations (a journal's history, oldest first)."""
        for seconds in durations:
            self.add(seconds, source=source)

    @property
    def seen(self) -> int:
        """How many durations were added."""
        return len(self._seen)

    def quantile(self, q: float, *, above: float = 0.0) -> float | None:
        """The ``q`` quantile of durations longer than ``above`` seconds; None if none is known."""
        merged = Samples(self._documented_len() + len(self._seen))
        for source in (self._documented, self._seen):
            with source._lock:
                items = list(source._items)
            for value, w in items:
                merged.add(value, w)
        return merged.quantile(q, above=above)

    def _documented_len(self) -> int:
        return len(self._documented)
