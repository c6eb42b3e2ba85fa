"""What a render worker does with one job (runs in a worker process, or a thread in legacy mode).

A job names its output file and everything the video shows. Jobs are plain frozen dataclasses,
so they pickle into the render pool (:mod:`~luma_nb.sandbox.pool`, whose processes never
outlive the process that started them); nothing here touches the sandbox's state.
"""

from __future__ import annotations

import atexit
import os
import threading
from dataclasses import dataclass

from .pool import WorkerPool

__all__ = (
    "RenderJob",
    "RenderStats",
    "drop_broken_pool",
    "process_pool",
    "run_job",
    "stop_pool",
)


@dataclass(frozen=True)
class RenderJob:
    """One video to make."""

    out: str
    """The file to write (atomically)."""
    prompt: str
    """The text the video shows."""
    aspect_ratio: str
    """The frame shape (ignored for an extension: the parent's is kept)."""
    seconds: float
    """Length of the new footage."""
    seed: int
    """Colour seed."""
    notes: tuple[str, ...] = ()
    """Small lines drawn at the bottom."""
    first_frame: bytes | None = None
    """Image bytes shown at the start of the new footage."""
    last_frame: bytes | None = None
    """Image bytes shown at its end."""
    parent: str | None = None
    """The parent video to extend, if any."""
    cheap: bool = True
    """Join the new seconds to the parent without re-encoding it (False: re-encode it all)."""


@dataclass
class RenderStats:
    """What a renderer did so far (``sandbox.render_stats``)."""

    rendered: int = 0
    """Videos synthesized."""
    cache_hits: int = 0
    """Tasks served from a video made before."""
    joined: int = 0
    """Tasks that shared a render under way for the same request."""
    failed: int = 0
    """Renders that raised."""


def run_job(job: RenderJob) -> str:
    """Make the job's video; returns its path.

    :raises Exception: whatever synthesis raised (the caller fails the task with it).
    """
    from .remux import ParamsMismatch, extend_cheaply
    from .video import synthesize

    if job.parent is not None and job.cheap:
        try:
            extend_cheaply(
                job.out,
                job.parent,
                prompt=job.prompt,
                seconds=job.seconds,
                first_frame=job.first_frame,
                last_frame=job.last_frame,
                notes=job.notes,
                seed=job.seed,
            )
            return job.out
        except ParamsMismatch:
            pass  # a parent from another encoder: re-encode it with the new footage
    synthesize(
        job.out,
        prompt=job.prompt,
        aspect_ratio=job.aspect_ratio,
        seconds=job.seconds,
        parent=job.parent,
        first_frame=job.first_frame,
        last_frame=job.last_frame,
        notes=job.notes,
        seed=job.seed,
    )
    return job.out


_pool: WorkerPool | None = None
_pool_lock = threading.Lock()


def _forget_in_forked_child() -> None:
    """In a child forked (os.fork) from a process with a pool: the pool is the parent's. The
    child closes its copies of the workers' pipes, so they never wait on the child; a render in
    the child would start a pool of its own."""
    global _pool, _pool_lock
    if _pool is not None:
        _pool.forget_in_forked_child()
    _pool = None
    _pool_lock = threading.Lock()


if hasattr(os, "register_at_fork"):  # not on Windows, which cannot fork
    os.register_at_fork(after_in_child=_forget_in_forked_child)


def process_pool() -> WorkerPool:
    """The process-wide render pool, one worker per core, started on first need (see
    :mod:`~luma_nb.sandbox.pool`: its workers end with this process, however it ends)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = WorkerPool(os.cpu_count() or 1)
            atexit.register(_pool.shutdown, wait=False, cancel_futures=True)
        return _pool


def drop_broken_pool() -> None:
    global _pool
    with _pool_lock:
        _pool = None


def stop_pool() -> None:
    """End the render pool's workers now (renders under way finish first); the next render
    starts a new pool."""
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)
