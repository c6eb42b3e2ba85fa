"""Synthesize the sandbox's MP4 videos: real H.264 clips that show the prompt and keep moving.

The sandbox server calls :func:`synthesize` for each finished task and :func:`probe` to describe
a file. PyAV and Pillow come from the ``sandbox`` extra; they are imported only when a function
here is called, so importing this module never fails.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import av.container
    import av.video
    from PIL import Image

__all__ = (
    "FRAME_SIZES",
    "MissingSandboxExtra",
    "VideoInfo",
    "frame_size",
    "poster_jpeg",
    "probe",
    "synthesize",
    "synthesize_segment",
)

FRAME_SIZES: dict[str, tuple[int, int]] = {
    # Multiples of 16 with about 512*512 pixels each, so every ratio costs the same to encode.
    "1:1": (512, 512),
    "16:9": (672, 384),
    "9:16": (384, 672),
    "4:3": (592, 448),
    "3:4": (448, 592),
    "21:9": (784, 336),
    "9:21": (336, 784),
}
"""Frame (width, height) in pixels for each aspect ratio the API accepts."""

_X264_OPTIONS = {"preset": "ultrafast", "crf": "23"}
_POSTER_QUALITY = 85


class MissingSandboxExtra(ImportError):
    """PyAV or Pillow is missing: the sandbox's video synthesis needs the ``sandbox`` extra."""


