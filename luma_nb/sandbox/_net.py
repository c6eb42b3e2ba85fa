"""Loopback-only outgoing HTTP: the sandbox never sends a byte off the machine.

Only literal loopback addresses and ``localhost`` count; other names are not even resolved (a DNS
query would already leave the machine). Proxy settings from the environment are ignored, because
a proxy would carry a loopback request elsewhere, and so are redirects.
"""

from __future__ import annotations

import http.client
import urllib.request
from urllib.parse import urlsplit

from ..contract.text import is_http_url, is_loopback_url

__all__ = ("HTTPStatusError", "is_http_url", "is_loopback_url", "loopback_get", "loopback_post")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuse redirects: a loopback server could point us at another host."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def loopback_get(url: str, *, timeout: float, limit: int) -> bytes:
    """GET a loopback URL and return at most ``limit`` bytes of its body.

    :raises ValueError: for a non-loopback URL or a body over ``limit``.
    :raises OSError: for network errors and non-2xx answers (``urllib.error.HTTPError``).
    """
    if not is_loopback_url(url):
        raise ValueError(f"refusing to contact a non-loopback host: {url}")
    with _OPENER.open(url, timeout=timeout) as response:
        data: bytes = response.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{url} is larger than {limit} bytes")
    return data


def loopback_post(url: str, body: bytes, headers: dict[str, str], *, timeout: float) -> int:
    """POST ``body`` to a loopback URL; returns the 2xx status code.

    Header names are sent exactly as given (``x-webhook-secret``, as documented); no redirect
    is followed.

    :raises ValueError: for a non-loopback URL.
    :raises OSError: for network errors; :class:`HTTPStatusError` for non-2xx answers.
    """
    if not is_loopback_url(url):
        raise ValueError(f"refusing to contact a non-loopback host: {url}")
    parts = urlsplit(url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = kind(parts.hostname or "", parts.port, timeout=timeout)
    try:
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        connection.putrequest("POST", target)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            connection.putheader(name, value)
        connection.endheaders(body)
        response = connection.getresponse()
        response.read()
    finally:
        connection.close()
    if not 200 <= response.status < 300:
        raise HTTPStatusError(response.status)
    return int(response.status)


class HTTPStatusError(OSError):
    """A non-2xx answer; ``code`` is the status."""

    def __init__(self, code: int) -> None:
        super().__init__(f"HTTP {code}")
        self.code = code
