"""What a view says, in plain words: where it runs, and what went wrong (no I/O here).

The widgets show these texts; the exceptions keep the HTTP details (status, endpoint, body).
A student reads "No task with id X: check the parent id", never "HTTP 400 from /luma-extend".
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    InsufficientCreditsError,
    LumaError,
    MissingAPIKeyError,
    RateLimitError,
    ServerError,
    TransportError,
)

__all__ = ("EXTEND_COST", "SANDBOX_LINE", "Plain", "explain", "status_line")

#: Credits one extend (or imagine) costs at the provider, as documented.
EXTEND_COST = 6
#: The status line of a view that talks to the offline sandbox.
SANDBOX_LINE = "Offline sandbox, no credits used"


@dataclass(frozen=True)
class Plain:
    """An error explained for the view."""

    text: str
    """What to show, in words a student understands."""
    kind: str = "error"
    """``"error"`` or ``"warn"`` (the colour of the message)."""
    offer_sandbox: bool = False
    """True when "use the offline sandbox instead" is the way out (a refused key, no service)."""
    field: str | None = None
    """The form field the error is about (``"parent_task_id"``), if any."""
    refused: bool = False
    """True when the service refused the credentials: nothing can be submitted with them."""


def status_line(
    service: str,
    *,
    class_name: str | None = None,
    credits: float | None = None,
    refused: bool = False,
) -> str:
    """The one line a view shows about where it runs and the credits left.

    ``service`` is ``LumaClient.service`` (``"sandbox"``, ``"api"``, ``"relay"``, ``"unknown"``).
    No URL is ever part of it (views keep those in a ``title`` attribute).
    """
    left = f" · {credits:g} credits left" if credits is not None else ""
    if refused:
        who = {
            "sandbox": "Offline sandbox: the key was refused",
            "relay": f"Class relay ({class_name}): your class token was refused"
            if class_name
            else "Class relay: your class token was refused",
            "api": "Live API: the API key was refused",
        }
        return who.get(service, "Your own service: the key was refused")
    if service == "sandbox":
        return SANDBOX_LINE
    if service == "relay":
        return (f"Class: {class_name}" if class_name else "Class relay") + left
    if service == "api":
        return f"Live API: each extend costs {EXTEND_COST} credits" + left
    return "Your own service: each extend may cost credits" + left


def _where(service: str) -> str:
    return {
        "sandbox": "the offline sandbox",
        "relay": "the class relay",
        "api": "the Luma API",
    }.get(service, "the service")


def explain(
    error: BaseException, *, service: str = "api", parent_task_id: str | None = None
) -> Plain:
    """``error`` in plain words for a view; ``parent_task_id`` is the parent that was asked for."""
    if isinstance(error, MissingAPIKeyError):
        return Plain(
            "No API key is set: set APIFRAME_API_KEY to use the live API, "
            "or use the offline sandbox instead.",
            offer_sandbox=True,
            refused=True,
        )
    if isinstance(error, AuthenticationError) or (
        isinstance(error, APIError) and error.status_code == 403
    ):
        if service == "relay":
            text = (
                "The class relay refused your class token: check LUMA_NB_CLASS_TOKEN with "
                "your teacher, or use the offline sandbox instead."
            )
        else:
            text = (
                "The API key was refused: check APIFRAME_API_KEY (the raw key, without "
                "'Bearer'), or use the offline sandbox instead."
            )
        return Plain(text, offer_sandbox=True, refused=True)
    if isinstance(error, TransportError):
        if service == "sandbox":
            text = (
                "The offline sandbox is not answering (it may have stopped): "
                "start a new one with the button."
            )
        elif service == "relay":
            text = "Cannot reach the class relay: ask your teacher whether it is running."
        else:
            text = f"Cannot reach {_where(service)}: check the network connection and try again."
        return Plain(text, offer_sandbox=service != "relay")
    if isinstance(error, BadRequestError):
        said = " ".join(error.messages).lower()
        if parent_task_id and "not found" in said:
            return Plain(
                f"No task with id {parent_task_id}: check the parent id.", field="parent_task_id"
            )
        if "not finished" in said:
            return Plain(
                "The parent video is not finished yet: wait until it is, then extend it.",
                kind="warn",
                field="parent_task_id",
            )
        reasons = "; ".join(error.messages) or "no reason given"
        return Plain(f"The service did not accept this extend: {reasons}.")
    if isinstance(error, InsufficientCreditsError):
        return Plain(
            f"Not enough credits left for this extend (each costs {EXTEND_COST}).",
            offer_sandbox=service != "relay",
        )
    if isinstance(error, RateLimitError):
        wait = f"{error.retry_after:g} s" if error.retry_after is not None else "a few seconds"
        return Plain(f"Too many submits right now: wait {wait}, then submit again.", kind="warn")
    if isinstance(error, ServerError):
        return Plain(
            f"{_where(service).capitalize()} had a problem on its side; try again in a minute.",
            kind="warn",
        )
    if isinstance(error, LumaError):
        return Plain(str(error), field=getattr(error, "field", None))
    return Plain(f"{type(error).__name__}: {error}")
