"""Cheap extensions: encode only the new seconds, then join them to the parent without re-encoding.

The new segment is encoded with the parent's frame size, frame rate and the sandbox's x264
settings, so its codec parameters (the ``avcC`` extradata) match the parent's. The packets of
both are then copied into one MP4 (FFmpeg's concat, through PyAV), with the segment's
timestamps moved past the parent's end, and the ``moov`` box written first (``+faststart``).
When the parameters do not match (a parent from another encoder), the caller re-encodes.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

__all__ = ("ParamsMismatch", "concat", "extend_cheaply")


class ParamsMismatch(ValueError):
    """The two videos cannot be joined without re-encoding (different codec parameters)."""


def _stream_params(stream: object) -> tuple[object, ...]:
    ctx = stream.codec_context  # type: ignore[attr-defined]
    return (ctx.name, ctx.width, ctx.height, ctx.pix_fmt, bytes(ctx.extradata or b""))


def concat(first: str | os.PathLike[str], second: str | os.PathLike[str], out: str) -> None:
    """Write ``first`` then ``second`` (same codec parameters) to ``out`` by copying packets.

    :raises ParamsMismatch: when the videos' codec parameters differ.
    """
    import av

    with av.open(os.fspath(first)) as a, av.open(os.fspath(second)) as b:
        if not a.streams.video or not b.streams.video:
            raise ParamsMismatch("both videos need a video stream")
        sa, sb = a.streams.video[0], b.streams.video[0]
        if _stream_params(sa) != _stream_params(sb) or sa.time_base != sb.time_base:
            raise ParamsMismatch(f"{first} and {second} have different codec parameters")
        with av.open(out, "w", format="mp4", options={"movflags": "+faststart"}) as sink:
            for key in ("title", "comment"):
                if key in b.metadata:
                    sink.metadata[key] = b.metadata[key]
            target = sink.add_stream_from_template(sa)
            offset = 0
            for source, stream in ((a, sa), (b, sb)):
                end = offset
                for packet in source.demux(stream):
                    if packet.dts is None:  # the demuxer's final flush packet
                        continue
                    packet.pts += offset
                    packet.dts += offset
                    end = max(end, packet.pts + (packet.duration or 0))
                    packet.stream = target
                    sink.mux(packet)
                offset = end


def extend_cheaply(
    out_path: str | os.PathLike[str],
    parent: str | os.PathLike[str],
    *,
    prompt: str,
    seconds: float,
    first_frame: bytes | None = None,
    last_frame: bytes | None = None,
    notes: Sequence[str] = (),
    seed: int = 0,
) -> None:
    """Write ``parent`` + ``seconds`` of new footage to ``out_path``, re-encoding only the new part.

    The file appears atomically (temporary ``.part`` name, then a rename).

    :raises ParamsMismatch: when the new segment's codec parameters do not match the parent's
        (re-encode with :func:`luma_nb.sandbox.video.synthesize` instead).
    :raises luma_nb.sandbox.video.MissingSandboxExtra: without PyAV/Pillow.
    """
    from .video import _require_extra, probe, synthesize_segment

    _require_extra()
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    info = probe(parent)
    size = (info.width - info.width % 2, info.height - info.height % 2)
    names: list[str] = []
    try:
        for _ in range(2):
            fd, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
            os.close(fd)
            names.append(name)
        synthesize_segment(
            names[0],
            size=size,
            fps=max(1, info.fps),
            prompt=prompt,
            seconds=seconds,
            time_offset=info.duration,
            first_frame=first_frame,
            last_frame=last_frame,
            notes=notes,
            seed=seed,
        )
        concat(parent, names[0], names[1])
        os.replace(names[1], out)
    finally:
        for name in names:
            with contextlib.suppress(OSError):
                os.unlink(name)
