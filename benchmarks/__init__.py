"""Benchmarks for luma_nb: polling, many jobs, kernel, webhooks, download, synthesis, import.

Each measure is a module with ``run(size: str) -> Section`` where ``size`` is ``"full"`` (the
figures committed in ``RESULTS.md``), ``"quick"`` (a shorter run) or ``"tiny"`` (the smoke test:
structure only). ``python -m benchmarks`` runs them all and writes ``benchmarks/RESULTS.md``.
Benchmarks print tables; nothing here asserts on time.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

__all__ = (
    "MEASURES",
    "Check",
    "Section",
    "Table",
    "fmt",
    "machine",
    "percentile",
    "unavailable",
)

#: The measures in the order they run and appear in RESULTS.md.
MEASURES = (
    "polling",
    "many_jobs",
    "kernel",
    "webhooks",
    "download",
    "synthesis",
    "importtime",
    "relay",
    "relay_postgres",
    "widgets",
)

SIZES = ("full", "quick", "tiny")


@dataclass
class Table:
    """A table of figures: a header row and rows of already formatted cells."""

    columns: Sequence[str]
    rows: list[Sequence[str]] = field(default_factory=list)
    title: str = ""

    def add(self, *cells: object) -> None:
        """Append a row; numbers are formatted with :func:`fmt`."""
        if len(cells) != len(self.columns):
            raise ValueError(f"row has {len(cells)} cells, table has {len(self.columns)}")
        self.rows.append([c if isinstance(c, str) else fmt(c) for c in cells])

    def markdown(self) -> str:
        """The table as GitHub-flavoured markdown."""
        lines = []
        if self.title:
            lines += [f"**{self.title}**", ""]
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + "|".join("---" for _ in self.columns) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines)


@dataclass
class Check:
    """One goal of the issue next to the measured figure."""

    goal: str
    figure: str
    passed: bool

    @property
    def verdict(self) -> str:
        return "PASS" if self.passed else "MISS"


@dataclass
class Section:
    """What one measure reports."""

    name: str
    title: str
    about: str = ""
    tables: list[Table] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    missing: str | None = None
    seconds: float = 0.0

    def check(self, goal: str, figure: str, passed: bool) -> None:
        """Record a goal, the figure measured and whether it was met."""
        self.checks.append(Check(goal, figure, bool(passed)))

    def markdown(self) -> str:
        """The section as markdown: description, goals, tables, notes."""
        parts = [f"## {self.title}", ""]
        if self.about:
            parts += [self.about, ""]
        if self.missing is not None:
            parts += [f"**not available: {self.missing}**", ""]
            return "\n".join(parts)
        if self.checks:
            goals = Table(("goal", "measured", "verdict"))
            for c in self.checks:
                goals.add(c.goal, c.figure, f"**{c.verdict}**")
            parts += [goals.markdown(), ""]
        for table in self.tables:
            parts += [table.markdown(), ""]
        for note in self.notes:
            parts += [f"- {note}"]
        if self.notes:
            parts.append("")
        parts.append(f"_({self.seconds:.1f} s to measure)_")
        parts.append("")
        return "\n".join(parts)


def unavailable(name: str, title: str, what: str) -> Section:
    """A section for a measure whose piece of luma_nb has not landed (nothing is faked)."""
    return Section(name, title, missing=what)


def fmt(value: object) -> str:
    """A compact human form of a number (3 significant figures, thousands grouped)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if math.isnan(value):
        return "–"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def percentile(values: Iterable[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by linear interpolation; NaN for no values."""
    data = sorted(values)
    if not data:
        return math.nan
    if len(data) == 1:
        return data[0]
    pos = (len(data) - 1) * q / 100.0
    low = math.floor(pos)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (pos - low)


def median(values: Iterable[float]) -> float:
    """The median, NaN for no values."""
    data = list(values)
    return statistics.median(data) if data else math.nan


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory() -> str:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    kib = int(line.split()[1])
                    return f"{kib / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError):
        pass
    return "unknown"


def _curl_version() -> str:
    try:
        out = subprocess.run(
            ["curl", "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return "not installed"
    first = out.stdout.splitlines()[0] if out.stdout else ""
    return " ".join(first.split()[:2]) or "unknown"


def machine() -> list[tuple[str, str]]:
    """What the figures were measured on."""
    from luma_nb import __version__

    return [
        ("CPU", _cpu_model()),
        ("cores", str(os.cpu_count())),
        ("memory", _memory()),
        ("OS", f"{platform.system()} {platform.release()} ({platform.machine()})"),
        ("Python", f"{platform.python_implementation()} {sys.version.split()[0]}"),
        ("luma_nb", __version__),
        ("curl", _curl_version()),
    ]
