"""Watching jobs in the background: the one polling thread, each watched job, and their end.

The one background polling loop: every watched job of every client, on one daemon thread.

The thread (``luma-nb-watcher``) starts on the first :func:`watch` and sleeps until the earliest
job is due. It then fetches every due job of a client - plus riders, the jobs due soonest after
them, to fill the same requests - in one ``client.fetch_many`` call (chunks of 20 on
``/fetch-many``, a lone id on ``/fetch``). Each job keeps its own schedule from ``client.poll``.
The kernel's event loop is never touched, so a cell that submits returns at once and later cells
run while jobs progress; a blocking cell does not stop the thread either.

The thread is the single writer of progress widgets: listeners (``listener(watch)``) are called
only from it (or from :meth:`Watcher.tick` when a test drives the loop by hand). A listener that
raises is logged and remembered on ``watch.listener_error``; it never stops the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from ..contract.errors import LumaError, TaskFailedError, WaitTimeout
from ..contract.eta import eta_seconds
from ..contract.waiting import Waiter
from .batching import SLACK, SLACK_MAX, pick

if TYPE_CHECKING:
    from ..contract.models import Task
    from ..contract.polling import Schedule
    from .job import Job

__all__ = (
    "DEFAULT_TIMEOUT",
    "PUSH_QUIET",
    "Ending",
    "Listener",
    "Watch",
    "WatchCancelled",
    "Watcher",
    "get_watcher",
    "unwatch",
    "watch",
)


class Ending:
    """Set once from any thread; ``wait`` blocks (Ctrl-C still works), ``wait_async`` awaits."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._futures: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def is_set(self) -> bool:
        """True once ended."""
        return self._event.is_set()

    def set(self) -> None:
        """End now: wake blocking waiters and every awaiting coroutine on its own loop."""
        self._event.set()
        with self._lock:
            futures, self._futures = self._futures, []
        for loop, future in futures:
            # A closed loop raises RuntimeError: nobody awaits there any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, future)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until ended (True) or ``timeout`` seconds passed (False).

        Waits in short slices so a KeyboardInterrupt reaches the caller promptly.
        """
        limit = None if timeout is None else time.monotonic() + timeout
        while not self._event.wait(0.1):
            if limit is not None and time.monotonic() >= limit:
                return False
        return True

    async def wait_async(self) -> None:
        """Await the end without polling: :meth:`set` wakes this coroutine on its loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            pending = not self._event.is_set()
            if pending:
                self._futures.append((loop, future))
        if pending:
            await future


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


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


#: Consecutive fetches that do not return a task before its watch ends with an error.
_MAX_MISSES = 3
#: The longest single sleep of the thread (it rechecks its jobs at least this often).
_MAX_SLEEP = 3600.0
#: Longest time given to one fetch of the watcher (shorter near a watch's deadline).
_MAX_FETCH_SECONDS = 20.0
_log = logging.getLogger("luma_nb.watcher")


