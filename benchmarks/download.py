"""Measure 5: a big file from the sandbox's media route, saved by luma_nb vs ``curl -o``.

A file of random bytes is put in the sandbox's media folder (``<data_dir>/media``, served at
``/media/<name>``). ``luma_nb.media.save`` runs in a fresh Python process that measures its own
memory: the kernel's peak-RSS mark is reset (``/proc/self/clear_refs``) after the imports, a
thread samples ``VmRSS`` every millisecond, and the growth is the larger of the sampled peak
and ``VmHWM``, minus the RSS before the download. ``curl`` reports its own transfer time.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from . import Section, Table, median
from ._sandbox import missing

NAME = "download"
TITLE = "5. Download"
#: (file size in MiB, runs of each tool)
SETUPS = {"full": (200, 5), "quick": (200, 2), "tiny": (4, 1)}
GOAL_RATIO = 0.7
GOAL_MB = 32.0
_FILE = "benchmark-download.mp4"

_CHILD = textwrap.dedent(
    """
    import json, sys, threading, time

    def status(field):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
        return 0

    from luma_nb.notebook.media import save

    url, target = sys.argv[1], sys.argv[2]
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak-RSS mark to the current RSS
        reset = True
    except OSError:
        reset = False
    before = status("VmRSS")
    peak = [before]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], status("VmRSS"))
            time.sleep(0.001)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    path = save(url, target, max_bytes=1 << 40)
    seconds = time.perf_counter() - t0
    done.set()
    sampler.join()
    hwm = status("VmHWM") if reset else 0
    print(json.dumps({"seconds": seconds, "before": before, "sampled": peak[0], "hwm": hwm,
                      "reset": reset, "size": path.stat().st_size}))
    """
)


def _write_random(path: Path, mib: int) -> None:
    """``mib`` MiB of random bytes in the box structure ``save`` checks (ftyp, moov, mdat)."""
    block = os.urandom(1024 * 1024)
    head = (16).to_bytes(4, "big") + b"ftypisom" + bytes(4) + (8).to_bytes(4, "big") + b"moov"
    with path.open("wb") as out:
        # The mdat box runs to the end of the file (size 0), so the total stays mib MiB.
        out.write(head + (0).to_bytes(4, "big") + b"mdat")
        for n in range(mib):
            if n == 0:
                out.write(block[len(head) + 8 :])
                continue
            # Vary each block a little so nothing along the way can shortcut repeated data.
            out.write(n.to_bytes(8, "little") + block[8:])


def _luma(url: str, target: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, url, str(target)],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _curl(url: str, target: Path) -> float:
    out = subprocess.run(
        ["curl", "-s", "-S", "-f", "-o", str(target), "-w", "%{time_total}", url],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return float(out.stdout.strip().replace(",", "."))


def run(size: str = "full") -> Section:
    """Throughput of luma_nb.media.save vs curl, and the memory growth of the saving process."""
    started = time.perf_counter()
    mib, runs = SETUPS[size]
    section = Section(
        NAME,
        TITLE,
        about=(
            f"A {mib} MiB file from the sandbox's `/media/<name>` route (loopback), saved "
            f"{runs}× by each tool, alternating; files written to a temporary folder. "
            "Throughput = size / transfer time (median)."
            "\n\n" + (__doc__ or "").split("\n\n", 1)[1].replace("\n", " ").strip()
        ),
    )
    absent = missing("luma_nb.notebook.media:save", "luma_nb.sandbox:Sandbox")
    if absent is None and shutil.which("curl") is None:
        absent = "curl (not installed)"
    if absent:
        section.missing = absent
        return section
    from luma_nb.sandbox import Sandbox

    luma: list[dict[str, float]] = []
    curl: list[float] = []
    with tempfile.TemporaryDirectory(prefix="luma-bench-dl-") as folder:
        base = Path(folder)
        data_dir, out_dir = base / "sandbox", base / "out"
        (data_dir / "media").mkdir(parents=True)
        out_dir.mkdir()
        source = data_dir / "media" / _FILE
        _write_random(source, mib)
        size_bytes = source.stat().st_size
        with Sandbox(data_dir=data_dir) as sandbox:
            url = f"{sandbox.base_url}/media/{_FILE}"
            _curl(url, out_dir / "warm.mp4")  # warm the page cache and the server
            (out_dir / "warm.mp4").unlink()
            for n in range(runs):
                target = out_dir / f"curl-{n}.mp4"
                curl.append(_curl(url, target))
                if target.stat().st_size != size_bytes:
                    raise RuntimeError("curl saved a file of the wrong size")
                target.unlink()
                target = out_dir / f"luma-{n}.mp4"
                result = _luma(url, target)
                if int(result["size"]) != size_bytes:
                    raise RuntimeError("luma_nb saved a file of the wrong size")
                luma.append(result)
                target.unlink()
    mb = size_bytes / 1e6
    luma_s = median(r["seconds"] for r in luma)
    curl_s = median(curl)
    growth = [(max(r["sampled"], r["hwm"]) - r["before"]) / (1024 * 1024) for r in luma]
    table = Table(
        (
            "tool",
            "runs",
            "median time (s)",
            "min (s)",
            "max (s)",
            "throughput (MB/s)",
            "peak RSS growth (MiB)",
        )
    )
    table.add("curl -o", runs, curl_s, min(curl), max(curl), mb / curl_s, "–")
    luma_times = [r["seconds"] for r in luma]
    table.add(
        "luma_nb.notebook.media.save",
        runs,
        luma_s,
        min(luma_times),
        max(luma_times),
        mb / luma_s,
        max(growth),
    )
    section.tables.append(table)
    # One ratio per round: curl and luma_nb ran back to back, under the same machine load.
    ratios = [c / r["seconds"] for c, r in zip(curl, luma, strict=True)]
    ratio = median(ratios)
    section.check(
        f"throughput ratio luma_nb / curl ≥ {GOAL_RATIO} (median of {runs} rounds)",
        f"{ratio:.2f} (min {min(ratios):.2f}, max {max(ratios):.2f}; "
        f"{mb / luma_s:.0f} vs {mb / curl_s:.0f} MB/s)",
        ratio >= GOAL_RATIO,
    )
    section.check(
        f"peak RSS growth while saving ≤ {GOAL_MB:.0f} MiB",
        f"{max(growth):.1f} MiB (worst of {runs})",
        max(growth) <= GOAL_MB,
    )
    if not all(r["reset"] for r in luma):
        section.notes.append("The peak-RSS mark could not be reset: growth is from sampling only.")
    section.notes.append(
        "Both tools read from the same single-threaded sandbox route on loopback, so the sandbox's "
        "serving speed caps both; the ratio compares the clients."
    )
    section.seconds = time.perf_counter() - started
    return section
