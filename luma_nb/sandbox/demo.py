"""The demo content every sandbox has from the start: finished parent tasks and a few images."""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass
from functools import lru_cache

from .records import TaskRecord

__all__ = ("DEMO_FRAME_COUNT", "DEMO_PARENTS", "DemoParent", "demo_png", "demo_records")

_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "sandbox.luma-nb.invalid")


@dataclass(frozen=True)
class DemoParent:
    """A finished ``luma`` task that exists in every sandbox, ready to be extended at once."""

    task_id: str
    """Its stable id (a UUID)."""
    prompt: str
    """The prompt its video shows."""
    aspect_ratio: str
    """Its aspect ratio (an extension keeps its frame size)."""

    def __str__(self) -> str:
        return self.task_id


def _parent(n: int, prompt: str, aspect_ratio: str) -> DemoParent:
    return DemoParent(str(uuid.uuid5(_NAMESPACE, f"demo-parent-{n}")), prompt, aspect_ratio)


#: The demo parent tasks (finished, stable ids); their MP4 is made on first need.
DEMO_PARENTS: tuple[DemoParent, ...] = (
    _parent(1, "A lighthouse on a rocky coast at dusk, waves rolling in", "16:9"),
    _parent(2, "A paper boat drifting down a rainy city street", "1:1"),
    _parent(3, "A hot-air balloon rising over autumn hills", "9:16"),
)

#: Demo images are served at ``/media/demo-frame-<n>.png`` for n in 1..DEMO_FRAME_COUNT.
DEMO_FRAME_COUNT = 3
_FRAME_COLOURS = ((232, 110, 60), (60, 140, 220), (90, 180, 110))


def demo_records() -> list[TaskRecord]:
    """Fresh store records for :data:`DEMO_PARENTS`."""
    return [
        TaskRecord(
            task_id=p.task_id,
            task_type="luma",
            prompt=p.prompt,
            aspect_ratio=p.aspect_ratio,
            demo=True,
            seed=n,
        )
        for n, p in enumerate(DEMO_PARENTS, start=1)
    ]


@lru_cache(maxsize=DEMO_FRAME_COUNT)
def demo_png(n: int) -> bytes:
    """The PNG bytes of demo image ``n`` (1-based): a gradient card with its number.

    :raises ValueError: for a number out of range.
    :raises luma_nb.sandbox.video.MissingSandboxExtra: without Pillow.
    """
    if not 1 <= n <= DEMO_FRAME_COUNT:
        raise ValueError(f"there are {DEMO_FRAME_COUNT} demo frames, not {n}")
    from .video import _require_extra

    _require_extra()
    from PIL import Image, ImageDraw

    red, green, blue = _FRAME_COLOURS[n - 1]
    size = 256
    image = Image.new("RGB", (size, size))
    draw = ImageDraw.Draw(image)
    for y in range(size):
        shade = 0.45 + 0.55 * y / size
        colour = (int(red * shade), int(green * shade), int(blue * shade))
        draw.line([(0, y), (size, y)], fill=colour)
    draw.ellipse((78, 78, 178, 178), outline=(250, 250, 250), width=6)
    draw.text((12, 12), f"demo frame {n}", fill=(250, 250, 250))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
