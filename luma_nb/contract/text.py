"""Untrusted text made safe for HTML: escaping and the http(s)-only URL check (no I/O)."""

from __future__ import annotations

import html
from urllib.parse import quote, urlsplit

__all__ = ("esc", "safe_url")

#: Characters kept as they are when a URL is re-quoted (RFC 3986 reserved and unreserved,
#: without the quote characters that could end an HTML attribute).
_URL_SAFE = ":/?#[]@!$&()*+,;=%~-._"


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
