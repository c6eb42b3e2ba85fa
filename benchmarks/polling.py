"""Measure 1: the polling policy, simulated (no sleeping, no HTTP).

Thousands of jobs of 1–5 minutes are played against each policy under several progress models.
A look is instantaneous; the figures are fetches per job and the detection lag (time from the
job finishing to the client's first look that sees it finished).
"""

from __future__ import annotations

import itertools
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from luma_nb.contract.polling import DefaultPolicy, FixedPolicy, PollPolicy
from luma_nb.sandbox.lifecycle import make_plan, progress

from . import Section, Table, percentile

NAME = "polling"
TITLE = "1. Polling policy (simulated jobs)"

#: The simulation's seed; the results are reported for it (and checked against others).
SEED = 20240601
JOBS = {"full": 3000, "quick": 600, "tiny": 20}
#: A look never comes sooner than this after the previous one (guards a zero delay).
_MIN_STEP = 1e-3
_MAX_LOOKS = 100_000


@dataclass(frozen=True)
class Job:
    """A simulated job: ``at(t)`` gives (status, percentage) ``t`` s after submit."""

    end: float
    at: Callable[[float], tuple[str, float | None]]


# -- progress models ---------------------------------------------------------------------------


def sandbox_job(rng: random.Random) -> Job:
    """The sandbox's own life cycle: its timetable and percentage curve, used as-is."""
    plan = make_plan(rng)

    def at(t: float) -> tuple[str, float | None]:
        state = progress(plan, t)
        pct = float(state.percentage) if state.percentage is not None else None
        return state.status, pct if state.status == "processing" else None

    return Job(plan.total, at)


def _queue(rng: random.Random, low: float, high: float) -> list[tuple[str, float]]:
    total = rng.uniform(low, high)
    cut = sorted(rng.uniform(0, total) for _ in range(2))
    return [("pending", cut[0]), ("staged", cut[1] - cut[0]), ("starting", total - cut[1])]


def _phase(phases: list[tuple[str, float]], t: float) -> str | None:
    for name, duration in phases:
        if t < duration:
            return name
        t -= duration
    return None


def stalls_job(rng: random.Random) -> Job:
    """Non-linear progress: segments of uneven speed, stalls, and a hang at 99 % at the end."""
    total = rng.uniform(60.0, 300.0)
    phases = _queue(rng, 3.0, min(40.0, total * 0.3))
    queued = sum(d for _, d in phases)
    hang = rng.choice([0.0, 0.0, rng.uniform(2.0, 25.0)])
    working = total - queued - hang
    # A piecewise-linear curve through random knots; some segments do not move at all.
    segments = rng.randint(3, 8)
    weights = [rng.uniform(0.1, 1.0) for _ in range(segments)]
    speeds = [0.0 if rng.random() < 0.25 else rng.lognormvariate(0.0, 0.8) for _ in weights]
    if not any(speeds):
        speeds[-1] = 1.0
    wsum = sum(weights)
    durations = [working * w / wsum for w in weights]
    gains = [s * d for s, d in zip(speeds, durations, strict=True)]
    gsum = sum(gains)
    knots = [(0.0, 0.0)]
    for d, g in zip(durations, gains, strict=True):
        knots.append((knots[-1][0] + d, knots[-1][1] + 99.0 * g / gsum))

    def at(t: float) -> tuple[str, float | None]:
        name = _phase(phases, t)
        if name is not None:
            return name, None
        x = t - queued
        if x >= working + hang:
            return "finished", None
        if x >= working:
            return "processing", 99.0
        for (t0, p0), (t1, p1) in itertools.pairwise(knots):
            if x < t1:
                pct = p0 + (p1 - p0) * (x - t0) / (t1 - t0) if t1 > t0 else p1
                return "processing", float(math.floor(pct))
        return "processing", 99.0

    return Job(total, at)


def blind_job(rng: random.Random) -> Job:
    """A service that reports no percentage at all: queue statuses, then bare processing."""
    total = rng.uniform(60.0, 300.0)
    phases = _queue(rng, 3.0, 25.0)

    def at(t: float) -> tuple[str, float | None]:
        if t >= total:
            return "finished", None
        return _phase(phases, t) or "processing", None

    return Job(total, at)


