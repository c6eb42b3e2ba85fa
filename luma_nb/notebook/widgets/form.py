"""ExtendForm: the eight extend fields, validated as you type, submitted once per click."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ...client.defaults import default_client
from ...contract import validation as check
from ...contract.bodies import common_fields
from ...contract.errors import LumaError, ValidationError
from ...contract.statuses import ASPECT_RATIOS
from ..display import form_html, form_text, image_html
from . import _recent
from ._style import message_html
from .form_fields import FormFields, class_banner
from .progress import ProgressView, offer_extend

if TYPE_CHECKING:
    from ...client.client import LumaClient
    from ...client.job import Job

__all__ = ("ExtendForm", "extend_form")

#: Clicks within this many seconds after a submit ended are ignored (double clicks).
SUBMIT_COOLDOWN = 1.0
_REQUIRED = ("parent_task_id", "prompt")


def _readable(error: BaseException) -> str:
    """An error in words for the form: our errors' own text, else the type and message."""
    if isinstance(error, LumaError):
        return str(error)
    return f"{type(error).__name__}: {error}"


class ExtendForm(FormFields, widgets.VBox):  # type: ignore[misc]
    """A form that extends a video task; each submit's live progress appears below it.

    Parameters:
        client: the :class:`~luma_nb.LumaClient` to submit with; default
            :func:`luma_nb.default_client` (the offline sandbox when no API key is set).
        parent_task_id: pre-filled parent task id.
        prompt: pre-filled prompt.

    ``value`` is the current input (without the webhook secret), ``errors`` the current
    validation messages by field, ``jobs`` the submitted jobs; ``on_submit(callback)`` registers
    ``callback(job)``; :meth:`submit` does what the button does.
    """

    def __init__(
        self,
        client: LumaClient | None = None,
        *,
        parent_task_id: str | None = None,
        prompt: str = "",
        **kwargs: Any,
    ) -> None:
        if client is None:
            client = default_client()
        self.client = client
        self.jobs: list[Job] = []
        self._callbacks: list[Callable[[Job], Any]] = []
        self._touched: set[str] = set()
        self._following = False
        self._lock = threading.Lock()
        self._busy = False
        self._last_submit = float("-inf")
        self._credits_lock = threading.Lock()
        self._build(parent_task_id or "", prompt)
        super().__init__(children=self._layout(), **kwargs)
        self._validate()
        self._refresh_credits()

    # -- public -----------------------------------------------------------------------------

    @property
    def value(self) -> dict[str, Any]:
        """The current input as ``client.extend`` keywords, without the webhook secret."""
        return {
            "parent_task_id": self._parent.value,
            "prompt": self._prompt.value,
            "image_url": self._image_url.value,
            "end_image_url": self._end_image_url.value,
            "enhance_prompt": self._enhance.value,
            "aspect_ratio": self._aspect.value,
            "webhook_url": self._webhook_url.value,
        }

    @property
    def errors(self) -> dict[str, str]:
        """The current validation messages by field (untouched empty fields included)."""
        return self._check()[1]

    def on_submit(self, callback: Callable[[Job], Any]) -> None:
        """Call ``callback(job)`` after each successful submit."""
        self._callbacks.append(callback)

    def __repr__(self) -> str:
        return "ExtendForm()"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None:
        data = super()._repr_mimebundle_(**kwargs)
        if data is None:
            return None
        # Where widgets do not render (nbconvert, GitHub, VS Code without a widget renderer),
        # what the form is for and the line of code that does the same.
        data["text/plain"] = form_text(self._parent.value, self._prompt.value)
        # The banner as of construction, not the live one (a thread may be updating it).
        mode = "<b>Class relay</b>" if self.client.service == "relay" else self._mode_html()
        data["text/html"] = form_html(mode, self._parent.value, self._prompt.value)
        return dict(data)

    # -- validation -------------------------------------------------------------------------

    def _check(self) -> tuple[dict[str, Any] | None, dict[str, str]]:
        """The ``client.extend`` keywords (None while invalid) and the messages by field."""
        errors: dict[str, str] = {}
        raw = self.value

        def run(field: str, checker: Callable[[], Any]) -> Any:
            try:
                return checker()
            except ValidationError as error:
                errors[field] = str(error)
                return None

        values = {
            "parent_task_id": run(
                "parent_task_id", lambda: check.task_id(raw["parent_task_id"], "parent_task_id")
            ),
            "prompt": run("prompt", lambda: check.prompt(raw["prompt"])),
            "image_url": run("image_url", lambda: check.http_url(raw["image_url"], "image_url")),
            "end_image_url": run(
                "end_image_url", lambda: check.http_url(raw["end_image_url"], "end_image_url")
            ),
            "enhance_prompt": bool(raw["enhance_prompt"]),
            "aspect_ratio": run("aspect_ratio", lambda: check.aspect_ratio(raw["aspect_ratio"])),
            "webhook_url": run(
                "webhook_url", lambda: check.http_url(raw["webhook_url"], "webhook_url")
            ),
            "webhook_secret": run(
                "webhook_secret", lambda: check.secret(self._webhook_secret.value)
            ),
        }
        if not errors:
            # The same cross-field rules (and messages) as LumaClient.extend.
            run(
                "webhook_secret",
                lambda: common_fields(
                    values["prompt"],
                    values["image_url"],
                    values["end_image_url"],
                    values["enhance_prompt"],
                    values["aspect_ratio"],
                    values["webhook_url"],
                    values["webhook_secret"],
                ),
            )
        if errors:
            return None, errors
        return {k: v for k, v in values.items() if v is not None}, errors

    def _validate(self, *, show_all: bool = False) -> dict[str, Any] | None:
        """Recheck everything; show messages next to touched fields; enable Submit if valid."""
        values, errors = self._check()
        for field, label in (
            ("parent_task_id", self._parent_msg),
            ("prompt", self._prompt_msg),
            ("image_url", self._image_url_msg),
            ("end_image_url", self._end_image_url_msg),
            ("webhook_url", self._webhook_url_msg),
            ("webhook_secret", self._webhook_secret_msg),
        ):
            quiet = field in _REQUIRED and field not in self._touched and not show_all
            label.value = "" if quiet else message_html(errors.get(field))
        length = len(self._prompt.value.strip())
        kind = "error" if length > check.MAX_PROMPT_LENGTH else "info"
        self._prompt_count.value = message_html(f"{length} / {check.MAX_PROMPT_LENGTH}", kind)
        for name in ("image_url", "end_image_url"):
            thumb = getattr(self, f"_{name}_thumb")
            url = getattr(self, f"_{name}").value
            thumb.value = image_html(url) if name not in errors and url.strip() else ""
        note = _recent.describe(self.client, self._parent.value.strip())
        self._parent_note.value = message_html(note, "info") if note else ""
        self._submit.disabled = bool(errors) or self._busy
        return values

    def _touch(self, field: str) -> None:
        self._touched.add(field)
        self._validate()

    def _on_parent_change(self, change: dict[str, Any]) -> None:
        self._touch("parent_task_id")
        if "aspect_ratio" not in self._touched:  # follow the parent until the user picks one
            ratio = _recent.ratio_of(self.client, str(change.get("new") or "").strip())
            if ratio in ASPECT_RATIOS:
                self._following = True
                try:
                    self._aspect.value = ratio
                finally:
                    self._following = False

    def _on_aspect_change(self, change: dict[str, Any]) -> None:
        if not self._following:
            self._touched.add("aspect_ratio")

    def _on_prompt_change(self, change: dict[str, Any]) -> None:
        self._touch("prompt")

    def _on_image_url_change(self, change: dict[str, Any]) -> None:
        self._touch("image_url")

    def _on_end_image_url_change(self, change: dict[str, Any]) -> None:
        self._touch("end_image_url")

    def _on_webhook_url_change(self, change: dict[str, Any]) -> None:
        self._touch("webhook_url")

    def _on_webhook_secret_change(self, change: dict[str, Any]) -> None:
        self._touch("webhook_secret")

    # -- submitting -------------------------------------------------------------------------

    def _on_submit_click(self, button: widgets.Button) -> None:
        self.submit()

    def submit(self) -> Job | None:
        """Submit the form (as the button does); the new job, or None if nothing was sent.

        Nothing is sent while the form is invalid, while another submit is in flight, or within
        a second after the previous submit ended (a double click submits once).
        """
        with self._lock:
            recent = time.monotonic() - self._last_submit < SUBMIT_COOLDOWN
            if self._busy or recent:
                return None
            values = self._validate(show_all=True)
            if values is None:
                return None
            self._busy = True
        # From here the secret travels in ``values`` only: whatever the answer, it must not stay
        # in the widget state, which a saved notebook would carry. It is asked again next time.
        had_secret = bool(self._webhook_secret.value)
        self._webhook_secret.value = ""
        self._submit.disabled = True
        self._submit.description = "Submitting…"
        self._message.value = message_html("Submitting…", "info")
        try:
            job = self.client.extend(**values)
        except Exception as error:
            text = _readable(error)
            if had_secret:
                text += " Enter the webhook secret again to resubmit."
            self._message.value = message_html(text)
            return None
        finally:
            with self._lock:
                self._busy = False
                self._last_submit = time.monotonic()
            self._submit.description = "Submit extend"
            self._submit.disabled = False
        self._validate()
        self.jobs.append(job)
        _recent.remember(job)
        self._message.value = message_html("Submitted: progress below.", "ok")
        if self.client.service == "relay" and not self._share.value:
            self._keep_out_of_gallery(job)
        self._jobs_box.children = (ProgressView(job), *self._jobs_box.children)
        self._parent.options = _recent.recent_ids(self.client)
        self._refresh_credits()
        for callback in list(self._callbacks):
            try:
                callback(job)
            except Exception as error:
                self._message.value = message_html(f"on_submit callback failed: {error}")
        return job

    def _keep_out_of_gallery(self, job: Job) -> None:
        """The student unticked "Share in the class gallery": tell the relay for this task."""
        try:
            self.client.share(job.task_id, False)
        except Exception as error:
            self._message.value = message_html(
                f"Submitted, but the class gallery choice was not saved: {_readable(error)}",
                "warn",
            )

    def _refresh_credits(self) -> None:
        """Ask the account endpoint for credits off the kernel thread; show them if it answers."""

        def ask() -> None:
            try:
                account = self.client.account()
            except Exception:
                return  # credits are a courtesy: no answer, no line
            finally:
                self._mode.value = self._mode_html()  # the answer says which service it is
                self._show_share()
            name = account.raw.get("class")  # only a class relay sends it
            if not isinstance(name, str) and self.client.service == "relay":
                name = self.client.class_name
            with self._credits_lock:
                if isinstance(name, str):
                    self._mode.value = class_banner(name, account.credits)
                elif account.credits is not None:
                    self._credits.value = message_html(f"Credits: {account.credits:g}", "info")

        threading.Thread(target=ask, name="luma-nb-credits", daemon=True).start()


def extend_form(client: LumaClient | None = None, parent_task_id: str | None = None) -> ExtendForm:
    """An :class:`ExtendForm` for ``client`` (default: :func:`luma_nb.default_client`).

    In demo mode, with no ``parent_task_id``, the form starts on the first ready-made demo
    video, so a newcomer only has to type a prompt.
    """
    if client is None:
        client = default_client()
    if parent_task_id is None:
        demo = _recent._demo_parents(client)
        parent_task_id = demo[0][0] if demo else None
    return ExtendForm(client, parent_task_id=parent_task_id)


offer_extend(ExtendForm)
