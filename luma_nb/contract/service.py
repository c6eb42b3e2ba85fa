"""Which service a client talks to, as the service itself says (never guessed from the URL).

Every answer of the offline sandbox carries ``X-Luma-NB-Service: sandbox``; a classroom relay
sends ``X-Luma-NB-Service: relay`` and ``X-Luma-NB-Class: <percent-encoded class name>``. The
real API sends neither. A client starts from ``"api"`` for the documented base URL and
``"unknown"`` for any other, until an answer says otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import unquote

__all__ = ("CLASS_HEADER", "SERVICES", "SERVICE_HEADER", "class_name", "service_from_headers")

SERVICE_HEADER = "X-Luma-NB-Service"
CLASS_HEADER = "X-Luma-NB-Class"
#: The values ``LumaClient.service`` takes.
SERVICES = ("api", "sandbox", "relay", "unknown")
#: What a service may announce about itself (``api`` is never announced, it is the default).
_ANNOUNCED = frozenset({"sandbox", "relay"})


def service_from_headers(headers: Mapping[str, str]) -> str | None:
    """``"sandbox"`` or ``"relay"`` when the answer announces it; None otherwise."""
    value = headers.get(SERVICE_HEADER)
    if not isinstance(value, str):
        return None
    name = value.strip().lower()
    return name if name in _ANNOUNCED else None


def class_name(headers: Mapping[str, str]) -> str | None:
    """The class a relay announces (percent-decoded), or None."""
    value = headers.get(CLASS_HEADER)
    if not isinstance(value, str) or not value.strip():
        return None
    return unquote(value.strip())