def _require_extra() -> None:
    """Import PyAV and Pillow, or explain how to install them.

    :raises MissingSandboxExtra: when either import fails.
    """
    try:
        import av  # noqa: F401
        import PIL.Image  # noqa: F401
    except ImportError as exc:
        raise MissingSandboxExtra(
            f"the luma_nb sandbox needs PyAV and Pillow to make videos ({exc}); "
            'install them with: pip install "luma_nb[sandbox]"'
        ) from exc


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` reads back from an MP4 file."""

    path: Path
    """The file."""
    width: int
    """Frame width in pixels."""
    height: int
    """Frame height in pixels."""
    duration: float
    """Length in seconds."""
    frames: int
    """Number of video frames."""
    fps: int
    """Frames per second (rounded)."""
    size_bytes: int
    """File size in bytes."""
    codec: str
    """Video codec name as FFmpeg reports it, e.g. ``"h264"``."""


def frame_size(aspect_ratio: str) -> tuple[int, int]:
    """Return the (width, height) the sandbox uses for ``aspect_ratio``.

    :raises ValueError: for a ratio not in :data:`FRAME_SIZES`.
    """
    try:
        return FRAME_SIZES[aspect_ratio]
    except KeyError:
        known = ", ".join(FRAME_SIZES)
        raise ValueError(f"unknown aspect ratio {aspect_ratio!r}; expected {known}") from None


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """Read size, duration, frame count, fps and codec of a video file with PyAV.

    :raises MissingSandboxExtra: without PyAV/Pillow.
    :raises FileNotFoundError: when the file does not exist.
    :raises ValueError: when the file is not a readable video or has no video stream
        (PyAV's ``InvalidDataError`` is a ``ValueError``).
    """
    _require_extra()
    import av

    file = Path(path)
    with av.open(str(file)) as container:
        if not container.streams.video:
            raise ValueError(f"{file} has no video stream")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or 0
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        else:
            duration = (container.duration or 0) / 1_000_000
        frames = stream.frames or sum(1 for p in container.demux(stream) if p.size)
        return VideoInfo(
            path=file,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            duration=duration,
            frames=frames,
            fps=round(rate),
            size_bytes=file.stat().st_size,
            codec=stream.codec_context.name,
        )


def frame_at(path: str | os.PathLike[str], seconds: float) -> Image.Image:
    """The first frame of ``path`` shown at or after ``seconds`` (the last frame when past the
    end), decoded with PyAV after seeking to the keyframe before it.

    :raises MissingSandboxExtra: without PyAV/Pillow.
    :raises ValueError: when the file has no video stream or no frame.
    """
    _require_extra()
    import av

    with av.open(os.fspath(path)) as container:
        if not container.streams.video:
            raise ValueError(f"{path} has no video stream")
        stream = container.streams.video[0]
        rate = float(stream.average_rate or stream.guessed_rate or 24)
        # Half a frame of slack: a frame whose timestamp rounds just below ``seconds`` counts.
        wanted = max(0.0, seconds - 0.5 / rate)
        if wanted > 0 and stream.time_base is not None:
            container.seek(int(wanted / stream.time_base), stream=stream, backward=True)
        last = None
        for frame in container.decode(stream):
            last = frame
            if frame.time is None or frame.time >= wanted:
                break
        if last is None:
            raise ValueError(f"{path} has no video frame")
        image: Image.Image = last.to_image()
        return image


def poster_jpeg(
    path: str | os.PathLike[str], seconds: float, out_path: str | os.PathLike[str]
) -> Path:
    """Write the frame of ``path`` at ``seconds`` (see :func:`frame_at`) as a JPEG to
    ``out_path``, atomically (a temporary name beside it, then a rename), and return it.

    :raises MissingSandboxExtra: without PyAV/Pillow.
    :raises ValueError: when the video has no frame to show.
    """
    image = frame_at(path, seconds)
    out = Path(out_path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as sink:
            image.convert("RGB").save(sink, format="JPEG", quality=_POSTER_QUALITY)
        os.replace(tmp_name, out)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    return out


def _parent_format(container: av.container.InputContainer) -> tuple[tuple[int, int], int]:
    """Return the parent's (even) frame size and its fps, rounded to an integer."""
    if not container.streams.video:
        raise ValueError(f"parent {container.name} has no video stream")
    stream = container.streams.video[0]
    rate = stream.average_rate or stream.guessed_rate or 24
    width, height = stream.codec_context.width, stream.codec_context.height
    # yuv420p needs even sides; an odd parent gets scaled by one pixel.
    return (max(2, width - width % 2), max(2, height - height % 2)), max(1, round(rate))


def synthesize(
    out_path: str | os.PathLike[str],
    *,
    prompt: str,
    aspect_ratio: str = "1:1",
    seconds: float = 5.0,
    fps: int = 24,
    parent: str | os.PathLike[str] | None = None,
    first_frame: bytes | None = None,
    last_frame: bytes | None = None,
    notes: Sequence[str] = (),
    seed: int = 0,
) -> VideoInfo:
    """Write an H.264 MP4 showing ``prompt`` with moving parts, and return its probed info.

    The file is written to a temporary name beside ``out_path`` and then renamed over it, so a
    reader never sees half a video. Missing parent folders are created.

    :param aspect_ratio: a key of :data:`FRAME_SIZES`; ignored when ``parent`` is given.
    :param seconds: length of the new footage.
    :param fps: frame rate; ignored when ``parent`` is given (the parent's rate is kept).
    :param parent: an existing video to extend: the output is its frames, then ``seconds`` of
        new ones, at the parent's size and frame rate.
    :param first_frame: PNG/JPEG bytes held, then cross-faded, at the start of the new segment.
    :param last_frame: image bytes cross-faded in, then held, at its end.
        Unreadable image bytes are not an error: the frame is drawn as usual and a note says so.
    :param notes: extra lines printed small at the bottom of the new frames.
    :param seed: varies the colours (together with the prompt).
    :raises MissingSandboxExtra: without PyAV/Pillow.
    :raises ValueError: for an unknown aspect ratio, ``seconds`` or ``fps`` not positive, or a
        parent without a video stream.
    :raises FileNotFoundError: when ``parent`` does not exist.
    """
    _require_extra()
    import av

    from . import _frames

    if parent is None:
        size = frame_size(aspect_ratio)
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ValueError(f"seconds must be positive and finite, got {seconds!r}")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps!r}")
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        source = None
        if parent is not None:
            source = stack.enter_context(av.open(os.fspath(parent)))
            size, fps = _parent_format(source)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
        os.close(fd)
        try:
            _encode(
                tmp_name,
                source,
                size,
                fps,
                title=prompt,
                new_frames=lambda offset: _frames.segment(
                    size,
                    prompt=prompt,
                    notes=notes,
                    seed=seed,
                    fps=fps,
                    frames=max(1, round(seconds * fps)),
                    time_offset=offset,
                    first_frame=first_frame,
                    last_frame=last_frame,
                ),
            )
            os.replace(tmp_name, out)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
            raise
    return probe(out)


def synthesize_segment(
    path: str,
    *,
    size: tuple[int, int],
    fps: int,
    prompt: str,
    seconds: float,
    time_offset: float = 0.0,
    first_frame: bytes | None = None,
    last_frame: bytes | None = None,
    notes: Sequence[str] = (),
    seed: int = 0,
) -> None:
    """Encode only new footage to ``path`` (not atomic): ``seconds`` at ``size`` and ``fps``.

    ``time_offset`` is the length of the video it will follow, so its clock and motion carry
    on. The encoder settings are those of :func:`synthesize`, so the segment can be joined to
    a sandbox video of the same size without re-encoding (see :mod:`luma_nb.sandbox.remux`).
    """
    _require_extra()
    from . import _frames

    _encode(
        path,
        None,
        size,
        fps,
        title=prompt,
        new_frames=lambda offset: _frames.segment(
            size,
            prompt=prompt,
            notes=notes,
            seed=seed,
            fps=fps,
            frames=max(1, round(seconds * fps)),
            time_offset=offset + time_offset,
            first_frame=first_frame,
            last_frame=last_frame,
        ),
    )


def h264_stream(
    sink: av.container.OutputContainer, size: tuple[int, int], fps: int
) -> tuple[av.video.stream.VideoStream, Fraction]:
    """The sandbox's H.264 stream in ``sink`` (x264 settings, pixel format, a keyframe every
    two seconds), and the time base its frames' ``pts`` count in."""
    stream = sink.add_stream("libx264", rate=fps, options=dict(_X264_OPTIONS))
    stream.width, stream.height = size
    stream.pix_fmt = "yuv420p"
    stream.codec_context.gop_size = 2 * fps
    time_base = Fraction(1, fps)
    stream.codec_context.time_base = time_base
    return stream, time_base


def _encode(
    path: str,
    source: av.container.InputContainer | None,
    size: tuple[int, int],
    fps: int,
    *,
    title: str,
    new_frames: Callable[[float], Iterable[Image.Image]],
) -> None:
    """Encode the parent's frames (if any), then ``new_frames(seconds_so_far)``, to an MP4."""
    import av

    with av.open(path, "w", format="mp4", options={"movflags": "+faststart"}) as sink:
        sink.metadata["title"] = title[:200]
        sink.metadata["comment"] = "luma_nb sandbox"
        stream, time_base = h264_stream(sink, size, fps)
        count = 0

        def put(frame: av.video.frame.VideoFrame) -> None:
            nonlocal count
            frame.pts, frame.time_base = count, time_base
            sink.mux(stream.encode(frame))
            count += 1

        if source is not None:
            for old in source.decode(video=0):
                old.pict_type = av.video.frame.PictureType.NONE  # let x264 place keyframes
                put(old)
        for image in new_frames(count / fps):
            # PyAV's stub leaves from_image unannotated.
            put(av.VideoFrame.from_image(image))  # type: ignore[no-untyped-call]
        sink.mux(stream.encode(None))
