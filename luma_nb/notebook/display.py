"""Text and HTML renderings of tasks and jobs, for notebooks with or without widgets.

Every piece of user or server text (prompts, statuses, error reasons, URLs) goes through
:func:`esc` before it lands in HTML, and only http(s) URLs ever become ``src`` or ``href``
attributes (:func:`safe_url`). The renderings carry no timings, ports or widget ids unless they
show a URL or task id, so notebook outputs stay as stable as the data they show.
"""

from __future__ import annotations

import html
import math
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import quote, urlsplit

if TYPE_CHECKING:
    from ..contract.models import Task
    from ..jobs.job import Job

__all__ = (
    "DEMO_NOTE",
    "esc",
    "eta_seconds",
    "format_seconds",
    "image_html",
    "in_kernel",
    "job_bundle",
    "job_html",
    "job_text",
    "prompt_preview",
    "safe_url",
    "show_blocking",
    "show_view",
    "status_text",
    "task_html",
    "task_text",
    "text_bundle",
    "video_html",
)

#: What the form and the progress view say when the client talks to the offline sandbox.
DEMO_NOTE = "Demo mode: offline sandbox, no credits used"
#: Characters kept as they are when a URL is re-quoted (RFC 3986 reserved and unreserved,
#: without the quote characters that could end an HTML attribute).
_URL_SAFE = ":/?#[]@!$&()*+,;=%~-._"
_PROMPT_PREVIEW = 120


def esc(text: object) -> str:
    """``html.escape`` of ``str(text)``, quotes included."""
    return html.escape(str(text), quote=True)


def safe_url(url: object) -> str | None:
    """An absolute http(s) URL made safe for an HTML attribute, or None for anything else.

    ``javascript:``, ``data:``, relative and host-less URLs give None. Characters that could end
    an attribute or a tag (quotes, ``<``, ``>``, spaces) are percent-encoded.
    """
    if not isinstance(url, str):
        return None
    text = url.strip()
    if not text or any(ord(ch) < 32 for ch in text):
        return None
    try:
        parts = urlsplit(text)
        host = parts.hostname
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    return quote(text, safe=_URL_SAFE)


