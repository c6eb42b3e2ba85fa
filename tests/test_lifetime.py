"""Nothing the package starts outlives its starter, however the starter ends (SIGKILL included).

Each test starts a real starter (a Jupyter kernel, a plain Python process, ``luma-nb demo``,
``luma-nb sandbox``, ``luma-nb class serve --upstream sandbox``), lets the offline sandbox
render in its process pool, records every descendant of the starter from the process table
while the starter lives (read again and again, so processes started late are known too), kills
the starter with SIGKILL, and checks that within a few seconds none of those processes runs any
more (wherever they were reparented to). Processes are told apart by pid and start time, never
by name.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from luma_nb import cli
from tests.proc_support import Proc, Recorder, kill_all, parent, wait_gone

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads the Linux process table (/proc)"
)

# Long enough on a busy 2-core machine, far shorter than a leak (they last forever).
GONE_WITHIN = 20.0
_READY_WITHIN = 120.0
# The pool has one worker per core, started as renders come: renders handed over together start
# them all (elsewhere one worker at least is waited for).
WORKERS = os.cpu_count() or 1

# Renders a few videos with the demo client and says so once one is being rendered in the
# pool; then waits (the starter is killed meanwhile). The same text runs as a kernel's cell
# and as ``python -c``.
RENDERING = """\
import time
import luma_nb
from luma_nb.sandbox import shared_sandbox
client = luma_nb.default_client()
sandbox = shared_sandbox()
sandbox.pause_renders()  # all six in line first, so the pool starts every worker at once
jobs = [client.imagine(f"a lighthouse in a storm, take {i}") for i in range(6)]
deadline = time.monotonic() + 100


def wait_for(stage, count):
    while sum(sandbox._renderer.stage(job.task_id)[0] == stage for job in jobs) < count:
        assert time.monotonic() < deadline, f"no render reached {stage}"
        for job in jobs:
            job.refresh()  # the sandbox moves its tasks on as they are asked about


wait_for("line", len(jobs))
sandbox.pause_renders(False)
wait_for("rendering", sandbox._renderer.workers)
print("rendering", flush=True)
time.sleep(600)
"""


def _workers(pid: int, seen: set[Proc]) -> int:
    """How many of the processes seen below ``pid`` are its children (the pool's workers are;
    the starters here start no other child)."""
    return sum(1 for p in seen if parent(p.pid) == pid)


def _record_pool(pid: int, running: Callable[[], bool], workers: int) -> Recorder:
    """Record what runs below ``pid`` until ``workers`` of its pool's workers run."""
    recorder = Recorder(pid)
    deadline = time.monotonic() + _READY_WITHIN
    while _workers(pid, recorder.snapshot()) < workers:
        assert running(), "the starter ended early"
        assert time.monotonic() < deadline, f"its render pool never had {workers} workers"
        time.sleep(0.01)
    return recorder


def _kill_and_check(pid: int, recorder: Recorder, wait: Callable[[], object]) -> None:
    """SIGKILL ``pid``; everything seen below it must be gone within GONE_WITHIN seconds."""
    started = recorder.stop()
    assert started, f"expected the pool's processes below {pid}, found none"
    os.kill(pid, signal.SIGKILL)
    wait()
    left = wait_gone(started, GONE_WITHIN)
    kill_all(left)  # a failing run leaves nothing behind either
    assert not left, "still running after their starter was killed:\n" + "\n".join(map(str, left))


@pytest.fixture
def children_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of a demo-mode starter: no API key, fast jobs, its own home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("APIFRAME_")}
    env.update(LUMA_NB_SANDBOX_SPEED="200", LUMA_NB_HOME=str(tmp_path / "home"))
    env.update(PYTHONUNBUFFERED="1", LUMA_NB_KEEP_VIDEOS="0")
    scratch = tmp_path / "tmp"  # the starters' temporary folders (the sandbox's scratch)
    scratch.mkdir()
    env.update(TMPDIR=str(scratch))
    yield env


@pytest.mark.kernel
def test_a_killed_kernel_leaves_none_of_its_render_processes(children_env):
    from jupyter_client.manager import KernelManager

    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(env=children_env)
    kernel = manager.client()
    kernel.start_channels()
    recorder = None
    try:
        kernel.wait_for_ready(timeout=120)
        pid = manager.provisioner.process.pid  # type: ignore[union-attr]
        msg_id = kernel.execute(RENDERING)
        deadline = time.monotonic() + _READY_WITHIN
        while True:
            msg = kernel.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            content = msg["content"]
            assert msg["msg_type"] != "error", "\n".join(content["traceback"])
            if msg["msg_type"] == "stream" and "rendering" in content["text"]:
                break
        recorder = _record_pool(pid, manager.is_alive, WORKERS)
        _kill_and_check(pid, recorder, lambda: manager.provisioner.process.wait(30))  # type: ignore[union-attr]
    finally:
        if recorder is not None:
            kill_all(recorder.stop())
        kernel.stop_channels()
        manager.cleanup_resources()


def _popen(command: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )


def test_a_killed_python_process_leaves_none_of_its_render_processes(children_env):
    process = _popen([sys.executable, "-c", RENDERING], children_env)
    recorder = None
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.strip() == "rendering", line + process.stdout.read()
        recorder = _record_pool(process.pid, lambda: process.poll() is None, WORKERS)
        _kill_and_check(process.pid, recorder, lambda: process.wait(30))
    finally:
        process.kill()
        process.communicate(timeout=30)
        if recorder is not None:
            kill_all(recorder.stop())
    _the_next_sandbox_removes_the_scratch_of(process.pid, children_env)


