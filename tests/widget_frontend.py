"""What a browser's view does to a widget, as the messages that reach its comm.

The ES module of a widget edits fields with ``model.set`` + ``save_changes`` (an ``update``
message) and reports clicks with ``model.send`` (a ``custom`` message). :class:`Frontend`
delivers the same messages through the widget's comm, the way the kernel hands them over, so a
test drives the widget by its public traits and messages, never by private attributes.
"""

from __future__ import annotations

from typing import Any


class Frontend:
    """The front-end side of one widget's comm."""

    def __init__(self, widget: Any) -> None:
        self.widget = widget

    def _deliver(self, data: dict[str, Any]) -> None:
        self.widget.comm.handle_msg({"content": {"data": data}, "buffers": []})

    def edit(self, **state: Any) -> None:
        """Typing in fields: one ``update`` message with the new values."""
        self._deliver({"method": "update", "state": state, "buffer_paths": []})

    def send(self, **content: Any) -> None:
        """A click or key press the view reports: one ``custom`` message."""
        self._deliver({"method": "custom", "content": content})

    def submit(self) -> None:
        """The Submit button, or Ctrl/Cmd+Enter: both send ``{"type": "submit"}``."""
        self.send(type="submit")
