"""Draw the sandbox's video frames with Pillow: a static card per segment, plus the moving parts.

Imported only after :func:`luma_nb.sandbox.video._require_extra` has checked that Pillow is
installed, so importing Pillow at the top here is fine.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont, ImageOps

__all__ = ("Palette", "SegmentPainter", "blend", "fit_still", "palette", "segment")

_Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
_RGB = tuple[int, int, int]
_WHITE: _RGB = (245, 245, 245)
_SHADOW: _RGB = (10, 10, 14)
_LABEL = "luma_nb sandbox"
_STILL_SECONDS = 0.5  # how long a first/last frame image is held, and then cross-faded


@dataclass(frozen=True)
class Palette:
    """The colours of one clip, derived from its prompt and seed."""

    top: _RGB
    """Background colour at the top edge."""
    bottom: _RGB
    """Background colour at the bottom edge."""
    accent: _RGB
    """Colour of the moving ball, the spinner and the progress bar."""
    accent2: _RGB
    """Second accent, for the decorative rings and the ball's trail."""
    digest: bytes
    """The hash the colours came from; also places the decorative rings."""


def _hsv(h: float, s: float, v: float) -> _RGB:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return round(r * 255), round(g * 255), round(b * 255)


def palette(prompt: str, seed: int) -> Palette:
    """Pick the clip's colours from a hash of ``seed`` and ``prompt``.

    Dark backgrounds keep the white text readable whatever the hue.
    """
    digest = hashlib.sha256(f"{seed}\x00{prompt}".encode()).digest()
    hue = digest[0] / 255
    hue2 = hue + 0.15 + digest[1] / 255 * 0.5
    return Palette(
        top=_hsv(hue, 0.55 + digest[2] / 255 * 0.3, 0.42),
        bottom=_hsv(hue2, 0.65, 0.16),
        accent=_hsv(hue + 0.5, 0.7, 1.0),
        accent2=_hsv(hue2 + 0.33, 0.5, 0.9),
        digest=digest,
    )


