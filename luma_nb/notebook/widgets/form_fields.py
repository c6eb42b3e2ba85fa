"""The fields of the ExtendForm: its child widgets, their layout, and the mode banner."""

from __future__ import annotations

from typing import TYPE_CHECKING

import ipywidgets as widgets

from ...contract.statuses import ASPECT_RATIOS
from ..display import DEMO_NOTE, esc
from . import _recent
from ._style import LABEL_WIDTH, field_row, note_html

if TYPE_CHECKING:
    from ...client.client import LumaClient

__all__ = ("FormFields", "class_banner")

_STYLE = {"description_width": LABEL_WIDTH}
_WIDE = widgets.Layout(width="520px")
_RATIO_NOTE = (
    "An extend keeps the parent's frame size: the field starts at the parent's ratio when "
    "it is known, and a different ratio is not applied."
)


class FormFields:
    """Builds the form's private child widgets (mixed into :class:`~luma_nb.ExtendForm`)."""

    client: LumaClient

    # -- construction -----------------------------------------------------------------------

    def _build(self, parent: str, prompt: str) -> None:
        self._mode = widgets.HTML(self._mode_html())
        self._credits = widgets.HTML()
        self._parent = widgets.Combobox(
            value=parent,
            options=_recent.recent_ids(self.client),
            placeholder="task id of the video to extend",
            description="Parent task",
            ensure_option=False,
            continuous_update=True,
            style=_STYLE,
            layout=_WIDE,
        )
        self._parent_msg = widgets.HTML()
        self._parent_note = widgets.HTML()
        self._prompt = widgets.Textarea(
            value=prompt,
            placeholder="what happens next in the video",
            description="Prompt",
            rows=3,
            continuous_update=True,
            style=_STYLE,
            layout=_WIDE,
        )
        self._prompt_count = widgets.HTML()
        self._prompt_msg = widgets.HTML()
        self._image_url = self._url_text("First frame URL")
        self._image_url_msg, self._image_url_thumb = widgets.HTML(), widgets.HTML()
        self._end_image_url = self._url_text("Last frame URL")
        self._end_image_url_msg, self._end_image_url_thumb = widgets.HTML(), widgets.HTML()
        self._enhance = widgets.Checkbox(value=False, description="Enhance prompt", style=_STYLE)
        self._aspect = widgets.Dropdown(
            options=ASPECT_RATIOS,
            value=_recent.ratio_of(self.client, parent) or "1:1",
            description="Aspect ratio",
            style=_STYLE,
        )
        self._aspect_note = widgets.HTML(note_html(_RATIO_NOTE))
        self._webhook_url = self._url_text("Webhook URL")
        self._webhook_url_msg = widgets.HTML()
        self._webhook_secret = widgets.Password(
            description="Webhook secret", placeholder="optional", style=_STYLE, layout=_WIDE
        )
        self._webhook_secret_msg = widgets.HTML()
        self._advanced = widgets.Accordion(
            children=[
                widgets.VBox(
                    [
                        field_row(self._webhook_url, self._webhook_url_msg),
                        field_row(self._webhook_secret, self._webhook_secret_msg),
                    ]
                )
            ],
            titles=("Advanced",),
            selected_index=None,
        )
        self._share = widgets.Checkbox(
            value=True,
            description="Share in the class gallery",
            tooltip="Your classmates see the finished video; your teacher can hide it.",
            style=_STYLE,
            layout={"width": "auto"},
        )
        self._show_share()
        self._submit = widgets.Button(
            description="Submit extend", button_style="primary", icon="play", disabled=True
        )
        self._message = widgets.HTML()
        self._jobs_box = widgets.VBox()
        for name in (
            "parent",
            "prompt",
            "image_url",
            "end_image_url",
            "webhook_url",
            "webhook_secret",
            "aspect",
        ):
            child = getattr(self, f"_{name}")
            child.observe(getattr(self, f"_on_{name}_change"), names="value")
        self._submit.on_click(getattr(self, "_on_submit_click"))  # noqa: B009 - defined by the form

    def _url_text(self, label: str) -> widgets.Text:
        return widgets.Text(
            description=label,
            placeholder="https://… (optional)",
            continuous_update=True,
            style=_STYLE,
            layout=_WIDE,
        )

    def _layout(self) -> list[widgets.Widget]:
        return [
            widgets.HBox([self._mode, self._credits], layout={"grid_gap": "16px"}),
            field_row(self._parent, self._parent_msg),
            self._parent_note,
            field_row(self._prompt, widgets.VBox([self._prompt_count, self._prompt_msg])),
            field_row(self._image_url, self._image_url_msg, self._image_url_thumb),
            field_row(self._end_image_url, self._end_image_url_msg, self._end_image_url_thumb),
            self._enhance,
            self._aspect,
            self._aspect_note,
            self._advanced,
            self._share,
            widgets.HBox([self._submit, self._message], layout={"align_items": "center"}),
            self._jobs_box,
        ]

    def _show_share(self) -> None:
        """The "Share in the class gallery" box is there only on a class relay."""
        self._share.layout.display = None if self.client.service == "relay" else "none"

    def _mode_html(self) -> str:
        if self.client.service == "relay":
            return class_banner(self.client.class_name, None)
        if self.client.is_sandbox:
            return f'<b style="color:#8d6e00">{esc(DEMO_NOTE)}</b>'
        if self.client.service == "api":
            return '<b>Live API</b>: <span style="color:#555">each submit costs credits</span>'
        return (
            f"<b>Service at {esc(self.client.base_url)}</b>: "
            '<span style="color:#555">submits may cost credits</span>'
        )


def class_banner(name: str | None, credits: float | None) -> str:
    """The banner of a form on a class relay: "Class: <name>, N credits left"."""
    if name is None:
        return "<b>Class</b>: connecting to the class relay..."
    text = f"Class: {esc(name)}"
    if credits is not None:
        text += f", {credits:g} credits left"
    return f"<b>{text}</b>"
