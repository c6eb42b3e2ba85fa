"""How long a task has left, from the progress it reported (pure arithmetic, no I/O)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ("eta_seconds",)


def eta_seconds(samples: Sequence[tuple[float, float]]) -> float | None:
    """Seconds until 100 %, from ``(time, percentage)`` samples; None until progress moves.

    The rate is taken from the first sample to the last, which smooths the service's uneven
    percentage steps.
    """
    if len(samples) < 2:
        return None
    (t0, p0), (t1, p1) = samples[0], samples[-1]
    if t1 <= t0 or p1 <= p0:
        return None
    rate = (p1 - p0) / (t1 - t0)
    return max(0.0, (100.0 - p1) / rate)
