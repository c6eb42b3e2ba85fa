"""Text and HTML renderings of tasks and jobs, for notebooks with or without widgets.

Every piece of user or server text (prompts, statuses, error reasons, URLs) goes through
:func:`esc` before it lands in HTML, and only http(s) URLs ever become ``src`` or ``href``
attributes (:func:`safe_url`). The renderings carry no timings, ports or widget ids unless they
show a URL or task id, so notebook outputs stay as stable as the data they show.
"""

from __future__ import annotations

import math

from ..contract.eta import eta_seconds
from ..contract.html import (
    image_html,
    job_html,
    job_text,
    prompt_preview,
    status_text,
    task_html,
    task_text,
    video_html,
)
from ..contract.plain_words import SANDBOX_LINE
from ..contract.text import esc, safe_url

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

#: What a view says (once) when its client talks to the offline sandbox.
DEMO_NOTE = SANDBOX_LINE


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


#: Where the live widgets work; said by the static renderings that stand in for them.
LIVE_FRONT_ENDS = "JupyterLab, Notebook 7, Voila, marimo, VS Code or Colab with the kernel running"


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


def form_html(
    mode_html: str,
    parent_task_id: str | None,
    prompt: str | None = None,
    parent_title: str | None = None,
) -> str:
    """Static HTML standing in for the extend form (nbconvert, GitHub, no widget manager).

    ``mode_html`` is the form's own status line (already HTML: sandbox, class, live API);
    ``parent_title`` names the parent in words, when it is known.
    """
    parent = parent_task_id or "<parent task id>"
    parts = [
        '<div class="luma-nb-form-static" '
        'style="border:1px solid #ccc;border-radius:4px;padding:8px 12px;max-width:640px">',
        f"<div>{mode_html}</div>" if mode_html else "",
        f"<div><b>Extend a video</b>: parent task <code>{esc(parent)}</code></div>",
    ]
    if parent_title:
        parts.append(f"<div><b>Continues:</b> {esc(parent_title)}</div>")
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