@lru_cache(maxsize=64)
def _font(size: int) -> _Font:
    # load_default(size=...) needs Pillow >= 10.1 and FreeType; otherwise take the bitmap font.
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):
        return ImageFont.load_default()


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: _Font, width: int) -> list[str]:
    """Greedy word wrap to ``width`` pixels; words longer than a line are cut by characters."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}" if line else word
            if draw.textlength(candidate, font=font) <= width:
                line = candidate
                continue
            if line:
                lines.append(line)
            line = word
            while draw.textlength(line, font=font) > width and len(line) > 1:
                cut = len(line) - 1
                while cut > 1 and draw.textlength(line[:cut], font=font) > width:
                    cut -= 1
                lines.append(line[:cut])
                line = line[cut:]
        lines.append(line)
    return lines


def _fit_text(
    draw: ImageDraw.ImageDraw, text: str, box: tuple[int, int], sizes: Sequence[int]
) -> tuple[_Font, list[str], int]:
    """Return the largest font (from ``sizes``) whose wrapped ``text`` fits ``box``, and its lines.

    At the smallest size, lines that do not fit are dropped and the last one ends in "...".
    """
    width, height = box
    for size in sizes:
        font, step = _font(size), round(size * 1.25)
        lines = _wrap(draw, text, font, width)
        if len(lines) * step <= height or size == sizes[-1]:
            break
    keep = max(1, height // step)
    if len(lines) > keep:
        lines = lines[:keep]
        last = lines[-1]
        while last and draw.textlength(last + "...", font=font) > width:
            last = last[:-1]
        lines[-1] = last.rstrip() + "..."
    return font, lines, step


class SegmentPainter:
    """Paint the frames of one new segment: prompt card once, moving parts per frame."""

    def __init__(
        self,
        size: tuple[int, int],
        *,
        prompt: str,
        notes: Sequence[str],
        seed: int,
        fps: int,
        frames: int,
        time_offset: float = 0.0,
    ) -> None:
        """Render the static card.

        :param size: frame (width, height) in pixels.
        :param time_offset: seconds of video before this segment, so the clock and the motion
            carry on from a parent clip instead of starting over.
        """
        self._w, self._h = size
        self._fps, self._frames, self._offset = fps, frames, time_offset
        self._pal = palette(prompt, seed)
        unit = min(size)
        self._m = max(6, unit // 32)
        self._small = _font(max(10, unit // 30))
        self._header = max(self._m * 3, unit // 8)
        self._lane = (self._header, self._header + max(16, unit // 12))
        self._bar = (self._h - self._m - max(4, unit // 48), self._h - self._m)
        self._card = self._paint_card(prompt, notes)

    def _paint_card(self, prompt: str, notes: Sequence[str]) -> Image.Image:
        w, h, m, pal = self._w, self._h, self._m, self._pal
        gradient = Image.linear_gradient("L").resize((w, h))
        card = Image.composite(
            Image.new("RGB", (w, h), pal.bottom), Image.new("RGB", (w, h), pal.top), gradient
        )
        draw = ImageDraw.Draw(card)
        for i in range(4):
            # Rings placed by the hash make two prompts differ even at a glance.
            cx, cy = pal.digest[4 + i] / 255 * w, pal.digest[8 + i] / 255 * h
            r = (0.15 + pal.digest[12 + i] / 255 * 0.35) * min(w, h)
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=pal.accent2, width=2)
        draw.text(
            (m, m), _LABEL, font=self._small, fill=_WHITE, stroke_width=1, stroke_fill=_SHADOW
        )
        note_font = self._small
        note_step = round(getattr(note_font, "size", 11) * 1.3)
        note_lines: list[str] = []
        for note in notes:
            note_lines += _wrap(draw, note, note_font, w - 2 * m)
        note_lines = note_lines[: max(0, (h // 4) // note_step)]
        notes_top = self._bar[0] - m // 2 - note_step * len(note_lines)
        for i, line in enumerate(note_lines):
            draw.text(
                (m, notes_top + i * note_step),
                line,
                font=note_font,
                fill=(220, 220, 220),
                stroke_width=1,
                stroke_fill=_SHADOW,
            )
        top, bottom = self._lane[1] + m, notes_top - m
        unit = min(w, h)
        sizes = [unit // d for d in (12, 15, 19, 24, 30)] + [max(10, unit // 40)]
        font, lines, step = _fit_text(draw, prompt, (w - 4 * m, max(12, bottom - top)), sizes)
        y = top + max(0, (bottom - top - step * len(lines)) // 2)
        for line in lines:
            x = (w - draw.textlength(line, font=font)) / 2
            draw.text((x, y), line, font=font, fill=_WHITE, stroke_width=2, stroke_fill=_SHADOW)
            y += step
        draw.rectangle((m, self._bar[0], w - m, self._bar[1]), fill=(40, 40, 48))
        return card

    def frame(self, index: int) -> Image.Image:
        """Return frame ``index`` (0-based within this segment) as an RGB image."""
        t = self._offset + index / self._fps
        img = self._card.copy()
        draw = ImageDraw.Draw(img)
        w, m, pal = self._w, self._m, self._pal
        # Ball bouncing along the lane under the header, with a short trail.
        lane_top, lane_bottom = self._lane
        r = (lane_bottom - lane_top) // 2 - 1
        cy = (lane_top + lane_bottom) // 2
        span = w - 2 * m - 2 * r
        for lag, scale in ((0.12, 0.45), (0.06, 0.7), (0.0, 1.0)):
            phase = ((t - lag) / 2.0) % 2.0
            cx = m + r + span * (phase if phase <= 1.0 else 2.0 - phase)
            rr = r * scale
            colour = pal.accent if lag == 0.0 else pal.accent2
            draw.ellipse((cx - rr, cy - rr, cx + rr, cy + rr), fill=colour)
        # Spinner and clock in the top-right corner.
        s = (self._header - m - m // 2) // 2
        sx, sy = w - m - s, m + s
        corners = [
            (
                sx + s * math.cos(t * math.pi + k * math.pi / 2),
                sy + s * math.sin(t * math.pi + k * math.pi / 2),
            )
            for k in range(4)
        ]
        draw.polygon(corners, fill=pal.accent)
        clock = f"{int(t // 60):02d}:{t % 60:05.2f}"
        cw = draw.textlength(clock, font=self._small)
        draw.text(
            (sx - s - m - cw, sy),
            clock,
            font=self._small,
            fill=_WHITE,
            anchor="lm",
            stroke_width=1,
            stroke_fill=_SHADOW,
        )
        # Progress of this segment.
        done = (index + 1) / max(1, self._frames)
        draw.rectangle((m, self._bar[0], m + (w - 2 * m) * done, self._bar[1]), fill=pal.accent)
        return img


def fit_still(data: bytes, size: tuple[int, int]) -> tuple[Image.Image | None, str | None]:
    """Decode image bytes and crop-fit them to ``size``.

    :returns: (image, None), or (None, reason) when the bytes are not a readable image.
    """
    try:
        with Image.open(io.BytesIO(data)) as src:
            src.load()
            rgb = src.convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        return None, f"{type(exc).__name__}: {exc}"[:120]
    return ImageOps.fit(rgb, size, Image.Resampling.BILINEAR), None


def blend(base: Image.Image, still: Image.Image, weight: float) -> Image.Image:
    """Mix ``still`` over ``base``: weight 1 is the still alone, 0 the base alone."""
    if weight >= 1.0:
        return still
    if weight <= 0.0:
        return base
    return Image.blend(base, still, weight)


def _still_weight(index: int, frames: int, fps: int) -> float:
    """How much of a still shows at ``index`` frames from its end of the segment (1 = only it)."""
    span = max(1, min(round(_STILL_SECONDS * fps), frames // 4))
    if index < span:
        return 1.0
    fade = index - span + 1
    return max(0.0, 1.0 - fade / (span + 1))


def segment(
    size: tuple[int, int],
    *,
    prompt: str,
    notes: Sequence[str],
    seed: int,
    fps: int,
    frames: int,
    time_offset: float,
    first_frame: bytes | None,
    last_frame: bytes | None,
) -> Iterator[Image.Image]:
    """Yield the new segment's frames, cross-fading the optional first/last images in and out."""
    notes = list(notes)
    stills: dict[str, Image.Image] = {}
    for name, data in (("first_frame", first_frame), ("last_frame", last_frame)):
        if data is None:
            continue
        image, problem = fit_still(data, size)
        if image is None:
            notes.append(f"{name}: not a readable image ({problem}); drew the prompt instead")
        else:
            stills[name] = image
    painter = SegmentPainter(
        size,
        prompt=prompt,
        notes=notes,
        seed=seed,
        fps=fps,
        frames=frames,
        time_offset=time_offset,
    )
    for i in range(frames):
        first = _still_weight(i, frames, fps) if "first_frame" in stills else 0.0
        last = _still_weight(frames - 1 - i, frames, fps) if "last_frame" in stills else 0.0
        if first >= 1.0:
            yield stills["first_frame"]
        elif last >= 1.0:
            yield stills["last_frame"]
        elif first > 0.0:
            yield blend(painter.frame(i), stills["first_frame"], first)
        elif last > 0.0:
            yield blend(painter.frame(i), stills["last_frame"], last)
        else:
            yield painter.frame(i)
