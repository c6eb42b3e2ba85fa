"""Smoke test of the benchmarks: each runs in its tiny configuration and reports a table.

Only the structure is checked (sections, goals, tables with rows); never a timing.
"""

from __future__ import annotations

import pytest

from benchmarks import MEASURES, Section, Table, fmt, percentile
from benchmarks.__main__ import render, run_measure


def _check_structure(section: Section) -> None:
    assert section.title
    if section.missing is not None:
        # A measure whose piece of luma_nb is not there says so rather than faking figures.
        assert section.missing.strip()
        assert "not available" in section.markdown()
        return
    assert section.checks, f"{section.name} reports no goal"
    for check in section.checks:
        assert check.goal and check.figure
        assert check.verdict in ("PASS", "MISS")
    assert section.tables, f"{section.name} reports no table"
    for table in section.tables:
        assert table.rows
        assert all(len(row) == len(table.columns) for row in table.rows)
    text = section.markdown()
    assert text.startswith(f"## {section.title}")
    assert "| goal | measured | verdict |" in text


#: Measures that need more than Python: a Jupyter kernel; JupyterLab and Chromium.
MARKS = {"kernel": pytest.mark.kernel, "widgets": pytest.mark.e2e}


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=MARKS[n]) if n in MARKS else n for n in MEASURES]
)
def test_each_measure_runs_tiny_and_reports_tables(name: str) -> None:
    section = run_measure(name, "tiny")
    assert section.name == name
    assert "crashed" not in (section.missing or ""), section.missing
    # Every piece is there (CI installs curl for the download measure): nothing is left out.
    assert section.missing is None, f"{name} could not run: {section.missing}"
    _check_structure(section)


def test_results_page_has_machine_summary_and_sections() -> None:
    sections = [Section("a", "A"), Section("b", "B", missing="luma_nb.thing")]
    sections[0].check("goal", "1 s", True)
    table = Table(("x", "y"))
    table.add("row", 1.5)
    sections[0].tables.append(table)
    text = render(sections, "tiny", "today", "0 / 0 / 0")
    for part in ("# luma_nb benchmarks", "| CPU |", "| Python |", "## Summary", "## A", "## B"):
        assert part in text
    assert "**PASS**" in text and "not available: luma_nb.thing" in text


def test_helpers() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([5.0], 99) == 5.0
    assert fmt(1234.5) == "1,234" or fmt(1234.5) == "1,235"
    assert fmt(0.01234) == "0.012"
    with pytest.raises(ValueError):
        Table(("a",)).add(1, 2)


def test_polling_has_a_goal_per_progress_model_and_one_for_batching() -> None:
    from benchmarks import polling

    section = run_measure("polling", "tiny")
    goals = " ".join(c.goal for c in section.checks)
    for model in polling.MODELS:
        assert f"{model}:" in goals
    assert "20 jobs alike" in goals and "fixed 5 s" in goals
    titles = [t.title for t in section.tables]
    assert any(t.startswith("Many jobs of one client") for t in titles)


def test_relay_burst_keeps_the_ledger_exact_and_turns_no_connection_away() -> None:
    """The class-in-a-burst measure, small: correctness only (never its timings), the queue
    row included (an upstream running 2 jobs at once)."""
    section = run_measure("relay_postgres", "tiny")
    assert section.missing is None, section.missing
    goals = {c.goal: c for c in section.checks}
    rows = {
        "ledger exact": 3,  # Poisson, all at once, the queue
        "no connection turned away": 2,
        "polled by one relay only": 2,
        "every submit accepted, none refused": 1,  # the queue: past the upstream's limit
        "every job finished": 1,
    }
    for kind, count in rows.items():
        found = [c for goal, c in goals.items() if kind in goal]
        assert len(found) == count, f"{count} {kind!r} goals wanted: {list(goals)}"
        assert all(c.passed for c in found), [(c.goal, c.figure) for c in found]
