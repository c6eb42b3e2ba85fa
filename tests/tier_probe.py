"""A pytest plugin for tests/test_tiers.py: writes what a run selected and deselected, as JSON.

Loaded with ``-p tests.tier_probe`` in a subprocess; ``LUMA_NB_TIER_PROBE`` names the file. For
each item: its node id, its markers, its fixtures and its parameters.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

_deselected: list[pytest.Item] = []


def _describe(item: pytest.Item) -> dict[str, Any]:
    callspec = getattr(item, "callspec", None)
    return {
        "nodeid": item.nodeid,
        "markers": sorted({mark.name for mark in item.iter_markers()}),
        "fixtures": sorted(getattr(item, "fixturenames", ())),
        "params": {k: _short(v) for k, v in callspec.params.items()} if callspec else {},
    }


def _short(value: object) -> str:
    try:
        return repr(value)[:200]
    except ValueError:  # an integer too long to print (the hostile tests' parameters)
        return type(value).__name__


def pytest_deselected(items: list[pytest.Item]) -> None:
    _deselected.extend(items)


def pytest_collection_finish(session: pytest.Session) -> None:
    report = {
        "selected": [_describe(item) for item in session.items],
        "deselected": [_describe(item) for item in _deselected],
    }
    with open(os.environ["LUMA_NB_TIER_PROBE"], "w", encoding="utf-8") as out:
        json.dump(report, out)
