"""The classroom relay: a class makes real videos on the teacher's key without holding it.

Students' notebooks talk to the relay exactly as to the provider (``LumaClient(api_key=<class
token>, base_url=<relay>)``); the relay checks each student's token, budget and rate, forwards
each submit once with the teacher's key, watches every open task with one poller, and answers
students' fetches from its own store. It is a separate program: it uses the package's contract
and api layers only. The server needs the ``classroom`` extra (Tornado)::

    from luma_nb.relay import Relay
    with Relay("https://api.apiframe.pro", db="class.sqlite", student_budget=36) as relay:
        tokens = relay.add_students(30)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .store import Budgets, GalleryItem, LedgerEntry, RelayStore, Student, SubmitRecord
from .tokens import IssuedToken, hash_token

if TYPE_CHECKING:
    from .core import DEFAULT_COST, Relay

__all__ = (
    "DEFAULT_COST",
    "Budgets",
    "GalleryItem",
    "IssuedToken",
    "LedgerEntry",
    "Relay",
    "RelayStore",
    "Student",
    "SubmitRecord",
    "hash_token",
)


def __getattr__(name: str) -> Any:
    # The server (and Tornado) load on first use, so the token and status commands, and
    # ``luma-nb --help``, work without the classroom extra.
    if name in ("Relay", "DEFAULT_COST"):
        from . import core

        return getattr(core, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
