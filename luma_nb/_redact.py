"""Secrets out of server text: what a server echoes back is shown, logged and journaled.

A 401 or 400 may quote the ``Authorization`` value or the webhook secret of the request. Every
error text from a server passes through :func:`redact` before it becomes part of an exception,
so neither reaches ``str(error)``, the journal's reasons, ``history()`` or a log.
"""

from __future__ import annotations

import json
from urllib.parse import quote

__all__ = ("REDACTED", "redact")

REDACTED = "[redacted]"
#: Shorter values are not searched for: they would match ordinary words.
_MIN_SECRET = 6


def redact(text: str, *secrets: object) -> str:
    """``text`` with every given secret (and its JSON- or URL-escaped form) replaced."""
    for secret in secrets:
        if not isinstance(secret, str) or len(secret.strip()) < _MIN_SECRET:
            continue
        for form in dict.fromkeys(
            (secret, secret.strip(), json.dumps(secret)[1:-1], quote(secret, safe=""))
        ):
            if len(form) >= _MIN_SECRET:
                text = text.replace(form, REDACTED)
    return text
