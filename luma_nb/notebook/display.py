"""Text and HTML renderings of tasks and jobs, for notebooks with or without widgets.

Every piece of user or server text (prompts, statuses, error reasons, URLs) goes through
:func:`esc` before it lands in HTML, and only http(s) URLs ever become ``src`` or ``href``
attributes (:func:`safe_url`). The renderings carry no timings, ports or widget ids unless they
show a URL or task id, so notebook outputs stay as stable as the data they show.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..contract.eta import eta_seconds
from ..contract.text import esc, safe_url

if TYPE_CHECKING:
    from ..contract.models import Task
    from ..jobs.job import Job

__all__ = (
    "DEMO_NOTE",
    "esc",
    "eta_seconds",
    "form_html",
    "form_text",
    "format_seconds",
    "image_html",
    "job_html",
    "job_text",
    "prompt_preview",
    "safe_url",
    "status_text",
    "task_html",
    "task_text",
    "video_html",
)

#: What the form and the progress view say when the client talks to the offline sandbox.
DEMO_NOTE = "Demo mode: offline sandbox, no credits used"
_PROMPT_PREVIEW = 120


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


#: Where the live widgets work; said by the static renderings that stand in for them.
LIVE_FRONT_ENDS = "JupyterLab, Notebook 7, Voila, VS Code or Colab with the kernel running"


def form_text(parent_task_id: str | None, prompt: str | None = None) -> str:
    """Plain text standing in for the extend form where widgets do not render."""
    parent = parent_task_id or "<parent task id>"
    lines = [
        f"ExtendForm for task {parent}: type a prompt, press Submit, watch it, play the video.",
        f"It is a live form: it works in {LIVE_FRONT_ENDS}.",
        f'In code: job = client.extend("{parent}", "what happens next")',
    ]
    preview = prompt_preview(prompt)
    if preview:
        lines.insert(1, f"prompt: {preview}")
    return "\n".join(lines)


def form_html(mode_html: str, parent_task_id: str | None, prompt: str | None = None) -> str:
    """Static HTML standing in for the extend form (nbconvert, GitHub, no widget manager).

    ``mode_html`` is the form's own banner (already HTML: demo mode, class, live API).
    """
    parent = parent_task_id or "<parent task id>"
    parts = [
        '<div class="luma-nb-form-static" '
        'style="border:1px solid #ccc;border-radius:4px;padding:8px 12px;max-width:640px">',
        f"<div>{mode_html}</div>" if mode_html else "",
        f"<div><b>Extend a video</b>: parent task <code>{esc(parent)}</code></div>",
    ]
    preview = prompt_preview(prompt)
    if preview:
        parts.append(f"<div><b>Prompt:</b> {esc(preview)}</div>")
    parts += [
        "<div>Type a prompt, press <b>Submit</b>, watch the progress, play the video.</div>",
        f'<div style="color:#666;font-size:90%">A live form: it works in {esc(LIVE_FRONT_ENDS)}. '
        f"In code: <code>job = client.extend(&quot;{esc(parent)}&quot;, "
        "&quot;what happens next&quot;)</code></div>",
        "</div>",
    ]
    return "".join(parts)
