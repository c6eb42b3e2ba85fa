"""Fixtures of the browser test: JupyterLab and Voila servers, Chromium pages, diagnostics.

- ``notebook_root``: a scratch copy of ``notebooks/``.
- ``lab`` / ``voila`` / ``marimo_app``: a started server over that copy (demo mode:
  ``APIFRAME_API_KEY`` removed, ``LUMA_NB_HOME`` and all Jupyter and marimo state in a temp
  dir); its process group is killed afterwards.
- ``browser``: Debian's Chromium driven by Playwright (one per test).
- ``page``: a fresh 1280x1000 page whose console, errors and MP4 responses are recorded.

When a test fails, its report gets the servers' log tails, the page's console and a screenshot
(``artifacts/e2e/FAILED-<test>.png``).
"""

from __future__ import annotations

import faulthandler
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .harness import (
    ARTIFACTS,
    PageLog,
    ServerProcess,
    lab_server,
    launch_chromium,
    marimo_server,
    require_browser,
    require_notebook,
    voila_server,
)

_HERE = Path(__file__).parent
MARIMO_NOTEBOOK = "06-marimo.py"
WATCHDOG_SECONDS = 240


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    funcargs: dict[str, Any] = getattr(item, "funcargs", {})
    for value in funcargs.values():
        if isinstance(value, ServerProcess):
            report.sections.append((f"{value.name} log (tail)", value.log_tail()))
    page = funcargs.get("page")
    log = funcargs.get("page_log")
    if log is not None:
        report.sections.append(("browser page", log.report()))
    if page is not None:
        shot = ARTIFACTS / f"FAILED-{_safe(item.name)}.png"
        try:
            page.screenshot(path=str(shot), full_page=True, timeout=10_000)
            report.sections.append(("failure screenshot", str(shot)))
        except Exception as error:  # the page may be the thing that broke
            report.sections.append(("failure screenshot", f"not taken: {error!r}"))


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


@pytest.fixture(autouse=True)
def _watchdog() -> Iterator[None]:
    """Dump every thread's stack if a test runs far past its budget (CI must not just hang)."""
    faulthandler.dump_traceback_later(WATCHDOG_SECONDS)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


@pytest.fixture
def e2e_home(tmp_path: Path) -> Path:
    """Home of the servers' state (Jupyter dirs, LUMA_NB_HOME, logs)."""
    home = tmp_path / "home"
    home.mkdir()
    return home


@pytest.fixture
def notebook_root(tmp_path: Path) -> Path:
    """A scratch copy of ``notebooks/``."""
    from .harness import copy_notebooks

    return copy_notebooks(tmp_path / "notebooks")


@pytest.fixture
def lab(notebook_root: Path, e2e_home: Path) -> Iterator[ServerProcess]:
    """JupyterLab over the scratch notebooks, stopped (process group) afterwards."""
    server = lab_server(notebook_root, e2e_home)
    try:
        yield server.start("api/status")
    finally:
        server.stop()


@pytest.fixture
def voila(notebook_root: Path, e2e_home: Path) -> Iterator[ServerProcess]:
    """Voila over the scratch notebooks, stopped (process group) afterwards."""
    server = voila_server(notebook_root, e2e_home)
    try:
        yield server.start("")
    finally:
        server.stop()


@pytest.fixture
def marimo_app(notebook_root: Path, e2e_home: Path) -> Iterator[ServerProcess]:
    """``marimo run notebooks/06-marimo.py`` over the scratch copy, stopped afterwards."""
    require_notebook(notebook_root, MARIMO_NOTEBOOK)
    server = marimo_server(notebook_root, e2e_home, MARIMO_NOTEBOOK)
    try:
        yield server.start("")
    finally:
        server.stop()


@pytest.fixture
def browser() -> Iterator[Any]:
    """Debian's Chromium through Playwright; fails with the install hint when missing.

    One per test: while Playwright's sync API is active it marks an event loop as running in
    the main thread, which would break later tests that call ``asyncio.run``.
    """
    require_browser()
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page_log() -> PageLog:
    """The console, errors and media responses of ``page``."""
    return PageLog()


@pytest.fixture
def page(browser: Any, page_log: PageLog) -> Iterator[Any]:
    """A fresh page in its own context; bounded default waits."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(30_000)
    context.set_default_navigation_timeout(120_000)
    page = context.new_page()
    page_log.attach(page)
    try:
        yield page
    finally:
        context.close()
