"""Measure 4: webhooks from the sandbox to ``luma_nb.client.webhooks.Receiver``: lag and polls made.

Jobs are submitted with ``webhook_url``/``webhook_secret`` pointing at a local receiver that
tracks them; nothing polls. Two kinds of finish are timed: natural (the job's simulated end,
computed from the sandbox's own timetable) and forced (``sandbox.complete``, the moment the
sandbox is told the job is done). The lag runs to the moment the receiver's subscriber sees
the finished task (the tracked job is updated just before).
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any

from . import Section, Table, median, percentile
from ._sandbox import fetches, missing

NAME = "webhooks"
TITLE = "4. Webhooks"
#: (jobs finishing naturally, jobs finished by force, sandbox speed)
SETUPS = {"full": (10, 10, 10.0), "quick": (5, 5, 20.0), "tiny": (1, 1, 200.0)}
GOAL_MS = 100.0


def run(size: str = "full") -> Section:
    """Time webhook delivery to the receiver and count polls (there should be none)."""
    started = time.perf_counter()
    natural_n, forced_n, speed = SETUPS[size]
    section = Section(
        NAME,
        TITLE,
        about=(
            f"Sandbox at speed {speed:g}; {natural_n} jobs finish on their own (lag from the "
            "simulated end in the sandbox's timetable, which includes its 50 ms webhook ticker), "
            f"{forced_n} are finished with `sandbox.complete` once their video exists (lag from "
            "that call). No watcher, no wait: the receiver alone updates the jobs."
        ),
    )
    absent = missing("luma_nb.client.webhooks:Receiver", "luma_nb.sandbox:Sandbox")
    if absent:
        section.missing = absent
        return section
    from luma_nb import LumaClient
    from luma_nb.client.webhooks import Receiver
    from luma_nb.sandbox import Sandbox

    secret = secrets.token_urlsafe(16)
    known: dict[str, float] = {}  # task id -> wall time the receiver saw it finished
    cond = threading.Condition()

    def on_update(task: Any) -> None:
        if task.is_terminal:
            with cond:
                known.setdefault(task.task_id, time.time())
                cond.notify_all()

    natural: list[float] = []
    forced: list[float] = []
    with Sandbox(speed=speed, seed=4, credits=10_000) as sandbox, Receiver(secret) as receiver:
        receiver.subscribe(on_update)
        client = LumaClient(sandbox.api_key, base_url=sandbox.base_url, journal=None)
        polls_before = fetches(sandbox)

        def submit(prompt: str) -> Any:
            job = client.imagine(prompt, webhook_url=receiver.url, webhook_secret=secret)
            receiver.track(job)
            return job

        jobs = [submit(f"webhook natural {n}") for n in range(natural_n)]
        ends = {}
        for job in jobs:
            view = sandbox.task(job.task_id)
            plan = view["plan"]
            total = sum(d for _, d in plan["phases"]) + plan["processing"]
            ends[job.task_id] = view["created_wall"] + total / speed
        with cond:
            cond.wait_for(lambda: all(j.task_id in known for j in jobs), 300 + 300 / speed)
        natural = [known[j.task_id] - ends[j.task_id] for j in jobs if j.task_id in known]
        late_media = sum(1 for j in jobs if not sandbox.task(j.task_id)["media_ready"])
        # Forced finishes: wait until each video exists (a task finishes only with its video).
        others = [submit(f"webhook forced {n}") for n in range(forced_n)]
        for job in others:
            deadline = time.monotonic() + 120
            while not sandbox.task(job.task_id)["media_ready"] and time.monotonic() < deadline:
                time.sleep(0.05)
            t0 = time.time()
            sandbox.complete(job.task_id, wait=None)
            with cond:
                cond.wait_for(lambda job=job: job.task_id in known, 30)
            if job.task_id in known:
                forced.append(known[job.task_id] - t0)
        polls = fetches(sandbox) - polls_before
        informed = sum(1 for j in jobs + others if j.task is not None and j.task.is_finished)
        # The notebook way: jobs watched (progress views) and tracked; webhooks reach the
        # watcher, which puts its polls off while they arrive.
        both, both_polls = _watched_too(sandbox, client, receiver, secret, natural_n, speed)
        client.close()
    table = Table(("finish", "jobs", "lag p50 (ms)", "lag p95 (ms)", "lag max (ms)"))
    for label, lags, n in (("natural", natural, natural_n), ("forced", forced, forced_n)):
        table.add(
            label,
            f"{len(lags)}/{n}",
            1000 * median(lags),
            1000 * percentile(lags, 95),
            1000 * max(lags) if lags else float("nan"),
        )
    table.add(
        "natural, also watched",
        f"{len(both)}/{natural_n}",
        1000 * median(both),
        1000 * percentile(both, 95),
        1000 * max(both) if both else float("nan"),
    )
    section.tables.append(table)
    section.notes.append(
        f"Jobs both watched by the watcher and tracked by the receiver made {both_polls} polls "
        f"({both_polls / max(1, natural_n):.1f} per job; the watcher's safety net, put off while "
        "webhooks arrive). The goal of zero polls is for the receiver alone."
    )
    worst = max(natural + forced) if natural or forced else float("nan")
    complete = len(natural) == natural_n and len(forced) == forced_n
    section.check(
        f"lag from finish to the job knowing < {GOAL_MS:.0f} ms (max over all jobs)",
        f"{1000 * worst:.1f} ms",
        complete and worst < GOAL_MS / 1000,
    )
    section.check("polls made", str(polls), polls == 0)
    section.check(
        "jobs updated by the receiver alone",
        f"{informed}/{natural_n + forced_n}",
        informed == natural_n + forced_n,
    )
    if late_media:
        section.notes.append(
            f"{late_media} natural job(s) had no video at their simulated end: their lag "
            "includes the sandbox's rendering."
        )
    section.seconds = time.perf_counter() - started
    return section


def _watched_too(
    sandbox: Any, client: Any, receiver: Any, secret: str, count: int, speed: float
) -> tuple[list[float], int]:
    """Lags (watch end vs simulated end) and polls of jobs both watched and tracked."""
    from luma_nb.client import watcher

    ended: dict[str, float] = {}
    lock = threading.Condition()

    def on_change(watch: Any) -> None:
        if watch.state != "watching":  # listeners hear the end before waiters are woken
            with lock:
                ended.setdefault(watch.job.task_id, time.time())
                lock.notify_all()

    before = fetches(sandbox)
    jobs, ends = [], {}
    for n in range(count):
        job = client.imagine(
            f"webhook watched {n}", webhook_url=receiver.url, webhook_secret=secret
        )
        receiver.track(job)
        watcher.watch(job, listener=on_change)
        view = sandbox.task(job.task_id)
        plan = view["plan"]
        total = sum(d for _, d in plan["phases"]) + plan["processing"]
        ends[job.task_id] = view["created_wall"] + total / speed
        jobs.append(job)
    with lock:
        lock.wait_for(lambda: all(j.task_id in ended for j in jobs), 60 + 300 / speed)
    lags = [ended[j.task_id] - ends[j.task_id] for j in jobs if j.task_id in ended]
    return lags, fetches(sandbox) - before
