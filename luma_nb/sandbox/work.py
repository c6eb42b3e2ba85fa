"""What a render worker does with one job (runs in a worker process, or a thread in legacy mode).

A job names its output file and everything the video shows. Jobs are plain frozen dataclasses,
so they pickle into a :class:`concurrent.futures.ProcessPoolExecutor`; nothing here touches the
sandbox's state.

The pool's processes never outlive the process that started them, however it ends (SIGKILL
included). Every worker gets the read end of a *lifeline*, a pipe whose only write end stays
in the starting process; a thread in the worker waits on it and ends the worker at end of file,
which the operating system delivers the moment the starter is gone. multiprocessing's own
helpers then end by themselves: its forkserver and its resource tracker each read a pipe whose
write ends are held by the starter and the workers only.
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
from multiprocessing.connection import Connection
from typing import Any

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


def warm_up(lifeline: Connection | None = None) -> None:
    """Prepare a fresh worker: end it with its starter, ignore Ctrl-C, and import the video stack
    so its first job does not pay for it.

    ``lifeline`` is the read end of the starter's lifeline (see :func:`process_pool`): a thread
    waits on it and ends this worker when the starter is gone.

    The workers share the sandbox's process group, so an interrupt meant for the sandbox (a
    kernel being interrupted or shut down, Ctrl-C in a terminal) reaches them too; the sandbox
    decides what happens to their jobs, and a worker printing a KeyboardInterrupt traceback
    into the notebook would only be noise.
    """
    if lifeline is not None:
        threading.Thread(
            target=_end_with_starter, args=(lifeline,), name="luma-sandbox-lifeline", daemon=True
        ).start()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from . import remux, video  # noqa: F401

    video._require_extra()


def _end_with_starter(lifeline: Connection) -> None:
    """Wait until no process holds the lifeline's write end (its starter is gone), then end this
    worker at once: a render under way is abandoned, nobody is left to want it."""
    try:
        while True:
            lifeline.recv_bytes()  # nothing is ever sent: this returns only at end of file
    except (EOFError, OSError):
        pass
    os._exit(0)


_pool: cf.ProcessPoolExecutor | None = None
_pool_lock = threading.Lock()
# This process's lifeline: (read end, write end), made with its first pool and kept open for
# as long as the process lives. The write end is held by this process only.
_lifeline: tuple[Connection, Connection] | None = None


def _lifeline_reader(context: Any) -> Connection:
    """The read end of this process's lifeline (made on first need), to hand to a worker."""
    global _lifeline
    if _lifeline is None:
        # Not inheritable (close-on-exec): no program this process runs holds the write end.
        _lifeline = context.Pipe(duplex=False)
    return _lifeline[0]


def _forget_in_forked_child() -> None:
    """In a child forked (os.fork) from a process with a pool: the pool and its lifeline are
    the parent's. The child closes its copy of the write end, so the parent's workers never
    wait on the child; a render in the child would start a pool of its own."""
    global _pool, _pool_lock, _lifeline
    if _lifeline is not None:
        for end in _lifeline:
            end.close()
    _lifeline = None
    _pool = None
    _pool_lock = threading.Lock()


if hasattr(os, "register_at_fork"):  # not on Windows, which cannot fork
    os.register_at_fork(after_in_child=_forget_in_forked_child)


def process_pool() -> cf.ProcessPoolExecutor:
    """The process-wide render pool, one worker per core, started on first need.

    Its processes end with this process, however it ends: each worker watches the read end of
    a pipe whose only write end this process keeps (end of file = this process is gone), and
    multiprocessing's forkserver and resource tracker end once this process and the workers
    are gone. A parent-death signal (Linux ``PR_SET_PDEATHSIG``) would not do: the workers are
    the forkserver's children, not this process's, the signal follows the *thread* that started
    the forkserver (here a sandbox's dispatcher thread, which ends with that sandbox while the
    pool is shared), and it exists on Linux only. The pipe works with any start method.
    """
    global _pool
    with _pool_lock:
        if _pool is None:
            # forkserver: workers never inherit the threads (and locks) of a busy sandbox.
            method = "forkserver" if sys.platform.startswith("linux") else "spawn"
            context = multiprocessing.get_context(method)
            if method == "forkserver":
                context.set_forkserver_preload(["luma_nb.sandbox.work"])
            _pool = cf.ProcessPoolExecutor(
                max_workers=os.cpu_count() or 1,
                mp_context=context,
                initializer=warm_up,
                initargs=(_lifeline_reader(context),),
            )
            atexit.register(_pool.shutdown, wait=False, cancel_futures=True)
        return _pool


def drop_broken_pool() -> None:
    global _pool
    with _pool_lock:
        _pool = None


def stop_pool() -> None:
    """End the render pool's workers now (renders under way finish first); the next render
    starts a new pool. multiprocessing's forkserver and resource tracker stay: they serve the
    whole process and end with it."""
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)
