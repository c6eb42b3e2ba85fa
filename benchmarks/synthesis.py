"""Measure 6: the sandbox synthesizing a 5 s 512×512 clip and a +5 s extension of it."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from . import Section, Table, median

NAME = "synthesis"
TITLE = "6. Sandbox video synthesis"
RUNS = {"full": 5, "quick": 3, "tiny": 1}
GOAL_CLIP = 0.5


def run(size: str = "full") -> Section:
    """Median wall time of ``synthesize`` for a clip and for extending it by 5 s."""
    started = time.perf_counter()
    section = Section(
        NAME,
        TITLE,
        about=(
            "`luma_nb.sandbox.video.synthesize`: a 5 s 512×512 24 fps H.264 clip, then a +5 s "
            "extension of it (decode the parent, re-encode it, add 5 s). "
            f"Median of {RUNS[size]} runs after one warm-up; wall time in this process."
        ),
    )
    try:
        from luma_nb.sandbox.video import probe, synthesize
    except ImportError as exc:
        section.missing = f"luma_nb.sandbox.video ({exc})"
        return section
    seconds = 5.0 if size != "tiny" else 1.0
    clips: list[float] = []
    extensions: list[float] = []
    with tempfile.TemporaryDirectory(prefix="luma-bench-synth-") as folder:
        base = Path(folder)
        parent = base / "parent.mp4"
        synthesize(parent, prompt="warm-up", seconds=seconds)  # imports, codec set-up
        for n in range(RUNS[size]):
            clip = base / f"clip-{n}.mp4"
            t0 = time.perf_counter()
            prompt = f"a red fox runs through snow, take {n}"
            synthesize(clip, prompt=prompt, seconds=seconds, seed=n)
            clips.append(time.perf_counter() - t0)
            ext = base / f"ext-{n}.mp4"
            t0 = time.perf_counter()
            synthesize(ext, prompt="the fox jumps over a log", seconds=seconds, parent=clip, seed=n)
            extensions.append(time.perf_counter() - t0)
        info_clip, info_ext = probe(base / "clip-0.mp4"), probe(base / "ext-0.mp4")
    table = Table(("video", "frames", "size", "median (s)", "min (s)", "max (s)"))
    for label, info, times in (
        (f"clip {seconds:g} s", info_clip, clips),
        (f"extension +{seconds:g} s", info_ext, extensions),
    ):
        table.add(
            label,
            info.frames,
            f"{info.width}×{info.height}, {info.size_bytes / 1024:.0f} KiB",
            median(times),
            min(times),
            max(times),
        )
    section.tables.append(table)
    clip_median = median(clips)
    goal = f"clip ({seconds:g} s, 512×512) ≤ {GOAL_CLIP} s"
    section.check(goal, f"{clip_median:.3f} s", clip_median <= GOAL_CLIP)
    section.notes.append(
        f"The extension (+{seconds:g} s on a {seconds:g} s parent) has no goal of its own; it "
        "decodes and re-encodes the parent's frames too "
        f"({median(extensions) / clip_median:.1f}× the clip's time here)."
    )
    section.seconds = time.perf_counter() - started
    return section
