"""One poller for the whole class: every open task is watched upstream with ``/fetch-many``.

Each tick fetches all open tasks at once, in chunks of 20 (⌈open tasks / 20⌉ requests), and
the next tick comes when the soonest task needs a look by the polling policy's pacing. So the
upstream sees requests per class, not per student; students' fetches are answered from the
store. ``last_look`` (wall-clock) is what the relay tells clients about its freshness.

Several relay processes may share one database (PostgreSQL): each task is then polled by one
of them only, the holder of its lease in the store (:meth:`RelayStore.claim`). A poller claims
the tasks it is about to fetch and renews its leases every third of their length from a thread
of its own while it runs; as often, it adopts the open tasks of the whole class from the store.
So when a relay dies another takes its tasks over once their leases expire. A task leased
elsewhere is looked at again (a claim, not an upstream request) after half a lease; its state
reaches this relay's students through the shared store, and so does when the upstream was last
asked (``last_look``, refreshed on each beat).
"""

from __future__ import annotations

import logging
import math
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable

from ..client.client import FETCH_MANY_MAX, LumaClient
from ..contract.errors import LumaError, RateLimitError
from ..contract.models import Task
from ..contract.polling import PollPolicy, Schedule
from .store import RelayStore, TaskUpdate

__all__ = ("DEFAULT_LEASE", "Poller", "gone", "new_holder")

log = logging.getLogger("luma_nb.relay")

#: Longest sleep between two looks at an idle class (new submits wake the poller at once).
_IDLE = 30.0
#: The meta key of the class's last upstream poll (wall-clock), shared by its relays.
_LAST_LOOK = "poller_last_look"
#: Seconds a lease lasts unless renewed (another relay takes the task over after that).
DEFAULT_LEASE = 15.0


def new_holder() -> str:
    """A name for one poller's leases, unique across processes and hosts:
    ``relay-PID-RANDOM@HOST``."""
    return f"relay-{os.getpid()}-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"


def gone(holder: str) -> bool:
    """True when ``holder`` names a relay process of this host that no longer runs (one
    killed before it could give up its heartbeat). A relay of another host, or a name of
    another form, is never judged here: the expiry of its heartbeat decides."""
    found = re.fullmatch(r"relay-(\d+)-[0-9a-f]+@(.+)", holder)
    if found is None or found.group(2) != socket.gethostname():
        return False
    pid = int(found.group(1))
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's process: alive
        return False
    try:  # a zombie (dead, not yet reaped by its parent) is gone too
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rpartition(")")[2].split()[:1] == ["Z"]
    except OSError:
        return False


