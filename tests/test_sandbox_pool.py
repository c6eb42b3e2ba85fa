"""The sandbox's render pool (luma_nb/sandbox/pool.py): plain worker programs fed over a pipe.

Real worker processes throughout; the last test runs a real script, in demo mode, that has no
``if __name__ == "__main__":`` guard.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

from luma_nb.sandbox.pool import WorkerPool
from tests.proc_support import proc, wait_gone


@pytest.fixture
def pool() -> Iterator[WorkerPool]:
    workers = WorkerPool(2)
    yield workers
    workers.shutdown(wait=True, cancel_futures=True)


def test_calls_come_back_with_their_results_and_their_exceptions(pool: WorkerPool) -> None:
    assert pool.submit(pow, 2, 10).result(timeout=60) == 1024
    with pytest.raises(ValueError, match="invalid literal"):
        pool.submit(int, "not a number").result(timeout=60)
    # What a worker prints goes to its standard error, never into the answers' pipe.
    assert pool.submit(print, "a stray line from a library").result(timeout=60) is None
    assert pool.submit(sum, [1, 2, 3]).result(timeout=60) == 6
    # An answer that cannot travel back is an error naming it, not a hung pool.
    with pytest.raises(RuntimeError, match="pickle"):
        pool.submit(open, os.devnull).result(timeout=60)
    assert pool.submit(abs, -5).result(timeout=60) == 5


def test_workers_start_as_calls_come_up_to_the_limit(pool: WorkerPool) -> None:
    assert pool.pids == []
    pool.submit(abs, 1).result(timeout=60)
    assert len(pool.pids) == 1  # one call at a time needs one worker
    futures = [pool.submit(time.sleep, 0.5) for _ in range(4)]
    for future in futures:
        future.result(timeout=60)
    assert len(pool.pids) == 2  # never more than the limit


def test_a_worker_killed_mid_call_breaks_the_pool_and_fails_what_was_queued(
    pool: WorkerPool,
) -> None:
    busy = [pool.submit(time.sleep, 30) for _ in range(2)]
    queued = pool.submit(abs, -1)
    deadline = time.monotonic() + 60
    while not all(f.running() for f in busy):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    workers = {proc(pid) for pid in pool.pids}
    assert None not in workers
    os.kill(pool.pids[0], signal.SIGKILL)
    failed = [f for f in busy if isinstance(f.exception(timeout=60), BrokenProcessPool)]
    assert failed, [f.exception() for f in busy]
    with pytest.raises(BrokenProcessPool, match="ended abruptly"):
        queued.result(timeout=60)
    with pytest.raises(BrokenProcessPool):
        pool.submit(abs, -2)
    assert all(isinstance(f.exception(timeout=60), BrokenProcessPool) for f in busy)
    assert not wait_gone(workers, 60), "a worker of a broken pool still runs"  # both ended


def test_shutdown_ends_the_workers_after_their_calls(pool: WorkerPool) -> None:
    running = pool.submit(time.sleep, 0.3)
    pids = pool.pids
    pool.shutdown(wait=True)
    assert running.done() and running.exception() is None
    for pid in pids:
        with pytest.raises(ChildProcessError):  # reaped
            os.waitpid(pid, os.WNOHANG)
    with pytest.raises(RuntimeError, match="after shutdown"):
        pool.submit(abs, 1)


def test_workers_ignore_an_interrupt_meant_for_their_starter(pool: WorkerPool) -> None:
    handler = pool.submit(signal.getsignal, signal.SIGINT).result(timeout=60)
    assert handler == signal.SIG_IGN


SCRIPT = """\
import luma_nb

client = luma_nb.default_client()
parent = client.imagine("a lighthouse at dusk").wait(timeout=300)
task = client.extend(parent.task_id, "the lamp turns on").wait(timeout=300)
print("finished", task.status, task.video_url is not None)
"""


def test_a_script_without_a_main_guard_uses_the_demo_sandbox(tmp_path: Path) -> None:
    """``python my_script.py`` with the README's few lines and no ``__main__`` guard: the
    workers never import the script (a multiprocessing pool re-ran it in each worker, which
    failed every render)."""
    script = tmp_path / "my_script.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("APIFRAME_")}
    env.update(LUMA_NB_SANDBOX_SPEED="200", LUMA_NB_HOME=str(tmp_path / "home"))
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().endswith("finished finished True"), done.stdout + done.stderr
    assert "bootstrapping" not in done.stderr
