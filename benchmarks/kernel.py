"""Measure 3: kernel responsiveness while jobs are watched, with a real Jupyter kernel.

A kernel of this venv is started with ``jupyter_client``. The round trip of a trivial cell
(execute request sent -> execute reply received) is timed many times: idle, while 20 jobs are
watched by luma_nb's background watcher, idle again, then behind a blocking ``job.wait()`` for
contrast. A second kernel that watches nothing is asked in turn with the first during the watched
phase: the goals compare the two at the same moments, under the same machine load.
The sandbox runs in a separate process at the lowest CPU priority, standing in for the remote
service (its video synthesis would otherwise compete with the kernel for the two cores).
"""

from __future__ import annotations

import math
import os
import queue
import tempfile
import textwrap
import time
from typing import Any

from . import Section, Table, median, percentile
from ._sandbox import SandboxProcess, missing

NAME = "kernel"
TITLE = "3. Kernel responsiveness"
#: (cells per phase, pause between cells, sandbox speed, watched jobs)
SETUPS = {
    "full": (600, 0.01, 10.0, 20),
    "quick": (300, 0.01, 20.0, 20),
    "tiny": (15, 0.0, 200.0, 3),
}
#: The client's policy in the kernel: the default, or quick fixed looks for the smoke test.
POLICY = {"full": "None", "quick": "None", "tiny": "luma_nb.FixedPolicy(0.1)"}
#: Round trips while jobs are watched, as multiples of the idle ones (measured in the same run).
GOAL_P50 = 1.25
GOAL_P99 = 2.0
TRIVIAL = "_x = 1"


class _Kernel:
    """A started kernel and a blocking client, with timed executions."""

    def __init__(self, env: dict[str, str]) -> None:
        from jupyter_client.manager import KernelManager

        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel(env=env)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)
        self._replies: dict[str, dict[str, Any]] = {}

    def send(self, code: str) -> str:
        return str(self.kc.execute(code, store_history=False))

    def reply(self, msg_id: str, timeout: float = 120.0) -> dict[str, Any]:
        """Wait for the reply to ``msg_id`` (replies to other requests are kept for later)."""
        while msg_id not in self._replies:
            msg = self.kc.get_shell_msg(timeout=timeout)
            self._replies[msg["parent_header"].get("msg_id", "")] = msg["content"]
        self._drain()
        content = self._replies.pop(msg_id)
        if content.get("status") != "ok":
            raise RuntimeError(f"cell failed: {content.get('ename')}: {content.get('evalue')}")
        return content

    def _drain(self) -> None:
        """Discard the output messages (nothing is displayed here)."""
        while True:
            try:
                self.kc.get_iopub_msg(timeout=0)
            except queue.Empty:
                return

    def run(self, code: str, timeout: float = 120.0) -> float:
        """Execute ``code``; the round-trip time in seconds."""
        t0 = time.perf_counter()
        self.reply(self.send(code), timeout)
        return time.perf_counter() - t0

    def value(self, expression: str) -> str:
        """The repr of ``expression`` evaluated in the kernel."""
        msg_id = str(self.kc.execute("", user_expressions={"v": expression}, store_history=False))
        content = self.reply(msg_id)
        return str(content["user_expressions"]["v"]["data"]["text/plain"])

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=False)


def _phase(kernel: _Kernel, cells: int, pause: float) -> list[float]:
    times = []
    for _ in range(cells):
        times.append(kernel.run(TRIVIAL))
        if pause:
            time.sleep(pause)
    return times


def _pair(
    watching: _Kernel, control: _Kernel, cells: int, pause: float
) -> list[tuple[float, float]]:
    """Alternate trivial cells between the two kernels: (watching, control) round trips."""
    times = []
    for _ in range(cells):
        times.append((watching.run(TRIVIAL), control.run(TRIVIAL)))
        if pause:
            time.sleep(pause)
    return times


