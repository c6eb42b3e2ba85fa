"""``python -m benchmarks [--only NAME ...] [--quick] [--output PATH]``: write RESULTS.md."""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import sys
import time
import traceback
from pathlib import Path

from . import MEASURES, Section, machine

HERE = Path(__file__).resolve().parent


def _load() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def run_measure(name: str, size: str) -> Section:
    """Run one measure; a crash becomes a section that says so (other measures still run)."""
    module = importlib.import_module(f"benchmarks.{name}")
    started = time.perf_counter()
    try:
        section: Section = module.run(size)
    except Exception:
        section = Section(name, getattr(module, "TITLE", name))
        section.missing = "the measure crashed:\n\n```\n" + traceback.format_exc() + "```"
    if not section.seconds:
        section.seconds = time.perf_counter() - started
    return section


def render(
    sections: list[Section], size: str, started: str, load_before: str, load_after: str = ""
) -> str:
    """The whole RESULTS.md."""
    lines = [
        "# luma_nb benchmarks",
        "",
        f"Written by `python -m benchmarks{' --quick' if size == 'quick' else ''}` on {started}.",
        "Timings are wall-clock on the machine below; rerun to compare on yours.",
        "",
        "| machine | |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in machine()]
    lines += [f"| load average (1/5/15 min) at start | {load_before} |"]
    if load_after:
        lines += [f"| load average (1/5/15 min) at end | {load_after} |"]
    lines += [
        "",
        "Other work on the machine (a load average well above its core count) slows the timed "
        "measures, so the goals of 3, 5, 6 and 7 are ratios to a reference measured side by "
        "side in the same run (idle kernel, curl, PyAV encoding alone, `import requests`), "
        "with the spread over repetitions. The webhooks' bound (4) is absolute, far above "
        "what they take; the simulated and counted figures (1, 2, 8) do not depend on load.",
        "",
    ]
    lines += ["## Summary", "", "| measure | goal | measured | verdict |", "|---|---|---|---|"]
    for s in sections:
        if s.missing is not None:
            reason = s.missing.splitlines()[0]
            lines.append(f"| {s.title} | – | not available: {reason} | **N/A** |")
            continue
        for c in s.checks:
            lines.append(f"| {s.title} | {c.goal} | {c.figure} | **{c.verdict}** |")
    lines.append("")
    for s in sections:
        lines.append(s.markdown())
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help=f"run only these measures (repeatable or comma-separated): {', '.join(MEASURES)}",
    )
    parser.add_argument("--quick", action="store_true", help="smaller runs (a rough look)")
    parser.add_argument("--tiny", action="store_true", help="smallest runs (smoke test only)")
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="where to write the markdown (default benchmarks/RESULTS.md for a full run of all; "
        "partial or quick runs are only printed unless --output is given)",
    )
    args = parser.parse_args(argv)
    names = [n.strip() for item in args.only for n in item.split(",") if n.strip()] or list(
        MEASURES
    )
    unknown = [n for n in names if n not in MEASURES]
    if unknown:
        parser.error(f"unknown measure(s) {', '.join(unknown)}; choose from {', '.join(MEASURES)}")
    size = "tiny" if args.tiny else "quick" if args.quick else "full"
    started = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    load_before = _load()
    sections = []
    for name in names:
        print(f"-- {name} ...", file=sys.stderr, flush=True)
        section = run_measure(name, size)
        sections.append(section)
        print(section.markdown(), flush=True)
    text = render(sections, size, started, load_before, _load())
    output = args.output
    if output is None and size == "full" and names == list(MEASURES):
        output = HERE / "RESULTS.md"
    if output is not None:
        output.write_text(text, encoding="utf-8")
        print(f"wrote {output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
