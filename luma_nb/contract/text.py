"""Untrusted text made safe for HTML, and the URL checks: escaping, http(s)-only URLs, loopback
URLs (no I/O; the one home of these rules for the package and the sandbox); and the ordinals of
a waiting line's notes."""

from __future__ import annotations

import html
import ipaddress
from urllib.parse import quote, urlsplit

__all__ = ("esc", "is_http_url", "is_loopback_url", "ordinal", "safe_url")

#: Characters kept as they are when a URL is re-quoted (RFC 3986 reserved and unreserved,
#: without the quote characters that could end an HTML attribute).
_URL_SAFE = ":/?#[]@!$&()*+,;=%~-._"


def ordinal(n: int) -> str:
    """``1st``, ``2nd``, ``3rd``, ``4th``, ..., ``11th``, ``12th``, ``13th``, ``21st``: a place
    in a waiting line, as a note beside a status says it."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


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


def is_http_url(value: str) -> bool:
    """True for an absolute ``http``/``https`` URL with a host."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and " " not in value


def is_loopback_url(url: str) -> bool:
    """True when ``url`` is an http(s) URL whose host is this machine's loopback interface."""
    if not is_http_url(url):
        return False
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
