"""Measure 6: the sandbox synthesizing a 5 s 512×512 clip, next to PyAV encoding the same frames.

Both are timed in the same rounds, one right after the other, so machine load slows both alike:
the goals are ratios (to the reference encoder and to the clip's own length), not seconds.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from . import Section, Table, median

NAME = "synthesis"
TITLE = "6. Sandbox video synthesis"
RUNS = {"full": 7, "quick": 3, "tiny": 1}
#: ``synthesize`` (drawing + encoding) may take at most this many times the encoding alone.
GOAL_VS_ENCODER = 3.0
#: ... and at most this share of the clip's own length (a 5 s clip in under 1.25 s).
GOAL_REALTIME = 0.25


def _encode_alone(path: Path, images: list[Any], size: tuple[int, int], fps: int) -> None:
    """PyAV (FFmpeg's libx264) encoding already drawn frames, with the sandbox's settings."""
    import av

    from luma_nb.sandbox.video import h264_stream

    with av.open(str(path), "w", format="mp4") as sink:
        stream, time_base = h264_stream(sink, size, fps)
        for count, image in enumerate(images):
            frame = av.VideoFrame.from_image(image)
            frame.pts, frame.time_base = count, time_base
            sink.mux(stream.encode(frame))
        sink.mux(stream.encode(None))


def _spread(values: list[float], unit: str = "", digits: int = 2) -> str:
    return (
        f"{median(values):.{digits}f}{unit} "
        f"(min {min(values):.{digits}f}, max {max(values):.{digits}f})"
    )


def run(size: str = "full") -> Section:
    """Per round: the reference encode, the clip, the extension; ratios per round."""
    started = time.perf_counter()
    runs = RUNS[size]
    section = Section(
        NAME,
        TITLE,
        about=(
            "`luma_nb.sandbox.video.synthesize`: a 5 s 512×512 24 fps H.264 clip (draw every "
            "frame, encode), then a +5 s extension of it (decode the parent, re-encode it, add "
            "5 s). The reference is PyAV (FFmpeg's libx264, same settings) encoding the same "
            f"120 frames, drawn beforehand. {runs} rounds after one warm-up, each timing the "
            "reference, the clip and the extension back to back; ratios are taken per round."
        ),
    )
    try:
        from luma_nb.sandbox import _frames
        from luma_nb.sandbox.video import FRAME_SIZES, probe, synthesize
    except ImportError as exc:
        section.missing = f"luma_nb.sandbox.video ({exc})"
        return section
    seconds, fps = (5.0 if size != "tiny" else 1.0), 24
    frame_size = FRAME_SIZES["1:1"]
    prompt = "a red fox runs through snow"
    images = list(
        _frames.segment(
            frame_size,
            prompt=prompt,
            notes=[],
            seed=0,
            fps=fps,
            frames=round(seconds * fps),
            time_offset=0.0,
            first_frame=None,
            last_frame=None,
        )
    )
    reference: list[float] = []
    clips: list[float] = []
    extensions: list[float] = []
    with tempfile.TemporaryDirectory(prefix="luma-bench-synth-") as folder:
        base = Path(folder)
        synthesize(base / "warm.mp4", prompt="warm-up", seconds=seconds)  # imports, codec
        _encode_alone(base / "warm-ref.mp4", images, frame_size, fps)
        for n in range(runs):
            t0 = time.perf_counter()
            _encode_alone(base / f"ref-{n}.mp4", images, frame_size, fps)
            reference.append(time.perf_counter() - t0)
            clip = base / f"clip-{n}.mp4"
            t0 = time.perf_counter()
            synthesize(clip, prompt=prompt, seconds=seconds, seed=0)
            clips.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            ext = base / f"ext-{n}.mp4"
            synthesize(ext, prompt="the fox jumps over a log", seconds=seconds, parent=clip, seed=n)
            extensions.append(time.perf_counter() - t0)
        info_clip, info_ext = probe(base / "clip-0.mp4"), probe(base / "ext-0.mp4")
    vs_encoder = [c / r for c, r in zip(clips, reference, strict=True)]
    realtime = [c / seconds for c in clips]
    ext_vs_clip = [e / c for e, c in zip(extensions, clips, strict=True)]
    section.check(
        f"clip / PyAV encoding the same frames ≤ {GOAL_VS_ENCODER:g}× (median of {runs} rounds)",
        _spread(vs_encoder, "×"),
        median(vs_encoder) <= GOAL_VS_ENCODER,
    )
    section.check(
        f"clip time / clip length ≤ {GOAL_REALTIME:g}× real time (median)",
        _spread(realtime, "×", 3),
        median(realtime) <= GOAL_REALTIME,
    )
    table = Table(("video", "frames", "size", "median (s)", "min (s)", "max (s)"))
    rows = (
        (f"PyAV encode alone, {seconds:g} s", info_clip, reference),
        (f"clip {seconds:g} s", info_clip, clips),
        (f"extension +{seconds:g} s", info_ext, extensions),
    )
    for label, info, times in rows:
        table.add(
            label,
            info.frames,
            f"{info.width}×{info.height}, {info.size_bytes / 1024:.0f} KiB",
            median(times),
            min(times),
            max(times),
        )
    section.tables.append(table)
    section.notes.append(
        f"The extension has no goal of its own; it decodes and re-encodes the parent's frames "
        f"too: {_spread(ext_vs_clip, '×')} the clip's time in the same round."
    )
    section.seconds = time.perf_counter() - started
    return section
