"""HTML and plain text of tasks and jobs: what they show as a cell's result (no IPython).

Every piece of user or server text (prompts, statuses, error reasons, URLs) goes through
:func:`~luma_nb.contract.text.esc` before it lands in HTML, and only http(s) URLs ever become
``src`` or ``href`` attributes (:func:`~luma_nb.contract.text.safe_url`). The renderings carry
no timings, ports or widget ids unless they show a URL or task id, so notebook outputs stay as
stable as the data they show.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from .text import esc, safe_url

if TYPE_CHECKING:
    from .models import Task

__all__ = (
    "JobLike",
    "image_html",
    "job_html",
    "job_text",
    "prompt_preview",
    "status_text",
    "task_html",
    "task_text",
    "video_html",
)

_PROMPT_PREVIEW = 120


class JobLike(Protocol):
    """What a job's renderings read (a :class:`~luma_nb.Job` has it)."""

    @property
    def task_id(self) -> str: ...
    @property
    def task(self) -> Task | None: ...
    @property
    def prompt(self) -> str | None: ...
    @property
    def parent_task_id(self) -> str | None: ...


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


def job_text(job: JobLike) -> str:
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


def task_html(task: Task, *, width: int | None = 480, player: str | None = None) -> str:
    """HTML of a snapshot: id, status (coloured) and, once finished, the video player
    (``player``, HTML made elsewhere, e.g. with the task's poster; else a plain one)."""
    parts = [
        '<div class="luma-nb-task">',
        f"<b>Task</b> <code>{esc(task.task_id)}</code>: "
        f'<span style="color:{_status_colour(task)}">{esc(status_text(task))}</span>',
    ]
    if task.percentage is not None and not task.is_terminal:
        pct = int(task.percentage)
        parts.append(f'<br><progress max="100" value="{pct}"></progress> {pct}%')
    if task.is_finished and task.video_url:
        parts.append("<br>" + (player or video_html(task.video_url, width=width)))
    parts.append("</div>")
    return "".join(parts)


def job_html(
    job: JobLike, *, width: int | None = 480, note: str | None = None, player: str | None = None
) -> str:
    """HTML of a job: prompt, parent, status and, once finished, the video player
    (``player``, HTML made elsewhere; else a plain one)."""
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
        parts.append(player or video_html(task.video_url, width=width))
    parts.append("</div>")
    return "".join(parts)
