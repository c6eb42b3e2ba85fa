"""Measure 7: the cost of ``import luma_nb`` next to ``import requests``, in fresh processes."""

from __future__ import annotations

import resource
import subprocess
import sys
import time

from . import Section, Table, median

NAME = "importtime"
TITLE = "7. Import time"
RUNS = {"full": 31, "quick": 9, "tiny": 2}
#: ``import luma_nb`` may take at most this many times ``import requests`` (whole process).
GOAL_RATIO = 1.5
#: Modules that only the notebook-facing parts need; ``import luma_nb`` must not load them.
HEAVY = (
    "anywidget",
    "ipywidgets",
    "IPython",
    "av",
    "PIL",
    "luma_nb.notebook.widgets",
    "luma_nb.sandbox",
)


def _time(code: str) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of a fresh ``python -c code``, in seconds.

    CPU time does not count the time the process waited for a core, so it changes far less
    with machine load than wall time does.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _loaded() -> list[str]:
    """Which heavy modules ``import luma_nb`` brings in (should be none)."""
    code = f"import sys, luma_nb; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return out.stdout.split()


def _importtime(module: str) -> list[tuple[str, str | None, float]]:
    """``-X importtime`` of ``import module``: (name, importing module, cumulative ms) each."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        check=True,
        capture_output=True,
        text=True,
    )
    rows: list[tuple[int, str, float]] = []
    for line in out.stderr.splitlines():
        parts = line.split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        raw = parts[2].rstrip()
        depth = (len(raw) - len(raw.lstrip())) // 2
        rows.append((depth, raw.strip(), int(parts[1]) / 1000.0))
    # A module is printed after the modules it imports, one level less indented.
    found: list[tuple[str, str | None, float]] = []
    stack: list[tuple[int, str]] = []
    for depth, name, cumulative in reversed(rows):
        while stack and stack[-1][0] >= depth:
            stack.pop()
        found.append((name, stack[-1][1] if stack else None, cumulative))
        stack.append((depth, name))
    return found


def _own_time(module: str) -> float:
    """Cumulative import time of ``module`` itself (ms)."""
    return next((ms for name, _, ms in _importtime(module) if name == module), float("nan"))


def _extras() -> list[tuple[str, str, float]]:
    """Outside modules that luma_nb's own modules import and ``import requests`` does not."""
    base = {name for name, _, _ in _importtime("requests")}
    extra = [
        (name, parent, ms)
        for name, parent, ms in _importtime("luma_nb")
        if parent is not None
        and parent.startswith("luma_nb")
        and not name.startswith("luma_nb")
        and name not in base
    ]
    return sorted(extra, key=lambda row: -row[2])[:6]


def run(size: str = "full") -> Section:
    """Median wall time of fresh interpreters importing each module, interleaved."""
    started = time.perf_counter()
    runs = RUNS[size]
    codes = {
        "python (nothing)": "pass",
        "import requests": "import requests",
        "import luma_nb": "import luma_nb",
    }
    section = Section(
        NAME,
        TITLE,
        about=(
            f"`{sys.executable} -c ...`, {runs} fresh processes each, interleaved after a warm-up; "
            "CPU time (user + system, from the child's resource usage) and wall time of the "
            "whole process. `-X importtime` gives the module's own cumulative time."
        ),
    )
    for code in codes.values():
        _time(code)  # warm the file cache
    times: dict[str, list[float]] = {label: [] for label in codes}
    cpu: dict[str, list[float]] = {label: [] for label in codes}
    for _ in range(runs):
        for label, code in codes.items():
            wall, used = _time(code)
            times[label].append(wall)
            cpu[label].append(used)
    table = Table(
        (
            "command",
            "CPU median (ms)",
            "CPU min (ms)",
            "CPU max (ms)",
            "wall median (ms)",
            "wall min (ms)",
            "wall max (ms)",
            "-X importtime (ms)",
        )
    )
    for label, values in times.items():
        module = label.split()[-1] if label.startswith("import") else None
        table.add(
            label,
            1000 * median(cpu[label]),
            1000 * min(cpu[label]),
            1000 * max(cpu[label]),
            1000 * median(values),
            1000 * min(values),
            1000 * max(values),
            _own_time(module) if module else "–",
        )
    section.tables.append(table)
    # Ratios per round too: both processes ran back to back, under the same machine load.
    ratios = [lu / rq for lu, rq in zip(cpu["import luma_nb"], cpu["import requests"], strict=True)]
    ratio = median(cpu["import luma_nb"]) / median(cpu["import requests"])
    section.check(
        f"`import luma_nb` / `import requests` at most {GOAL_RATIO:g}× in CPU time "
        f"(medians of {runs} fresh processes each)",
        f"{ratio:.2f}× (per round: median {median(ratios):.2f}, "
        f"min {min(ratios):.2f}, max {max(ratios):.2f})",
        ratio <= GOAL_RATIO,
    )
    wall_ratio = median(times["import luma_nb"]) / median(times["import requests"])
    diffs = [
        1000 * (lu - rq)
        for lu, rq in zip(times["import luma_nb"], times["import requests"], strict=True)
    ]
    section.notes.append(
        f"Wall time (no goal: it grows with machine load): {wall_ratio:.2f}× the medians; "
        f"per-round differences {median(diffs):+.1f} ms "
        f"(min {min(diffs):+.1f}, max {max(diffs):+.1f})."
    )
    extras = Table(
        ("module", "imported by", "-X importtime cumulative (ms)"),
        title="What `import luma_nb` loads beyond what `import requests` does (largest first)",
    )
    for name, parent, ms in _extras():
        extras.add(name, parent, ms)
    if extras.rows:
        section.tables.append(extras)
    heavy = _loaded()
    section.check(
        "widget/sandbox modules not imported by `import luma_nb`",
        ", ".join(heavy) if heavy else "none loaded",
        not heavy,
    )
    section.seconds = time.perf_counter() - started
    return section