class Watcher:
    """Watches jobs on one daemon thread; see the module docstring.

    ``clock`` and ``autostart`` are for tests: with ``autostart=False`` no thread is started and
    the test calls :meth:`tick` itself. When a client's job falls due, the request's chunks of
    20 ids are filled with that client's jobs due soonest (:func:`~luma_nb.client.batching.pick`):
    those due within ``batch_window`` seconds, or within ``ride`` times their own delay
    (``ride=0`` keeps to the window). Their looks come early and cost no request, and their
    schedules fall into step, so many jobs cost about as many requests as the busiest of them.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        batch_window: float = 1.0,
        ride: float = 1.0,
        autostart: bool = True,
    ) -> None:
        self.clock = clock
        self.batch_window = batch_window
        self.ride = ride
        self.autostart = autostart
        self._cond = threading.Condition()
        self._watches: dict[int, Watch] = {}
        self._pending: list[Watch] = []
        self._thread: threading.Thread | None = None
        #: Number of ``fetch_many`` calls made (for tests and benchmarks).
        self.fetch_calls = 0

    # -- public -----------------------------------------------------------------------------

    def watch(
        self, job: Job, *, timeout: float = DEFAULT_TIMEOUT, listener: Listener | None = None
    ) -> Watch:
        """Watch ``job`` (again, if it was watched before and ended); return its :class:`Watch`.

        A job already being watched keeps its watch; ``listener`` is added to it.
        """
        with self._cond:
            current = self._watches.get(id(job))
            if current is not None and current.job is job:
                if listener is not None:
                    current.add_listener(listener)
                return current
            now = self.clock()
            schedule = job.client.poll.schedule(now, fresh=job.fresh)
            watch = Watch(self, job, schedule, now, timeout)
            if listener is not None:
                watch.add_listener(listener)
            task = job.task
            if task is not None and task.is_finished:
                watch._end("finished", now)
                self._pending.append(watch)
            elif task is not None and task.is_failed:
                watch._end("failed", now, TaskFailedError(task))
                self._pending.append(watch)
            else:
                self._watches[id(job)] = watch
            self._start()
            self._cond.notify_all()
        return watch

    def unwatch(self, job: Job) -> Watch | None:
        """Stop watching ``job``; its listeners hear ``state == "cancelled"``. None if unwatched."""
        with self._cond:
            watch = self._watches.pop(id(job), None)
            if watch is None or watch.job is not job:
                return None
            watch._end("cancelled", self.clock(), WatchCancelled(job.task_id))
            self._pending.append(watch)
            self._cond.notify_all()
        return watch

    def push(self, job: Job, task: Task) -> bool:
        """Feed a snapshot that arrived another way (a webhook) to ``job``'s watch.

        The listeners hear it from the watcher thread, as with a poll, and the next poll of the
        job is put off by :data:`PUSH_QUIET` seconds: while updates arrive on their own, polling
        is only a safety net. Returns False when ``job`` is not being watched.
        """
        with self._cond:
            watch = self._watches.get(id(job))
            if watch is None or watch.job is not job:
                return False
            if self._apply(watch, task):
                self._pending.append(watch)
            if watch.state == "watching":
                watch.due = min(max(watch.due, self.clock() + PUSH_QUIET), watch.deadline)
            self._start()
            self._cond.notify_all()
        return True

    def watching(self, job: Job) -> Watch | None:
        """The active watch of ``job``, if any."""
        with self._cond:
            watch = self._watches.get(id(job))
            return watch if watch is not None and watch.job is job else None

    @property
    def watches(self) -> list[Watch]:
        """The active watches."""
        with self._cond:
            return list(self._watches.values())

    # -- the loop ---------------------------------------------------------------------------

    def _start(self) -> None:
        if self.autostart and (self._thread is None or not self._thread.is_alive()):
            self._thread = threading.Thread(target=self._run, name="luma-nb-watcher", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                delay = self.tick()
            except Exception:  # a bug here must not kill the only poller
                _log.exception("luma_nb watcher tick failed")
                delay = 1.0
            with self._cond:
                if self._pending:
                    continue
                if delay is None:
                    self._cond.wait()
                elif delay > 0:
                    # Due times never pass a watch's deadline; the cap only guards the thread
                    # itself against a delay that no timer can take (inf, or years).
                    self._cond.wait(min(delay, _MAX_SLEEP))

    def _take_due(self, now: float) -> tuple[list[Watch], dict[int, list[Watch]]]:
        """Under the lock: end expired watches; group the due ones by client."""
        notify, self._pending = self._pending, []
        groups: dict[int, list[Watch]] = {}
        for key, watch in list(self._watches.items()):
            if now >= watch.deadline:
                del self._watches[key]
                watch._end(
                    "timeout", now, WaitTimeout(watch.job.task_id, watch.timeout, watch.task)
                )
                notify.append(watch)
        by_client: dict[int, list[Watch]] = {}
        for watch in self._watches.values():
            by_client.setdefault(id(watch.job.client), []).append(watch)
        for client_key, watches in by_client.items():
            batch = pick(
                now,
                [(w, w.due, w.delay) for w in watches],
                window=self.batch_window,
                ride=self.ride,
            )
            if batch:
                groups[client_key] = batch
        return notify, groups

    def tick(self) -> float | None:
        """Fetch what is due, update jobs, call listeners; the seconds until the next due job."""
        with self._cond:
            notify, groups = self._take_due(self.clock())
        for batch in groups.values():
            notify.extend(self._poll(batch))
        for watch in notify:
            _tell(watch)
        with self._cond:
            if not self._watches:
                return None
            # A due job waits its slack (a tenth of its delay, at most 1 s) for others to join.
            soonest = min(
                min(w.due + min(SLACK_MAX, SLACK * w.delay), w.deadline)
                for w in self._watches.values()
            )
            return max(0.0, soonest - self.clock())

    def _poll(self, batch: list[Watch]) -> list[Watch]:
        """One ``fetch_many`` for a client's due jobs; returns the watches that changed."""
        client = batch[0].job.client
        ids = list(dict.fromkeys(w.job.task_id for w in batch))
        self.fetch_calls += 1
        # The fetch may not outlive the earliest deadline among the watches it serves.
        timeout = min(_MAX_FETCH_SECONDS, *(w.waiter.request_timeout() for w in batch))
        try:
            tasks = client.fetch_many(ids, timeout=timeout)
        except Exception as error:
            with self._cond:
                return [w for w in batch if self._failed_fetch(w, error)]
        by_id = {task.task_id: task for task in tasks}
        changed: list[Watch] = []
        with self._cond:
            for watch in batch:
                try:
                    if self._apply(watch, by_id.get(watch.job.task_id)):
                        changed.append(watch)
                except Exception as error:  # never leave a watch hanging on our own bug
                    self._finish(watch, "error", error)
                    changed.append(watch)
        return changed

    def _failed_fetch(self, watch: Watch, error: Exception) -> bool:
        if watch.state != "watching":
            return False
        try:
            watch.waiter.on_error(error)  # backs off after a transient error, raises the rest
        except Exception as fatal:
            self._finish(watch, "error", fatal)
            return True
        self._plan(watch)
        return False

    def _apply(self, watch: Watch, task: Task | None) -> bool:
        """Under the lock: record one snapshot (or its absence); True when listeners must hear."""
        if watch.state != "watching":
            return False  # cancelled while the fetch was in flight
        if task is None:
            watch.misses += 1
            if watch.misses >= _MAX_MISSES:
                error = LumaError(f"The service does not know task {watch.job.task_id}.")
                self._finish(watch, "error", error)
                return True
            watch.waiter.on_absent()
            self._plan(watch)
            return False
        watch.misses = 0
        watch.job.observe(task)
        moved = not watch.samples or watch.samples[-1][1] != task.percentage
        if task.percentage is not None and task.status == "processing" and moved:
            watch.samples.append((self.clock(), task.percentage))
        try:
            finished = watch.waiter.on_task(task)
        except TaskFailedError as failed:
            self._finish(watch, "failed", failed)
            return True
        if finished:
            self._finish(watch, "finished", None)
            return True
        self._plan(watch)
        return True  # even when unchanged: the elapsed time moved

    def _plan(self, watch: Watch) -> None:
        """The next look at ``watch``'s job: the waiter's delay, never past the deadline."""
        watch.delay = watch.waiter.delay
        watch.due = min(self.clock() + watch.delay, watch.deadline)

    def _finish(self, watch: Watch, state: str, error: BaseException | None) -> None:
        self._watches.pop(id(watch.job), None)
        watch._end(state, self.clock(), error)


def _tell(watch: Watch) -> None:
    for listener in watch.listeners():
        try:
            listener(watch)
        except Exception as error:
            watch.listener_error = error
            _log.exception("a luma_nb progress listener failed for task %s", watch.job.task_id)
    if watch.state != "watching":
        watch._release()


_default: Watcher | None = None
_default_lock = threading.Lock()


def get_watcher() -> Watcher:
    """The process-wide watcher (its thread starts with the first watch)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Watcher()
        return _default


def watch(job: Job, *, timeout: float = DEFAULT_TIMEOUT, listener: Listener | None = None) -> Watch:
    """Watch ``job`` on the process-wide watcher; see :meth:`Watcher.watch`."""
    return get_watcher().watch(job, timeout=timeout, listener=listener)


def unwatch(job: Job) -> Watch | None:
    """Stop watching ``job`` on the process-wide watcher; see :meth:`Watcher.unwatch`."""
    return get_watcher().unwatch(job)
