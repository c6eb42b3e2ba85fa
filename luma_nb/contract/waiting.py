"""The waiting loop, written once and driven both by blocking and by asyncio code."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import validation as check
from .errors import (
    RateLimitError,
    ServerError,
    TaskFailedError,
    TransportError,
    WaitTimeout,
)
from .models import Task
from .polling import Schedule

#: Errors worth trying again while waiting: the service is busy, flaky or briefly unreachable.
TRANSIENT = (ServerError, RateLimitError, TransportError)

#: Shortest time given to one fetch near the deadline.
_MIN_REQUEST_TIMEOUT = 0.2


class Waiter:
    """Decides, for one task, how long to sleep, how long a fetch may take, and when to stop.

    The driver loops: ``delay = next_delay()`` (raises :class:`WaitTimeout` once the deadline
    has passed), sleep, fetch with ``request_timeout()``, then ``on_task(task)`` (True when done)
    or ``on_error(exc)`` (re-raises what is not transient).
    """

    def __init__(
        self,
        task_id: str,
        timeout: float,
        schedule: Schedule,
        clock: Callable[[], float],
        *,
        request_timeout: float,
        on_progress: Callable[[Task], Any] | None = None,
        last: Task | None = None,
    ) -> None:
        self.task_id = task_id
        self.timeout = check.seconds(timeout, "timeout", maximum=check.MAX_WAIT_SECONDS)
        self.clock = clock
        self.deadline = clock() + self.timeout
        self.schedule = schedule
        self.on_progress = on_progress
        self.last = last
        self.max_request_timeout = request_timeout
        self.polls = 0
        self._delay = schedule.first_delay()

    @property
    def delay(self) -> float:
        """The planned sleep before the next look, not yet cut to the deadline."""
        return self._delay

    def on_absent(self) -> None:
        """The answer did not include the task: back off as after an error."""
        self.polls += 1
        self._delay = self.schedule.error(self.clock(), None)

    def remaining(self) -> float:
        """Seconds left before the deadline (may be negative)."""
        return self.deadline - self.clock()

    def next_delay(self) -> float:
        """The sleep before the next fetch; raises :class:`WaitTimeout` past the deadline."""
        remaining = self.remaining()
        if remaining <= 0:
            raise WaitTimeout(self.task_id, self.timeout, self.last)
        return max(0.0, min(self._delay, remaining))

    def request_timeout(self) -> float:
        """How long the next fetch may take without overrunning the deadline."""
        return max(_MIN_REQUEST_TIMEOUT, min(self.max_request_timeout, self.remaining()))

    def on_task(self, task: Task) -> bool:
        """Record a snapshot; True when the task finished, raises when it failed."""
        self.polls += 1
        if self.last is None or task != self.last:
            self.last = task
            if self.on_progress is not None:
                self.on_progress(task)
        self.last = task
        if task.is_finished or task.is_failed:
            # The schedule hears the end too: a learning policy times its jobs by it.
            end = "finished" if task.is_finished else "failed"
            self.schedule.observe(self.clock(), end, task.percentage)
        if task.is_finished:
            return True
        if task.is_failed:
            raise TaskFailedError(task)
        self._delay = self.schedule.observe(self.clock(), task.status, task.percentage)
        return False

    def on_error(self, error: BaseException) -> None:
        """Back off after a transient error; re-raise anything else."""
        if not isinstance(error, TRANSIENT):
            raise error
        self.polls += 1
        retry_after = error.retry_after if isinstance(error, RateLimitError) else None
        self._delay = self.schedule.error(self.clock(), retry_after)
