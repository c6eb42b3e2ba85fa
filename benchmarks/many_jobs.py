"""Measure 2: many concurrent jobs watched by luma_nb's one watcher thread, on a real sandbox.

Each watcher tick fetches every due job (and those due within a moment) in one
``client.fetch_many`` call: chunks of 20 ids on ``/fetch-many``. The sandbox's request log
counts the HTTP requests; the client's ``fetch_many`` is wrapped (and still called) to record
each tick's batch size and the requests it made.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from . import Section, Table
from ._sandbox import fetches, missing

NAME = "many_jobs"
TITLE = "2. Many jobs, one watcher"
#: (job counts, sandbox speed, fixed interval or None for the default policy)
SETUPS: dict[str, tuple[tuple[int, ...], float, float | None]] = {
    "full": ((1, 20, 100), 10.0, None),
    "quick": ((1, 20, 100), 30.0, None),
    "tiny": ((1, 3), 200.0, 0.1),  # structure only: quick looks so the smoke test is short
}


def _scenario(count: int, speed: float, interval: float | None) -> dict[str, Any]:
    from luma_nb import DefaultPolicy, FixedPolicy, LumaClient
    from luma_nb.client.watcher import Watcher
    from luma_nb.sandbox import Sandbox

    ticks: list[tuple[int, int]] = []  # (ids in the tick, HTTP requests it made)
    with Sandbox(speed=speed, seed=count, credits=10_000) as sandbox:
        policy = FixedPolicy(interval) if interval is not None else DefaultPolicy()
        client = LumaClient(sandbox.api_key, base_url=sandbox.base_url, journal=None, poll=policy)
        jobs = [client.imagine(f"benchmark job {n}") for n in range(count)]
        original: Callable[..., Any] = client.fetch_many

        def counted(ids: Any, **kw: Any) -> Any:
            ids = list(ids)
            before = fetches(sandbox)
            try:
                return original(ids, **kw)
            finally:
                ticks.append((len(ids), fetches(sandbox) - before))

        client.fetch_many = counted  # type: ignore[method-assign]
        watcher = Watcher()
        started = time.monotonic()
        watches = [watcher.watch(job) for job in jobs]
        for w in watches:
            w.wait(timeout=600)
        elapsed = time.monotonic() - started
        http = fetches(sandbox)
        states = {w.state for w in watches}
        client.close()
    looks = sum(n for n, _ in ticks)
    exact = sum(1 for n, r in ticks if r == math.ceil(n / 20))
    full = [r for n, r in ticks if n == count]
    return {
        "jobs": count,
        "ticks": len(ticks),
        "http": http,
        "looks": looks,
        "max_batch": max((n for n, _ in ticks), default=0),
        "max_req": max((r for _, r in ticks), default=0),
        "exact": exact,
        "full_ticks": len(full),
        "full_req": max(full, default=0),
        "elapsed": elapsed,
        "states": states,
    }


def run(size: str = "full") -> Section:
    """Watch 1, 20 and 100 jobs at once and count the sandbox's polling requests."""
    started = time.perf_counter()
    counts, speed, interval = SETUPS[size]
    policy_name = "the default policy" if interval is None else f"a fixed {interval:g} s policy"
    section = Section(
        NAME,
        TITLE,
        about=(
            f"Sandbox at speed {speed:g} (a 60–300 s job takes "
            f"{60 / speed:.0f}–{300 / speed:.0f} s; its video is rendered meanwhile), "
            f"`client.imagine` × N, then every job watched by one `luma_nb.client.watcher.Watcher` "
            f"with {policy_name} until all finished. A tick is one "
            "`fetch_many` call of the watcher; requests are counted on the sandbox's request log "
            "(`/fetch` + `/fetch-many`)."
        ),
    )
    absent = missing("luma_nb.client.watcher:Watcher", "luma_nb.sandbox:Sandbox")
    if absent:
        section.missing = absent
        return section
    table = Table(
        (
            "jobs",
            "ticks",
            "ids per tick (mean / max)",
            "HTTP requests",
            "requests per tick (mean / max)",
            "ticks with ⌈ids/20⌉ requests",
            "ticks with all N: requests",
            "requests per job",
            "looks per job (= requests without fetch-many)",
            "wall time (s)",
        )
    )
    all_exact = True
    results = []
    for count in counts:
        r = _scenario(count, speed, interval)
        results.append(r)
        all_exact = all_exact and r["exact"] == r["ticks"] and r["states"] == {"finished"}
        goal = math.ceil(count / 20)
        full = (
            f"{r['full_req']} (goal {goal}, {r['full_ticks']} such ticks)"
            if r["full_ticks"]
            else "–"
        )
        table.add(
            count,
            r["ticks"],
            f"{r['looks'] / max(1, r['ticks']):.1f} / {r['max_batch']}",
            r["http"],
            f"{r['http'] / max(1, r['ticks']):.2f} / {r['max_req']}",
            f"{r['exact']}/{r['ticks']}",
            full,
            r["http"] / count,
            r["looks"] / count,
            r["elapsed"],
        )
        if r["full_ticks"]:
            section.check(
                f"{count} jobs: requests in a tick polling all of them = ⌈{count}/20⌉ = {goal}",
                f"{r['full_req']}",
                r["full_req"] == goal,
            )
        if r["states"] != {"finished"}:
            section.notes.append(f"{count} jobs: watches ended as {sorted(r['states'])}")
    for r in results:
        if r["jobs"] >= 20:
            section.check(
                f"{r['jobs']} jobs: HTTP requests ≤ 0.3× the looks (what fetching each would cost)",
                f"{r['http']} vs {r['looks']} ({r['http'] / max(1, r['looks']):.2f}×)",
                r["http"] <= 0.3 * r["looks"],
            )
    section.check(
        "every tick: requests = ⌈ids in the tick / 20⌉",
        "all ticks" if all_exact else "not all",
        all_exact,
    )
    section.tables.append(table)
    section.notes.append(
        "Each job keeps its own schedule; a tick takes the due jobs and fills its chunks of 20 "
        "with the jobs due soonest after them (`luma_nb.client.batching.pick`), so their looks "
        f"fall into step. The durations are independent ({60 / speed:.0f}–{300 / speed:.0f} s "
        "each here), so every finish "
        "needs looks of its own; the simulation in section 1 shows jobs that take about as long."
    )
    section.seconds = time.perf_counter() - started
    return section
