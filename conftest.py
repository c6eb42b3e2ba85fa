"""Repository-wide pytest set-up: the notebooks run under nbval, offline, fast and isolated.

nbval starts each notebook's kernel from this process, so the kernel inherits the environment
set here: demo mode (no API key, no other base URL), a fast sandbox, a scratch journal folder,
and videos by URL. The sanitize file is found from here, wherever pytest is started.

No test or notebook may leave a process behind (Linux): every process seen below this one
during the session is recorded (the process table is read five times a second, so processes that
are reparented to init when their parent dies are known too), and a process recorded and still
running at the end of the session fails the run. This process's own render pool is stopped
first; multiprocessing's forkserver and resource tracker of this process are the only ones
allowed to stay, as they end with it.
"""

from __future__ import annotations

import multiprocessing.forkserver
import multiprocessing.resource_tracker
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from tests.proc_support import Proc, Recorder, descendants, wait_gone

ROOT = Path(__file__).resolve().parent
SANITIZE = ROOT / "notebooks" / "nbval_sanitize.cfg"
_SERVICE_VARS = ("APIFRAME_API_KEY", "APIFRAME_BASE_URL", "APIFRAME_WEBHOOK_SECRET")
_home: str | None = None
_recorder: Recorder | None = None
_before: set[Proc] = set()
#: How long processes still ending at the end of the session are given.
_LEFTOVER_GRACE = 15.0


def pytest_configure(config: pytest.Config) -> None:
    global _home, _recorder, _before
    if sys.platform.startswith("linux"):
        _before = descendants(os.getpid())
        _recorder = Recorder(os.getpid(), every=0.2)
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


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when a process started during the session still runs at its end."""
    if _recorder is None:
        return
    from luma_nb.sandbox.work import stop_pool

    stop_pool()  # this process's own render workers
    seen = _recorder.stop() - _before
    own_helpers = {
        multiprocessing.forkserver._forkserver._forkserver_pid,
        multiprocessing.resource_tracker._resource_tracker._pid,
    }
    left = wait_gone({p for p in seen if p.pid not in own_helpers}, _LEFTOVER_GRACE)
    if not left:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    title = f"{len(left)} process(es) started during the session still run at its end"
    lines = [f"  {p}" for p in sorted(left, key=lambda p: p.pid)]
    if reporter is not None:
        reporter.write_sep("=", title, red=True)
        for line in lines:
            reporter.write_line(line, red=True)
    else:
        print(title, *lines, sep="\n", file=sys.stderr)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