def run(size: str = "full") -> Section:
    """Idle vs watching vs blocking round trips of a trivial cell."""
    started = time.perf_counter()
    cells, pause, speed, count = SETUPS[size]
    section = Section(
        NAME,
        TITLE,
        about=(
            f"A real kernel (`jupyter_client` + ipykernel from this venv). Round trip of a trivial "
            f"cell (`{TRIVIAL}`: execute request to execute reply), {cells} cells idle, then cells "
            f"until all {count} watched jobs have finished, each followed by the same cell on "
            f"a second kernel that watches nothing (the idle control); {pause * 1000:.0f} ms "
            "apart. "
            f"The sandbox (speed {speed:g}: jobs of "
            f"{60 / speed:.0f}–{300 / speed:.0f} s) runs in its own process at nice 19, standing "
            "in for the remote service."
        ),
    )
    absent = missing("luma_nb.client.watcher:watch", "jupyter_client", "ipykernel")
    if absent:
        section.missing = absent
        return section
    with (
        tempfile.TemporaryDirectory(prefix="luma-bench-kernel-") as home,
        SandboxProcess(speed) as sandbox,
    ):
        env = dict(os.environ, LUMA_NB_HOME=home)
        kernel = _Kernel(env)
        # A second kernel that watches nothing, asked in turn with the first: the idle
        # reference under the very same machine load.
        control = _Kernel(env)
        try:
            control.run("import luma_nb")
            setup = f"""
                import luma_nb, luma_nb.client.watcher as _w
                client = luma_nb.LumaClient({sandbox.api_key!r}, base_url={sandbox.base_url!r},
                                            journal=None, poll={POLICY[size]})
                watcher = _w.get_watcher()
                seen = []
                def on_change(watch):
                    seen.append(watch.job.task.describe() if watch.job.task else "")
                """
            kernel.run(textwrap.dedent(setup))
            for _ in range(20):
                kernel.run(TRIVIAL)  # warm-up
                control.run(TRIVIAL)
            idle = _phase(kernel, cells, pause)
            kernel.run(
                f"jobs = [client.imagine(f'kernel benchmark {{n}}') for n in range({count})]\n"
                "watches = [_w.watch(j, listener=on_change) for j in jobs]\n"
                "calls0 = watcher.fetch_calls"
            )
            t0 = time.perf_counter()
            # Trivial cells until every watched job has finished (the whole life of the jobs:
            # queue, progress, the dense looks near the end, the final updates).
            pairs: list[tuple[float, float]] = []
            active = count
            while active and len(pairs) < 20 * cells:
                pairs += _pair(kernel, control, max(1, cells // 6), pause)
                active = int(kernel.value("sum(1 for w in watches if not w.done)"))
            busy = [w for w, _ in pairs]
            beside = [c for _, c in pairs]
            window = time.perf_counter() - t0
            ticks = int(kernel.value("watcher.fetch_calls - calls0"))
            changes = int(kernel.value("len(seen)"))
            kernel.run("[w.wait(timeout=600) for w in watches]", timeout=660)
            # Idle again once every job ended: the two idle phases bracket the watched one,
            # so a change of machine load during the run weighs on both sides.
            after = _phase(kernel, max(1, cells // 2), pause)
            # Contrast: a blocking wait in one cell; a trivial cell sent right after it queues.
            kernel.run("job = client.imagine('blocking contrast')")
            blocking_id = kernel.send("job.wait()")
            t0 = time.perf_counter()
            queued = kernel.run(TRIVIAL, timeout=660)
            kernel.reply(blocking_id)
        finally:
            kernel.close()
            control.close()
    table = Table(("phase", "kernel", "cells", "p50 (ms)", "p99 (ms)", "max (ms)"))
    rows = (
        ("idle, before", "watching", idle),
        ("idle, after", "watching", after),
        (f"{count} jobs watched in the background", "watching", busy),
        ("the same moments, asked in turn", "idle control", beside),
    )
    for label, which, values in rows:
        table.add(
            label,
            which,
            len(values),
            1000 * median(values),
            percentile(values, 99) * 1000,
            1000 * max(values),
        )
    table.add(
        "behind a blocking `job.wait()`", "watching", 1, 1000 * queued, 1000 * queued, 1000 * queued
    )
    section.tables.append(table)
    p50_busy, p50_idle = 1000 * median(busy), 1000 * median(beside)
    p99_busy, p99_idle = 1000 * percentile(busy, 99), 1000 * percentile(beside, 99)
    # The spread: the same ratios over consecutive blocks of the watched phase.
    block = max(50, len(pairs) // 8)
    blocks = [pairs[k : k + block] for k in range(0, len(pairs) - block + 1, block)]
    spread = [median(w for w, _ in b) / median(c for _, c in b) for b in blocks] or [math.nan]
    section.check(
        f"p50 while {count} jobs are watched ≤ {GOAL_P50:g}× the idle kernel's, same moments",
        f"{p50_busy / p50_idle:.2f}× ({p50_busy:.1f} vs {p50_idle:.1f} ms; blocks of {block}: "
        f"min {min(spread):.2f}, max {max(spread):.2f})",
        p50_busy <= GOAL_P50 * p50_idle,
    )
    section.check(
        f"p99 while {count} jobs are watched ≤ {GOAL_P99:g}× the idle kernel's, same moments",
        f"{p99_busy / p99_idle:.2f}× ({p99_busy:.1f} vs {p99_idle:.1f} ms)",
        p99_busy <= GOAL_P99 * p99_idle,
    )
    section.notes.append(
        f"During the {window:.1f} s watched phase the watcher made {ticks} fetch ticks and "
        f"called listeners {changes} times; {count - active} of {count} jobs finished within it."
    )
    section.notes.append(
        f"Blocking contrast: a trivial cell sent after `job.wait()` answered after {queued:.1f} s,"
        " the rest of the job's run: a blocking wait holds the kernel, the watcher does not."
    )
    section.seconds = time.perf_counter() - started
    return section
