"""Measure 9: a class of 1,000 simulated students across two relay processes on PostgreSQL.

Two relay processes (``benchmarks._relay_proc``) on different ports share one class in one
PostgreSQL database (a real server, started as the tests start it), in front of one sandbox in
a child process. Each student is a thread with its own ``LumaClient`` on a class token,
submitting one extend through relay A or B (alternately) and waiting for it, all at once. The
class budget is tight: it holds 90 % of the submits, so the rest must be refused (402) and no
credit may be overspent. Each relay reports what its poller did; the ledger is read at the end.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from typing import Any

from . import Section, Table, percentile
from ._sandbox import SandboxProcess, missing

NAME = "relay_postgres"
TITLE = "9. Two relays on PostgreSQL"
#: (students, sandbox speed)
SETUPS: dict[str, tuple[int, float]] = {
    "full": (1000, 10.0),
    "quick": (300, 30.0),
    "tiny": (6, 200.0),
}
COST = 6.0
_PARENT = "654daf83-da79-5639-8207-43dba555dfd4"  # the sandbox's first demo parent


class _RelayProcess:
    """``python -m benchmarks._relay_proc``: started, and its poller's figures at the end."""

    def __init__(self, upstream: str, key: str, db: str, *options: str) -> None:
        env = dict(os.environ, APIFRAME_API_KEY=key, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks._relay_proc", upstream, db, *options],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        found = re.match(r"ready (\S+)", line)
        if not found:
            self.proc.kill()
            raise RuntimeError(f"the relay process did not start: {line!r}")
        self.url = found.group(1)

    def finish(self) -> dict[str, Any]:
        """SIGTERM, then the JSON line it printed."""
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=120)
        stats: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return stats


def _student(client: Any, via: int, out: list[dict[str, float]], start: threading.Barrier) -> None:
    from luma_nb.contract.errors import InsufficientCreditsError, LumaError

    start.wait()
    began = time.perf_counter()
    try:
        job = client.extend(_PARENT, "the camera pulls back")
    except InsufficientCreditsError:
        out.append({"submit": time.perf_counter() - began, "refused": 1.0, "ok": 0.0, "via": via})
        return
    except LumaError:  # no answer in time, or another failure: neither accepted nor refused
        out.append({"submit": time.perf_counter() - began, "lost": 1.0, "ok": 0.0, "via": via})
        return
    submitted = time.perf_counter()
    task = job.wait(timeout=1200)
    finished = float(task.is_finished)
    out.append({"submit": submitted - began, "refused": 0.0, "ok": finished, "via": via})


def _scenario(students: int, speed: float) -> dict[str, Any]:
    from luma_nb import LumaClient
    from luma_nb.relay.postgres import PostgresStore
    from luma_nb.relay.tokens import issue
    from tests.pg_support import PostgresServer

    allowed = int(students * 0.9)
    budget = ("--class-budget", str(allowed * COST), "--student-budget", str(COST))
    results: list[dict[str, float]] = []
    server = PostgresServer()
    try:
        dsn = server.database()
        store = PostgresStore(dsn)
        tokens = issue(store, students)
        with SandboxProcess(speed, credits="unlimited") as sandbox:
            relays = [
                _RelayProcess(sandbox.base_url, sandbox.api_key, dsn, *budget, "--publish", _PARENT)
                for _ in range(2)
            ]
            clients = [
                LumaClient(t.token, base_url=relays[n % 2].url, journal=None)
                for n, t in enumerate(tokens)
            ]
            barrier = threading.Barrier(students)
            threads = [
                threading.Thread(target=_student, args=(c, n % 2, results, barrier), daemon=True)
                for n, c in enumerate(clients)
            ]
            overflows = _listen_overflows()
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(1800)
            elapsed = time.perf_counter() - started
            after = _listen_overflows()
            stats = [relay.finish() for relay in relays]
            for client in clients:
                client.close()
        ledger = store.ledger()
        spent = store.spent()
        over = [s.name for s in store.students() if store.spent(s) > COST]
        store.close()
    finally:
        server.stop()
    charged = sum(e.credits for e in ledger if e.kind == "charge")
    refunded = sum(e.credits for e in ledger if e.kind == "refund")
    return {
        "overflows": None if overflows is None or after is None else after - overflows,
        "elapsed": elapsed,
        "results": results,
        "stats": stats,
        "allowed": allowed,
        "spent": spent,
        "charged_net": charged - refunded,
        "charges": sum(1 for e in ledger if e.kind == "charge"),
        "releases": sum(1 for e in ledger if e.kind == "release"),
        "over": over,
    }


