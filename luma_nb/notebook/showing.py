"""Showing a job: a live progress widget in a kernel, progress lines and HTML elsewhere.

This is what ``job.show()`` and a job as a cell's result do (through the rendering slots the
notebook layer fills, :mod:`luma_nb.contract.rendering`).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, TextIO

from ..jobs.watcher import get_watcher
from .display import DEMO_NOTE, job_html, job_text, status_text
from .frontend import in_kernel

if TYPE_CHECKING:
    from ..jobs.job import Job

__all__ = ("in_kernel", "job_bundle", "show", "show_blocking", "show_view", "text_bundle")


def text_bundle(job: Job) -> dict[str, Any]:
    """``text/plain`` and ``text/html`` of a job (the video player once finished)."""
    return {"text/plain": job_text(job), "text/html": job_html(job, note=_note(job))}


def _note(job: Job) -> str | None:
    return DEMO_NOTE if job.client.is_sandbox else None


def job_bundle(job: Job) -> dict[str, Any]:
    """What ``job`` shows as a cell's result.

    In a kernel: a live :class:`~luma_nb.ProgressView` (watching starts) plus ``text/html``
    of the current state and a stable ``text/plain`` for front-ends without the widget manager.
    Elsewhere: text and HTML only, and nothing is watched.
    """
    if not in_kernel():
        return text_bundle(job)
    from .widgets import ProgressView

    bundle = ProgressView(job)._repr_mimebundle_()
    return bundle if bundle is not None else text_bundle(job)


def show(job: Job, *, wait: bool | None = None, timeout: float = 1800) -> None:
    """``job.show()``: the live view in a kernel (``wait=None``), else blocking progress lines."""
    if wait is None:
        wait = not in_kernel()
    if wait:
        show_blocking(job, timeout=timeout)
    else:
        show_view(job, timeout=timeout)


def show_view(job: Job, *, timeout: float) -> None:
    """Display a live progress view of ``job`` (returns at once)."""
    from IPython.display import display

    from .widgets import ProgressView

    display(ProgressView(job, timeout=timeout))  # type: ignore[no-untyped-call]


def show_blocking(job: Job, *, timeout: float, out: TextIO | None = None) -> None:
    """Wait for ``job`` on the watcher, printing a line per change; then display the result.

    Ctrl-C (KeyboardInterrupt) stops waiting; if this call started the watching, it stops it too,
    so no watcher entry is left behind.
    """
    from IPython.display import display

    stream = out if out is not None else sys.stdout
    watcher = get_watcher()
    started_here = watcher.watching(job) is None
    watch = watcher.watch(job, timeout=timeout)
    last = None
    try:
        while True:
            ended = watch.wait_ended(0.1)
            line = f"{job.task_id}: {status_text(job.task)}"
            if line != last:
                print(line, file=stream, flush=True)
                last = line
            if ended:
                break
    except BaseException:
        if started_here:
            watcher.unwatch(job)
        raise
    if watch.state not in ("finished", "failed"):
        print(f"{job.task_id}: {watch.error or watch.state}", file=stream, flush=True)
    display(text_bundle(job), raw=True)  # type: ignore[no-untyped-call]
