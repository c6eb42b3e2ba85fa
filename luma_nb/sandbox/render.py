"""The renderer: a waiting line in front of a process pool that turns tasks into MP4 files.

A task is handed over when it enters processing. A small thread pool *prepares* it (fetches its
frame images, computes its cache key): a cached video is linked at once, a render already under
way for the same key is joined, and anything else takes its place in the line. One dispatcher
feeds the line, in order, to a pool of worker processes (:mod:`~luma_nb.sandbox.pool`) sized to the
cores (shared by the sandboxes of a process), never more jobs at a time than it has workers,
so :meth:`Renderer.position` can say where a task stands ("3rd in line").

``mode="threads"`` keeps the earlier design for comparison: two render threads in this process,
every extension re-encoding its parent, no cache.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import logging
import os
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from .cache import key_seed, link_into, render_key
from .inputs import fetch_image
from .state import Store
from .work import RenderJob, RenderStats, drop_broken_pool, process_pool, run_job

__all__ = ("MODES", "SEGMENT_SECONDS", "RenderStats", "Renderer")

log = logging.getLogger("luma_nb.sandbox")

#: The render modes: worker processes (default), or the earlier two in-process threads.
MODES = ("processes", "threads")
#: Seconds of video each imagine, and each extension, adds.
SEGMENT_SECONDS = 5.0
_ENSURE_TIMEOUT = 120.0


@dataclass
class _Job:
    key: str
    spec: RenderJob
    seq: int
    tasks: list[str] = field(default_factory=list)
    running: bool = False


class Renderer:
    """Synthesizes task videos into the store's media folder."""

    def __init__(
        self,
        store: Store,
        *,
        local_media: Callable[[str], bytes | None],
        mode: str = "processes",
        workers: int | None = None,
        max_queue: int = 5000,
        demo_cache: Path | None = None,
    ) -> None:
        """``local_media(name)`` returns the bytes the sandbox serves at ``/media/<name>``.

        :param workers: renders at a time (default: one per core; 2 in ``threads`` mode).
        :param max_queue: renders that may wait in line before submits are refused.
        :param demo_cache: where demo parents are kept across sandboxes (None: not kept).
        """
        if mode not in MODES:
            raise ValueError(f"render mode must be one of {MODES}, got {mode!r}")
        self._store = store
        self._local_media = local_media
        self.mode = mode
        self.workers = workers or (2 if mode == "threads" else os.cpu_count() or 1)
        self.max_queue = max_queue
        self.demo_cache = demo_cache if mode == "processes" else None
        self.stats = RenderStats()
        self._cv = threading.Condition()
        self._line: deque[_Job] = deque()
        self._by_key: dict[str, _Job] = {}
        self._where: dict[str, _Job] = {}
        self._queued: set[str] = set()
        self._after: dict[str, list[str]] = {}  # parent id -> tasks waiting for its video
        self._next_seq = self._head = 0
        self._in_flight = 0
        self._stopped = False
        self.paused = False
        self._threads: cf.ThreadPoolExecutor | None = None
        self._prepare: cf.ThreadPoolExecutor | None = None
        self._dispatcher: threading.Thread | None = None
        self._finished = threading.Condition()

    # -- the line ----------------------------------------------------------------------------

    @property
    def cache_dir(self) -> Path:
        """Where rendered videos are kept by key."""
        return self._store.workdir / "cache"

    def waiting(self) -> int:
        """Renders waiting in line (not yet handed to a worker)."""
        with self._cv:
            return len(self._line)

    def full(self) -> bool:
        """True when the line is at :attr:`max_queue` (new submits get 429)."""
        return self.waiting() >= self.max_queue

    def position(self, task_id: str) -> int | None:
        """1 for the next render to start, 2 for the one after...; None when not waiting."""
        with self._cv:
            job = self._where.get(task_id)
            if job is None or job.running:
                return None
            return job.seq - self._head + 1

    def stage(self, task_id: str) -> tuple[str, int | None]:
        """Where a task's render stands: ``("line", position)``, ``("rendering", None)``,
        ``("parent", None)`` (waiting for its parent's video) or ``("idle", None)``."""
        with self._cv:
            job = self._where.get(task_id)
            if job is not None:
                return ("rendering", None) if job.running else ("line", job.seq - self._head + 1)
            if any(task_id in waiting for waiting in self._after.values()):
                return "parent", None
            return "idle", None

    def pause(self, paused: bool = True) -> None:
        """Hold the line (no new render starts) or, with False, let it move again."""
        with self._cv:
            self.paused = paused
            self._cv.notify_all()

    def submit(self, task_id: str) -> None:
        """Render ``task_id`` in the background (the store hears back through ``media_done``)."""
        with self._cv:
            if self._stopped or task_id in self._queued:
                return
            self._queued.add(task_id)
            if self._prepare is None:
                self._prepare = cf.ThreadPoolExecutor(4, thread_name_prefix="luma-sandbox-prep")
                self._dispatcher = threading.Thread(
                    target=self._dispatch, name="luma-sandbox-render", daemon=True
                )
                self._dispatcher.start()
            prepare = self._prepare
        try:
            prepare.submit(self._prepare_task, task_id)
        except RuntimeError:  # shut down meanwhile
            return

    def stop(self, timeout: float = 10.0) -> None:
        """Drop the renders waiting, wait for those under way, and end the threads."""
        with self._cv:
            self._stopped = True
            self._line.clear()
            self._cv.notify_all()
            deadline_wait = self._cv.wait_for(lambda: self._in_flight == 0, timeout)
            prepare, threads, dispatcher = self._prepare, self._threads, self._dispatcher
        if not deadline_wait:
            log.info("sandbox: renders still running at stop")
        if prepare is not None:
            prepare.shutdown(wait=True, cancel_futures=True)
        if threads is not None:
            threads.shutdown(wait=False, cancel_futures=True)
        if dispatcher is not None:
            dispatcher.join(timeout)

    def ensure(self, task_id: str) -> Path:
        """Return the task's MP4, rendering it first (through the line) if needed.

        :raises KeyError: for an unknown task.
        :raises RuntimeError: when the render failed or took too long.
        """
        path = self._store.media_dir / f"{task_id}.mp4"
        with self._store.lock:
            record = self._store.record(task_id)
            if record is None:
                raise KeyError(task_id)
            if record.media_ready and path.is_file():
                return path
            record.render_error = None  # a demo parent whose render failed may be tried again
        self.submit(task_id)
        with self._finished:

            def settled() -> bool:
                with self._store.lock:
                    return record.media_ready or record.render_error is not None

            if not self._finished.wait_for(settled, _ENSURE_TIMEOUT):
                raise RuntimeError(f"the video of {task_id} was not ready in time")
        if record.render_error is not None:
            raise RuntimeError(record.render_error)
        return path

    # -- preparing -------------------------------------------------------------------------

    def _prepare_task(self, task_id: str) -> None:
        try:
            job = self._make_job(task_id)
        except Exception as exc:
            log.warning("sandbox: preparing the render of %s failed: %s", task_id, exc)
            self._finish([task_id], None, f"Video synthesis failed: {exc}")
            return
        if job is None:
            return
        key, spec = job
        hit = False
        with self._cv:
            if self._stopped:
                self._queued.discard(task_id)
                return
            if self.mode == "processes" and Path(spec.out).is_file():
                hit = True
                self.stats.cache_hits += 1
            elif self.mode == "processes" and key in self._by_key:
                found = self._by_key[key]
                found.tasks.append(task_id)
                self._where[task_id] = found
                self.stats.joined += 1
            else:
                entry = _Job(key, spec, self._next_seq, [task_id])
                self._next_seq += 1
                self._line.append(entry)
                self._by_key[key] = entry
                self._where[task_id] = entry
                self._cv.notify_all()
        if hit:
            self._finish([task_id], Path(spec.out), None)

    def _make_job(self, task_id: str) -> tuple[str, RenderJob] | None:
        store = self._store
        with store.lock:
            record = store.record(task_id)
            if record is None:
                return None
            prompt = record.prompt + (" (enhanced)" if record.enhance_prompt else "")
            aspect, parent_id, seed = record.aspect_ratio, record.parent_task_id, record.seed
            urls = (record.image_url, record.end_image_url)
            notes = list(record.notes)
            if record.loop:
                notes.append("loop: on")
            demo = record.demo
        parent_path, parent_key = None, None
        if parent_id:
            parent_path = store.media_dir / f"{parent_id}.mp4"
            if not self._parent_ready(task_id, parent_id, parent_path):
                return None  # prepared again once the parent's video exists
            with store.lock:
                parent = store.record(parent_id)
                parent_key = parent.render_key if parent is not None else None
            parent_key = parent_key or f"task:{parent_id}"
        own = self._store.own_urls()
        first = fetch_image(urls[0], "first frame", notes, own, self._local_media)
        last = fetch_image(urls[1], "last frame", notes, own, self._local_media)
        key = render_key(
            prompt=prompt,
            aspect_ratio=aspect,
            parent_key=parent_key,
            first_frame=first,
            last_frame=last,
            notes=notes,
            seconds=SEGMENT_SECONDS,
        )
        store.set_render(task_id, key, tuple(notes))
        if self.mode == "threads":
            out = store.media_dir / f"{task_id}.mp4"  # the earlier design: no cache
        else:
            folder = self.demo_cache if demo and self.demo_cache is not None else self.cache_dir
            out, seed = folder / f"{key}.mp4", key_seed(key)
        spec = RenderJob(
            out=str(out),
            prompt=prompt,
            aspect_ratio=aspect,
            seconds=SEGMENT_SECONDS,
            seed=seed,
            notes=tuple(notes),
            first_frame=first,
            last_frame=last,
            parent=str(parent_path) if parent_path is not None else None,
            cheap=self.mode == "processes",
        )
        return key, spec

    def _parent_ready(self, task_id: str, parent_id: str, path: Path) -> bool:
        """True when the parent's video exists; otherwise the task waits for it (not a thread)."""

        def ready() -> bool:
            with self._store.lock:
                parent = self._store.record(parent_id)
                if parent is None:
                    raise KeyError(f"parent task {parent_id} is gone")
                if parent.render_error is not None and not parent.media_ready:
                    raise RuntimeError(parent.render_error)
                return parent.media_ready and path.is_file()

        if ready():
            return True
        with self._cv:
            self._after.setdefault(parent_id, []).append(task_id)
        self.submit(parent_id)
        if not ready():
            return False  # _finish of the parent prepares this task again
        with self._cv:
            waiting = self._after.get(parent_id, [])
            if task_id not in waiting:
                return False  # the parent finished meanwhile and already took it back
            waiting.remove(task_id)
        return True

    # -- dispatching -----------------------------------------------------------------------

    def _executor(self) -> cf.Executor:
        if self.mode == "processes":
            return process_pool()
        with self._cv:
            if self._threads is None:
                self._threads = cf.ThreadPoolExecutor(
                    self.workers, thread_name_prefix="luma-sandbox-render"
                )
            return self._threads

    def _dispatch(self) -> None:
        while True:
            with self._cv:
                self._cv.wait_for(
                    lambda: (
                        self._stopped
                        or bool(self._line and not self.paused and self._in_flight < self.workers)
                    )
                )
                if self._stopped:
                    return
                job = self._line.popleft()
                self._head = job.seq + 1
                job.running = True
                self._in_flight += 1
            try:
                future = self._executor().submit(run_job, job.spec)
            except Exception as exc:  # a broken pool: the next job gets a fresh one
                drop_broken_pool()
                self._done(job, None, exc)
                continue
            future.add_done_callback(functools.partial(self._settle, job))

    def _settle(self, job: _Job, future: cf.Future[str]) -> None:
        error = future.exception()
        if isinstance(error, BrokenProcessPool):
            drop_broken_pool()  # a worker died (killed?): the next job gets a fresh pool
        self._done(job, Path(job.spec.out) if error is None else None, error)

    def _done(self, job: _Job, path: Path | None, error: BaseException | None) -> None:
        with self._cv:
            self._in_flight -= 1
            if self._by_key.get(job.key) is job:
                del self._by_key[job.key]
            if error is None:
                self.stats.rendered += 1
            else:
                self.stats.failed += 1
            self._cv.notify_all()
            tasks = list(job.tasks)
        message = None
        if error is not None:
            log.warning("sandbox: rendering %s failed: %s", job.tasks[0], error)
            message = f"Video synthesis failed: {error}"
        self._finish(tasks, path, message)

    def _finish(self, tasks: list[str], path: Path | None, error: str | None) -> None:
        for task_id in tasks:
            problem = error
            target = self._store.media_dir / f"{task_id}.mp4"
            if problem is None and path is not None and path != target:
                try:
                    link_into(path, target)
                except OSError as exc:
                    problem = f"Video synthesis failed: {exc}"
            with self._cv:
                self._where.pop(task_id, None)
                self._queued.discard(task_id)
            self._store.media_done(task_id, error=problem)
            with self._cv:
                children = self._after.pop(task_id, [])
                prepare = None if self._stopped else self._prepare
            for child in children:
                if prepare is not None:
                    prepare.submit(self._prepare_task, child)
        with self._finished:
            self._finished.notify_all()