def coarse_job(rng: random.Random) -> Job:
    """The sandbox's curve, but the percentage only moves in steps of 10 (a coarse service)."""
    plan = make_plan(rng)

    def at(t: float) -> tuple[str, float | None]:
        state = progress(plan, t)
        if state.status != "processing" or state.percentage is None:
            return state.status, None
        return state.status, float(state.percentage // 10 * 10)

    return Job(plan.total, at)


MODELS: dict[str, tuple[str, Callable[[random.Random], Job]]] = {
    "sandbox": ("the sandbox's life cycle (linear with slow-downs)", sandbox_job),
    "stalls": ("non-linear, stalls, hangs at 99 %", stalls_job),
    "blind": ("no percentage at all", blind_job),
    "coarse": ("percentage in steps of 10", coarse_job),
}


# -- simulation -------------------------------------------------------------------------------


def play(policy: PollPolicy, job: Job) -> tuple[int, float]:
    """Watch one job from its submit; returns (fetches, detection lag in seconds)."""
    schedule = policy.schedule(0.0, fresh=True)
    t = schedule.first_delay()
    for looks in range(1, _MAX_LOOKS):
        status, pct = job.at(t)
        if status in ("finished", "failed"):
            return looks, t - job.end
        t += max(_MIN_STEP, schedule.observe(t, status, pct))
    raise RuntimeError("the policy never saw the job finish")


@dataclass
class Outcome:
    """Figures of one policy on one model."""

    fetches: float
    lag50: float
    lag95: float
    lag_max: float


def measure(policy: PollPolicy, jobs: list[Job]) -> Outcome:
    """Mean fetches per job and detection lag percentiles over ``jobs``."""
    fetches, lags = [], []
    for job in jobs:
        n, lag = play(policy, job)
        fetches.append(n)
        lags.append(lag)
    return Outcome(
        sum(fetches) / len(fetches), percentile(lags, 50), percentile(lags, 95), max(lags)
    )


def policies(seed: int) -> dict[str, PollPolicy]:
    """The contenders: luma_nb's default and the fixed intervals."""
    return {
        "DefaultPolicy": DefaultPolicy(seed=seed),
        "fixed 0.5 s": FixedPolicy(0.5),
        "fixed 3 s": FixedPolicy(3.0),
        "fixed 5 s": FixedPolicy(5.0),
    }


def evaluate(seed: int, count: int) -> dict[str, dict[str, Outcome]]:
    """Every model × every policy, the same jobs for every policy."""
    results: dict[str, dict[str, Outcome]] = {}
    for model, (_, make) in MODELS.items():
        rng = random.Random(f"{seed}:{model}")
        jobs = [make(rng) for _ in range(count)]
        results[model] = {name: measure(p, jobs) for name, p in policies(seed).items()}
    return results


def _goals(results: dict[str, dict[str, Outcome]]) -> list[tuple[str, str, bool]]:
    """The issue's goals, evaluated on ``results``: (goal, figure, passed)."""
    out = []
    sb = results["sandbox"]
    ratio = sb["DefaultPolicy"].fetches / sb["fixed 3 s"].fetches
    out.append(("sandbox: requests ≤ 0.4× fixed 3 s", f"{ratio:.2f}×", ratio <= 0.4))
    d = sb["DefaultPolicy"]
    out.append(("sandbox: lag p50 ≤ 1 s", f"{d.lag50:.2f} s", d.lag50 <= 1.0))
    out.append(("sandbox: lag p95 ≤ 3 s", f"{d.lag95:.2f} s", d.lag95 <= 3.0))
    for model, row in results.items():
        ours, five = row["DefaultPolicy"], row["fixed 5 s"]
        worse_req = ours.fetches > five.fetches
        worse_lag = ours.lag95 > five.lag95 or ours.lag50 > five.lag50
        figure = (
            f"{ours.fetches:.1f} vs {five.fetches:.1f} fetches, "
            f"p50 {ours.lag50:.2f} vs {five.lag50:.2f} s, "
            f"p95 {ours.lag95:.2f} vs {five.lag95:.2f} s"
        )
        goal = f"{model}: not worse than fixed 5 s on both counts"
        out.append((goal, figure, not (worse_req and worse_lag)))
    return out


def run(size: str = "full") -> Section:
    """Simulate every model and policy; check the goals; repeat the sandbox goal on other seeds."""
    started = time.perf_counter()
    count = JOBS[size]
    section = Section(
        NAME,
        TITLE,
        about=(
            f"{count:,} jobs per model (1–5 min each, seed {SEED}), every policy on the same jobs. "
            "fetches = mean requests per job from submit to the look that sees it finished; "
            "lag = time from finish to that look (p50 / p95 / max)."
        ),
    )
    results = evaluate(SEED, count)
    for goal, figure, passed in _goals(results):
        section.check(goal, figure, passed)
    for model, row in results.items():
        table = Table(
            ("policy", "fetches/job", "vs fixed 3 s", "lag p50 (s)", "lag p95 (s)", "lag max (s)"),
            title=f"{model}: {MODELS[model][0]}",
        )
        base = row["fixed 3 s"].fetches
        for name, o in row.items():
            table.add(name, o.fetches, f"{o.fetches / base:.2f}×", o.lag50, o.lag95, o.lag_max)
        section.tables.append(table)
    # The same goals on other seeds, so the tuning is not fitted to one draw.
    others = [SEED + k for k in (1, 2, 3)] if size != "tiny" else [SEED + 1]
    robust = Table(
        ("seed", "sandbox ratio vs 3 s", "sandbox p50 (s)", "sandbox p95 (s)", "goals met"),
        title="Other seeds (DefaultPolicy, sandbox model; all goals counted)",
    )
    for seed in others:
        res = evaluate(seed, max(10, count // 2))
        goals = _goals(res)
        d, f3 = res["sandbox"]["DefaultPolicy"], res["sandbox"]["fixed 3 s"]
        met = sum(1 for _, _, ok in goals if ok)
        robust.add(
            str(seed), f"{d.fetches / f3.fetches:.2f}×", d.lag50, d.lag95, f"{met}/{len(goals)}"
        )
    section.tables.append(robust)
    section.notes.append(
        "DefaultPolicy parameters: "
        + ", ".join(f"{k}={v}" for k, v in vars(DefaultPolicy()).items() if not k.startswith("_"))
    )
    section.seconds = time.perf_counter() - started
    return section
