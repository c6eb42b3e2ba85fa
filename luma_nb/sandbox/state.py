"""The sandbox's task store: one lock around all state, life cycle on demand, persistence.

Statuses are computed from each task's age whenever somebody looks (a fetch, the webhook ticker,
a test). Looking also starts the work a status implies: the video render once processing begins,
a webhook when the status or the percentage (in steps of 10) changed. That work is handed to the
callbacks *after* the lock is released, so a fetch never waits for a render or a webhook.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..contract.text import ordinal
from .db import StateDB
from .faults import TaskFault
from .lifecycle import Progress, make_plan, progress
from .records import TaskRecord

__all__ = ("COST", "InsufficientCredits", "Store", "TaskRecord", "TooManyRunning")

log = logging.getLogger("luma_nb.sandbox")

#: Credits one imagine or extend costs (documented).
COST = 6
_TERMINAL = ("finished", "failed")


class InsufficientCredits(Exception):
    """The account has fewer credits than a submit costs."""


class TooManyRunning(Exception):
    """The account has as many generations running as it may (a submit then gets 429)."""


def _hooks_done(record: TaskRecord) -> bool:
    """True once the final (finished or failed) webhook of a task was queued."""
    return record.hook_key is not None and record.hook_key[0] in _TERMINAL


@dataclass
class _Outbox:
    renders: list[str] = field(default_factory=list)
    hooks: list[tuple[str, str | None, dict[str, Any]]] = field(default_factory=list)


class Store:
    """All tasks and the account of one sandbox, guarded by one lock."""

    def __init__(
        self,
        *,
        persist: bool,
        speed: float,
        seed: int | None,
        credits: int | None,
        on_render: Callable[[str], None],
        on_hook: Callable[[str, str | None, dict[str, Any]], None],
    ) -> None:
        self.lock = threading.RLock()
        self.use_workdir(Path("."))
        self._persist = persist
        self.speed = speed
        self.seed = seed
        self.credits = credits
        self.total_images = 0
        self.base_url = ""
        self.public_url: str | None = None
        self.render_stage: Callable[[str], tuple[str, int | None]] = lambda task_id: ("idle", None)
        self._db: StateDB | None = None
        self.finished_status = False
        self.percentage_as_number = False
        self.skew = 0.0  # simulated seconds added by advance()
        self._on_render = on_render
        self._on_hook = on_hook
        self._tasks: dict[str, TaskRecord] = {}
        self._open: set[str] = set()  # submitted tasks not seen finished or failed yet
        self._outbox = _Outbox()
        self._serial = 0

    # -- set-up and persistence -------------------------------------------------------------

    def use_workdir(self, workdir: Path) -> None:
        """Keep media (and, with persistence, tasks and the account) under ``workdir``."""
        self.workdir = workdir
        self.media_dir = workdir / "media"

    def load(self, demos: list[TaskRecord], *, reset_credits: bool = False) -> None:
        """Add the demo parents and, with persistence, the tasks and account of the data dir.

        ``reset_credits`` starts the account afresh (a new lesson) while keeping the tasks.
        """
        self.media_dir.mkdir(parents=True, exist_ok=True)
        with self.lock:
            for demo in demos:
                demo.media_ready = (self.media_dir / f"{demo.task_id}.mp4").is_file()
                self._tasks[demo.task_id] = demo
            if not self._persist:
                return
            self._db = StateDB(self.workdir / "sandbox.db")
            data = self._db.account()
            self._serial = int(data.get("serial", 0))
            if not reset_credits:
                stored = data.get("credits", self.credits)
                self.credits = None if stored is None else int(stored)
                self.total_images = int(data.get("total_images", 0))
            now_wall, now_mono = time.time(), time.monotonic()
            for item in self._db.tasks():
                try:
                    record = TaskRecord.from_json(item)
                except (ValueError, TypeError, KeyError) as exc:
                    name = item.get("task_id")
                    log.warning("sandbox: skipping unreadable task %s: %s", name, exc)
                    continue
                # Wall-clock ages keep the life cycle going across a restart.
                age = max(0.0, now_wall - record.created_wall)
                record.created_mono = now_mono - age
                record.media_ready = (self.media_dir / f"{record.task_id}.mp4").is_file()
                self._tasks[record.task_id] = record
                state = self._progress(record)
                if state.status in _TERMINAL:
                    record.hook_key = (state.status, None)  # its final webhook went out before
                else:
                    self._open.add(record.task_id)
            if reset_credits:
                self.save_account()

    def close(self) -> None:
        """Close the state file (the store is not used afterwards)."""
        with self.lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _save(self, record: TaskRecord, *, account: bool = False) -> None:
        if self._db is None:
            return
        task = None if record.demo else record.to_json()
        self._db.save(task, self._account() if account else None)

    def _account(self) -> dict[str, Any]:
        return {"credits": self.credits, "total_images": self.total_images, "serial": self._serial}

    def save_account(self) -> None:
        if self._db is not None:
            self._db.save(account=self._account())

    def reset_credits(self, credits: int | None) -> None:
        """Give the account ``credits`` (None: unlimited) and zero its image count."""
        with self.lock:
            self.credits = credits
            self.total_images = 0
            self.save_account()

    def charge(self) -> bool:
        """True when the account can pay for one submit (call under :attr:`lock`)."""
        return self.credits is None or self.credits >= COST

    # -- submit ----------------------------------------------------------------------------

    def _new_id(self) -> str:
        while True:
            self._serial += 1
            if self.seed is None:
                task_id = str(uuid.uuid4())
            else:
                rng = random.Random(f"id:{self.seed}:{self._serial}")  # noqa: S311 - not secret
                bits = rng.getrandbits(128)
                task_id = str(uuid.UUID(int=bits, version=4))
            if task_id not in self._tasks:
                return task_id

    def running(self) -> int:
        """How many submitted tasks are not finished or failed yet (call under :attr:`lock`)."""
        for task_id in list(self._open):
            if self._progress(self._tasks[task_id]).status in _TERMINAL:
                self._open.discard(task_id)
        return len(self._open)

    def create(
        self,
        task_type: str,
        params: dict[str, Any],
        fault: TaskFault | None,
        *,
        max_running: int | None = None,
    ) -> str:
        """Charge the account and add a task; returns its id.

        :raises InsufficientCredits: when fewer than :data:`COST` credits are left.
        :raises TooManyRunning: when ``max_running`` tasks are running already.
        """
        with self._looking():
            if not self.charge():
                raise InsufficientCredits
            if max_running is not None and self.running() >= max_running:
                raise TooManyRunning
            task_id = self._new_id()
            # Timetables are simulation, not secrets.
            seed = f"plan:{self.seed}:{task_id}" if self.seed is not None else None
            rng = random.Random(seed)  # noqa: S311
            record = TaskRecord(task_id=task_id, task_type=task_type, **params)
            record.plan = make_plan(rng, fault)
            record.seed = rng.getrandbits(31)
            record.created_wall = time.time()
            record.created_mono = time.monotonic()
            self._tasks[task_id] = record
            self._open.add(task_id)
            if self.credits is not None:
                self.credits -= COST
            self.total_images += 1
            self._save(record, account=True)
            self._observe(record)
            return task_id

    # -- looking at tasks ------------------------------------------------------------------

    def elapsed(self, record: TaskRecord) -> float:
        """Simulated seconds since the task was submitted."""
        return (time.monotonic() - record.created_mono) * self.speed + self.skew

    def _progress(self, record: TaskRecord) -> Progress:
        if record.demo:
            return Progress("finished", 100)
        if record.error is not None:
            return Progress("failed", None, record.error)
        assert record.plan is not None
        state = (
            Progress("finished", 100)
            if record.forced
            else progress(record.plan, self.elapsed(record))
        )
        if state.status in ("processing", "finished") and not record.media_ready:
            return self._held(record, state)
        return state

    def _held(self, record: TaskRecord, state: Progress) -> Progress:
        """Processing, held below 100 % until the video exists, saying what it waits for."""
        stage, position = self.render_stage(record.task_id)
        pct = 100 if state.status == "finished" else (state.percentage or 0)
        if stage == "rendering":
            return Progress("processing", min(pct, 97), "rendering the video")
        if stage == "parent":
            return Progress("processing", min(pct, 90), "waiting for the parent's video")
        if position is not None:
            note = f"waiting for a renderer ({ordinal(position)} in line)"
            return Progress("processing", min(pct, 90), note, position)
        return Progress("processing", min(pct, 90))

    def _body(self, record: TaskRecord, state: Progress) -> dict[str, Any]:
        body: dict[str, Any] = {"task_id": record.task_id, "task_type": record.task_type}
        if state.status == "finished":
            if self.finished_status:
                body["status"] = "finished"
            body["video_url"] = f"{self.public_url or self.base_url}/media/{record.task_id}.mp4"
            return body
        body["status"] = state.status
        if state.status == "failed":
            body["message"] = state.message or "Task failed"
        elif state.status == "processing" and state.percentage is not None:
            pct = state.percentage
            body["percentage"] = pct if self.percentage_as_number else str(pct)
            if state.position is not None and state.message:
                body["progress_note"] = state.message  # not documented: the sandbox's own
        return body

    @contextmanager
    def _looking(self) -> Iterator[None]:
        """Hold the lock; once released, start the renders and webhooks queued meanwhile."""
        with self.lock:
            yield
            outbox, self._outbox = self._outbox, _Outbox()
        for task_id in outbox.renders:
            self._on_render(task_id)
        for url, secret, body in outbox.hooks:
            self._on_hook(url, secret, body)

    def _observe(self, record: TaskRecord) -> tuple[Progress, dict[str, Any]]:
        """The state and fetch body now; queues the render and webhook this moment calls for."""
        state = self._progress(record)
        plan = record.plan
        doomed = (
            plan is not None
            and not record.forced
            and (plan.fail_at is not None or plan.stall_at is not None)
        )
        wants_video = state.status == "processing" and not doomed
        if wants_video and not record.media_ready and not record.render_queued:
            record.render_queued = True
            self._outbox.renders.append(record.task_id)
        body = self._body(record, state)
        if record.webhook_url:
            step = (
                state.percentage // 10
                if state.status == "processing" and state.percentage is not None
                else None
            )
            key = (state.status, step)
            if key != record.hook_key:
                record.hook_key = key
                self._outbox.hooks.append((record.webhook_url, record.webhook_secret, body))
        return state, body

    def fetch(self, task_ids: list[str]) -> list[dict[str, Any]]:
        """The fetch bodies of the known ids among ``task_ids`` (unknown ones are left out)."""
        with self._looking():
            return [self._observe(self._tasks[t])[1] for t in task_ids if t in self._tasks]

    def tick(self) -> bool:
        """Look at every task with a webhook still in flight; True while any remains."""
        busy = False
        with self._looking():
            for record in self._tasks.values():
                if record.webhook_url and not _hooks_done(record):
                    self._observe(record)
                    busy = busy or not _hooks_done(record)
        return busy

    def records(self) -> list[TaskRecord]:
        """All live records (read them under :attr:`lock`)."""
        with self.lock:
            return list(self._tasks.values())

    def record(self, task_id: str) -> TaskRecord | None:
        """The live record of a task (read it under :attr:`lock`), or None."""
        with self.lock:
            return self._tasks.get(task_id)

    def view(self, task_id: str) -> dict[str, Any]:
        """The server-side view of a task: its fetch body plus what the sandbox knows.

        :raises KeyError: for an unknown id.
        """
        with self._looking():
            record = self._tasks[task_id]
            state, body = self._observe(record)
            view = record.to_json()
            view.pop("webhook_secret")
            view.update(
                status=state.status,
                percentage=state.percentage,
                message=state.message,
                queue_position=state.position,
                media_ready=record.media_ready,
                demo=record.demo,
                body=body,
                render_notes=list(record.render_notes),
            )
            return view

    def parent_state(self, task_id: str) -> str | None:
        """The status of a would-be parent task, or None when it does not exist."""
        with self._looking():
            record = self._tasks.get(task_id)
            return None if record is None else self._observe(record)[0].status

    # -- changes from the renderer and the tests -------------------------------------------

    def media_done(self, task_id: str, error: str | None = None) -> None:
        """The renderer wrote the task's video (or failed to, with ``error``)."""
        with self._looking():
            record = self._tasks[task_id]
            record.render_queued = False
            if error is None:
                record.media_ready = True
                record.render_error = None
            else:
                record.render_error = error
                if not record.demo:
                    record.error = error
                    self._save(record)
            self._observe(record)

    def set_render(self, task_id: str, key: str, notes: tuple[str, ...]) -> None:
        """Remember the render key and the notes drawn on a task's video."""
        with self.lock:
            record = self._tasks.get(task_id)
            if record is not None:
                record.render_key, record.render_notes = key, notes
                self._save(record)

    def own_urls(self) -> list[str]:
        """The base URLs under which this sandbox serves its media."""
        return [u for u in (self.base_url, self.public_url) if u]

    def force_finish(self, task_id: str) -> None:
        """Skip the rest of the simulated time (the task finishes once its video exists).

        :raises KeyError: for an unknown id.
        """
        with self._looking():
            record = self._tasks[task_id]
            if not record.demo and record.error is None:
                record.forced = True
                self._save(record)
            self._observe(record)