class Poller:
    """A daemon thread that keeps the store's open tasks up to date from the upstream."""

    def __init__(
        self,
        store: RelayStore,
        upstream: LumaClient,
        policy: PollPolicy,
        *,
        clock: Callable[[], float] = time.monotonic,
        lease: float = DEFAULT_LEASE,
        holder: str | None = None,
        on_renew: Callable[[], object] | None = None,
    ) -> None:
        if not lease > 0:
            raise ValueError("lease must be positive")
        self._store = store
        self._upstream = upstream
        self.policy = policy
        """When to look at each task again (one schedule per task)."""
        self._clock = clock
        self._schedules: dict[str, tuple[Schedule, float]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._renewer: threading.Thread | None = None
        self.last_look: float | None = None
        """Wall-clock time of the last answer from the upstream (None before the first)."""
        self.ticks = 0
        """How many ticks ran (for tests and the benchmark)."""
        self.upstream_requests = 0
        """HTTP requests sent upstream by the poller (⌈ids / 20⌉ per tick)."""
        self.lease = lease
        """Seconds a lease lasts unless renewed."""
        self.holder = holder or new_holder()
        """The name this poller's leases carry in the store."""
        self._held: set[str] = set()
        self._on_renew = on_renew
        self._next_beat = 0.0

    def start(self) -> None:
        """Watch the open tasks already in the store (after a restart), then run."""
        self._store.heartbeat(self.holder, self.lease)
        now = self._clock()
        for task_id in self._store.open_tasks():
            self._add(task_id, now, fresh=False)
        self._thread = threading.Thread(target=self._run, name="luma-relay-poller", daemon=True)
        self._thread.start()
        self._renewer = threading.Thread(
            target=self._renew_loop, name="luma-relay-leases", daemon=True
        )
        self._renewer.start()

    def stop(self) -> None:
        """Stop and join the thread, then give up this poller's leases (others take over)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)
        if self._renewer is not None:
            self._renewer.join(10)
        try:
            self._store.drop_leases(self.holder)
        except Exception:  # the database may be gone; the leases then just expire
            log.warning("relay: could not give up the polling leases", exc_info=True)

    def watch(self, task_id: str) -> None:
        """Start watching a task that was just submitted."""
        self._add(task_id, self._clock(), fresh=True)
        self._wake.set()

    def _add(self, task_id: str, now: float, *, fresh: bool) -> None:
        schedule = self.policy.schedule(now, fresh=fresh)
        with self._lock:
            self._schedules.setdefault(task_id, (schedule, now + schedule.first_delay()))

    @property
    def watching(self) -> int:
        """How many tasks are open."""
        with self._lock:
            return len(self._schedules)

    @property
    def held(self) -> int:
        """How many tasks this poller holds the lease of (polls upstream)."""
        with self._lock:
            return len(self._held)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self._clock() >= self._next_beat:
                    self.beat()
                with self._lock:
                    due = min((at for _, at in self._schedules.values()), default=None)
                now = self._clock()
                delay = min(_IDLE if due is None else due - now, self._next_beat - now)
                if delay > 0:
                    self._wake.wait(delay)
                    self._wake.clear()
                    continue
                self.tick()
            except Exception:  # never let the class's only poller die
                log.exception("relay: poll tick failed")
                self._stop.wait(1.0)

    def beat(self) -> None:
        """Adopt the class's open tasks, forget those settled elsewhere, share the last look.

        Runs on the polling thread every third of a lease.
        """
        now = self._clock()
        self._next_beat = now + self.lease / 3
        try:
            shared = float(self._store.get_meta(_LAST_LOOK) or 0.0)
        except ValueError:
            shared = 0.0
        if shared > (self.last_look or 0.0):
            self.last_look = shared
        with self._lock:
            known = set(self._schedules)  # a task watched after the read below is not judged
        open_ids = self._store.open_tasks()
        still_open = set(open_ids)
        with self._lock:
            for task_id in known - still_open:  # finished or failed: another relay saw it
                self._schedules.pop(task_id, None)
            new = [t for t in open_ids if t not in self._schedules]
        for task_id in new:
            self._add(task_id, now, fresh=False)

    def renew(self) -> None:
        """Renew this relay's heartbeat and the leases it holds (every third of a lease).

        Apart from the polling thread, so a slow tick (a slow upstream, a busy machine) does
        not let the leases lapse while this relay is alive.
        """
        self._store.heartbeat(self.holder, self.lease)
        with self._lock:
            held = list(self._held)
        kept = set(self._store.claim(held, self.holder, self.lease))
        with self._lock:
            self._held -= set(held) - kept

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.lease / 3):
            try:
                self.renew()
                if self._on_renew is not None:
                    self._on_renew()
            except Exception:  # the database may be away for a moment: try on the next beat
                log.warning("relay: could not renew the polling leases", exc_info=True)

    def tick(self) -> None:
        """Look at every open task once (chunks of 20) and reschedule them."""
        with self._lock:
            ids = list(self._schedules)
        if not ids:
            return
        mine = self._store.claim(ids, self.holder, self.lease)
        now = self._clock()
        with self._lock:
            self._held = set(mine)
            for task_id in set(ids) - self._held:
                # Polled by another relay: try for its lease again after half a lease.
                entry = self._schedules.get(task_id)
                if entry is not None:
                    self._schedules[task_id] = (entry[0], now + self.lease / 2)
        ids = mine
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
                for task_id in ids:
                    entry = self._schedules.get(task_id)
                    if entry is not None:
                        schedule = entry[0]
                        self._schedules[task_id] = (schedule, now + schedule.error(now, retry))
            return
        self.last_look = time.time()
        # The class's relays share when the upstream was last asked (read back in beat()),
        # so a relay whose tasks another one polls still tells its students how fresh they are.
        self._store.set_meta(_LAST_LOOK, f"{self.last_look:.3f}")
        now = self._clock()
        seen: dict[str, Task] = {}
        updates = []
        for task in tasks:
            seen[task.task_id] = task
            failure = (task.error or "no reason given") if task.is_failed else None
            updates.append(TaskUpdate(task.task_id, task.raw, task.is_terminal, failure))
        self._store.update_tasks(updates)
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
