"""Shared looks of the widgets: layouts and small escaped HTML snippets."""

from __future__ import annotations

import ipywidgets as widgets

from ..display import esc

__all__ = ("LABEL_WIDTH", "field_row", "message_html", "note_html")

LABEL_WIDTH = "150px"
_COLOURS = {"error": "#c62828", "ok": "#2e7d32", "info": "#555", "warn": "#8d6e00"}


def message_html(text: str | None, kind: str = "error") -> str:
    """A short coloured message (escaped); empty text for None."""
    if not text:
        return ""
    colour = _COLOURS.get(kind, "#555")
    return f'<span style="color:{colour};font-size:90%">{esc(text)}</span>'


def note_html(text: str | None, *, bold: bool = False) -> str:
    """A plain note (escaped), optionally bold; empty text for None."""
    if not text:
        return ""
    body = f"<b>{esc(text)}</b>" if bold else esc(text)
    return f'<div style="color:#444">{body}</div>'


def field_row(control: widgets.Widget, *extras: widgets.Widget) -> widgets.HBox:
    """A control with its message (and any extras) to the right of it."""
    return widgets.HBox(
        [control, *extras], layout=widgets.Layout(align_items="center", grid_gap="8px")
    )
