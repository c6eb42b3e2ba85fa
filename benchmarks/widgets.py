"""Measure 10: the widgets in a browser: what they weigh, and how soon a click shows a card.

- **Weight**: every ES module and stylesheet the widgets ship inside the package (anywidget
  sends them to the browser from the kernel: nothing is fetched from a CDN), in bytes and
  gzipped (what a server that compresses would send).
- **Submit to card**: JupyterLab (this environment's, headless Chromium, demo mode with the
  sandbox in the kernel) shows the extend form; the benchmark clicks *Submit* again and again
  and times, inside the page, the click to the moment the new progress card is in the DOM
  (the kernel validates, submits to the sandbox and answers; the view draws the card). The
  same prompt each time, so the sandbox renders one video for all of them.

Figures only: no goal is a time.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from . import Section, Table, percentile

NAME = "widgets"
TITLE = "10. The widgets in the browser"
#: Submit clicks timed in the browser.
CLICKS = {"full": 20, "quick": 10, "tiny": 2}
PACKAGE = Path(__file__).resolve().parents[1] / "luma_nb"
#: Where the widgets' front-end files live.
ASSET_SUFFIXES = (".js", ".mjs", ".css")
PROMPT = "The harbour lights come on one by one as the fog rolls in"
#: An ``import`` of a URL in an ES module would fetch code at run time (offline classrooms).
REMOTE_IMPORT = re.compile(r"""(?:\bfrom\s*|\bimport\s*\(?\s*)["'](?:https?:)?//""")

#: A little over the form's SUBMIT_COOLDOWN (1 s), between one card and the next click.
COOLDOWN_MS = 1_300

NOTEBOOK_CELLS = ("import luma_nb", "form = luma_nb.extend_form()\nform")

#: Click Submit and resolve with the milliseconds until one more progress card is in the DOM.
_CLICK_JS = """async () => {
    const cards = () => document.querySelectorAll('[data-luma="card"]').length;
    const submit = document.querySelector('[data-luma="submit"]');
    if (!submit) throw new Error('no Submit button');
    const before = cards();
    return await new Promise((resolve, reject) => {
        let t0 = 0;
        const observer = new MutationObserver(() => {
            if (cards() > before) { observer.disconnect(); resolve(performance.now() - t0); }
        });
        observer.observe(document.body, {childList: true, subtree: true});
        setTimeout(() => { observer.disconnect(); reject(new Error('no card within 60 s')); },
                   60000);
        t0 = performance.now();
        submit.click();
    });
}"""


def assets() -> list[Path]:
    """The widgets' ES modules and stylesheets shipped in the package."""
    return sorted(
        p
        for p in (PACKAGE / "notebook").rglob("*")
        if p.suffix in ASSET_SUFFIXES and p.is_file() and "node_modules" not in p.parts
    )


def _weights(section: Section, files: list[Path]) -> None:
    table = Table(("file", "kind", "bytes", "gzip bytes"), title="What the widgets ship")
    totals = {"ES module": [0, 0], "CSS": [0, 0]}
    remote = []
    for path in files:
        data = path.read_bytes()
        kind = "CSS" if path.suffix == ".css" else "ES module"
        packed = len(gzip.compress(data, compresslevel=9))
        totals[kind][0] += len(data)
        totals[kind][1] += packed
        table.add(path.relative_to(PACKAGE.parent).as_posix(), kind, len(data), packed)
        if kind == "ES module" and REMOTE_IMPORT.search(data.decode("utf-8", "replace")):
            remote.append(path.name)
    for kind, (raw, packed) in totals.items():
        table.add(f"**all {'ES modules' if kind == 'ES module' else kind}**", kind, raw, packed)
    section.tables.append(table)
    js, css = totals["ES module"], totals["CSS"]
    section.check(
        "the widgets' code and CSS ship in the package, no import from a URL",
        f"{len(files)} files: ES modules {js[0]:,} B ({js[1]:,} B gzip), "
        f"CSS {css[0]:,} B ({css[1]:,} B gzip)"
        + (f"; imports from a URL in {', '.join(remote)}" if remote else ""),
        bool(js[0]) and not remote,
    )


def _browser_missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as error:
        return f"Playwright is not importable ({error})"
    from tests.e2e.harness import CHROMIUM

    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    return None


def _write_notebook(path: Path) -> None:
    import nbformat

    from tests._notebooks import code_notebook

    nbformat.write(code_notebook(NOTEBOOK_CELLS), str(path))


def _clicks(count: int) -> tuple[list[float], dict[str, Any]]:
    """Milliseconds from each Submit click to its card, in JupyterLab; and what else was seen."""
    from playwright.sync_api import sync_playwright

    from tests.e2e.driver import open_in_lab, run_all_cells, tidy_lab
    from tests.e2e.harness import lab_server, launch_chromium

    scratch = Path(tempfile.mkdtemp(prefix="luma-nb-bench-widgets-"))
    try:
        root = scratch / "notebooks"
        home = scratch / "home"
        root.mkdir()
        home.mkdir()
        _write_notebook(root / "bench.ipynb")
        server = lab_server(root, home)
        server.start("api/status")
        try:
            with sync_playwright() as playwright:
                browser = launch_chromium(playwright)
                try:
                    page = browser.new_page(viewport={"width": 1280, "height": 1000})
                    page.set_default_timeout(60_000)
                    started = time.perf_counter()
                    open_in_lab(page, server.url, "bench.ipynb")
                    tidy_lab(page)
                    run_all_cells(page)
                    prompt = page.locator('[data-luma="prompt"]').first
                    prompt.wait_for(state="visible", timeout=120_000)
                    first_render = time.perf_counter() - started
                    times = []
                    submit = page.locator('[data-luma="submit"]').first
                    for _ in range(count):
                        # A form may clear its prompt after a submit: type it each time.
                        prompt.fill(PROMPT)
                        submit.wait_for(state="visible")
                        page.wait_for_function(
                            "() => { const b = document.querySelector('[data-luma=\"submit\"]');"
                            " return b && !b.disabled; }",
                            timeout=60_000,
                        )
                        times.append(float(page.evaluate(_CLICK_JS)))
                        # The form ignores a click within its cooldown after a submit (a
                        # double click submits once): the next click comes after it.
                        page.wait_for_timeout(COOLDOWN_MS)
                    cards = page.locator('[data-luma="card"]').count()
                finally:
                    browser.close()
        finally:
            server.stop()
        return times, {"first_render": first_render, "cards": cards}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def run(size: str) -> Section:
    """Weigh the widgets' files; time Submit-to-card in JupyterLab."""
    section = Section(
        NAME,
        TITLE,
        about=(
            "The widgets' ES modules and CSS as shipped in the package (anywidget hands them "
            "to the browser from the kernel), and the time from a click on *Submit* to the "
            "progress card in the page, in JupyterLab with the demo sandbox (headless "
            "Chromium, timed in the page with `performance.now()` and a MutationObserver). "
            "Figures only; no goal is a time."
        ),
    )
    files = assets()
    if not files:
        section.missing = "the widgets ship no ES module or CSS in luma_nb/notebook"
        return section
    _weights(section, files)
    why = _browser_missing()
    if why is not None:
        section.missing = why
        return section
    count = CLICKS[size]
    times, seen = _clicks(count)
    table = Table(
        ("clicks", "p50 ms", "p95 ms", "min ms", "max ms", "first render of the form s"),
        title="Submit click to progress card (JupyterLab, demo sandbox)",
    )
    table.add(
        len(times),
        percentile(times, 50),
        percentile(times, 95),
        min(times),
        max(times),
        seen["first_render"],
    )
    section.tables.append(table)
    section.check(
        f"a progress card after each of {count} Submit clicks",
        f"{len(times)} of {count} (p50 {percentile(times, 50):.0f} ms, "
        f"p95 {percentile(times, 95):.0f} ms)",
        len(times) == count and seen["cards"] >= count,
    )
    section.notes.append(
        "Each click submits one extend to the sandbox in the kernel (the same prompt, so one "
        "render serves them all); the time includes the kernel's validation and submit, the "
        "comm round trip and the view drawing the card."
    )
    section.notes.append("Raw times (ms): " + json.dumps([round(t) for t in times]))
    return section
