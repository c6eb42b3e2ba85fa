"""A class on one sandbox: the worker-process renderer against the earlier two-thread design.

``python -m benchmarks.sandbox_class [--students 200] [--deadline 90] [--output PATH]``

Both render modes run in the same invocation, on the same machine, at speed 10:

1. **Renders per second**: 20 extensions of demo parents with distinct prompts, forced to
   finish at once; the time until every video exists.
2. **A class**: N students each submit an imagine, poll ``/fetch`` every 2 s, then extend it
   and poll until the video answers a GET. Once with the suggested prompts (every student types
   the same: *cached*), once with a prompt of their own (*uncached*). Extend -> playable is
   divided by the extension's planned duration (its simulated timetable / speed).
3. **A burst**: 1,000 simultaneous submits on fresh connections, with a data dir; a submit is
   lost when it got no task id or the sandbox does not hold its task.

A student whose imagine is not playable ``--deadline`` seconds after the start, or whose
extension is not playable after 3x its planned duration, counts as not playable (``>``).
Figures are printed and written as Markdown; nothing asserts on time.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime
import math
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from benchmarks import machine, percentile
from luma_nb.sandbox import DEMO_PARENTS, Sandbox

SPEED = 10.0
POLL = 2.0
CUTOFF = 3.0
MODES = ("threads", "processes")
HERE = Path(__file__).resolve().parent


@dataclass
class ClassRun:
    """What one class run measured."""

    ratios: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    errors: int = 0
    refused: int = 0
    unfinished: int = 0


def _session(sandbox: Sandbox) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = sandbox.api_key
    return session


def _submit(session: requests.Session, url: str, body: dict[str, Any], run: ClassRun) -> str:
    while True:
        answer = session.post(url, json=body, timeout=60)
        if answer.status_code == 429:
            run.refused += 1
            time.sleep(float(answer.headers.get("Retry-After", "1")))
            continue
        answer.raise_for_status()
        return str(answer.json()["task_id"])


def _wait(session: requests.Session, base: str, task_id: str, deadline: float) -> str | None:
    while time.monotonic() < deadline:
        answer = session.post(f"{base}/fetch", json={"task_id": task_id}, timeout=60)
        answer.raise_for_status()
        body = answer.json()
        if "video_url" in body:
            return str(body["video_url"])
        if body.get("status") == "failed":
            raise RuntimeError(body)
        time.sleep(POLL)
    return None


def _student(sandbox: Sandbox, n: int, cached: bool, run: ClassRun, deadline: float) -> None:
    session = _session(sandbox)
    base = sandbox.base_url
    words = "a lighthouse in fog at dawn" if cached else f"student {n}'s own lighthouse"
    try:
        parent = _submit(session, f"{base}/luma-imagine", {"prompt": words}, run)
        if _wait(session, base, parent, deadline) is None:
            run.unfinished += 1
            return
        started = time.monotonic()
        extra = "" if cached else f" {n}"
        body = {"parent_task_id": parent, "prompt": "the camera pulls back" + extra}
        child = _submit(session, f"{base}/luma-extend", body, run)
        record = sandbox._store.record(child)
        assert record is not None and record.plan is not None
        planned = record.plan.total / SPEED
        # Past 3x its plan an extension has missed the goal: stop waiting (shown as ">").
        url = _wait(session, base, child, started + CUTOFF * planned)
        if url is None:
            run.unfinished += 1
            return
        video = session.get(url, headers={"Range": "bytes=0-65535"}, timeout=60)
        video.raise_for_status()
        took = time.monotonic() - started
        run.seconds.append(took)
        run.ratios.append(took / planned)
    except Exception:
        run.errors += 1
    finally:
        session.close()


def class_run(mode: str, students: int, cached: bool, limit: float) -> ClassRun:
    """N students, an imagine then an extend each; extend -> playable against the plan."""
    run = ClassRun()
    with Sandbox(speed=SPEED, credits=None, render_mode=mode) as sandbox:
        deadline = time.monotonic() + limit
        threads = [
            threading.Thread(target=_student, args=(sandbox, n, cached, run, deadline))
            for n in range(students)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return run


def renders_per_second(mode: str, count: int = 20) -> float:
    """Distinct extensions of demo parents forced to finish together: videos per second."""
    with Sandbox(speed=SPEED, credits=None, render_mode=mode) as sandbox:
        session = _session(sandbox)
        for parent in DEMO_PARENTS:  # demo parents exist before the clock starts
            sandbox._renderer.ensure(parent.task_id)
        ids = []
        for n in range(count):
            parent = DEMO_PARENTS[n % len(DEMO_PARENTS)].task_id
            body = {"parent_task_id": parent, "prompt": f"throughput {mode} {n}"}
            ids.append(_submit(session, f"{sandbox.base_url}/luma-extend", body, ClassRun()))
        started = time.monotonic()
        for task_id in ids:
            sandbox.complete(task_id, wait=None)
        for task_id in ids:
            sandbox.complete(task_id, wait=600)
        took = time.monotonic() - started
        session.close()
    return count / took


def burst(mode: str, submits: int = 1000) -> tuple[int, int, int, float]:
    """(answered with a task id, errors, lost, p50 seconds) for simultaneous submits."""
    with (
        tempfile.TemporaryDirectory() as data,
        Sandbox(speed=SPEED, credits=None, render_mode=mode, data_dir=data) as sandbox,
    ):
        gate = threading.Barrier(submits)
        url = f"{sandbox.base_url}/luma-imagine"

        def one(n: int) -> tuple[str | None, float]:
            gate.wait()
            started = time.monotonic()
            try:
                answer = requests.post(
                    url,
                    json={"prompt": f"burst {n}"},
                    headers={"Authorization": sandbox.api_key},
                    timeout=120,
                )
                task_id = answer.json()["task_id"] if answer.status_code == 200 else None
            except (requests.RequestException, ValueError):
                task_id = None
            return task_id, time.monotonic() - started

        with cf.ThreadPoolExecutor(submits) as pool:
            results = list(pool.map(one, range(submits)))
        ids = [t for t, _ in results if t]
        held = set(sandbox.task_ids)
        lost = sum(1 for t in ids if t not in held) + (submits - len(ids))
        p50 = percentile([s for _, s in results], 50)
    return len(ids), submits - len(ids), lost, p50


def _fmt_p(values: list[float], unfinished: int, total: int, q: float) -> str:
    if not total:
        return "-"
    ordered = sorted(values) + [math.inf] * unfinished
    value = ordered[min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1)]
    return ">cut" if math.isinf(value) else f"{value:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=200)
    parser.add_argument(
        "--deadline", type=float, default=60.0, help="seconds the imagines may take in all"
    )
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--output", default=str(HERE / "RESULTS_sandbox_class.md"))
    args = parser.parse_args(argv)
    lines = [
        "# A class on one sandbox",
        "",
        f"Written by `python -m benchmarks.sandbox_class --students {args.students}` on "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; speed {SPEED:g}, "
        f"poll every {POLL:g} s; imagines cut at {args.deadline:g} s, extensions at "
        f"{CUTOFF:g}x their plan (`>cut`).",
        "",
        "| machine | |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in machine()),
        "",
    ]
    rates = {mode: renders_per_second(mode) for mode in MODES}
    lines += [
        "## Renders per second (20 distinct extensions of demo parents)",
        "",
        "| mode | renders/s | ratio vs threads |",
        "|---|---|---|",
        *(f"| {m} | {rates[m]:.2f} | {rates[m] / rates['threads']:.2f}x |" for m in MODES),
        "",
    ]
    print("\n".join(lines), flush=True)
    table = [
        f"## A class of {args.students}: extend -> playable (seconds and x planned duration)",
        "",
        "| mode | prompts | playable | errors | 429 | p50 s | p99 s | p50 x plan | p99 x plan |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for mode in MODES:
        for cached in (True, False):
            run = class_run(mode, args.students, cached, args.deadline)
            total = len(run.ratios) + run.unfinished
            row = (
                f"| {mode} | {'cached' if cached else 'uncached'} | "
                f"{len(run.ratios)}/{args.students} | {run.errors} | {run.refused} | "
                f"{_fmt_p(run.seconds, run.unfinished, total, 50)} | "
                f"{_fmt_p(run.seconds, run.unfinished, total, 99)} | "
                f"{_fmt_p(run.ratios, run.unfinished, total, 50)} | "
                f"{_fmt_p(run.ratios, run.unfinished, total, 99)} |"
            )
            print(row, flush=True)
            table.append(row)
    lines += [*table, ""]
    got, errors, lost, p50 = burst("processes", args.burst)
    lines += [
        f"## A burst of {args.burst} simultaneous submits (data dir, SQLite state)",
        "",
        "| answered | errors | lost | p50 s |",
        "|---|---|---|---|",
        f"| {got} | {errors} | {lost} | {p50:.2f} |",
        "",
    ]
    print("\n".join(lines[-6:]), flush=True)
    Path(args.output).write_text("\n".join(lines), "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