def _the_next_sandbox_removes_the_scratch_of(pid: int, env: dict[str, str]) -> None:
    """The killed starter's sandbox could not remove its scratch folder; the next sandbox that
    starts on the machine does, and leaves a live owner's folder and an unowned one alone."""
    from luma_nb.sandbox.scratch import make_scratch, owner_alive

    tmp = Path(env["TMPDIR"])
    left = [
        f for f in tmp.glob("luma-sandbox-*") if (f / "owner").read_text().split()[0] == str(pid)
    ]
    assert len(left) == 1 and owner_alive(left[0]) is False, left
    assert (left[0] / "media").is_dir()  # its videos: what a leak would keep on the disk
    live = Path(make_scratch(str(tmp)))  # this test's own: its owner runs
    unowned = tmp / "luma-sandbox-unowned"
    unowned.mkdir()
    start_one = "from luma_nb.sandbox import Sandbox; Sandbox(speed=200).start().stop()"
    done = subprocess.run(
        [sys.executable, "-c", start_one], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert not left[0].exists()
    assert live.is_dir() and unowned.is_dir()
    assert sorted(tmp.glob("luma-sandbox-*")) == sorted([live, unowned])


def test_a_killed_luma_nb_demo_leaves_none_of_its_render_processes(children_env, tmp_path):
    command = [sys.executable, "-m", "luma_nb.cli", "demo", "--speed", "200"]
    process = _popen([*command, "--out", str(tmp_path / "videos")], children_env)
    recorder = None
    try:
        recorder = _record_pool(process.pid, lambda: process.poll() is None, 1)
        _kill_and_check(process.pid, recorder, lambda: process.wait(30))
    finally:
        process.kill()
        process.communicate(timeout=30)
        if recorder is not None:
            kill_all(recorder.stop())


def test_a_killed_relay_with_a_sandbox_upstream_leaves_none_of_its_processes(
    children_env, tmp_path, capsys
):
    db = str(tmp_path / "class.sqlite")
    assert cli.main(["class", "tokens", "--count", "1", "--db", db]) == 0
    token = next(csv.DictReader(io.StringIO(capsys.readouterr().out)))["token"]
    command = [sys.executable, "-m", "luma_nb.cli", "class", "serve", "--upstream", "sandbox"]
    command += ["--sandbox-speed", "200", "--port", "0", "--db", db, "--student-budget", "600"]
    process = _popen(command, children_env)
    recorder = None
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert " on http://" in first, first + process.stdout.read()
        url = first.split(" on ", 1)[1].split(" ", 1)[0]
        for take in range(4):
            answer = requests.post(
                url + "/luma-imagine",
                json={"prompt": f"a lighthouse in a storm, take {take}"},
                headers={"Authorization": token},
                timeout=30,
            )
            assert answer.status_code == 200, answer.text
        recorder = _record_pool(process.pid, lambda: process.poll() is None, 1)
        _kill_and_check(process.pid, recorder, lambda: process.wait(30))
    finally:
        process.kill()
        process.communicate(timeout=30)
        if recorder is not None:
            kill_all(recorder.stop())


def test_a_killed_luma_nb_sandbox_leaves_none_of_its_render_processes(children_env):
    command = [sys.executable, "-m", "luma_nb.cli", "sandbox", "--port", "0", "--speed", "200"]
    process = _popen(command, children_env)
    recorder = None
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert " running at http://" in first, first + process.stdout.read()
        url = first.split(" running at ", 1)[1].split(" ", 1)[0]
        http = requests.Session()
        http.headers["Authorization"] = "any-key"
        ids = [
            http.post(
                url + "/luma-imagine", json={"prompt": f"a storm, take {i}"}, timeout=30
            ).json()["task_id"]
            for i in range(4)
        ]

        def running() -> bool:
            for task_id in ids:  # the sandbox moves its tasks on as they are asked about
                http.post(url + "/fetch", json={"task_id": task_id}, timeout=30)
            return process.poll() is None

        recorder = _record_pool(process.pid, running, 1)
        _kill_and_check(process.pid, recorder, lambda: process.wait(30))
    finally:
        process.kill()
        process.communicate(timeout=30)
        if recorder is not None:
            kill_all(recorder.stop())


# The starter forks a child of its own (os.fork) that lives on, then is killed.
FORKING = RENDERING.replace(
    'print("rendering", flush=True)',
    """import os
child = os.fork()
if child == 0:
    time.sleep(600)
    os._exit(0)
print("rendering", child, flush=True)""",
)


def test_a_forked_child_of_a_killed_starter_does_not_keep_its_render_workers(children_env):
    """The workers end with the starter even while a child it forked lives on (that child
    closes its copies of the workers' pipes)."""
    process = _popen([sys.executable, "-c", FORKING], children_env)
    recorder = child = None
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("rendering "), line + process.stdout.read()
        child = int(line.split()[1])
        recorder = _record_pool(process.pid, lambda: process.poll() is None, WORKERS)
        started = recorder.stop()
        workers = {p for p in started if parent(p.pid) == process.pid and p.pid != child}
        assert len(workers) == WORKERS, started
        os.kill(process.pid, signal.SIGKILL)
        process.wait(30)
        left = wait_gone(workers, GONE_WITHIN)
        assert not left, "workers still running:\n" + "\n".join(map(str, left))
    finally:
        process.kill()
        if child is not None:  # it holds the output pipe too
            with contextlib.suppress(OSError):
                os.kill(child, signal.SIGKILL)
        process.communicate(timeout=30)
        if recorder is not None:
            kill_all(recorder.stop())
