"""One watched job: its schedule, state, listeners and ways to wait for the end.

A :class:`Watch` is made and driven by the :class:`~luma_nb.jobs.watcher.Watcher`; users get
one from ``job.watch()`` and wait on it (``watch.wait()``, ``await watch``) or cancel it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from ..contract.errors import LumaError, WaitTimeout
from ..contract.eta import eta_seconds
from ..contract.waiting import Waiter
from .ending import Ending

if TYPE_CHECKING:
    from ..contract.models import Task
    from ..contract.polling import Schedule
    from .job import Job
    from .watcher import Watcher

__all__ = ("DEFAULT_TIMEOUT", "PUSH_QUIET", "Listener", "Watch", "WatchCancelled", "eta_seconds")

#: Seconds a job is watched before it ends with :class:`~luma_nb.WaitTimeout`.
DEFAULT_TIMEOUT = 1800.0

Listener = Callable[["Watch"], Any]


#: After a pushed update (webhook), the next poll of that job waits at least this long.
PUSH_QUIET = 30.0


class WatchCancelled(LumaError):
    """Watching was stopped (Cancel, or :func:`unwatch`); the task keeps running at the service."""

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        super().__init__(
            f"Stopped watching task {task_id}. It keeps running at the service: watch it again "
            f"with client.job({task_id!r}).watch()."
        )


class Watch:
    """One job being watched: its schedule, state, listeners and ways to wait for the end.

    ``state`` is ``"watching"``, then one of ``"finished"``, ``"failed"``, ``"timeout"``,
    ``"error"`` or ``"cancelled"``; ``error`` holds the exception of the last four.
    """

    def __init__(
        self, watcher: Watcher, job: Job, schedule: Schedule, now: float, timeout: float
    ) -> None:
        self.watcher = watcher
        self.job = job
        self.schedule = schedule
        self.started = now
        self.timeout = timeout
        #: The waiting rules (the same ones a blocking wait follows): what a snapshot or an
        #: error means, and how long to wait before the next look.
        self.waiter = Waiter(
            job.task_id,
            timeout,
            schedule,
            watcher.clock,
            request_timeout=job.client.timeout,
            last=job.task,
        )
        self.delay = self.waiter.delay
        self.due = now + self.delay
        self.state = "watching"
        self.error: BaseException | None = None
        self.listener_error: BaseException | None = None
        self.ended: float | None = None
        self.samples: list[tuple[float, float]] = []
        self.misses = 0
        self._listeners: list[Listener] = []
        self._ending = Ending()
        self._lock = threading.Lock()

    # -- state ------------------------------------------------------------------------------

    @property
    def deadline(self) -> float:
        """When watching ends with :class:`~luma_nb.WaitTimeout` (the waiter's deadline)."""
        return self.waiter.deadline

    @property
    def task(self) -> Task | None:
        """The job's last snapshot."""
        return self.job.task

    @property
    def done(self) -> bool:
        """True once watching ended, for whatever reason, and the listeners were told."""
        return self._ending.is_set()

    def elapsed(self, now: float | None = None) -> float:
        """Seconds since watching started (until it ended)."""
        end = (
            self.ended if self.ended is not None else (now if now is not None else time.monotonic())
        )
        return max(0.0, end - self.started)

    def eta(self) -> float | None:
        """Estimated seconds left from the moment of the last sample; None until progress moves."""
        return eta_seconds(self.samples)

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(watch)`` (from the watcher thread) after every change."""
        with self._lock:
            if listener not in self._listeners:
                self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling ``listener``."""
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def listeners(self) -> list[Listener]:
        """A copy of the listeners."""
        with self._lock:
            return list(self._listeners)

    # -- the end ----------------------------------------------------------------------------

    def _end(self, state: str, now: float, error: BaseException | None = None) -> None:
        """Record the end (under the watcher's lock); waiters wake after listeners heard it."""
        self.state, self.error, self.ended = state, error, now

    def _release(self) -> None:
        """Wake blocking and async waiters (after the listeners were told of the end)."""
        self._ending.set()

    def result(self) -> Task:
        """The finished task; raises the error of a watch that ended otherwise."""
        if not self.done:
            raise RuntimeError(f"task {self.job.task_id} is still being watched")
        if self.state == "finished" and self.job.task is not None:
            return self.job.task
        if self.state == "cancelled":
            raise WatchCancelled(self.job.task_id)
        raise self.error or LumaError(f"watching task {self.job.task_id} ended: {self.state}")

    def wait_ended(self, timeout: float | None = None) -> bool:
        """Block until watching ends (True) or ``timeout`` seconds pass (False); no result."""
        return self._ending.wait(timeout)

    def wait(self, timeout: float | None = None) -> Task:
        """Block until watching ends and return :meth:`result` (interruptible: Ctrl-C works)."""
        if not self._ending.wait(timeout):
            raise WaitTimeout(self.job.task_id, timeout or 0.0, self.job.task)
        return self.result()

    async def wait_async(self) -> Task:
        """Await the end without polling: the watcher thread wakes this coroutine."""
        await self._ending.wait_async()
        return self.result()

    def __await__(self) -> Generator[Any, None, Task]:
        """``task = await watch``."""
        return self.wait_async().__await__()

    def cancel(self) -> None:
        """Stop watching (the task keeps running at the service)."""
        self.watcher.unwatch(self.job)

    def __repr__(self) -> str:
        return f"<Watch {self.job.task_id} {self.state}>"
