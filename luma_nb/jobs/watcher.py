"""The one background polling loop: every watched job of every client, on one daemon thread.

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

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..contract.errors import LumaError, TaskFailedError, WaitTimeout
from .batching import SLACK, SLACK_MAX, pick
from .watch import DEFAULT_TIMEOUT, PUSH_QUIET, Listener, Watch, WatchCancelled

if TYPE_CHECKING:
    from ..contract.models import Task
    from .job import Job

__all__ = (
    "DEFAULT_TIMEOUT",
    "Watch",
    "WatchCancelled",
    "Watcher",
    "get_watcher",
    "unwatch",
    "watch",
)

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
    20 ids are filled with that client's jobs due soonest (:func:`~luma_nb.jobs.batching.pick`):
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
