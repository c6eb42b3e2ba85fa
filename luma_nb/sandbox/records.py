"""The record of one task: what was asked, its timetable, and what the sandbox has made of it."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from .lifecycle import Plan

__all__ = ("TaskRecord",)


@dataclass
class TaskRecord:
    """Everything the sandbox knows about one task. Fields after ``demo`` are not persisted."""

    task_id: str
    task_type: str
    prompt: str
    aspect_ratio: str = "1:1"
    plan: Plan | None = None
    created_wall: float = 0.0
    seed: int = 0
    parent_task_id: str | None = None
    image_url: str | None = None
    end_image_url: str | None = None
    enhance_prompt: bool = False
    loop: bool | None = None
    webhook_url: str | None = None
    webhook_secret: str | None = None
    notes: tuple[str, ...] = ()
    error: str | None = None
    forced: bool = False
    render_key: str | None = None
    demo: bool = False
    created_mono: float = 0.0
    media_ready: bool = False
    render_queued: bool = False
    hook_key: tuple[str, int | None] | None = None
    render_notes: tuple[str, ...] = ()
    render_error: str | None = None

    _DURABLE = (
        "task_id",
        "task_type",
        "prompt",
        "aspect_ratio",
        "created_wall",
        "seed",
        "parent_task_id",
        "image_url",
        "end_image_url",
        "enhance_prompt",
        "loop",
        "webhook_url",
        "webhook_secret",
        "error",
        "forced",
        "render_key",
    )

    def to_json(self) -> dict[str, Any]:
        """The durable fields as JSON-able data."""
        data = {name: getattr(self, name) for name in self._DURABLE}
        data["notes"] = list(self.notes)
        data["plan"] = self.plan.to_json() if self.plan is not None else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskRecord:
        """Rebuild a record written by :meth:`to_json` (ignores keys it does not know)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known and k in cls._DURABLE}
        record = cls(**values)
        record.notes = tuple(data.get("notes") or ())
        if data.get("plan"):
            record.plan = Plan.from_json(data["plan"])
        return record
