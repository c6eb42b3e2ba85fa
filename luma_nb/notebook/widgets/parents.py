"""The parents a form can extend: what its client knows, as picker items with posters.

Sources, in this order: the jobs of this kernel that finished, the journal's finished tasks
on the same service, the sandbox's demo videos, and in a class the class gallery. Only
finished tasks can be extended, so only those are offered. The poster of an item comes from
:func:`poster_src`, the one place that knows where a task's poster image is.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from ...client.defaults import demo_parent_ids
from ...contract.html import prompt_preview
from ...contract.statuses import ASPECT_RATIOS
from . import _recent

if TYPE_CHECKING:
    from ...client.client import LumaClient

__all__ = ("Parent", "parent_choices", "parent_ratio", "poster_src", "ratio_text")

#: One picker item: task_id, title, prompt, poster, ratio, source (words), kind.
Parent = dict[str, Any]

_TITLE = 60
_SOURCES = {
    "start": "start video",
    "kernel": "made in this notebook",
    "journal": "made earlier",
    "demo": "sandbox demo video",
    "class": "class gallery",
}


def title_of(prompt: str | None, task_id: str) -> str:
    """A short title for a prompt: its start, cut at a word (the whole prompt is a tooltip)."""
    flat = prompt_preview(prompt)
    if not flat:
        return f"Task {task_id[:8]}"
    if len(flat) <= _TITLE:
        return flat
    cut = flat[:_TITLE].rsplit(" ", 1)[0].rstrip(",;:")
    return cut + "…"


def browser_url(url: str | None, video_url: str) -> str | None:
    """``url`` (a poster beside the video ``video_url``) as the browser reaches it, or None.

    The route is looked up by the video, never the picture: it is found once per sandbox by
    probing for a playable MP4 (a poster would fail that probe and leave every video of the
    sandbox embedded). Where videos are embedded (no route), there is no poster to load.
    """
    if not url:
        return None
    from ..frontend import browser_route

    route = browser_route(video_url)
    if route.how == "embed":
        return None
    return route.url_for(url) if route.how != "direct" else url


def poster_src(client: LumaClient, task_id: str) -> str | None:
    """The URL the browser loads for ``task_id``'s poster, or None where there is none.

    The offline sandbox serves one per task; the real API has none (the picker then shows the
    prompt on a plain card and never loads video bytes). A sandbox on the kernel's loopback is
    reached the way its videos are (:func:`~luma_nb.notebook.frontend.browser_route`).
    """
    from ...contract.posters import poster_url

    # The sandbox serves a task's video at /media/<task_id>.mp4 and its poster beside it.
    video_url = f"{client.base_url}/media/{task_id}.mp4"
    return browser_url(poster_url(video_url=video_url, service=client.service), video_url)


def parent_choices(client: LumaClient, in_class: list[Parent] | None = None) -> list[Parent]:
    """The finished tasks ``client`` knows, newest first, each once (see the module docstring).

    ``in_class`` are a class's start videos and class gallery items (``task_id``, ``prompt``,
    ``kind`` ``"start"`` or ``"class"``, maybe ``poster`` and ``ratio``), which the form asks
    the relay for off the kernel thread.
    """
    items: list[Parent] = []

    def add(
        task_id: str,
        prompt: str | None,
        kind: str,
        ratio: str | None = None,
        poster: str | None = None,
    ) -> None:
        if not task_id or any(item["task_id"] == task_id for item in items):
            return
        items.append(
            {
                "task_id": task_id,
                "title": title_of(prompt, task_id),
                "prompt": prompt or "",
                "poster": poster or poster_src(client, task_id) or "",
                "ratio": ratio or parent_ratio(client, task_id) or "",
                "source": _SOURCES[kind],
                "kind": kind,
            }
        )

    for item in in_class or []:
        if item.get("kind") == "start":
            add(item["task_id"], item.get("prompt"), "start", item.get("ratio"), item.get("poster"))

    for job in _recent.jobs_of(client):
        if job.task is not None and job.task.is_finished:
            add(job.task_id, job.prompt, "kernel")
    for task_id, prompt, status in _recent.journal_entries(client):
        if status == "finished":
            add(task_id, prompt, "journal")
    ratios = _demo_ratios(client)
    for task_id, prompt in demo_parent_ids(client):
        add(task_id, prompt, "demo", ratios.get(task_id))
    for item in in_class or []:
        if item.get("kind") != "start":
            add(item["task_id"], item.get("prompt"), "class", poster=item.get("poster"))
    return items


def _demo_ratios(client: LumaClient) -> dict[str, str]:
    from ...client.defaults import demo_parent_ratios

    with contextlib.suppress(Exception):
        return demo_parent_ratios(client)
    return {}


def parent_ratio(client: LumaClient, task_id: str) -> str | None:
    """The aspect ratio of a known task (an extend keeps its parent's), or None if unknown."""
    ratio = _recent.ratio_of(client, task_id)
    return ratio if ratio in ASPECT_RATIOS else None


def ratio_text(ratio: str | None) -> str:
    """What the form says instead of an aspect-ratio field: ``16:9 (the parent's)``."""
    return f"{ratio} (the parent's)" if ratio else "the parent's (kept by the service)"
