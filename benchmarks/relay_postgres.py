"""Measure 9: a class submitting in a burst through two relay processes on PostgreSQL.

Two relay processes (``benchmarks._relay_proc``) on different ports share one class in one
PostgreSQL database (a real server, started as the tests start it), in front of one sandbox in
a child process. Each student has their own ``LumaClient`` on a class token and submits one
extend through relay A or B (alternately). The arrivals are open-loop: each submit leaves at
its own moment whatever the others are doing, either as a Poisson process (a class starting
over some seconds) or all in one instant. Every arrival is also sent straight to the sandbox
at the same moment by a twin client with the sandbox's key, so the same run measures what the
relays add to a submit. The class budget holds 90 % of the submits: the rest must be refused
(402) and the ledger must come out exact. A third class meets an upstream that runs only a
few jobs at once and answers 429 past that; the relays (``--max-running``) keep its students'
submits in the class's queue until there is room, and every student waits for the video.

Connections turned away are counted two ways: failures the clients saw, and the kernel's
counters of connections a full accept queue dropped (``ListenOverflows``/``ListenDrops`` in
``/proc/net/netstat``, for the whole machine).
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from . import Section, Table, percentile
from ._sandbox import SandboxProcess, missing

NAME = "relay_postgres"
TITLE = "9. A class in a burst: two relays on PostgreSQL"


@dataclass(frozen=True)
class Setup:
    """One size of the measure."""

    students: int
    """Arrivals (each both through the relays and direct)."""
    rate: float
    """Poisson arrivals per second (the burst row sends all at once)."""
    speed: float
    """The sandbox's speed (jobs take 60-300 s divided by it)."""


@dataclass(frozen=True)
class QueueSetup:
    """The queue row: an upstream that runs a few jobs at once and answers 429 past that."""

    students: int
    """Arrivals through the relays (Poisson, at the first rows' rate)."""
    max_running: int
    """Jobs the sandbox runs at once, and the relays' ``--max-running``."""
    speed: float
    """The sandbox's speed, so every job finishes within the run."""


QUEUE_SETUPS: dict[str, QueueSetup] = {
    "full": QueueSetup(200, 10, 60.0),
    "quick": QueueSetup(60, 10, 60.0),
    "tiny": QueueSetup(6, 2, 200.0),
}

SETUPS: dict[str, Setup] = {
    # Jobs as long as the provider's (60-300 s): the relays' pollers work at their pace
    # meanwhile, as during a lesson.
    "full": Setup(1000, 100.0, 1.0),
    "quick": Setup(300, 100.0, 1.0),
    "tiny": Setup(6, 50.0, 200.0),
}
COST = 6.0
SEED = 20261207
#: The goal: p99 through the relays at most this many times direct's p99 (Poisson arrivals).
RATIO_GOAL = 2.0
_PARENT = "654daf83-da79-5639-8207-43dba555dfd4"  # the sandbox's first demo parent
_PROMPT = "the camera pulls back"  # one prompt: the sandbox renders its video once


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


@dataclass
class _Answer:
    """One submit as its client saw it."""

    arm: str
    """``relay A``, ``relay B`` or ``direct``."""
    seconds: float
    """From the arrival's scheduled moment to the answer."""
    outcome: str
    """``accepted``, ``refused`` (402) or the error's class name."""
    moment: float = 0.0
    """The scheduled moment, seconds from the row's start."""
    done: float = 0.0
    """From the scheduled moment to the finished video (the queue row)."""


@dataclass
class _Run:
    answers: list[_Answer] = field(default_factory=list)
    late: list[float] = field(default_factory=list)
    """How late each submit left after its scheduled moment (the load generator's own lag)."""


def arrivals(count: int, rate: float | None, seed: int = SEED) -> list[float]:
    """Moments (seconds from the start) of ``count`` arrivals: a Poisson process of ``rate``
    per second, or all at 0 for ``rate`` None."""
    if rate is None:
        return [0.0] * count
    rng = random.Random(seed)
    moments, now = [], 0.0
    for _ in range(count):
        now += rng.expovariate(rate)
        moments.append(now)
    return moments


def _submit(
    client: Any, arm: str, at: float, start: float, run: _Run, lock: threading.Lock
) -> None:
    from luma_nb.contract.errors import InsufficientCreditsError, LumaError

    delay = at - time.perf_counter()
    if delay > 0:
        time.sleep(delay)
    left = time.perf_counter() - at
    try:
        client.extend(_PARENT, _PROMPT)
        outcome = "accepted"
    except InsufficientCreditsError:
        outcome = "refused"
    except LumaError as error:  # no answer, a connection refused, another failure
        outcome = type(error).__name__
    answer = _Answer(arm, time.perf_counter() - at, outcome, at - start)
    # The student's connection is not kept: a row's thousands of idle keep-alive connections
    # would hold every one of the sandbox's connection threads.
    client.close()
    with lock:
        run.answers.append(answer)
        run.late.append(left)


