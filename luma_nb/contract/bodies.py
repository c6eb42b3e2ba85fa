"""The request bodies of the submits, validated in full before anything is sent (no I/O)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import validation as check
from .errors import ValidationError

__all__ = ("EXTEND_OPTIONS", "common_fields", "extend_bodies", "public")

#: The keyword options of an extend besides its parent and prompt.
EXTEND_OPTIONS = frozenset(
    {
        "image_url",
        "end_image_url",
        "enhance_prompt",
        "aspect_ratio",
        "webhook_url",
        "webhook_secret",
    }
)


def extend_bodies(
    parent_task_id: Any, prompts: Any, options: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """The validated ``/luma-extend`` body for each prompt, all checked before any is sent.

    Raises :class:`ValidationError` for a bad parent, prompt or option (including unknown ones).
    """
    unknown = set(options) - EXTEND_OPTIONS
    if unknown:
        raise ValidationError(
            f"unknown option(s) {', '.join(sorted(unknown))} for extend.", field="options"
        )
    parent = check.task_id(parent_task_id, "parent_task_id")
    return [
        {
            "parent_task_id": parent,
            **common_fields(
                text,
                options.get("image_url"),
                options.get("end_image_url"),
                options.get("enhance_prompt", False),
                options.get("aspect_ratio", "1:1"),
                options.get("webhook_url"),
                options.get("webhook_secret"),
            ),
        }
        for text in check.prompts(prompts)
    ]


def common_fields(
    prompt: Any,
    image_url: Any,
    end_image_url: Any,
    enhance_prompt: Any,
    aspect_ratio: Any,
    webhook_url: Any,
    webhook_secret: Any,
) -> dict[str, Any]:
    """The validated body fields shared by extend and imagine; unset options are left out."""
    payload: dict[str, Any] = {"prompt": check.prompt(prompt)}
    urls = {
        "image_url": check.http_url(image_url, "image_url"),
        "end_image_url": check.http_url(end_image_url, "end_image_url"),
    }
    payload.update({name: url for name, url in urls.items() if url is not None})
    payload["enhance_prompt"] = check.flag(enhance_prompt, "enhance_prompt")
    payload["aspect_ratio"] = check.aspect_ratio(aspect_ratio)
    hook = check.http_url(webhook_url, "webhook_url")
    secret = check.secret(webhook_secret)
    if secret is not None and hook is None:
        raise ValidationError(
            "webhook_secret was given without webhook_url; give both or neither.",
            field="webhook_secret",
        )
    if hook is not None:
        payload["webhook_url"] = hook
    if secret is not None:
        payload["webhook_secret"] = secret
    return payload


def public(payload: Mapping[str, Any] | None) -> dict[str, Any]:
    """A request body without its secrets, safe to show, log and journal."""
    if payload is None:
        return {}
    return {k: v for k, v in payload.items() if k != "webhook_secret"}
