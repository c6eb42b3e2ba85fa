"""Repository-wide pytest set-up: the notebooks under nbval, offline and isolated; the fast tier.

nbval starts each notebook's kernel from this process, so the kernel inherits the environment
set here: demo mode (no API key, no other base URL), a fast sandbox, a scratch journal folder,
and videos by URL. The sanitize file is found from here, wherever pytest is started.

No test or notebook may leave a process behind (Linux): every process seen below this one
during the session is recorded (the process table is read five times a second, so processes that
are reparented to init when their parent dies are known too), and a process recorded and still
running at the end of the session fails the run. This process's own render pool is stopped
first.
The fast tier, ``python -m pytest -m "not slow"``, is every test not marked ``slow``; the rules
below mark them (tests/test_tiers.py checks that they keep out what needs more than Python and
loopback). ``python -m pytest`` runs everything.
"""

from __future__ import annotations

import fnmatch
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
    left = wait_gone(seen, _LEFTOVER_GRACE)
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


# -- the fast tier ---------------------------------------------------------------------------
# A test is slow when it needs more than Python and loopback, or takes over about half a second
# on a quiet machine: about a second in the `--durations=0` run on a busy one (load 8-12) that
# the lists below come from. Rules, not decorators; the README's Development section names them.

#: Markers of tests that need a browser, a JupyterHub (and Node), a kernel or a fresh venv.
SLOW_MARKERS = ("e2e", "hub", "kernel", "binder")
#: Fixtures that start a real PostgreSQL server (tests/pg_support.py); the store tests'
#: ``backend`` parameter is the other way in (their SQLite cases stay fast).
POSTGRES_FIXTURES = ("postgres", "pg_dsn")

#: Whole files, by why nearly every test in them is slow (patterns, from the repository root).
SLOW_FILES = {
    "tests/e2e/*": "a browser",
    "tests/test_secrets.py": "runs every notebook and the CLI with a key",
    "tests/test_cli.py": "runs the luma-nb command in subprocesses",
    "tests/test_benchmarks.py": "runs each benchmark small",
    "tests/test_quality.py": "runs ruff and mypy over the tree",
    "tests/test_tiers.py": "collects the whole suite in a subprocess",
    "tests/test_frontend.py": "starts Jupyter servers",
    "tests/test_static_outputs.py": "runs nbconvert over the notebooks",
    "tests/test_relay*.py": "a relay before a sandbox, jobs to the end (store tests: below)",
    "tests/test_teacher*.py": "a relay before a sandbox, jobs to the end",
    "tests/test_widgets.py": "widgets followed until the video plays",
    "tests/test_class_gallery_widget.py": "widgets followed until the video plays",
    "tests/test_galleries.py": "galleries followed until the videos play",
    "tests/test_saved_videos.py": "real videos made, kept and decoded",
    "tests/test_display.py": "shows jobs followed until the video plays",
    "tests/test_notebook_support.py": "shows jobs followed until the video plays",
    "tests/test_client_sandbox.py": "the whole story against the sandbox, real videos",
    "tests/test_media.py": "downloads and saves real videos",
    "tests/test_video.py": "encodes real H.264 clips",
    "tests/test_sandbox_media.py": "renders and serves real MP4s",
    "tests/test_sandbox_pool.py": "starts real render workers; runs a script in demo mode",
    "tests/test_sandbox_class.py": "the classroom sandbox: queues, renders, restarts",
    "tests/test_sandbox_hooks.py": "webhooks of jobs run to the end",
    "tests/test_faults.py": "faults injected while jobs run to the end",
    "tests/test_deadlines.py": "deadlines of real seconds",
    "tests/test_lifetime.py": "kills real kernels and processes while they render",
    "tests/test_binder.py": "the Binder environment (its floors are checked in the full run)",
    "tests/test_demo.py": "runs luma-nb demo to the end",
}
#: Files the patterns above take in but that are fast: the relay's store tests (on SQLite).
FAST_FILES = ("tests/test_*_store.py",)

#: Single slow tests in files that are otherwise fast (each over 1 s in that run). Keep
#: this short: a file that gains many belongs in SLOW_FILES.
SLOW_TESTS = {
    "tests/test_readme.py": ("test_readme_block_runs",),  # each README block, for real
    "tests/test_polling_learning.py": ("test_a_real_wait_teaches_the_clients_policy",),
    "tests/test_journal.py": (  # two processes; jobs to the end
        "test_two_processes_write_the_same_journal_at_once",
        "test_no_secret_ever_reaches_the_journal_files",
        "test_resume_watches_the_jobs_both_spellings_alike",
        "test_resume_reattaches_unfinished_jobs_of_this_service_only",
        "test_submit_progress_video_and_saved_file_are_recorded",
    ),
    "tests/test_watcher.py": (  # many jobs
        "test_background_thread_finishes_many_jobs_and_is_the_only_caller",
        "test_one_tick_fetches_all_due_jobs_in_ceil_n_over_20_calls",
    ),
    "tests/test_sandbox.py": (  # fifty threads; jobs to the end
        "test_fifty_threads_polling_at_once",
        "test_extend_an_extension",
        "test_imagine_runs_the_documented_life_cycle",
    ),
    "tests/test_webhooks.py": (  # jobs to the end
        "test_webhooks_drive_a_watched_progress_without_polls",
        "test_sandbox_webhooks_finish_the_job_without_a_single_fetch",
    ),
    "tests/test_sandbox_faults.py": ("test_slow_then_answers",),  # a 3 s answer
    "tests/test_posters.py": (  # real videos rendered and decoded
        "test_each_extend_of_one_parent_gets_its_own_poster_at_the_parents_length",
        "test_an_imagine_poster_is_its_first_frame_and_is_cached",
        "test_a_demo_parent_has_a_poster",  # renders the demo parent when no cache has it
    ),
}


def slow_reason(item: pytest.Item) -> str | None:
    """Why ``item`` is left out of the fast tier, or None when it is fast."""
    path = Path(str(item.path)).resolve()
    if path.suffix == ".ipynb":
        return "a notebook run by nbval"
    name = path.relative_to(ROOT).as_posix() if ROOT in path.parents else path.name
    for marker in SLOW_MARKERS:
        if item.get_closest_marker(marker) is not None:
            return f"marked {marker}"
    callspec = getattr(item, "callspec", None)
    fixtures = getattr(item, "fixturenames", ())
    if any(f in fixtures for f in POSTGRES_FIXTURES) or (
        callspec is not None and callspec.params.get("backend") == "postgres"
    ):
        return "PostgreSQL"
    if getattr(getattr(item, "obj", None), "is_hypothesis_test", False):
        return "property-based: dozens of examples"
    if not any(fnmatch.fnmatch(name, pattern) for pattern in FAST_FILES):
        for pattern, why in SLOW_FILES.items():
            if fnmatch.fnmatch(name, pattern):
                return why
    function = getattr(item, "originalname", item.name)
    if function in SLOW_TESTS.get(name, ()):
        return "over a second"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        why = slow_reason(item)
        if why is not None:
            item.add_marker(pytest.mark.slow(reason=why))