def kernel_drops() -> dict[str, int] | None:
    """The machine's counts of connections turned away by a full accept queue (Linux's
    ``ListenOverflows`` and ``ListenDrops``), or None where they cannot be read."""
    try:
        with open("/proc/net/netstat", encoding="ascii") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:], strict=False))
            try:
                return {k: int(table[k]) for k in ("ListenOverflows", "ListenDrops")}
            except (KeyError, ValueError):
                return None
    return None


def _row(server: Any, setup: Setup, rate: float | None) -> dict[str, Any]:
    """One row: a fresh class database, a sandbox, two relays, the arrivals on both arms."""
    from luma_nb import LumaClient
    from luma_nb.relay.postgres import PostgresStore
    from luma_nb.relay.tokens import issue

    students = setup.students
    allowed = int(students * 0.9)
    options = (
        *("--class-budget", str(allowed * COST), "--student-budget", str(COST)),
        *("--publish", _PARENT),
    )
    dsn = server.database()
    store = PostgresStore(dsn)
    run = _Run()
    try:
        tokens = issue(store, students)
        # At normal priority: a starved sandbox would slow the direct reference most.
        with SandboxProcess(setup.speed, nice=0, credits="unlimited") as sandbox:
            relays = [
                _RelayProcess(sandbox.base_url, sandbox.api_key, dsn, *options) for _ in range(2)
            ]
            arms = [
                (
                    f"relay {'AB'[n % 2]}",
                    LumaClient(t.token, base_url=relays[n % 2].url, journal=None),
                )
                for n, t in enumerate(tokens)
            ]
            direct = [
                ("direct", LumaClient(sandbox.api_key, base_url=sandbox.base_url, journal=None))
                for _ in tokens
            ]
            lock = threading.Lock()
            moments = arrivals(students, rate)
            before = kernel_drops()
            start = time.perf_counter() + 1.0  # every thread is waiting by then
            threads = []
            for at, (relay_arm, direct_arm) in zip(
                moments, zip(arms, direct, strict=True), strict=True
            ):
                for arm, client in (relay_arm, direct_arm):
                    thread = threading.Thread(
                        target=_submit,
                        args=(client, arm, start + at, start, run, lock),
                        daemon=True,
                    )
                    thread.start()
                    threads.append(thread)
            for thread in threads:
                thread.join(600)
            elapsed = time.perf_counter() - start
            after = kernel_drops()
            stats = [relay.finish() for relay in relays]
            for _, client in arms + direct:
                client.close()
        ledger = store.ledger()
        left_open = len(store.submits("reserved")) + len(store.submits("uncertain"))
        spent = store.spent()
        over = [s.name for s in store.students() if store.spent(s) > COST]
    finally:
        store.close()
    charged = sum(e.credits for e in ledger if e.kind == "charge")
    refunded = sum(e.credits for e in ledger if e.kind == "refund")
    drops = None
    if before is not None and after is not None:
        drops = {k: after[k] - before[k] for k in before}
    return {
        "rate": rate,
        "students": students,
        "allowed": allowed,
        "elapsed": elapsed,
        "run": run,
        "drops": drops,
        "stats": stats,
        "spent": spent,
        "charged_net": charged - refunded,
        "reserves": sum(1 for e in ledger if e.kind == "reserve"),
        "charges": sum(1 for e in ledger if e.kind == "charge"),
        "releases": sum(1 for e in ledger if e.kind == "release"),
        "left_open": left_open,
        "over": over,
    }


def _student_waits(
    client: Any, arm: str, at: float, start: float, run: _Run, lock: threading.Lock
) -> None:
    """A student of the queue row: submit at ``at``, then wait for the video."""
    from luma_nb.contract.errors import LumaError

    delay = at - time.perf_counter()
    if delay > 0:
        time.sleep(delay)
    try:
        job = client.extend(_PARENT, _PROMPT)
        submitted = time.perf_counter() - at
        task = job.wait(timeout=900)
        outcome = "finished" if task.is_finished else f"ended {task.status}"
    except LumaError as error:
        submitted = time.perf_counter() - at
        outcome = type(error).__name__
    answer = _Answer(arm, submitted, outcome, at - start)
    answer.done = time.perf_counter() - at
    client.close()
    with lock:
        run.answers.append(answer)


