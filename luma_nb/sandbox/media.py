"""Serving media: byte ranges (RFC 9110 single ranges) and safe file names."""

from __future__ import annotations

import re

__all__ = ("Unsatisfiable", "content_type", "is_safe_name", "parse_range")

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}")
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_TYPES = {
    ".mp4": "video/mp4", ".m4v": "video/mp4", ".webm": "video/webm", ".mov": "video/quicktime",
    ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
    ".webp": "image/webp", ".json": "application/json", ".txt": "text/plain; charset=utf-8",
}


class Unsatisfiable(Exception):
    """The requested range lies outside the file (answer 416)."""


def is_safe_name(name: str) -> bool:
    """True for a plain file name (no folders, no leading dot, no ``..``)."""
    return bool(_NAME.fullmatch(name)) and ".." not in name


def content_type(name: str) -> str:
    """The Content-Type for a media file name (``application/octet-stream`` if unknown)."""
    dot = name.rfind(".")
    return _TYPES.get(name[dot:].lower(), "application/octet-stream") if dot >= 0 else \
        "application/octet-stream"


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
        count = int(last_text)
        if count == 0 or size == 0:
            raise Unsatisfiable
        return max(0, size - count), size - 1
    first = int(first_text)
    if last_text and int(last_text) < first:
        return None  # syntactically invalid: ignored, as RFC 9110 says
    if first >= size:
        raise Unsatisfiable
    last = int(last_text) if last_text else size - 1
    return first, min(last, size - 1)
