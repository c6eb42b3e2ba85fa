"""Progress on a terminal: one line that rewrites itself (a plain line per change elsewhere)."""

from __future__ import annotations

import time
from typing import TextIO

from .contract.models import Task
from .contract.printable import printable

__all__ = ("ProgressLine",)


class ProgressLine:
    """A one-line progress display on a terminal (a plain line per change elsewhere)."""

    def __init__(self, stream: TextIO, task_id: str) -> None:
        self.stream = stream
        self.task_id = task_id
        self.started = time.monotonic()
        self.tty = stream.isatty()
        self._width = 0

    def __call__(self, task: Task) -> None:
        elapsed = time.monotonic() - self.started
        text = printable(f"{self.task_id}: {task.describe()} ({elapsed:.0f} s)")
        if self.tty:
            pad = max(0, self._width - len(text))
            self.stream.write("\r" + text + " " * pad)
            self._width = len(text)
            if task.is_terminal:
                self.stream.write("\n")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
