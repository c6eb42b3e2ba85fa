"""ExtendForm: pick a parent video, say what happens next, submit once, watch it below.

An anywidget widget. Its state lives in synced traits; ``static/luma.js`` draws it and sends
field edits (trait updates) and messages (``submit``, ``pick``, ``use_sandbox``, ``secret``,
a card's ``cancel``/``save``/``extend``). Python is the one place that validates (with the
client's own rules, :mod:`luma_nb.contract.validation`) and submits (``client.extend``).
"""

from __future__ import annotations

import pathlib
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anywidget
import traitlets

from ...client.defaults import (
    class_start_videos,
    default_client,
    demo_parent_ids,
    sandbox_client,
)
from ...contract import validation as check
from ...contract.bodies import common_fields
from ...contract.errors import ValidationError
from ...contract.plain_words import explain, status_line
from ...contract.text import safe_url
from ..display import form_html, form_text
from . import _recent
from .cards import Deck
from .parents import Parent, browser_url, parent_choices, parent_ratio, ratio_text

if TYPE_CHECKING:
    from ...client.client import LumaClient
    from ...client.job import Job

__all__ = ("ExtendForm", "extend_form")

STATIC = pathlib.Path(__file__).parent / "static"
#: Clicks within this many seconds after a submit ended are ignored (double clicks).
SUBMIT_COOLDOWN = 1.0
#: The fields the view edits, in the order they are checked.
FIELDS = ("parent_task_id", "prompt", "image_url", "end_image_url", "webhook_url")
_LABELS = {
    "parent_task_id": "the parent",
    "prompt": "the prompt",
    "image_url": "the first frame URL",
    "end_image_url": "the last frame URL",
    "webhook_url": "the webhook URL",
    "webhook_secret": "the webhook secret",
}


