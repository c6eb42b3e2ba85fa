"""What a render worker does with one job (runs in a worker process, or a thread in legacy mode).

A job names its output file and everything the video shows. Jobs are plain frozen dataclasses,
so they pickle into a :class:`concurrent.futures.ProcessPoolExecutor`; nothing here touches the
sandbox's state.
"""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import multiprocessing
import os
import signal
import sys
import threading
from dataclasses import dataclass

__all__ = ("RenderJob", "RenderStats", "drop_broken_pool", "process_pool", "run_job")


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


def warm_up() -> None:
    """Prepare a fresh worker: ignore Ctrl-C, and import the video stack so its first job does
    not pay for it.

    The workers share the sandbox's process group, so an interrupt meant for the sandbox (a
    kernel being interrupted or shut down, Ctrl-C in a terminal) reaches them too; the sandbox
    decides what happens to their jobs, and a worker printing a KeyboardInterrupt traceback
    into the notebook would only be noise.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from . import remux, video  # noqa: F401

    video._require_extra()


_pool: cf.ProcessPoolExecutor | None = None
_pool_lock = threading.Lock()


def process_pool() -> cf.ProcessPoolExecutor:
    """The process-wide render pool, one worker per core, started on first need."""
    global _pool
    with _pool_lock:
        if _pool is None:
            # forkserver: workers never inherit the threads (and locks) of a busy sandbox.
            method = "forkserver" if sys.platform.startswith("linux") else "spawn"
            context = multiprocessing.get_context(method)
            if method == "forkserver":
                context.set_forkserver_preload(["luma_nb.sandbox.work"])
            _pool = cf.ProcessPoolExecutor(
                max_workers=os.cpu_count() or 1, mp_context=context, initializer=warm_up
            )
            atexit.register(_pool.shutdown, wait=False, cancel_futures=True)
        return _pool


def drop_broken_pool() -> None:
    global _pool
    with _pool_lock:
        _pool = None
