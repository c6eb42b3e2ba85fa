"""Which watched jobs ride along in one fetch-many: a pure rule for the watcher and benchmarks.

A request is sent when some job of a client falls due. It costs one HTTP request per chunk of
:data:`CHUNK` ids whatever the number of ids in the chunk, so the chunks the due jobs need are
filled with the jobs that fall due soonest after them. Each of those gets its look early and is
rescheduled from this moment, so the jobs of one client fall into step and keep sharing requests:
many jobs cost about as many requests as the most demanding one among them.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import TypeVar

__all__ = ("CHUNK", "SLACK", "SLACK_MAX", "pick", "requests_for", "when")

#: Most ids in one ``/fetch-many`` request (the documented limit).
CHUNK = 20
#: A due job may wait this share of its delay (at most :data:`SLACK_MAX` seconds) for others
#: to fall due, so the jobs of a client gather in one request (no more than the jitter).
SLACK = 0.1
SLACK_MAX = 1.0

K = TypeVar("K", bound=Hashable)


def requests_for(ids: int) -> int:
    """HTTP requests needed to look at ``ids`` tasks at once."""
    return math.ceil(ids / CHUNK) if ids > 0 else 0


def when(
    jobs: Sequence[tuple[K, float, float]], *, slack: float = SLACK, most: float = SLACK_MAX
) -> float | None:
    """When the next request of a client is sent: the earliest due time plus its slack.

    ``jobs`` are ``(key, due, delay)``; None when there are none.
    """
    return min((at + min(most, slack * delay) for _, at, delay in jobs), default=None)


def pick(
    now: float,
    jobs: Sequence[tuple[K, float, float]],
    *,
    window: float = 1.0,
    ride: float = 1.0,
    chunk: int = CHUNK,
) -> list[K]:
    """The jobs to look at ``now``: all that are due, then riders that fill the same chunks.

    ``jobs`` are ``(key, due, delay)``: when each job is due and the delay it was last given.
    A job is a rider if it is due within ``window`` seconds, or within ``ride`` times its own
    delay (``ride=1`` lets any job ride; ``ride=0`` only those within ``window``). Riders never
    add a chunk. Nothing is due: an empty list.
    """
    due = [key for key, at, _ in jobs if at <= now]
    if not due:
        return []
    room = requests_for(len(due)) * chunk - len(due)
    riders = sorted(
        (at - now, index, key)
        for index, (key, at, delay) in enumerate(jobs)
        if at > now and at - now <= max(window, ride * delay)
    )
    return due + [key for _, _, key in riders[:room]]
