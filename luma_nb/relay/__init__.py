"""The classroom relay: a class makes real videos on the teacher's key without holding it.

Students' notebooks talk to the relay exactly as to the provider (``LumaClient(api_key=<class
token>, base_url=<relay>)``); the relay checks each student's token, budget and rate, forwards
each submit once with the teacher's key, watches every open task with one poller, and answers
students' fetches from its own store. It is a separate program: it uses the package's contract
and api layers only. Needs the ``classroom`` extra (Tornado)::

    from luma_nb.relay import Relay
    with Relay("https://api.apiframe.pro", db="class.sqlite", student_budget=36) as relay:
        tokens = relay.add_students(30)
"""

from __future__ import annotations

from .core import DEFAULT_COST, Relay
from .store import Budgets, LedgerEntry, RelayStore, Student, SubmitRecord
from .tokens import IssuedToken, hash_token

__all__ = (
    "DEFAULT_COST",
    "Budgets",
    "IssuedToken",
    "LedgerEntry",
    "Relay",
    "RelayStore",
    "Student",
    "SubmitRecord",
    "hash_token",
)
