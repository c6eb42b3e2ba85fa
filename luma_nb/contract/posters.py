"""A task's poster: the still picture a gallery card, a saved notebook or a dashboard shows.

An extension's video starts with its parent's frames, so its first frame looks like every
sibling's. A poster is therefore taken where the task's **own new part begins**: at the parent's
length for an extension, at the start for an imagine.

Where a poster comes from:

- **the offline sandbox** serves one for each finished task at ``/media/<task_id>.jpg``, beside
  its ``/media/<task_id>.mp4`` (its fetch answers stay the documented ones). :func:`poster_url`
  makes that URL from the video's when the caller knows the video is the sandbox's: a client
  whose ``service`` is ``"sandbox"``, a relay whose upstream is the sandbox.
- **the real service** sends no poster, and :func:`poster_url` gives **None**. A media fragment
  (``video.mp4#t=<parent length>``) was the other choice, and was set aside: a fragment only
  works on a ``<video>`` element, which fetches the file's index and a part of its bytes as soon
  as it is on the page, so a gallery of 300 cards would make 300 video requests before anyone
  plays one (an ``<img>`` cannot show a video frame at all). Views show a card with the prompt
  instead, and a notebook makes its own poster from the copy of the video it keeps (the
  notebook layer's business, with I/O). :func:`start_fragment` gives the fragment for a player
  that *is* playing, to start where the new part begins.

No I/O here: only strings.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .text import safe_url

__all__ = ("poster_url", "sandbox_poster_url", "start_fragment")

_SANDBOX_MEDIA = re.compile(r"(.*/media/[A-Za-z0-9][A-Za-z0-9_-]{0,120})\.mp4")


def sandbox_poster_url(video_url: str | None) -> str | None:
    """The poster the sandbox serves beside its video ``.../media/<task_id>.mp4``, or None when
    the URL is not an http(s) URL of that shape. Query and fragment are dropped."""
    url = safe_url(video_url) if isinstance(video_url, str) else None
    if url is None:
        return None
    parts = urlsplit(url)
    match = _SANDBOX_MEDIA.fullmatch(parts.path)
    if match is None:
        return None
    return str(urlunsplit((parts.scheme, parts.netloc, match.group(1) + ".jpg", "", "")))


def poster_url(
    task: Any = None,
    *,
    video_url: str | None = None,
    service: str | None = None,
) -> str | None:
    """The URL of a task's poster, or None when there is none to show without playing.

    :param task: a :class:`~luma_nb.contract.models.Task` (anything with a ``video_url``), or
        a fetch answer as a mapping; or None with ``video_url``.
    :param video_url: the video's URL, when there is no task (a class gallery entry).
    :param service: who made the video (``"sandbox"``, ``"api"``, ...; see
        :mod:`luma_nb.contract.service`). Only ``"sandbox"`` turns a video URL into a poster
        URL; the real service has no poster (see the module's text for why not a fragment).
    """
    if video_url is None:
        found = (
            task.get("video_url") if isinstance(task, Mapping) else getattr(task, "video_url", None)
        )
        video_url = found if isinstance(found, str) else None
    if service == "sandbox":
        return sandbox_poster_url(video_url)
    return None


def start_fragment(video_url: str, seconds: float | None) -> str:
    """``video_url`` with the media fragment ``#t=<seconds>``: a player given it starts where
    the task's new part begins. Unchanged for None, zero, or a value that is not finite."""
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        return video_url
    base = video_url.split("#", 1)[0]
    return f"{base}#t={seconds:.3f}".rstrip("0").rstrip(".")
