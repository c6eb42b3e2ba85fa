"""One poller for the whole class: every open task is watched upstream with ``/fetch-many``.

Each tick fetches all open tasks at once, in chunks of 20 (⌈open tasks / 20⌉ requests), and
the next tick comes when the soonest task needs a look by the polling policy's pacing. So the
upstream sees requests per class, not per student; students' fetches are answered from the
store. ``last_look`` (wall-clock) is what the relay tells clients about its freshness.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

from ..api.client import FETCH_MANY_MAX, LumaClient
from ..contract.errors import LumaError, RateLimitError
from ..contract.models import Task
from ..contract.polling import PollPolicy, Schedule
from .store import RelayStore

__all__ = ("Poller",)

log = logging.getLogger("luma_nb.relay")

#: Longest sleep between two looks at an idle class (new submits wake the poller at once).
_IDLE = 30.0


class Poller:
    """A daemon thread that keeps the store's open tasks up to date from the upstream."""

    def __init__(
        self,
        store: RelayStore,
        upstream: LumaClient,
        policy: PollPolicy,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._upstream = upstream
        self._policy = policy
        self._clock = clock
        self._schedules: dict[str, tuple[Schedule, float]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_look: float | None = None
        """Wall-clock time of the last answer from the upstream (None before the first)."""
        self.ticks = 0
        """How many ticks ran (for tests and the benchmark)."""
        self.upstream_requests = 0
        """HTTP requests sent upstream by the poller (⌈ids / 20⌉ per tick)."""

    def start(self) -> None:
        """Watch the open tasks already in the store (after a restart), then run."""
        now = self._clock()
        for task_id in self._store.open_tasks():
            self._add(task_id, now, fresh=False)
        self._thread = threading.Thread(target=self._run, name="luma-relay-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop and join the thread."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)

    def watch(self, task_id: str) -> None:
        """Start watching a task that was just submitted."""
        self._add(task_id, self._clock(), fresh=True)
        self._wake.set()

    def _add(self, task_id: str, now: float, *, fresh: bool) -> None:
        schedule = self._policy.schedule(now, fresh=fresh)
        with self._lock:
            self._schedules.setdefault(task_id, (schedule, now + schedule.first_delay()))

    @property
    def watching(self) -> int:
        """How many tasks are open."""
        with self._lock:
            return len(self._schedules)

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                due = min((at for _, at in self._schedules.values()), default=None)
            delay = _IDLE if due is None else max(0.0, due - self._clock())
            if delay > 0:
                self._wake.wait(delay)
                self._wake.clear()
                continue
            try:
                self.tick()
            except Exception:  # never let the class's only poller die
                log.exception("relay: poll tick failed")
                self._stop.wait(1.0)

    def tick(self) -> None:
        """Look at every open task once (chunks of 20) and reschedule them."""
        with self._lock:
            ids = list(self._schedules)
        if not ids:
            return
        self.ticks += 1
        self.upstream_requests += math.ceil(len(ids) / FETCH_MANY_MAX)
        try:
            tasks = self._upstream.fetch_many(ids)
        except LumaError as error:
            retry = error.retry_after if isinstance(error, RateLimitError) else None
            now = self._clock()
            log.warning("relay: upstream poll failed: %s", error)
            with self._lock:
                for task_id, (schedule, _) in list(self._schedules.items()):
                    self._schedules[task_id] = (schedule, now + schedule.error(now, retry))
            return
        self.last_look = time.time()
        now = self._clock()
        seen: dict[str, Task] = {}
        for task in tasks:
            seen[task.task_id] = task
            failure = (task.error or "no reason given") if task.is_failed else None
            self._store.update_task(
                task.task_id, task.raw, terminal=task.is_terminal, failure=failure
            )
        with self._lock:
            for task_id in ids:
                entry = self._schedules.get(task_id)
                if entry is None:
                    continue
                schedule = entry[0]
                found = seen.get(task_id)
                if found is None:  # not (yet) known upstream: look again, backing off
                    self._schedules[task_id] = (schedule, now + schedule.error(now))
                elif found.is_terminal:
                    schedule.observe(now, "finished" if found.is_finished else "failed", None)
                    del self._schedules[task_id]
                else:
                    delay = schedule.observe(now, found.status, found.percentage)
                    self._schedules[task_id] = (schedule, now + delay)