class ExtendForm(anywidget.AnyWidget):
    """A form that extends a video task; each submit's live progress card appears below it.

    Parameters:
        client: the :class:`~luma_nb.LumaClient` to submit with; default
            :func:`luma_nb.default_client` (the offline sandbox when no API key is set).
        parent_task_id: pre-filled parent task id.
        prompt: pre-filled prompt.
        projector: large type and big controls, for a class watching one screen.

    ``value`` is the current input (without the webhook secret), ``errors`` the current
    validation messages by field, ``jobs`` the submitted jobs; ``on_submit(callback)`` registers
    ``callback(job)``; :meth:`submit` does what the button (or Ctrl/Cmd+Enter) does;
    :meth:`pick` what clicking a picker item does; :meth:`use_sandbox` switches to the offline
    sandbox.
    """

    _esm = STATIC / "luma.js"
    _css = STATIC / "luma.css"
    view = traitlets.Unicode("form").tag(sync=True)

    # The fields (edited by the view).
    parent_task_id = traitlets.Unicode("").tag(sync=True)
    prompt = traitlets.Unicode("").tag(sync=True)
    image_url = traitlets.Unicode("").tag(sync=True)
    end_image_url = traitlets.Unicode("").tag(sync=True)
    enhance_prompt = traitlets.Bool(False).tag(sync=True)
    webhook_url = traitlets.Unicode("").tag(sync=True)
    share = traitlets.Bool(True).tag(sync=True)
    #: True while a webhook secret is held (the secret itself never enters the widget state).
    secret_set = traitlets.Bool(False).tag(sync=True)

    # What the view shows (written by Python).
    status_line = traitlets.Unicode("").tag(sync=True)
    status_kind = traitlets.Unicode("").tag(sync=True)
    status_title = traitlets.Unicode("").tag(sync=True)
    credits = traitlets.Float(None, allow_none=True).tag(sync=True)
    in_class = traitlets.Bool(False).tag(sync=True)
    parents = traitlets.List(traitlets.Dict()).tag(sync=True)
    parent_note = traitlets.Unicode("").tag(sync=True)
    aspect_ratio = traitlets.Unicode("").tag(sync=True)
    ratio_text = traitlets.Unicode("").tag(sync=True)
    field_errors = traitlets.Dict().tag(sync=True)
    #: The first and last frame images to preview (valid http(s) URLs only), by field.
    previews = traitlets.Dict().tag(sync=True)
    max_prompt = traitlets.Int(check.MAX_PROMPT_LENGTH).tag(sync=True)
    ready = traitlets.Bool(False).tag(sync=True)
    busy = traitlets.Bool(False).tag(sync=True)
    disabled_reason = traitlets.Unicode("").tag(sync=True)
    message = traitlets.Unicode("").tag(sync=True)
    message_kind = traitlets.Unicode("info").tag(sync=True)
    offer_sandbox = traitlets.Bool(False).tag(sync=True)
    projector = traitlets.Bool(False).tag(sync=True)
    cards = traitlets.List(traitlets.Dict()).tag(sync=True)
    #: Bumped when the view must empty its webhook secret box (after a submit took it).
    secret_epoch = traitlets.Int(0).tag(sync=True)

    def __init__(
        self,
        client: LumaClient | None = None,
        *,
        parent_task_id: str | None = None,
        prompt: str = "",
        projector: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.client = client if client is not None else default_client()
        self.jobs: list[Job] = []
        self._callbacks: list[Callable[[Job], Any]] = []
        self._touched: set[str] = set()
        self._secret = ""
        self._refused = False
        #: What the service said of a field's value (an unknown parent): field -> (value, text).
        self._said: dict[str, tuple[Any, str]] = {}
        self._in_class: list[Parent] = []
        self._lock = threading.Lock()
        self._last_submit = float("-inf")
        self.deck = Deck(self._publish_cards)
        self._quiet = True
        self.parent_task_id = parent_task_id or ""
        self.prompt = prompt
        self.projector = projector
        self._quiet = False
        self.observe(self._on_field, names=[*FIELDS, "enhance_prompt"])
        self.on_msg(self._on_message)
        self._show_client()
        self._parent_changed()
        self._validate()
        self._ask_service()

    # -- public -----------------------------------------------------------------------------

    @property
    def value(self) -> dict[str, Any]:
        """The current input as ``client.extend`` keywords, without the webhook secret."""
        return {
            "parent_task_id": self.parent_task_id,
            "prompt": self.prompt,
            "image_url": self.image_url,
            "end_image_url": self.end_image_url,
            "enhance_prompt": self.enhance_prompt,
            "aspect_ratio": self.aspect_ratio or "1:1",
            "webhook_url": self.webhook_url,
        }

    @property
    def errors(self) -> dict[str, str]:
        """The current validation messages by field (untouched empty fields included)."""
        return self._check()[1]

    def on_submit(self, callback: Callable[[Job], Any]) -> None:
        """Call ``callback(job)`` after each successful submit."""
        self._callbacks.append(callback)

    def set_webhook_secret(self, secret: str) -> None:
        """Hold a webhook secret for the next submit (never in the widget state or a repr)."""
        self._secret = secret or ""
        self.secret_set = bool(self._secret)
        self._touched.add("webhook_secret")
        self._validate()

    def pick(self, task_id: str) -> None:
        """Choose ``task_id`` as the parent (what clicking a picker item does)."""
        self.parent_task_id = task_id

    def use_sandbox(self) -> None:
        """Switch this form to the offline sandbox (started if needed): no key, no credits.

        The parent becomes the first demo video unless it is one of the sandbox's already.
        """
        self.client = sandbox_client()
        self._refused = False
        self.message, self.message_kind, self.offer_sandbox = "", "info", False
        self.credits = None
        self._in_class = []
        self._show_client()
        demo = [task_id for task_id, _ in demo_parent_ids(self.client)]
        if demo and self.parent_task_id not in demo:
            self.parent_task_id = demo[0]
        else:
            self._parent_changed()
        self._validate()
        self._ask_service()

    def __repr__(self) -> str:
        return "ExtendForm()"

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        data = super()._repr_mimebundle_(**kwargs)
        if data is None:
            return None
        bundle, metadata = data if isinstance(data, tuple) else (data, None)
        bundle = dict(bundle)
        # Where widgets do not render (nbconvert, GitHub, VS Code without a widget renderer),
        # what the form is for and the line of code that does the same.
        from ..display import esc

        bundle["text/plain"] = form_text(self.parent_task_id, self.prompt)
        # The status line without the credits: they arrive whenever the service answers, and
        # a saved output must not depend on that moment.
        line = status_line(
            self.client.service, class_name=self.client.class_name, refused=self._refused
        )
        known = _recent.prompt_of(self.client, self.parent_task_id.strip())
        bundle["text/html"] = form_html(
            f"<b>{esc(line)}</b>", self.parent_task_id, self.prompt, parent_title=known
        )
        return (bundle, metadata) if metadata is not None else bundle

    # -- what the view shows ----------------------------------------------------------------

    def _line(self) -> str:
        return status_line(
            self.client.service,
            class_name=self.client.class_name,
            credits=self.credits,
            refused=self._refused,
        )

    def _show_client(self) -> None:
        self.status_kind = "refused" if self._refused else self.client.service
        self.status_line = self._line()
        self.status_title = f"{self.client.service} service at {self.client.base_url}"
        self.in_class = self.client.service == "relay"
        self.parents = parent_choices(self.client, self._in_class)

    def _parent_changed(self) -> None:
        task_id = self.parent_task_id.strip()
        known = next((p for p in self.parents if p["task_id"] == task_id), None)
        ratio = (known or {}).get("ratio") or (
            parent_ratio(self.client, task_id) if task_id else None
        )
        self.aspect_ratio = ratio or ""
        self.ratio_text = ratio_text(ratio)
        if known is not None:
            self.parent_note = f"{known['prompt'] or known['title']} ({known['source']})"
        else:
            self.parent_note = (_recent.describe(self.client, task_id) or "") if task_id else ""

    def _publish_cards(self, cards: list[dict[str, Any]]) -> None:
        self.cards = cards

    # -- validation -------------------------------------------------------------------------

    def _check(self) -> tuple[dict[str, Any] | None, dict[str, str]]:
        """The ``client.extend`` keywords (None while invalid) and the messages by field."""
        errors: dict[str, str] = {}

        def run(field: str, checker: Callable[[], Any]) -> Any:
            try:
                return checker()
            except ValidationError as error:
                errors[field] = str(error)
                return None

        values = {
            "parent_task_id": run(
                "parent_task_id", lambda: check.task_id(self.parent_task_id, "parent_task_id")
            ),
            "prompt": run("prompt", lambda: check.prompt(self.prompt)),
            "image_url": run("image_url", lambda: check.http_url(self.image_url, "image_url")),
            "end_image_url": run(
                "end_image_url", lambda: check.http_url(self.end_image_url, "end_image_url")
            ),
            "enhance_prompt": bool(self.enhance_prompt),
            "aspect_ratio": self.aspect_ratio or "1:1",
            "webhook_url": run(
                "webhook_url", lambda: check.http_url(self.webhook_url, "webhook_url")
            ),
            "webhook_secret": run("webhook_secret", lambda: check.secret(self._secret)),
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
        """Recheck everything; show messages of touched fields; say why Submit is disabled."""
        values, errors = self._check()
        for field, (value, said) in list(self._said.items()):
            # What the service said of a field holds until the field changes.
            if getattr(self, field) != value:
                del self._said[field]
            elif field not in errors:
                errors[field], values = said, None
                self._touched.add(field)
        if show_all:
            self._touched.update(errors)
        self.field_errors = {f: m for f, m in errors.items() if f in self._touched}
        self.previews = {
            name: url
            for name in ("image_url", "end_image_url")
            if name not in errors and (url := safe_url(getattr(self, name).strip()))
        }
        self.ready = values is not None and not self._refused and not self.busy
        self.disabled_reason = self._reason(errors)
        return values

    def _reason(self, errors: dict[str, str]) -> str:
        """Why Submit is disabled, in words (empty when it is enabled)."""
        if self.busy:
            return "Submitting…"
        if self._refused:
            if self.client.service == "relay":
                return "Your class token was refused: see the message below."
            return "The API key was refused: see the message below."
        if "parent_task_id" in errors:
            if not self.parent_task_id.strip():
                return "Pick a video to continue first."
            return "Check the parent id."
        if "prompt" in errors:
            if not self.prompt.strip():
                return "Say what happens next first."
            return (
                "The prompt is too long."
                if len(self.prompt.strip()) > self.max_prompt
                else ("Check the prompt.")
            )
        for field in errors:
            return f"Check {_LABELS.get(field, field)} (under Options)."
        return ""

    def _on_field(self, change: dict[str, Any]) -> None:
        if self._quiet:
            return
        self._touched.add(change["name"])
        if change["name"] == "parent_task_id":
            self._parent_changed()
        self._validate()

    # -- messages from the view ---------------------------------------------------------------

    def _on_message(self, widget: Any, content: Any, buffers: Any) -> None:
        if not isinstance(content, dict):
            return
        kind = content.get("type")
        if self.deck.handle(content):
            return
        if kind == "submit":
            self.submit()
        elif kind == "pick" and isinstance(content.get("task_id"), str):
            self.pick(content["task_id"])
        elif kind == "secret":
            value = content.get("value")
            self.set_webhook_secret(value if isinstance(value, str) else "")
        elif kind == "use_sandbox":
            self.use_sandbox()
        elif kind == "extend" and isinstance(content.get("task_id"), str):
            # "Extend this" under a finished card: it becomes the parent, the prompt is next.
            self.pick(content["task_id"])
            self.prompt = ""
            self._touched.discard("prompt")
            self._validate()

    # -- submitting -------------------------------------------------------------------------

    def submit(self) -> Job | None:
        """Submit the form (as the button does); the new job, or None if nothing was sent.

        Nothing is sent while the form is invalid, while another submit is in flight, or within
        a second after the previous submit ended (a double click submits once).
        """
        with self._lock:
            recent = time.monotonic() - self._last_submit < SUBMIT_COOLDOWN
            if self.busy or recent:
                return None
            values = self._validate(show_all=True)
            if values is None or self._refused:
                return None
            self.busy = True
        # From here the secret travels in ``values`` only: whatever the answer, it is dropped
        # (and the view's box emptied). It is asked again next time.
        had_secret = bool(self._secret)
        self._secret = ""
        self.secret_set = False
        self.secret_epoch += 1
        self.disabled_reason = "Submitting…"
        self.ready = False
        self.message, self.message_kind, self.offer_sandbox = "Submitting…", "info", False
        client = self.client
        try:
            job = client.extend(**values)
        except Exception as error:
            plain = explain(
                error, service=client.service, parent_task_id=values.get("parent_task_id")
            )
            text = plain.text + (" Enter the webhook secret again." if had_secret else "")
            self.message, self.message_kind = text, plain.kind
            self.offer_sandbox = plain.offer_sandbox
            if plain.field in FIELDS:
                self._said[plain.field] = (getattr(self, plain.field), plain.text)
            if plain.refused:
                self._refused = True
                self._show_client()
            return None
        finally:
            with self._lock:
                self.busy = False
                self._last_submit = time.monotonic()
            self._validate()
        self.jobs.append(job)
        self.message, self.message_kind = "Submitted: its progress is below.", "ok"
        if client.service == "relay" and not self.share:
            self._keep_out_of_gallery(job)
        card = self.deck.add(job)
        card.on_done(lambda _card: self._refresh_parents())
        self._refresh_parents()
        self._ask_service()
        for callback in list(self._callbacks):
            try:
                callback(job)
            except Exception as error:
                self.message, self.message_kind = f"on_submit callback failed: {error}", "error"
        return job

    def _refresh_parents(self) -> None:
        self.parents = parent_choices(self.client, self._in_class)

    def _keep_out_of_gallery(self, job: Job) -> None:
        """The student unticked "Share in the class gallery": tell the relay for this task."""
        try:
            self.client.share(job.task_id, False)
        except Exception as error:
            said = explain(error, service=self.client.service).text
            self.message = f"Submitted, but the class gallery choice was not saved: {said}"
            self.message_kind = "warn"

    # -- asking the service (off the kernel thread) -----------------------------------------

    def _ask_service(self) -> None:
        """Ask for credits (and in a class, the gallery) off the kernel thread.

        The answer also says which service it is, and a refused key shows up here before any
        submit: the form then says so and offers the offline sandbox.
        """
        client = self.client
        threading.Thread(
            target=self._ask, args=(client,), name="luma-nb-credits", daemon=True
        ).start()

    def _ask(self, client: LumaClient) -> None:
        try:
            account = client.account()
        except Exception as error:
            if client is not self.client:
                return
            plain = explain(error, service=client.service)
            if plain.refused or plain.offer_sandbox:
                self._refused = plain.refused
                self.message, self.message_kind = plain.text, plain.kind
                self.offer_sandbox = plain.offer_sandbox
                self._show_client()
                self._validate()
            return
        if client is not self.client:
            return  # the form switched clients meanwhile
        self.credits = account.credits if client.service != "sandbox" else None
        if client.service == "relay":
            self._in_class = _class_videos(client)
        self._show_client()
        self._parent_changed()


def _class_videos(client: LumaClient) -> list[Parent]:
    """A class's start videos (the sandbox's demo videos, when the relay's upstream is the
    sandbox) and its gallery's videos, newest first, as picker items (empty when unreadable)."""
    from ...contract.posters import sandbox_poster_url

    items: list[Parent] = [
        {
            "task_id": task_id,
            "prompt": prompt,
            "ratio": ratio,
            "poster": browser_url(sandbox_poster_url(video_url), video_url or "") or "",
            "kind": "start",
        }
        for task_id, prompt, ratio, video_url in class_start_videos(client)
    ]
    try:
        update = client.class_gallery()
    except Exception:
        return items
    return items + [
        {
            "task_id": v.task_id,
            "prompt": v.prompt,
            "poster": browser_url(v.poster_url, v.video_url) or "",
            "kind": "class",
        }
        for v in reversed(update.videos)
    ]


def extend_form(
    client: LumaClient | None = None,
    parent_task_id: str | None = None,
    *,
    projector: bool = False,
) -> ExtendForm:
    """An :class:`ExtendForm` for ``client`` (default: :func:`luma_nb.default_client`).

    In demo mode, with no ``parent_task_id``, the form starts on the first ready-made demo
    video, so a newcomer only has to type a prompt. ``projector=True`` draws it in large type.
    """
    if client is None:
        client = default_client()
    if parent_task_id is None:
        demo = demo_parent_ids(client)
        parent_task_id = demo[0][0] if demo else None
    return ExtendForm(client, parent_task_id=parent_task_id, projector=projector)
