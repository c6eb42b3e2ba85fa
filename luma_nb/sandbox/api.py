"""The API endpoints: routing, auth, validation and the documented bodies and error shapes.

Every function here returns ``(status, json_body, extra_headers)``; the HTTP layer only encodes.
Errors follow the documented shape ``{"errors": [{"msg": "..."}]}``; 401 is ``{}``.
Choices where the provider is silent: an unknown ``task_id`` in ``/fetch`` is a 400 with
``"Task not found"``; 402 is ``"Insufficient credits"``; JSON ``null`` for an optional field is
the same as leaving it out; an extension keeps its parent's aspect ratio; a submit while the
renderers' waiting line is full, or while ``max_running`` tasks of the account run, is a 429 with
``Retry-After`` (nothing charged).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..contract import validation as check
from ..contract.errors import ValidationError
from ..contract.statuses import ASPECT_RATIOS
from ._net import is_http_url
from .faults import Faults
from .state import InsufficientCredits, Store, TooManyRunning

__all__ = ("ROUTES", "UNLIMITED_CREDITS", "ApiContext", "Reply", "errors", "handle")

Reply = tuple[int, dict[str, Any], dict[str, str]]

#: The API paths and the one method each accepts.
ROUTES: dict[str, str] = {
    "/luma-imagine": "POST",
    "/luma-extend": "POST",
    "/fetch": "POST",
    "/fetch-many": "POST",
    "/account": "GET",
}
_MANY = (2, 20)
#: What ``/account`` reports as the credits of an account with unlimited credits.
UNLIMITED_CREDITS = 1_000_000_000


class BadRequest(Exception):
    """A 400 with one message."""


def errors(msg: str) -> dict[str, Any]:
    """The documented error body."""
    return {"errors": [{"msg": msg}]}


@dataclass
class ApiContext:
    """What the endpoints need from the sandbox."""

    store: Store
    faults: Faults
    api_key: str | None
    """The only key accepted, or None to accept any non-empty key."""
    on_webhook_task: Callable[[], None]
    """Called after a task with a ``webhook_url`` was created."""
    busy: Callable[[], bool] = lambda: False
    """True while the renderers' waiting line is full (submits then get 429)."""
    max_running: int | None = None
    """Generations the account may have running at once (the provider's tiers limit them);
    a submit past that gets 429 with ``Retry-After``, uncharged. None: no limit."""

    def authorized(self, header: str | None) -> bool:
        """True when the ``Authorization`` header carries an accepted key (raw, no Bearer)."""
        if header is None or not header.strip():
            return False
        return self.api_key is None or header.strip() == self.api_key


def handle(
    ctx: ApiContext, method: str, path: str, auth: str | None, payload: Any, body_error: str | None
) -> Reply:
    """Answer one API request; ``payload`` is the decoded JSON body (``body_error`` if none)."""
    allowed = ROUTES.get(path)
    if allowed is None:
        return 404, errors(f"Not found: {path}"), {}
    if method != allowed:
        return 405, errors(f"Method {method} not allowed on {path}"), {"Allow": allowed}
    if not ctx.authorized(auth):
        return 401, {}, {}
    if path == "/account":
        store = ctx.store
        return (
            200,
            {
                "email": "sandbox@luma-nb.invalid",
                "credits": UNLIMITED_CREDITS if store.credits is None else store.credits,
                "total_images": store.total_images,
                "plan": "sandbox",
            },
            {},
        )
    try:
        if body_error is not None:
            raise BadRequest(body_error)
        if not isinstance(payload, dict):
            raise BadRequest("Request body must be a JSON object")
        if path == "/fetch":
            return _fetch(ctx, payload)
        if path == "/fetch-many":
            return _fetch_many(ctx, payload)
        return _submit(ctx, payload, extend=path == "/luma-extend")
    except BadRequest as exc:
        return 400, errors(str(exc)), {}


def _string(payload: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    value = payload.get(key)
    if value is None:
        if required:
            raise BadRequest(f"{key} is required")
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{key} must be a string")
    if required and not value.strip():
        raise BadRequest(f"{key} must not be empty")
    return value


def _flag(payload: dict[str, Any], key: str) -> bool | None:
    value = payload.get(key)
    if value is not None and not isinstance(value, bool):
        raise BadRequest(f"{key} must be a boolean")
    return value


def _url(payload: dict[str, Any], key: str) -> str | None:
    value = _string(payload, key)
    if value is not None and not is_http_url(value):
        raise BadRequest(f"{key} must be an absolute http(s) URL")
    return value


def _submit(ctx: ApiContext, payload: dict[str, Any], *, extend: bool) -> Reply:
    store = ctx.store
    params: dict[str, Any] = {"prompt": _string(payload, "prompt", required=True)}
    aspect = _string(payload, "aspect_ratio")
    if aspect is not None and aspect not in ASPECT_RATIOS:
        raise BadRequest(f"Invalid aspect_ratio {aspect!r}; use one of {', '.join(ASPECT_RATIOS)}")
    params["image_url"] = _url(payload, "image_url")
    params["end_image_url"] = _url(payload, "end_image_url")
    params["webhook_url"] = _url(payload, "webhook_url")
    try:
        params["webhook_secret"] = check.secret(payload.get("webhook_secret"))
    except ValidationError as exc:
        raise BadRequest(str(exc)) from None
    params["enhance_prompt"] = bool(_flag(payload, "enhance_prompt"))
    notes: list[str] = []
    if extend:
        parent_id = _string(payload, "parent_task_id", required=True)
        assert parent_id is not None
        status = store.parent_state(parent_id)
        if status is None:
            raise BadRequest("Parent task not found")
        if status != "finished":
            raise BadRequest(f"Parent task is not finished (status: {status})")
        parent = store.record(parent_id)
        assert parent is not None
        if aspect is not None and aspect != parent.aspect_ratio:
            notes.append(f"aspect_ratio {aspect} kept as the parent's {parent.aspect_ratio}")
        params["parent_task_id"], aspect = parent_id, parent.aspect_ratio
    else:
        params["loop"] = _flag(payload, "loop")
    params["aspect_ratio"] = aspect or "1:1"
    params["notes"] = tuple(notes)
    if not store.charge():
        return 402, errors("Insufficient credits"), {}
    if ctx.busy():
        return 429, errors("Too many requests: the renderers are busy"), {"Retry-After": "5"}
    try:
        task_id = store.create(
            "luma-ext" if extend else "luma",
            params,
            ctx.faults.take_task(),
            max_running=ctx.max_running,
        )
    except InsufficientCredits:
        return 402, errors("Insufficient credits"), {}
    except TooManyRunning:
        text = f"Too many requests: {ctx.max_running} generations are running already"
        return 429, errors(text), {"Retry-After": "1"}
    if params["webhook_url"]:
        ctx.on_webhook_task()
    return 200, {"task_id": task_id}, {}


def _fetch(ctx: ApiContext, payload: dict[str, Any]) -> Reply:
    task_id = _string(payload, "task_id", required=True)
    assert task_id is not None
    bodies = ctx.store.fetch([task_id])
    if not bodies:
        raise BadRequest("Task not found")
    return 200, bodies[0], {}


def _fetch_many(ctx: ApiContext, payload: dict[str, Any]) -> Reply:
    ids = payload.get("task_ids")
    low, high = _MANY
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise BadRequest("task_ids must be a list of task id strings")
    if not low <= len(ids) <= high:
        raise BadRequest(f"task_ids must hold {low} to {high} ids, got {len(ids)}")
    return 200, {"tasks": ctx.store.fetch(ids)}, {}
