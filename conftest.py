"""Repository-wide pytest set-up: the notebooks run under nbval, offline, fast and isolated.

nbval starts each notebook's kernel from this process, so the kernel inherits the environment
set here: demo mode (no API key, no other base URL), a fast sandbox, a scratch journal folder,
and videos by URL. The sanitize file is found from here, wherever pytest is started.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
SANITIZE = ROOT / "notebooks" / "nbval_sanitize.cfg"
_SERVICE_VARS = ("APIFRAME_API_KEY", "APIFRAME_BASE_URL", "APIFRAME_WEBHOOK_SECRET")
_home: str | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _home
    for name in _SERVICE_VARS:
        os.environ.pop(name, None)
    # Fast jobs (0.3-1.5 s) keep each notebook's run short.
    os.environ["LUMA_NB_SANDBOX_SPEED"] = "200"
    # The same outputs as the committed ones (by URL), even on a JupyterHub.
    os.environ["LUMA_NB_REMOTE_BROWSER"] = "0"
    # No copies of demo videos beside the repository's notebooks (the browser test's scratch
    # copies keep them; tests/test_media.py covers the folder).
    os.environ["LUMA_NB_KEEP_VIDEOS"] = "0"
    _home = tempfile.mkdtemp(prefix="luma-nb-pytest-home-")
    os.environ["LUMA_NB_HOME"] = _home
    option = config.option
    if hasattr(option, "nbval_sanitize_with") and option.nbval_sanitize_with is None:
        option.nbval_sanitize_with = str(SANITIZE)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _home is not None:
        shutil.rmtree(_home, ignore_errors=True)
