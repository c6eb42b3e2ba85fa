"""The fast tier (``python -m pytest -m "not slow"``) needs no browser, PostgreSQL, Hub, kernel
or notebook run; the full run (``python -m pytest``) still has every one of those tests.

Both are read from one real collection, in a subprocess, of what a developer's command selects
(tests/tier_probe.py reports each item kept and each item left out, with its markers, fixtures
and parameters). The rules that mark ``slow`` are in the repository's conftest.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Markers of tests that need a browser, a Hub (and Node), a kernel, or a fresh venv.
HEAVY_MARKERS = {"e2e", "hub", "kernel", "binder"}
#: The fixtures that start a real PostgreSQL server (tests/pg_support.py).
POSTGRES_FIXTURES = {"postgres", "pg_dsn"}
#: Files that need one of those throughout (several relay processes on PostgreSQL).
HEAVY_FILES = {"tests/test_relay_postgres.py", "tests/test_hub.py", "tests/test_binder.py"}


def heavy(item: dict[str, Any]) -> set[str]:
    """Why a collected item needs more than Python and loopback (empty when it does not)."""
    path = item["nodeid"].split("::")[0]
    why = set(item["markers"]) & HEAVY_MARKERS
    if path.endswith(".ipynb"):
        why.add("notebook")
    if path.startswith("tests/e2e/"):
        why.add("browser")
    if path in HEAVY_FILES:
        why.add(path)
    if POSTGRES_FIXTURES & set(item["fixtures"]) or item["params"].get("backend") == "'postgres'":
        why.add("postgres")
    return why


@pytest.fixture(scope="module")
def fast_tier(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """What ``python -m pytest -m "not slow"`` keeps (``selected``) and leaves out."""
    report = tmp_path_factory.mktemp("tiers") / "report.json"
    env = {**os.environ, "LUMA_NB_TIER_PROBE": str(report)}
    command = [sys.executable, "-m", "pytest", "-m", "not slow", "--collect-only", "-q"]
    command += ["-p", "tests.tier_probe", "-p", "no:cacheprovider"]
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    found: dict[str, list[dict[str, Any]]] = json.loads(report.read_text("utf-8"))
    return found


def test_the_fast_tier_needs_no_browser_postgres_hub_kernel_or_notebook(fast_tier):
    leaked = {item["nodeid"]: sorted(heavy(item)) for item in fast_tier["selected"] if heavy(item)}
    assert leaked == {}
    # It still talks to a real sandbox and a scripted server, and keeps the SQLite store cases.
    kept = fast_tier["selected"]
    assert any("sandbox" in item["fixtures"] for item in kept)
    assert any("scripted" in item["fixtures"] for item in kept)
    assert any(item["params"].get("backend") == "'sqlite'" for item in kept)


def test_the_full_run_keeps_every_test_the_fast_tier_leaves_out(fast_tier):
    left_out = fast_tier["deselected"]
    assert all("slow" in item["markers"] for item in left_out)
    kinds = set().union(*(heavy(item) for item in left_out))
    assert kinds >= HEAVY_MARKERS | HEAVY_FILES | {"notebook", "browser", "postgres"}


def test_the_default_run_selects_by_no_marker(pytestconfig):
    # `python -m pytest` (the README's test command, .ci/run's) keeps the slow tests.
    addopts = pytestconfig.getini("addopts")
    assert addopts and not any(a == "-m" or a.startswith("-m") for a in addopts)