def format_seconds(seconds: float | None) -> str:
    """``75.2`` -> ``"1:15"``; ``3725`` -> ``"1:02:05"``; None or negative -> ``"-"``."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "-"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def eta_seconds(samples: Sequence[tuple[float, float]]) -> float | None:
    """Seconds until 100 %, from ``(time, percentage)`` samples; None until progress moves.

    The rate is taken from the first sample to the last, which smooths the service's uneven
    percentage steps.
    """
    if len(samples) < 2:
        return None
    (t0, p0), (t1, p1) = samples[0], samples[-1]
    if t1 <= t0 or p1 <= p0:
        return None
    rate = (p1 - p0) / (t1 - t0)
    return max(0.0, (100.0 - p1) / rate)


def status_text(task: Task | None) -> str:
    """The status: ``pending``, ``processing 40%``, ``failed: reason``; unknown ones as sent."""
    if task is None:
        return "not looked at yet"
    return task.describe()


def prompt_preview(prompt: str | None) -> str | None:
    """The prompt on one line, cut to 120 characters; None for no prompt."""
    if not prompt:
        return None
    flat = " ".join(prompt.split())
    return flat if len(flat) <= _PROMPT_PREVIEW else flat[: _PROMPT_PREVIEW - 1] + "…"


def task_text(task: Task) -> str:
    """Plain text of a snapshot: id, status and, once finished, the video URL."""
    lines = [f"Task {task.task_id}: {status_text(task)}"]
    if task.video_url:
        lines.append(f"video: {task.video_url}")
    return "\n".join(lines)


def job_text(job: Job) -> str:
    """Plain text of a job: kind, prompt, parent, status, and the video URL once finished."""
    kind = (
        "extend" if job.parent_task_id or (job.task and job.task.task_type == "luma-ext") else "job"
    )
    lines = [f"Luma {kind} {job.task_id}: {status_text(job.task)}"]
    preview = prompt_preview(job.prompt)
    if preview:
        lines.append(f"prompt: {preview}")
    if job.parent_task_id:
        lines.append(f"parent: {job.parent_task_id}")
    if job.task is not None and job.task.video_url:
        lines.append(f"video: {job.task.video_url}")
    return "\n".join(lines)


def video_html(url: object, *, width: int | None = 480) -> str:
    """A ``<video>`` element for an http(s) URL, or an escaped note when the URL is unusable."""
    src = safe_url(url)
    if src is None:
        return f"<p><em>No playable video URL</em> ({esc(url)})</p>"
    size = f' width="{int(width)}"' if width else ""
    return (
        f'<video src="{esc(src)}" controls{size}>'
        "Your browser does not support the <code>video</code> element.</video>"
    )


def image_html(url: object, *, height: int = 72, alt: str = "preview") -> str:
    """An ``<img>`` thumbnail for an http(s) URL; empty text for anything else."""
    src = safe_url(url)
    if src is None:
        return ""
    return (
        f'<img src="{esc(src)}" alt="{esc(alt)}" height="{int(height)}" '
        'style="border:1px solid #ccc;border-radius:3px" referrerpolicy="no-referrer">'
    )


def _status_colour(task: Task | None) -> str:
    if task is None:
        return "#666"
    if task.is_finished:
        return "#2e7d32"
    if task.is_failed:
        return "#c62828"
    return "#1565c0"


def task_html(task: Task, *, width: int | None = 480) -> str:
    """HTML of a snapshot: id, status (coloured) and, once finished, the video player."""
    parts = [
        '<div class="luma-nb-task">',
        f"<b>Task</b> <code>{esc(task.task_id)}</code>: "
        f'<span style="color:{_status_colour(task)}">{esc(status_text(task))}</span>',
    ]
    if task.percentage is not None and not task.is_terminal:
        pct = int(task.percentage)
        parts.append(f'<br><progress max="100" value="{pct}"></progress> {pct}%')
    if task.is_finished and task.video_url:
        parts.append("<br>" + video_html(task.video_url, width=width))
    parts.append("</div>")
    return "".join(parts)


def job_html(job: Job, *, width: int | None = 480, note: str | None = None) -> str:
    """HTML of a job: prompt, parent, status and, once finished, the video player."""
    task = job.task
    parts = ['<div class="luma-nb-job">']
    if note:
        parts.append(f"<div><em>{esc(note)}</em></div>")
    preview = prompt_preview(job.prompt)
    if preview:
        parts.append(f"<div><b>Prompt:</b> {esc(preview)}</div>")
    if job.parent_task_id:
        parts.append(f"<div><b>Parent:</b> <code>{esc(job.parent_task_id)}</code></div>")
    parts.append(
        f"<div><b>Task</b> <code>{esc(job.task_id)}</code>: "
        f'<span style="color:{_status_colour(task)}">{esc(status_text(task))}</span></div>'
    )
    if task is not None and task.percentage is not None and not task.is_terminal:
        pct = int(task.percentage)
        parts.append(f'<progress max="100" value="{pct}"></progress> {pct}%')
    if task is not None and task.is_finished and task.video_url:
        parts.append(video_html(task.video_url, width=width))
    parts.append("</div>")
    return "".join(parts)


# -- showing jobs (kernel or not) -------------------------------------------------------------


def in_kernel() -> bool:
    """True inside a Jupyter kernel (where widgets may render), False in a terminal or script."""
    if "IPython" not in sys.modules:
        return False
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


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

    from ..jobs.watcher import get_watcher

    stream = out if out is not None else sys.stdout
    watcher = get_watcher()
    started_here = watcher.watching(job) is None
    watch = watcher.watch(job, timeout=timeout)
    last = None
    try:
        while True:
            ended = watch._ending.wait(0.1)
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
