"""Measure 8: a class of simulated students behind one classroom relay.

Each student is a thread with its own ``LumaClient`` (the class token, the relay's URL, the
default polling policy), submitting one extend and waiting for it, all at once. The relay
forwards the submits and watches every open task upstream with one poller; students' fetches
are answered from its store. What the students sent the relay is what as many separate kernels
would have sent the provider directly (the same client, the same policy).
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from . import Section, Table, percentile
from ._sandbox import SandboxProcess, missing

NAME = "relay"
TITLE = "8. A class behind the relay"
#: (students, sandbox speed)
SETUPS: dict[str, tuple[int, float]] = {
    "full": (200, 10.0),
    "quick": (200, 30.0),
    "tiny": (4, 200.0),
}
_PARENT = "654daf83-da79-5639-8207-43dba555dfd4"  # the sandbox's first demo parent


def _student(client: Any, n: int, out: list[dict[str, float]], start: threading.Barrier) -> None:
    start.wait()
    began = time.perf_counter()
    job = client.extend(_PARENT, f"student {n}: the camera pulls back")
    submitted = time.perf_counter()
    task = job.wait(timeout=900)
    out.append(
        {
            "submit": submitted - began,
            "finished": time.perf_counter() - began,
            "ok": float(task.is_finished),
        }
    )


def _scenario(students: int, speed: float) -> dict[str, Any]:
    from luma_nb import LumaClient
    from luma_nb.relay import Relay

    results: list[dict[str, float]] = []
    with SandboxProcess(speed) as sandbox, tempfile.TemporaryDirectory() as folder:
        relay = Relay(
            sandbox.base_url,
            api_key=sandbox.api_key,
            db=Path(folder) / "class.sqlite",
            publish=[_PARENT],  # students extend the class's published start video
        ).start()
        try:
            tokens = relay.add_students(students)
            clients = [LumaClient(t.token, base_url=relay.base_url, journal=None) for t in tokens]
            barrier = threading.Barrier(students)
            threads = [
                threading.Thread(target=_student, args=(c, n, results, barrier), daemon=True)
                for n, c in enumerate(clients)
            ]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(1200)
            elapsed = time.perf_counter() - started
            served = relay.served
            upstream = relay.poller.upstream_requests
            ticks = relay.poller.ticks
            for client in clients:
                client.close()
        finally:
            relay.stop()
    return {
        "elapsed": elapsed,
        "student_fetches": served.get("/fetch", 0) + served.get("/fetch-many", 0),
        "upstream_fetches": upstream,
        "ticks": ticks,
        "results": results,
    }


def run(size: str = "full") -> Section:
    """Run the class once and report requests, submit latency and time to finished."""
    started = time.perf_counter()
    students, speed = SETUPS[size]
    section = Section(
        NAME,
        TITLE,
        about=(
            f"{students} student threads on loopback, each with its own `LumaClient` (default "
            "policy) on a class token: one extend each, all at once, then `job.wait()`. The "
            f"relay (Tornado, SQLite in WAL mode) sits in front of a sandbox at speed {speed:g} "
            f"(a job takes {60 / speed:.0f}–{300 / speed:.0f} s) in a child process at low "
            "priority. Upstream requests are the poller's (`/fetch` + `/fetch-many`); the "
            "separate-kernels figure is what the students sent the relay."
        ),
    )
    absent = missing("luma_nb.relay:Relay", "tornado")
    if absent:
        section.missing = absent
        return section
    r = _scenario(students, speed)
    done = r["results"]
    elapsed = r["elapsed"]
    submits = [d["submit"] for d in done]
    finished = [d["finished"] for d in done]
    ok = sum(1 for d in done if d["ok"])
    ratio = r["upstream_fetches"] / max(1, r["student_fetches"])
    table = Table(("figure", "value"))
    table.add("students finished", f"{ok} / {students}")
    table.add("wall time (s)", elapsed)
    table.add("poller ticks", r["ticks"])
    table.add("upstream polling requests", r["upstream_fetches"])
    table.add("upstream polling requests per second", r["upstream_fetches"] / elapsed)
    table.add("requests per student-job upstream", r["upstream_fetches"] / max(1, students))
    table.add("separate kernels' polling requests", r["student_fetches"])
    table.add("separate kernels' requests per second", r["student_fetches"] / elapsed)
    table.add("submit latency p50 / p99 (ms)", _ms(submits, 50) + " / " + _ms(submits, 99))
    table.add(
        "time to finished p50 / p99 (s)",
        f"{percentile(finished, 50):.1f} / {percentile(finished, 99):.1f}",
    )
    section.tables.append(table)
    section.check("every student's job finished", f"{ok} / {students}", ok == students)
    section.check(
        "upstream polling ≤ 0.2× what separate kernels would send",
        f"{ratio:.3f}×",
        ratio <= 0.2,
    )
    section.notes.append(
        "The students' clients poll at the default policy's pace; a client that honoured the "
        "relay's `X-Luma-NB-Polled-At` could poll the relay less often still."
    )
    section.seconds = time.perf_counter() - started
    return section


def _ms(values: list[float], q: float) -> str:
    return f"{1000 * percentile(values, q):.0f}" if values else "–"
