"""Checks that run before anything is sent, so bad input never costs a credit."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from .errors import ValidationError
from .models import ASPECT_RATIOS

#: Longest prompt accepted. The provider documents no limit; Luma's own API caps prompts near
#: 5,000 characters, and a longer text is almost always a paste by mistake.
MAX_PROMPT_LENGTH = 5000
#: Longest URL accepted (common browser and CDN limit).
MAX_URL_LENGTH = 2048
#: Longest timeout for one HTTP request (a day: anything longer is a typo).
MAX_REQUEST_SECONDS = 86_400.0
#: Longest wait for a task (a week: jobs take minutes; the service keeps results ~3 months).
MAX_WAIT_SECONDS = 7 * 86_400.0
#: Longest task id accepted (the service's ids are 36-character UUIDs).
MAX_TASK_ID_LENGTH = 200


def text_field(value: Any, field: str, *, max_length: int, what: str) -> str:
    """A required non-blank string, stripped of surrounding white space."""
    if not isinstance(value, str):
        raise ValidationError(
            f"{field} must be a string ({what}), got {type(value).__name__}.", field=field
        )
    text = value.strip()
    if not text:
        raise ValidationError(f"{field} is empty: give {what}.", field=field)
    if len(text) > max_length:
        raise ValidationError(
            f"{field} is {len(text)} characters long; shorten it to at most {max_length}.",
            field=field,
        )
    if "\x00" in text:
        raise ValidationError(f"{field} contains a NUL character; remove it.", field=field)
    if any("\ud800" <= ch <= "\udfff" for ch in text):
        # Half of a UTF-16 pair is not text: it cannot be encoded as UTF-8 for the service.
        raise ValidationError(
            f"{field} contains a broken character (a lone surrogate); retype or paste it again.",
            field=field,
        )
    return text


def prompt(value: Any, field: str = "prompt") -> str:
    """A non-blank prompt of sane length."""
    return text_field(
        value, field, max_length=MAX_PROMPT_LENGTH, what="a text describing the video"
    )


def task_id(value: Any, field: str = "task_id") -> str:
    """A non-blank task id without white space inside."""
    text = text_field(value, field, max_length=MAX_TASK_ID_LENGTH, what="the id of a task")
    if any(ch.isspace() for ch in text):
        raise ValidationError(
            f"{field} {text!r} contains white space; paste the task id exactly.", field=field
        )
    return text


def http_url(value: Any, field: str) -> str | None:
    """None, or an absolute http(s) URL with a host."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(
            f"{field} must be a URL string, got {type(value).__name__}.", field=field
        )
    text = value.strip()
    if not text:
        return None
    if len(text) > MAX_URL_LENGTH:
        raise ValidationError(
            f"{field} is {len(text)} characters long; URLs may have at most {MAX_URL_LENGTH}.",
            field=field,
        )
    try:
        parts = urlsplit(text)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        parts, host = None, None
    if (
        parts is None
        or parts.scheme.lower() not in ("http", "https")
        or not host
        or any(ch.isspace() or ord(ch) < 32 for ch in text)
    ):
        raise ValidationError(
            f"{field} must be an absolute http:// or https:// URL, got {text!r}.", field=field
        )
    return text


def aspect_ratio(value: Any, field: str = "aspect_ratio") -> str:
    """One of :data:`luma_nb.ASPECT_RATIOS`."""
    if isinstance(value, str) and value.strip() in ASPECT_RATIOS:
        return value.strip()
    allowed = ", ".join(ASPECT_RATIOS)
    raise ValidationError(f"{field} must be one of {allowed}; got {value!r}.", field=field)


def flag(value: Any, field: str) -> bool:
    """A real bool (not a truthy string such as ``"false"``)."""
    if not isinstance(value, bool):
        raise ValidationError(f"{field} must be True or False, got {value!r}.", field=field)
    return value


def optional_flag(value: Any, field: str) -> bool | None:
    """None or a real bool."""
    return None if value is None else flag(value, field)


def secret(value: Any, field: str = "webhook_secret") -> str | None:
    """None or a non-empty string (kept as given)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be a string.", field=field)
    if not value:
        return None
    if len(value) > 1000 or any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValidationError(f"{field} must be at most 1000 printable characters.", field=field)
    if any(ord(ch) > 255 for ch in value):
        # The secret travels back as the x-webhook-secret header, and HTTP headers are Latin-1.
        raise ValidationError(
            f"{field} must use only Latin-1 characters (it is sent back as an HTTP header); "
            "use letters, digits and punctuation.",
            field=field,
        )
    return value


def task_ids(values: Any, field: str = "task_ids") -> list[str]:
    """A list of task ids (strings), duplicates removed, order kept."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ValidationError(
            f"{field} must be a list of task id strings, got {type(values).__name__}.",
            field=field,
        )
    seen: dict[str, None] = {}
    for index, value in enumerate(values):
        if not isinstance(value, str):
            raise ValidationError(
                f"{field}[{index}] must be a task id string, got {type(value).__name__}.",
                field=field,
            )
        seen[task_id(value, f"{field}[{index}]")] = None
    return list(seen)


def seconds(value: Any, field: str, *, maximum: float) -> float:
    """A positive, finite number of seconds no larger than ``maximum``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(
            f"{field} must be a number of seconds, got {type(value).__name__}.", field=field
        )
    try:
        number = float(value)
    except OverflowError:
        number = float("inf")
    if not (0 < number <= maximum):
        raise ValidationError(
            f"{field} must be more than 0 and at most {maximum:g} seconds, got {value!r}.",
            field=field,
        )
    return number


def callback(value: Any, field: str) -> Any:
    """None or something callable."""
    if value is not None and not callable(value):
        raise ValidationError(
            f"{field} must be a function (or None), got {type(value).__name__}.", field=field
        )
    return value


def prompts(values: Any, field: str = "prompts") -> list[Any]:
    """A list of prompts (a lone string counts as one); each is checked by :func:`prompt`."""
    if isinstance(values, str):
        values = [values]
    if isinstance(values, (bytes, Mapping)) or not isinstance(values, Iterable):
        raise ValidationError(
            f"{field} must be a list of prompt strings, got {type(values).__name__}.", field=field
        )
    texts = [prompt(text, f"{field}[{index}]") for index, text in enumerate(values)]
    if not texts:
        raise ValidationError(f"{field} is empty: give at least one prompt.", field=field)
    return texts
