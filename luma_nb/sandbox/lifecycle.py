"""The simulated life cycle of one task, computed from its age alone (no per-task threads).

A task goes pending -> staged -> starting -> processing (percentage rising from 0 to 100) ->
finished. Durations are in *simulated* seconds; the store divides real time by ``speed`` before
asking. Everything here is a pure function of the plan and the elapsed time, so a status can be
recomputed on every request, by every thread, and after a restart.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from typing import Any

from .faults import TaskFault

__all__ = ("Plan", "Progress", "make_plan", "progress")


@dataclass(frozen=True)
class Plan:
    """The timetable and fate of one task, drawn once at submit time."""

    phases: tuple[tuple[str, float], ...]
    """The statuses before processing with their durations (an unknown status may be among them)."""
    processing: float
    """Duration of the processing phase."""
    wobble: float = 0.0
    """Amplitude (0..0.6) of the deterministic noise on the percentage curve."""
    waves: int = 1
    """How many slow-downs the percentage curve has."""
    fail_at: int | None = None
    """The percentage at which the task fails, if it fails."""
    fail_message: str | None = None
    """The ``message`` of the failure."""
    stall_at: int | None = None
    """The percentage at which the task stalls forever, if it stalls."""

    @property
    def total(self) -> float:
        """Simulated seconds from submit to 100 %."""
        return sum(d for _, d in self.phases) + self.processing

    def to_json(self) -> dict[str, Any]:
        """The plan as JSON-able data (for the task file)."""
        data = asdict(self)
        data["phases"] = [list(p) for p in self.phases]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        """Rebuild a plan written by :meth:`to_json`."""
        fields = dict(data)
        fields["phases"] = tuple((str(name), float(d)) for name, d in data["phases"])
        return cls(**fields)


@dataclass(frozen=True)
class Progress:
    """Where a task stands at some moment."""

    status: str
    """The status to report; ``"finished"`` means the simulated time is up."""
    percentage: int | None = None
    """0..100 while processing."""
    message: str | None = None
    """The failure message when ``status == "failed"``; what a processing task waits for."""
    position: int | None = None
    """Its place in the renderers' waiting line (1 = next), while it waits there."""


def make_plan(rng: random.Random, fault: TaskFault | None = None) -> Plan:
    """Draw a realistic timetable (60-300 simulated seconds in all) for a new task."""
    total = rng.uniform(60.0, 300.0)
    phases: list[tuple[str, float]] = [
        ("pending", rng.uniform(2.0, 15.0)),
        ("staged", rng.uniform(1.0, 4.0)),
    ]
    if fault is not None and fault.unknown_status:
        phases.append((fault.unknown_status, rng.uniform(8.0, 20.0)))
    if fault is not None and fault.retry:
        phases.append((fault.retry, rng.uniform(8.0, 20.0)))
    phases.append(("starting", rng.uniform(2.0, 6.0)))
    before = sum(d for _, d in phases)
    fail_at = rng.randint(25, 85) if fault is not None and fault.fail is not None else None
    stall_at = rng.randint(20, 80) if fault is not None and fault.stall else None
    return Plan(
        phases=tuple(phases),
        processing=max(40.0, total - before),
        wobble=rng.uniform(0.2, 0.6),
        waves=rng.randint(1, 3),
        fail_at=fail_at,
        fail_message=fault.fail if fault is not None else None,
        stall_at=stall_at,
    )


def _curve(plan: Plan, x: float) -> float:
    """A monotonic 0..1 -> 0..1 curve: linear with gentle deterministic slow-downs.

    Its derivative, ``1 - wobble*cos(...)``, is positive for ``wobble < 1``: progress never
    goes back.
    """
    k = 2.0 * math.pi * plan.waves
    return x - plan.wobble * math.sin(k * x) / k


def progress(plan: Plan, elapsed: float) -> Progress:
    """The status of a task ``elapsed`` simulated seconds after it was submitted."""
    t = max(0.0, elapsed)
    for name, duration in plan.phases:
        if t < duration:
            return Progress(name)
        t -= duration
    x = min(1.0, t / plan.processing) if plan.processing > 0 else 1.0
    pct = min(100, max(0, math.floor(100.0 * _curve(plan, x) + 1e-9)))
    if plan.fail_at is not None and pct >= plan.fail_at:
        return Progress("failed", plan.fail_at, plan.fail_message or "Task failed")
    if plan.stall_at is not None:
        return Progress("processing", min(pct, plan.stall_at))
    if x >= 1.0:
        return Progress("finished", 100)
    return Progress("processing", pct)
