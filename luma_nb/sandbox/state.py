"""The sandbox's task store: one lock around all state, life cycle on demand, persistence.

Statuses are computed from each task's age whenever somebody looks (a fetch, the webhook ticker,
a test). Looking also starts the work a status implies: the video render once processing begins,
a webhook when the status or the percentage (in steps of 10) changed. That work is handed to the
callbacks *after* the lock is released, so a fetch never waits for a render or a webhook.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .faults import TaskFault
from .lifecycle import Progress, make_plan, progress
from .records import TaskRecord

__all__ = ("COST", "InsufficientCredits", "Store", "TaskRecord")

log = logging.getLogger("luma_nb.sandbox")

#: Credits one imagine or extend costs (documented).
COST = 6
_TERMINAL = ("finished", "failed")


class InsufficientCredits(Exception):
    """The account has fewer credits than a submit costs."""


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
        credits: int,
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
        self.finished_status = False
        self.percentage_as_number = False
        self.skew = 0.0  # simulated seconds added by advance()
        self._on_render = on_render
        self._on_hook = on_hook
        self._tasks: dict[str, TaskRecord] = {}
        self._outbox = _Outbox()
        self._serial = 0

    # -- set-up and persistence -------------------------------------------------------------

    def use_workdir(self, workdir: Path) -> None:
        """Keep media (and, with persistence, tasks and the account) under ``workdir``."""
        self.workdir = workdir
        self.media_dir = workdir / "media"
        self._tasks_dir = workdir / "tasks"

    def load(self, demos: list[TaskRecord]) -> None:
        """Add the demo parents and, with persistence, the tasks and account of the data dir."""
        self.media_dir.mkdir(parents=True, exist_ok=True)
        with self.lock:
            for demo in demos:
                demo.media_ready = (self.media_dir / f"{demo.task_id}.mp4").is_file()
                self._tasks[demo.task_id] = demo
            if not self._persist:
                return
            self._tasks_dir.mkdir(parents=True, exist_ok=True)
            account = self.workdir / "account.json"
            if account.is_file():
                data = json.loads(account.read_text("utf-8"))
                self.credits = int(data.get("credits", self.credits))
                self.total_images = int(data.get("total_images", 0))
                self._serial = int(data.get("serial", 0))
            now_wall, now_mono = time.time(), time.monotonic()
            for path in sorted(self._tasks_dir.glob("*.json")):
                try:
                    record = TaskRecord.from_json(json.loads(path.read_text("utf-8")))
                except (OSError, ValueError, TypeError, KeyError) as exc:
                    log.warning("sandbox: skipping unreadable task file %s: %s", path, exc)
                    continue
                # Wall-clock ages keep the life cycle going across a restart.
                age = max(0.0, now_wall - record.created_wall)
                record.created_mono = now_mono - age
                record.media_ready = (self.media_dir / f"{record.task_id}.mp4").is_file()
                self._tasks[record.task_id] = record
                state = self._progress(record)
                if state.status in _TERMINAL:
                    record.hook_key = (state.status, None)  # its final webhook went out before

    def _write_json(self, path: Path, data: dict[str, Any]) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(data, indent=1), "utf-8")
        os.replace(tmp, path)

    def _save(self, record: TaskRecord) -> None:
        if self._persist and not record.demo:
            self._write_json(self._tasks_dir / f"{record.task_id}.json", record.to_json())

    def _save_account(self) -> None:
        if self._persist:
            data = {
                "credits": self.credits,
                "total_images": self.total_images,
                "serial": self._serial,
            }
            self._write_json(self.workdir / "account.json", data)

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

    def create(self, task_type: str, params: dict[str, Any], fault: TaskFault | None) -> str:
        """Charge the account and add a task; returns its id.

        :raises InsufficientCredits: when fewer than :data:`COST` credits are left.
        """
        with self._looking():
            if self.credits < COST:
                raise InsufficientCredits
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
            self.credits -= COST
            self.total_images += 1
            self._save(record)
            self._save_account()
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
        if state.status == "finished" and not record.media_ready:
            return Progress("processing", 99)  # the video is still being written
        return state

    def _body(self, record: TaskRecord, state: Progress) -> dict[str, Any]:
        body: dict[str, Any] = {"task_id": record.task_id, "task_type": record.task_type}
        if state.status == "finished":
            if self.finished_status:
                body["status"] = "finished"
            body["video_url"] = f"{self.base_url}/media/{record.task_id}.mp4"
            return body
        body["status"] = state.status
        if state.status == "failed":
            body["message"] = state.message or "Task failed"
        elif state.status == "processing" and state.percentage is not None:
            pct = state.percentage
            body["percentage"] = pct if self.percentage_as_number else str(pct)
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
            elif not record.demo:
                record.error = error
                self._save(record)
            self._observe(record)

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
