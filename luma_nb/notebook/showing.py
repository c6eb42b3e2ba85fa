"""Showing a job: a live progress widget in a kernel, progress lines and HTML elsewhere.

This is what :func:`luma_nb.show` does, and what a job shows as a cell's result in a kernel:
:func:`register_formatters` tells IPython's display formatter to show a
:class:`~luma_nb.Job` as a live :class:`~luma_nb.ProgressView` (elsewhere a job shows its own
text and HTML, :meth:`Job._repr_html_`).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, TextIO

from ..contract.errors import LumaError
from .display import DEMO_NOTE, job_html, job_text, status_text, task_html
from .frontend import in_kernel

if TYPE_CHECKING:
    from ..client.job import Job
    from ..contract.models import Task

__all__ = (
    "in_kernel",
    "job_bundle",
    "register_formatters",
    "show",
    "show_blocking",
    "show_view",
    "task_result_html",
    "text_bundle",
)


def text_bundle(job: Job) -> dict[str, Any]:
    """``text/plain`` and ``text/html`` of a job (the video player once finished, with its
    poster: a saved notebook shows the picture, never a dead player)."""
    return {
        "text/plain": job_text(job),
        "text/html": job_html(job, note=_note(job), player=_player(job.task, job)),
    }


def _player(task: Task | None, job: Job | None = None) -> str | None:
    from .media import poster_player

    if task is None or not task.is_finished:
        return None
    client = job.client if job is not None else None
    try:
        return poster_player(
            task,
            service=client.service if client is not None else None,
            session=client.session if client is not None else None,
        )
    except Exception:  # a route or poster that fails leaves the plain player
        return None


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
    """Display progress, then the video.

    In Jupyter (``wait=None``) the live progress view is displayed and the call returns at once;
    the video appears in the view when the job finishes. Outside a kernel (terminal IPython,
    plain Python), or with ``wait=True``, it blocks (``job.wait``): one progress line per
    change, then the result (video HTML for front-ends that render it). Ctrl-C stops the wait.
    """
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
    """Wait for ``job`` with :meth:`Job.wait`, printing a line per change; then display the
    result. Ctrl-C (KeyboardInterrupt) stops the wait; the task keeps running at the service."""
    from IPython.display import display

    stream = out if out is not None else sys.stdout

    def line(task: Task) -> None:
        print(f"{job.task_id}: {status_text(task)}", file=stream, flush=True)

    if job.task is not None:
        line(job.task)
    try:
        job.wait(timeout=timeout, on_progress=line)
    except LumaError as error:
        print(f"{job.task_id}: {error}", file=stream, flush=True)
    display(text_bundle(job), raw=True)  # type: ignore[no-untyped-call]


def register_formatters(shell: Any) -> None:
    """Show a :class:`~luma_nb.Job` in ``shell`` (IPython's) as :func:`job_bundle` says, and a
    finished :class:`~luma_nb.Task` with its poster in its player (:func:`task_result_html`).

    Registered by class name, so nothing is imported until a job or task is shown.
    """
    formatter = shell.display_formatter.mimebundle_formatter
    formatter.for_type_by_name("luma_nb.client.job", "Job", _job_mimebundle)
    html = shell.display_formatter.formatters["text/html"]
    html.for_type_by_name("luma_nb.contract.models", "Task", task_result_html)


def task_result_html(task: Task) -> str:
    """A task's HTML as a cell's result: its own, with the poster in the player once finished."""
    return task_html(task, player=_player(task))


def _job_mimebundle(job: Job, include: Any = None, exclude: Any = None) -> dict[str, Any]:
    return job_bundle(job)