def run(size: str = "full") -> Section:
    """Run the class once over two relays and report polling, latency and the ledger."""
    started = time.perf_counter()
    students, speed = SETUPS[size]
    section = Section(
        NAME,
        TITLE,
        about=(
            f"{students} student threads on loopback, each with its own `LumaClient` (default "
            "policy) on a class token, half on relay A and half on relay B: one extend each, "
            "all at once, then `job.wait()`. The two relays are separate processes sharing "
            "one PostgreSQL database (Debian's server, started for the run with fsync off); "
            f"the class budget holds {int(students * 0.9)} submits, each student's one. The "
            f"sandbox (unlimited credits) runs at speed {speed:g} in a child process at low "
            "priority. A poll tick fetches every task its relay holds the lease of (chunks of "
            "20)."
        ),
    )
    absent = missing("luma_nb.relay:Relay", "tornado", "psycopg")
    if absent:
        section.missing = absent
        return section
    from tests.pg_support import PostgresMissing

    try:
        r = _scenario(students, speed)
    except PostgresMissing as error:
        section.missing = str(error)
        return section
    done = r["results"]
    lost = sum(1 for d in done if d.get("lost"))
    accepted = [d for d in done if not d.get("refused") and not d.get("lost")]
    refused = sum(1 for d in done if d.get("refused"))
    ok = sum(1 for d in accepted if d["ok"])
    stats = r["stats"]
    polled = [set(s["polled"]) for s in stats]
    both = len(polled[0] & polled[1])
    table = Table(("figure", "relay A", "relay B", "class"))
    ticks = [s["ticks"] for s in stats]
    ups = [s["upstream_requests"] for s in stats]
    table.add("tasks polled upstream", len(polled[0]), len(polled[1]), len(polled[0] | polled[1]))
    table.add("poll ticks", ticks[0], ticks[1], sum(ticks))
    table.add("upstream polling requests", ups[0], ups[1], sum(ups))
    table.add(
        "upstream requests per tick",
        *(u / max(1, t) for u, t in zip(ups, ticks, strict=True)),
        sum(ups) / max(1, sum(ticks)),
    )
    submits = [[d["submit"] for d in done if d["via"] == n] for n in range(2)]
    every = [d["submit"] for d in done]
    table.add(
        "submit latency p50 / p99 (ms)",
        *(_ms(s, 50) + " / " + _ms(s, 99) for s in submits),
        _ms(every, 50) + " / " + _ms(every, 99),
    )
    table.add(
        "submits accepted / refused (402) / failed",
        "",
        "",
        f"{len(accepted)} / {refused} / {lost}",
    )
    table.add("jobs finished", "", "", f"{ok} / {len(accepted)}")
    table.add("wall time (s)", "", "", r["elapsed"])
    if r["overflows"] is not None:
        table.add("connections turned away by a full accept queue", "", "", r["overflows"])
    section.tables.append(table)
    ledger = Table(("ledger", "value"))
    ledger.add("class budget (credits)", r["allowed"] * COST)
    ledger.add("credits spent (ledger)", r["spent"])
    ledger.add("credits charged for tasks, less refunds", r["charged_net"])
    ledger.add("charges in the ledger", r["charges"])
    ledger.add("releases (submits the upstream refused)", r["releases"])
    ledger.add("students over their budget", len(r["over"]))
    section.tables.append(ledger)
    section.check(
        "no overspend: spent == charged tasks ≤ class budget, no student over budget",
        f"{r['spent']:g} == {r['charged_net']:g} ≤ {r['allowed'] * COST:g}, {len(r['over'])}",
        r["spent"] == r["charged_net"] <= r["allowed"] * COST and not r["over"],
    )
    section.check(
        "exactly the class budget's submits accepted, the rest refused",
        f"{len(accepted)} accepted, {refused} refused of {students}",
        len(accepted) == r["allowed"] and refused == students - r["allowed"],
    )
    section.check("each task polled by one relay only", f"{both} polled by both", both == 0)
    section.check("every accepted job finished", f"{ok} / {len(accepted)}", ok == len(accepted))
    section.notes.append(
        "The submit latency is the student's: its relay's budget check and reservation (one "
        "serialised PostgreSQL transaction across both relays), the upstream submit, and the "
        "charge. The per-relay columns split the students by the relay they used."
    )
    section.notes.append(
        "All students connect in the same instant. A relay's listening socket queues 128 "
        "connections (Tornado's default); the kernel turns the rest away and their clients "
        "try again after 1, 3, 7 s: a large part of the tail. The turned-away count is the "
        "machine's (`ListenOverflows` in /proc/net/netstat) over the run."
    )
    section.seconds = time.perf_counter() - started
    return section


def _listen_overflows() -> int | None:
    """The machine's count of connections a full accept queue turned away (Linux), or None."""
    try:
        lines = open("/proc/net/netstat", encoding="ascii").read().splitlines()  # noqa: SIM115
    except OSError:
        return None
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:], strict=False))
            value = table.get("ListenOverflows")
            return int(value) if value is not None else None
    return None


def _ms(values: list[float], q: float) -> str:
    return f"{1000 * percentile(values, q):.0f}" if values else "–"