def _queue_row(server: Any, setup: Setup, queue: QueueSetup) -> dict[str, Any]:
    """The third row: the sandbox runs ``queue.max_running`` jobs at once (429 past that) and
    both relays keep the class under that limit with their queue."""
    from luma_nb import LumaClient
    from luma_nb.relay.postgres import PostgresStore
    from luma_nb.relay.tokens import issue

    limit = ("--max-running", str(queue.max_running))
    options = (*limit, "--publish", _PARENT)
    dsn = server.database()
    store = PostgresStore(dsn)
    run = _Run()
    try:
        tokens = issue(store, queue.students)
        with SandboxProcess(queue.speed, nice=0, credits="unlimited", options=limit) as sandbox:
            relays = [
                _RelayProcess(sandbox.base_url, sandbox.api_key, dsn, *options) for _ in range(2)
            ]
            clients = [
                (
                    f"relay {'AB'[n % 2]}",
                    LumaClient(t.token, base_url=relays[n % 2].url, journal=None),
                )
                for n, t in enumerate(tokens)
            ]
            lock = threading.Lock()
            start = time.perf_counter() + 1.0
            threads = [
                threading.Thread(
                    target=_student_waits,
                    args=(client, arm, start + at, start, run, lock),
                    daemon=True,
                )
                for at, (arm, client) in zip(
                    arrivals(queue.students, setup.rate), clients, strict=True
                )
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(1200)
            elapsed = time.perf_counter() - start
            stats = [relay.finish() for relay in relays]
        ledger = store.ledger()
        left_open = sum(len(store.submits(state)) for state in ("reserved", "queued", "uncertain"))
        spent = store.spent()
    finally:
        store.close()
    reserved = {e.submit_id: e.at for e in ledger if e.kind == "reserve"}
    waits = [e.at - reserved[e.submit_id] for e in ledger if e.kind == "charge"]
    return {
        "queue": queue,
        "run": run,
        "elapsed": elapsed,
        "stats": stats,
        "waits": waits,
        "spent": spent,
        "charges": len(waits),
        "releases": sum(1 for e in ledger if e.kind == "release"),
        "refunds": sum(1 for e in ledger if e.kind == "refund"),
        "left_open": left_open,
    }


def _queue_section(section: Section, r: dict[str, Any]) -> None:
    queue: QueueSetup = r["queue"]
    answers: list[_Answer] = r["run"].answers
    finished = [a for a in answers if a.outcome == "finished"]
    refused = [a for a in answers if a.outcome in ("InsufficientCreditsError", "RateLimitError")]
    other = [a for a in answers if a not in finished and a not in refused]
    waits = r["waits"]
    submitted = [a.seconds for a in answers]
    done = [a.done for a in finished]
    table = Table(
        ("figure", "value"),
        title=(
            f"An upstream running {queue.max_running} jobs at once (429 past that), both relays "
            f"with --max-running {queue.max_running}: {queue.students} students, Poisson arrivals"
        ),
    )
    table.add("students whose job finished", f"{len(finished)} / {queue.students}")
    table.add("submits refused (429 or 402) / failed otherwise", f"{len(refused)} / {len(other)}")
    table.add(
        "submit answered p50 / p99 (ms)",
        f"{_ms(percentile(submitted, 50))} / {_ms(percentile(submitted, 99))}",
    )
    table.add(
        "wait in the class's queue p50 / longest (s)",
        f"{percentile(waits, 50):.1f} / {max(waits, default=float('nan')):.1f}",
    )
    table.add(
        "time to the finished video p50 / longest (s)",
        f"{percentile(done, 50):.1f} / {max(done, default=float('nan')):.1f}",
    )
    table.add(
        "submits taken from the line by relay A + B",
        " + ".join(str(s["queue_forwarded"]) for s in r["stats"]),
    )
    table.add(
        "ledger: charges / releases / refunds", f"{r['charges']} / {r['releases']} / {r['refunds']}"
    )
    table.add("wall time (s)", r["elapsed"])
    section.tables.append(table)
    exact = (
        r["charges"] == queue.students
        and r["releases"] == 0
        and r["left_open"] == 0
        and r["spent"] == (queue.students - r["refunds"]) * COST
    )
    section.check(
        f"queue ({queue.max_running} at once upstream): every submit accepted, none refused",
        f"{queue.students - len(refused) - len(other)} accepted, {len(refused)} refused, "
        f"{len(other)} failed",
        not refused and not other,
    )
    section.check(
        f"queue ({queue.max_running} at once upstream): every job finished",
        f"{len(finished)} / {queue.students}",
        len(finished) == queue.students,
    )
    section.check(
        f"queue ({queue.max_running} at once upstream): ledger exact (each submit charged "
        "once, nothing released or left waiting)",
        f"{r['charges']} charges, {r['releases']} releases, {r['left_open']} left, "
        f"{r['spent']:g} spent",
        exact,
    )


def _figures(r: dict[str, Any]) -> dict[str, Any]:
    """What a row's answers add up to."""
    answers: list[_Answer] = r["run"].answers
    relayed = [a for a in answers if a.arm != "direct"]
    direct = [a for a in answers if a.arm == "direct"]
    # The reference is what the upstream accepted; the relays' 402s are answered without it.
    relay_ok = [a.seconds for a in relayed if a.outcome == "accepted"]
    direct_ok = [a.seconds for a in direct if a.outcome == "accepted"]
    failed = [a for a in answers if a.outcome not in ("accepted", "refused")]
    accepted = sum(1 for a in relayed if a.outcome == "accepted")
    refused = sum(1 for a in relayed if a.outcome == "refused")
    exact = (
        r["spent"] == r["charged_net"] <= r["allowed"] * COST
        and accepted == r["charges"] == r["allowed"]
        and r["reserves"] == r["charges"] + r["releases"]
        and refused == r["students"] - r["allowed"]
        and r["left_open"] == 0
        and not r["over"]
    )
    drops = r["drops"]
    turned_away = len(failed) + (0 if drops is None else drops["ListenOverflows"])
    polled = [set(s["polled"]) for s in r["stats"]]
    return {
        "relay_p50": percentile(relay_ok, 50),
        "relay_p99": percentile(relay_ok, 99),
        "direct_p50": percentile(direct_ok, 50),
        "direct_p99": percentile(direct_ok, 99),
        "relay_max": max(relay_ok, default=float("nan")),
        "direct_max": max(direct_ok, default=float("nan")),
        "accepted": accepted,
        "refused": refused,
        "failed": failed,
        "direct_accepted": len(direct_ok),
        "exact": exact,
        "turned_away": turned_away,
        "both": len(polled[0] & polled[1]),
        "late_p99": percentile(r["run"].late, 99),
    }


def run(size: str = "full") -> Section:
    """The Poisson row and the burst row, each with its direct reference, and the queue row."""
    started = time.perf_counter()
    setup = SETUPS[size]
    section = Section(
        NAME,
        TITLE,
        about=(
            f"{setup.students} students, each with their own `LumaClient` (a thread, its own "
            "connection) on a class token, half on relay A and half on relay B, one extend "
            "each. Open-loop arrivals: a Poisson process of "
            f"{setup.rate:g} a second (about {setup.students / setup.rate:.0f} s), then, in a "
            "second class, all in the same instant. Each arrival is also sent straight to the "
            "sandbox at the same moment by a client with the sandbox's key (the direct "
            "reference, in the same run). The two relays are separate processes sharing one "
            "PostgreSQL database (Debian's server, started for the run with fsync off); the "
            f"class budget holds {int(setup.students * 0.9)} submits, one per student. The "
            f"sandbox (unlimited credits) runs at speed {setup.speed:g} in a child process at "
            "normal priority (both arms go through it). Latency runs from the arrival's "
            "scheduled moment to the answer, over the submits the upstream accepted (the "
            "relays' 402s never reach it). A third class of "
            f"{QUEUE_SETUPS[size].students} students (Poisson, the same rate, no budget) meets a "
            f"sandbox at speed {QUEUE_SETUPS[size].speed:g} that runs "
            f"{QUEUE_SETUPS[size].max_running} jobs at once and answers 429 past that (the "
            "provider's plans limit generations running at once); both relays run with "
            f"`--max-running {QUEUE_SETUPS[size].max_running}` and every student waits for "
            "the video. The queue wait is the ledger's, from the reservation to the charge."
        ),
    )
    absent = missing("luma_nb.relay:Relay", "tornado", "psycopg")
    if absent:
        section.missing = absent
        return section
    from tests.pg_support import PostgresMissing, PostgresServer

    try:
        server = PostgresServer()
    except PostgresMissing as error:
        section.missing = str(error)
        return section
    try:
        rows = [_row(server, setup, setup.rate), _row(server, setup, None)]
        queued = _queue_row(server, setup, QUEUE_SETUPS[size])
    finally:
        server.stop()
    table = Table(
        (
            "arrivals",
            "submit p50, relays / direct (ms)",
            "submit p99, relays / direct (ms)",
            "p99 relays / direct",
            "accepted / refused (402) / failed, relays",
            "connections turned away",
            "ledger",
        )
    )
    for r in rows:
        f = _figures(r)
        label = (
            f"Poisson, {r['rate']:g}/s ({r['elapsed']:.1f} s)"
            if r["rate"] is not None
            else "all at once"
        )
        ratio = f["relay_p99"] / f["direct_p99"]
        table.add(
            label,
            f"{_ms(f['relay_p50'])} / {_ms(f['direct_p50'])}",
            f"{_ms(f['relay_p99'])} / {_ms(f['direct_p99'])}",
            f"{ratio:.2f}×",
            f"{f['accepted']} / {f['refused']} / {len(f['failed'])}",
            _turned_away(r, f),
            "exact" if f["exact"] else "NOT exact",
        )
        name = "Poisson arrivals" if r["rate"] is not None else "all at once"
        if r["rate"] is not None:
            section.check(
                f"{name}: submit p99 through the relays ≤ {RATIO_GOAL:g}× direct's p99",
                f"{ratio:.2f}× ({_ms(f['relay_p99'])} vs {_ms(f['direct_p99'])} ms)",
                ratio <= RATIO_GOAL,
            )
        section.check(
            f"{name}: no connection turned away",
            _turned_away(r, f),
            f["turned_away"] == 0,
        )
        section.check(
            f"{name}: ledger exact (spent = charged ≤ budget, {r['allowed']} accepted, "
            "the rest refused, nothing left reserved, no student over budget)",
            f"{r['spent']:g} = {r['charged_net']:g} ≤ {r['allowed'] * COST:g}, "
            f"{f['accepted']} accepted, {f['refused']} refused, {r['left_open']} left, "
            f"{len(r['over'])} over",
            f["exact"],
        )
        section.check(
            f"{name}: each task polled by one relay only", f"{f['both']} by both", f["both"] == 0
        )
    section.tables.append(table)
    detail = Table(("figure", "Poisson", "all at once"))
    fs = [_figures(r) for r in rows]
    detail.add(
        "submit max, relays / direct (ms)",
        *(f"{_ms(f['relay_max'])} / {_ms(f['direct_max'])}" for f in fs),
    )
    detail.add(
        "direct submits accepted",
        *(f"{f['direct_accepted']} / {r['students']}" for f, r in zip(fs, rows, strict=True)),
    )
    detail.add("load generator's lag p99 (ms)", *(_ms(f["late_p99"]) for f in fs))
    detail.add(
        "ledger: reservations = charges + releases",
        *(f"{r['reserves']} = {r['charges']} + {r['releases']}" for r in rows),
    )
    detail.add(
        "credits spent / class budget", *(f"{r['spent']:g} / {r['allowed'] * COST:g}" for r in rows)
    )
    detail.add(
        "CPU time of relay A + B, start to stop (s)",
        *(" + ".join(f"{s['cpu_seconds']:.1f}" for s in r["stats"]) for r in rows),
    )
    detail.add(
        "upstream polling requests, relay A + B",
        *(" + ".join(str(s["upstream_requests"]) for s in r["stats"]) for r in rows),
    )
    section.tables.append(detail)
    _queue_section(section, queued)
    section.notes.append(
        "A submit through a relay: its handler asks the store (on the relay's store threads, "
        "never on the event loop) for the student and the teacher's controls, reserves the "
        "credits (the only write that waits for the class's other reservations: a PostgreSQL "
        "advisory lock), forwards to the sandbox and charges. The direct arm is the same "
        "client straight to the same sandbox at the same moments."
    )
    section.notes.append(
        "Connections turned away = connection failures the clients saw + the growth of the "
        "kernel's `ListenOverflows` over the row (every listening socket of the machine, so "
        "other work on it counts too: an upper bound for the relays and the sandbox, which "
        "listen with a backlog of 4,096)."
    )
    section.seconds = time.perf_counter() - started
    return section


def _turned_away(r: dict[str, Any], f: dict[str, Any]) -> str:
    drops = r["drops"]
    kernel = "not readable" if drops is None else f"{drops['ListenOverflows']:,}"
    return f"{f['turned_away']:,} ({len(f['failed'])} failed at the client, kernel {kernel})"


def _ms(seconds: float) -> str:
    return "–" if seconds != seconds else f"{1000 * seconds:.0f}"
