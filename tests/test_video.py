"""Tests for the sandbox's video synthesis: decode what it writes with PyAV and look at it."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

av = pytest.importorskip("av")
pytest.importorskip("PIL.Image")
from PIL import Image, ImageChops, ImageStat  # noqa: E402

from luma_nb.sandbox import _frames  # noqa: E402
from luma_nb.sandbox.video import (  # noqa: E402
    FRAME_SIZES,
    MissingSandboxExtra,
    VideoInfo,
    _require_extra,
    frame_size,
    probe,
    synthesize,
)

RATIOS = ("1:1", "16:9", "9:16", "4:3", "3:4", "21:9", "9:21")


def decode(path: Path, indices: Iterable[int] | None = None) -> list[Image.Image]:
    """Decode the frames at ``indices`` (all when None) to RGB images."""
    wanted = None if indices is None else set(indices)
    with av.open(str(path)) as container:
        return [
            frame.to_image()
            for i, frame in enumerate(container.decode(video=0))
            if wanted is None or i in wanted
        ]


def mean_diff(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference of two same-sized images, 0..255."""
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3


def mean_colour(img: Image.Image) -> tuple[float, ...]:
    return tuple(ImageStat.Stat(img).mean)


def png(colour: tuple[int, int, int], size: tuple[int, int] = (64, 64)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return buf.getvalue()


def top_level_boxes(data: bytes) -> list[str]:
    """Names of the top-level ISO-BMFF boxes, in file order."""
    names, pos = [], 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if size == 1:
            (size,) = struct.unpack(">Q", data[pos + 8 : pos + 16])
        elif size == 0:
            size = len(data) - pos
        assert size >= 8, f"corrupt box at {pos}"
        names.append(kind.decode("latin-1"))
        pos += size
    assert pos == len(data), "boxes do not add up to the file size"
    return names


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> VideoInfo:
    """A default 5 s 1:1 clip, shared by the read-only tests."""
    out = tmp_path_factory.mktemp("clip") / "clip.mp4"
    return synthesize(out, prompt="A red fox jumps over a lazy dog", seed=1)


def test_frame_sizes_cover_every_ratio_with_even_sides_near_512_squared() -> None:
    assert set(FRAME_SIZES) == set(RATIOS)
    assert FRAME_SIZES["1:1"] == (512, 512)
    for ratio, (w, h) in FRAME_SIZES.items():
        assert w % 16 == 0 and h % 16 == 0, ratio
        assert abs(w * h / (512 * 512) - 1) < 0.06, ratio
        rw, rh = (int(x) for x in ratio.split(":"))
        assert abs((w / h) / (rw / rh) - 1) < 0.05, ratio
        assert frame_size(ratio) == (w, h)


def test_frame_size_rejects_unknown_ratio() -> None:
    with pytest.raises(ValueError, match="2:1"):
        frame_size("2:1")


def test_default_clip_is_five_seconds_of_h264_yuv420p(clip: VideoInfo) -> None:
    assert (clip.width, clip.height, clip.fps, clip.frames, clip.codec) == (
        512,
        512,
        24,
        120,
        "h264",
    )
    assert clip.duration == pytest.approx(5.0, abs=0.2)
    assert clip.size_bytes == clip.path.stat().st_size > 0
    with av.open(str(clip.path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert stream.average_rate == 24
    assert len(decode(clip.path)) == 120


@pytest.mark.parametrize("ratio", ["16:9", "9:16", "4:3", "21:9", "9:21"])
def test_frame_size_follows_aspect_ratio(tmp_path: Path, ratio: str) -> None:
    info = synthesize(tmp_path / "v.mp4", prompt="size check", aspect_ratio=ratio, seconds=1.5)
    assert (info.width, info.height) == FRAME_SIZES[ratio]
    assert info.frames == 36
    assert info.duration == pytest.approx(1.5, abs=0.2)
    frames = decode(info.path, [0])
    assert frames[0].size == FRAME_SIZES[ratio]
    assert probe(info.path) == info


def test_custom_fps_and_seconds(tmp_path: Path) -> None:
    info = synthesize(tmp_path / "v.mp4", prompt="fps", seconds=2.0, fps=30)
    assert (info.fps, info.frames) == (30, 60)
    assert info.duration == pytest.approx(2.0, abs=0.2)


def test_moov_comes_before_mdat(clip: VideoInfo) -> None:
    boxes = top_level_boxes(clip.path.read_bytes())
    assert boxes[0] == "ftyp"
    assert boxes.index("moov") < boxes.index("mdat")


def test_frames_move_over_time(clip: VideoInfo) -> None:
    first, later = decode(clip.path, [0, 30])
    assert mean_diff(first, later) > 0.5
    # The ball's lane just under the header changes, not only the clock digits.
    lane = (0, 64, 512, 120)
    assert mean_diff(first.crop(lane), later.crop(lane)) > 2


def test_prompt_text_is_drawn(monkeypatch: pytest.MonkeyPatch) -> None:
    # Same colours for both prompts, so only the drawn text can tell the frames apart.
    fixed = _frames.palette("fixed", 0)
    monkeypatch.setattr(_frames, "palette", lambda prompt, seed: fixed)
    paint = {
        prompt: _frames.SegmentPainter(
            (512, 512), prompt=prompt, notes=(), seed=0, fps=24, frames=24
        ).frame(0)
        for prompt in ("", "a lighthouse in a storm", "a cat asleep on a piano")
    }
    middle = (40, 160, 472, 400)
    blank = paint[""].crop(middle)
    assert mean_diff(blank, paint["a lighthouse in a storm"].crop(middle)) > 3
    assert (
        mean_diff(
            paint["a lighthouse in a storm"].crop(middle),
            paint["a cat asleep on a piano"].crop(middle),
        )
        > 3
    )


def test_different_prompts_and_seeds_look_different(tmp_path: Path) -> None:
    a = synthesize(tmp_path / "a.mp4", prompt="sunrise over the sea", seconds=0.5)
    b = synthesize(tmp_path / "b.mp4", prompt="a neon city at night", seconds=0.5)
    c = synthesize(tmp_path / "c.mp4", prompt="sunrise over the sea", seconds=0.5, seed=7)
    fa, fb, fc = (decode(v.path, [0])[0] for v in (a, b, c))
    assert mean_diff(fa, fb) > 5
    assert mean_diff(fa, fc) > 5


def test_extension_appends_new_seconds_at_the_parents_size_and_rate(
    tmp_path: Path, clip: VideoInfo
) -> None:
    ext = synthesize(
        tmp_path / "ext.mp4", prompt="then it runs away", aspect_ratio="16:9", parent=clip.path
    )
    assert (ext.width, ext.height, ext.fps, ext.codec) == (512, 512, 24, "h264")
    assert ext.frames == clip.frames + 120
    assert ext.duration == pytest.approx(clip.duration + 5.0, abs=0.2)
    parent_frames = decode(clip.path, [0, 60, 119])
    ext_frames = decode(ext.path, [0, 60, 119, 130])
    for old, new in zip(parent_frames, ext_frames[:3], strict=True):
        assert mean_diff(old, new) < 3
    # The new part shows the new prompt, not a replay of the parent.
    assert mean_diff(ext_frames[3], decode(clip.path, [10])[0]) > 5
    assert top_level_boxes(ext.path.read_bytes()).index("moov") < 3


def test_extension_keeps_parent_fps_and_can_overwrite_the_parent(tmp_path: Path) -> None:
    path = tmp_path / "v.mp4"
    synthesize(path, prompt="base", aspect_ratio="9:16", seconds=1.0, fps=12)
    ext = synthesize(path, prompt="more", parent=path, seconds=1.0, fps=30)
    assert (ext.width, ext.height, ext.fps, ext.frames) == (384, 672, 12, 24)
    assert ext.duration == pytest.approx(2.0, abs=0.2)
    assert sorted(os.listdir(tmp_path)) == ["v.mp4"]


def test_first_and_last_frame_images_start_and_end_the_segment(tmp_path: Path) -> None:
    info = synthesize(
        tmp_path / "v.mp4",
        prompt="from red to blue",
        aspect_ratio="16:9",
        seconds=2.0,
        first_frame=png((255, 0, 0), (300, 300)),  # square: gets crop-fitted to 16:9
        last_frame=png((0, 0, 255)),
    )
    assert info.frames == 48
    first, middle, last = decode(info.path, [0, 24, 47])
    r, g, b = mean_colour(first)
    assert r > 200 and g < 40 and b < 40
    r, g, b = mean_colour(last)
    assert b > 200 and r < 40 and g < 40
    r, g, b = mean_colour(middle)
    assert not (r > 200 and g < 40 and b < 40)


def test_first_frame_of_an_extension_starts_its_new_segment(tmp_path: Path) -> None:
    parent = synthesize(tmp_path / "p.mp4", prompt="parent", seconds=1.0)
    ext = synthesize(
        tmp_path / "e.mp4", prompt="child", parent=parent.path, first_frame=png((255, 0, 0))
    )
    before, start = decode(ext.path, [parent.frames - 1, parent.frames])
    assert mean_colour(start)[0] > 200 and mean_colour(start)[1] < 40
    assert mean_colour(before)[0] < 200 or mean_colour(before)[1] > 40


@pytest.mark.parametrize("junk", [b"", b"not an image", png((255, 0, 0))[:40]])
def test_unreadable_first_frame_falls_back_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, junk: bytes
) -> None:
    seen: list[str] = []
    real_painter = _frames.SegmentPainter

    def recording_painter(*args: Any, **kwargs: Any) -> _frames.SegmentPainter:
        seen.extend(kwargs["notes"])
        return real_painter(*args, **kwargs)

    monkeypatch.setattr(_frames, "SegmentPainter", recording_painter)
    info = synthesize(
        tmp_path / "v.mp4",
        prompt="junk",
        seconds=1.0,
        notes=["given note"],
        first_frame=junk,
        last_frame=junk,
    )
    assert (info.frames, info.codec) == (24, "h264")
    assert seen[0] == "given note"
    assert any(n.startswith("first_frame: not a readable image") for n in seen)
    assert any(n.startswith("last_frame: not a readable image") for n in seen)
    r, g, b = mean_colour(decode(info.path, [0])[0])
    assert not (r > 200 and g < 40 and b < 40)  # the truncated red PNG was not shown


def test_no_temporary_files_are_left_behind(tmp_path: Path) -> None:
    out = tmp_path / "v.mp4"
    synthesize(out, prompt="one", seconds=0.5)
    synthesize(out, prompt="two", seconds=0.5)  # overwrites in place
    assert sorted(os.listdir(tmp_path)) == ["v.mp4"]


def test_failure_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FileNotFoundError):
        synthesize(tmp_path / "v.mp4", prompt="x", parent=tmp_path / "missing.mp4")
    assert os.listdir(tmp_path) == []

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("drawing failed")

    # Fail half way through encoding, after the temporary file exists; keep the old video.
    old = synthesize(tmp_path / "v.mp4", prompt="old", seconds=0.5)
    monkeypatch.setattr(_frames, "SegmentPainter", broken)
    parent = tmp_path / "v.mp4"
    with pytest.raises(RuntimeError, match="drawing failed"):
        synthesize(tmp_path / "v.mp4", prompt="new", parent=parent)
    assert os.listdir(tmp_path) == ["v.mp4"]
    assert probe(parent) == old


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"aspect_ratio": "5:4"}, "aspect ratio"),
        ({"seconds": 0}, "seconds"),
        ({"seconds": float("inf")}, "seconds"),
        ({"fps": 0}, "fps"),
    ],
)
def test_bad_arguments_raise_value_error(
    tmp_path: Path, kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        synthesize(tmp_path / "v.mp4", prompt="x", **kwargs)  # type: ignore[arg-type]
    assert os.listdir(tmp_path) == []


def test_probe_reads_foreign_files_and_rejects_non_video(tmp_path: Path) -> None:
    path = tmp_path / "odd.mp4"
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(10):
            frame = av.VideoFrame.from_image(Image.new("RGB", (64, 48), (i * 20, 0, 0)))
            frame.pts, frame.time_base = i, Fraction(1, 10)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    info = probe(path)
    assert (info.width, info.height, info.fps, info.frames) == (64, 48, 10, 10)
    assert info.duration == pytest.approx(1.0, abs=0.15)
    text = tmp_path / "x.mp4"
    text.write_text("hello")
    with pytest.raises(ValueError):
        probe(text)


@pytest.mark.parametrize("missing", ["av", "PIL", "PIL.Image"])
def test_missing_extra_names_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    monkeypatch.setitem(sys.modules, missing, None)
    with pytest.raises(MissingSandboxExtra, match=r'pip install "luma_nb\[sandbox\]"'):
        _require_extra()
    with pytest.raises(ImportError, match=r"luma_nb\[sandbox\]"):
        synthesize(tmp_path / "v.mp4", prompt="x")
    with pytest.raises(MissingSandboxExtra):
        probe(tmp_path / "v.mp4")


def test_module_imports_without_the_extra() -> None:
    code = (
        "import sys; sys.modules['av'] = None; sys.modules['PIL'] = None\n"
        "import luma_nb.sandbox.video as v\n"
        "assert v.frame_size('16:9') == (672, 384)\n"
        "try:\n    v.synthesize('x.mp4', prompt='p')\n"
        "except v.MissingSandboxExtra as e:\n    print(e)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert 'pip install "luma_nb[sandbox]"' in done.stdout
