"""The class gallery's nouns: a published video of the class, and one change of the gallery.

A classroom relay tells students what its gallery holds as *changes after a sequence number*:
videos to show (finished, shared by their student, not hidden by the teacher) and task ids to
take away. The parsers tolerate what a hostile or broken relay might send: anything that is not
a well-formed item is dropped, never raised at the user.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ("ClassVideo", "GalleryUpdate", "class_video_from_json", "update_from_json")

#: Longest text kept from a relay for a student's name or a prompt.
_MAX_TEXT = 2000


@dataclass(frozen=True)
class ClassVideo:
    """One published video of the class."""

    task_id: str
    """The task that made it."""
    student: str
    """Who made it (the student's name in the class)."""
    video_url: str
    """Where it plays (an http(s) URL)."""
    prompt: str = ""
    """The prompt the student wrote."""
    seq: int = 0
    """The gallery's sequence number of its last change."""
    poster_url: str = ""
    """Its poster, when the relay knows one (its upstream is the sandbox); else empty."""


@dataclass(frozen=True)
class GalleryUpdate:
    """What changed in the class gallery after some sequence number."""

    seq: int
    """The gallery's sequence number after these changes (ask for changes after it next)."""
    videos: tuple[ClassVideo, ...] = ()
    """Videos to show (new ones, or shown again), in the order they changed."""
    removed: tuple[str, ...] = ()
    """Task ids to take away (hidden by the teacher, unshared, or never finished)."""
    reset: bool = False
    """True when the relay's gallery started over: drop everything shown before these."""
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """The relay's JSON, as sent."""


def _text(value: Any) -> str | None:
    return value[:_MAX_TEXT] if isinstance(value, str) else None


def _seq(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def class_video_from_json(data: Any) -> ClassVideo | None:
    """A :class:`ClassVideo` from the relay's JSON, or None when it is not a usable item."""
    if not isinstance(data, Mapping):
        return None
    task_id, url = _text(data.get("task_id")), _text(data.get("video_url"))
    if not task_id or not url or not url.lower().startswith(("http://", "https://")):
        return None
    return ClassVideo(
        task_id=task_id,
        student=_text(data.get("student")) or "",
        video_url=url,
        prompt=_text(data.get("prompt")) or "",
        seq=_seq(data.get("seq")) or 0,
        poster_url=_http(data.get("poster_url")),
    )


def _http(value: Any) -> str:
    text = _text(value)
    return text if text and text.lower().startswith(("http://", "https://")) else ""


def update_from_json(data: Any, *, after: int = 0) -> GalleryUpdate | None:
    """A :class:`GalleryUpdate` from the relay's JSON (``{"seq", "videos", "removed"}``), or
    None when the answer is not one; ``after`` is the sequence number the update follows."""
    if not isinstance(data, Mapping):
        return None
    seq = _seq(data.get("seq"))
    if seq is None:
        return None
    items = data.get("videos")
    videos = [class_video_from_json(item) for item in items] if isinstance(items, list) else []
    gone = data.get("removed")
    removed = [t for t in gone if isinstance(t, str) and t] if isinstance(gone, list) else []
    reset = data.get("reset") is True or seq < after
    return GalleryUpdate(
        seq=seq,
        videos=tuple(v for v in videos if v is not None),
        removed=tuple(removed),
        reset=reset,
        raw=data,
    )
