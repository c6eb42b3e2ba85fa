"""Serving media: byte ranges (RFC 9110 single ranges), safe file names, and task posters.

A task's poster, ``/media/<task_id>.jpg``, is one frame of its video as a JPEG, taken where the
task's own new part begins: for an extension, at its parent's length (an extension starts with
its parent's frames, so its first frame would look like every sibling's); for an imagine, its
first frame. It is made on first request from the rendered MP4 (PyAV decode), kept beside it,
and served with caching headers (a task's video, hence its poster, never changes).
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, NamedTuple

from .demo import DEMO_FRAME_COUNT, demo_png
from .render import SEGMENT_SECONDS
from .state import Store

__all__ = (
    "POSTER_MAX_AGE",
    "MediaLibrary",
    "MediaSource",
    "Unsatisfiable",
    "content_type",
    "is_safe_name",
    "parse_range",
)


class MediaSource(NamedTuple):
    """How to serve one media file."""

    open: Callable[[], BinaryIO]
    """Opens the bytes for reading."""
    size: int
    """Its size in bytes."""
    content_type: str
    """Its Content-Type."""
    headers: dict[str, str] = {}  # noqa: RUF012 (a NamedTuple default, never mutated)
    """Extra response headers (caching)."""


#: How long a browser may keep a poster without asking again (a task's poster never changes).
POSTER_MAX_AGE = 86400
_POSTER = re.compile(r"([A-Za-z0-9][A-Za-z0-9_-]{0,120})\.jpg")
_DEMO_FRAME = re.compile(r"demo-frame-(\d{1,6})\.png")

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}")
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_DIGITS = 18  # a byte position longer than this is past any file (and past int()'s digit limit)
_TYPES = {
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".webm": "video/webm",
    ".mov": "video/quicktime",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
}


class Unsatisfiable(Exception):
    """The requested range lies outside the file (answer 416)."""


def is_safe_name(name: str) -> bool:
    """True for a plain file name (no folders, no leading dot, no ``..``)."""
    return bool(_NAME.fullmatch(name)) and ".." not in name


def content_type(name: str) -> str:
    """The Content-Type for a media file name (``application/octet-stream`` if unknown)."""
    dot = name.rfind(".")
    return (
        _TYPES.get(name[dot:].lower(), "application/octet-stream")
        if dot >= 0
        else "application/octet-stream"
    )


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive byte range ``(first, last)`` a ``Range`` header asks of a ``size``-byte file.

    None means "send the whole file": no header, a header we do not understand, or several
    ranges (which a server may answer in full).

    :raises Unsatisfiable: when the range starts past the end, or asks for an empty suffix.
    """
    if header is None:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first_text, last_text = match.groups()
    if not first_text and not last_text:
        return None
    if not first_text:  # suffix: the last n bytes
        count = _number(last_text)
        if count == 0 or size == 0:
            raise Unsatisfiable
        return max(0, size - count), size - 1
    first = _number(first_text)
    if last_text and _number(last_text) < first:
        return None  # syntactically invalid: ignored, as RFC 9110 says
    if first >= size:
        raise Unsatisfiable
    last = _number(last_text) if last_text else size - 1
    return first, min(last, size - 1)


def _number(digits: str) -> int:
    """A byte position; one with more digits than any file has becomes 10**_DIGITS."""
    stripped = digits.lstrip("0") or "0"
    return int(stripped) if len(stripped) <= _DIGITS else 10**_DIGITS


class MediaLibrary:
    """What ``/media/<name>`` serves: demo images, task videos, files put in the media folder."""

    def __init__(self, store: Store, ensure_video: Callable[[str], Path]) -> None:
        """``ensure_video(task_id)`` makes a demo parent's video on first need."""
        self._store = store
        self._ensure_video = ensure_video
        self._poster_lock = threading.Lock()

    def source(self, name: str) -> MediaSource | None:
        """How to serve ``name``, or None when there is no such file.

        :raises luma_nb.sandbox.video.MissingSandboxExtra: when a demo item needs the extra.
        """
        match = _DEMO_FRAME.fullmatch(name)
        if match and 1 <= int(match.group(1)) <= DEMO_FRAME_COUNT:
            data = demo_png(int(match.group(1)))
            return MediaSource(lambda: io.BytesIO(data), len(data), "image/png")
        if not is_safe_name(name):
            return None
        poster = _POSTER.fullmatch(name)
        if poster is not None and self._store.record(poster.group(1)) is not None:
            return self._poster(poster.group(1))
        if name.endswith(".mp4"):
            record = self._store.record(name[: -len(".mp4")])
            if record is not None and record.demo and not record.media_ready:
                self._ensure_video(record.task_id)  # demo parents are made on first need
        path = self._store.media_dir / name
        if not path.is_file():
            return None
        return MediaSource(lambda: path.open("rb"), path.stat().st_size, content_type(name))

    def poster_seconds(self, task_id: str) -> float:
        """Where a task's own new part begins in its video: its parent's length (0 for an
        imagine). Read from the parent's MP4; without it, the task's length less one segment.

        :raises KeyError: for an unknown task.
        """
        from .video import probe

        record = self._store.record(task_id)
        if record is None:
            raise KeyError(task_id)
        if not record.parent_task_id:
            return 0.0
        parent = self._store.media_dir / f"{record.parent_task_id}.mp4"
        if parent.is_file():
            info = probe(parent)
            return info.frames / max(1, info.fps)
        own = probe(self._store.media_dir / f"{task_id}.mp4")
        return max(0.0, own.duration - SEGMENT_SECONDS)

    def _poster(self, task_id: str) -> MediaSource | None:
        """The poster of a known task; None while it has no video (not finished, failed)."""
        record = self._store.record(task_id)
        assert record is not None
        if record.demo and not record.media_ready:
            self._ensure_video(task_id)
        video = self._store.media_dir / f"{task_id}.mp4"
        path = self._store.media_dir / f"{task_id}.jpg"
        if not record.media_ready or not video.is_file():
            return None
        with self._poster_lock:  # two first requests make it once
            if not path.is_file():
                from .video import poster_jpeg

                poster_jpeg(video, self.poster_seconds(task_id), path)
        stat = path.stat()
        headers = {
            "Cache-Control": f"public, max-age={POSTER_MAX_AGE}",
            "ETag": f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"',
        }
        return MediaSource(lambda: path.open("rb"), stat.st_size, "image/jpeg", headers)

    def read(self, name: str, limit: int = 16 * 1024 * 1024) -> bytes | None:
        """The bytes served at ``/media/<name>``, or None (missing, or over ``limit``)."""
        found = self.source(name)
        if found is None or found.size > limit:
            return None
        with found.open() as stream:
            return stream.read()
