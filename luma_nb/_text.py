"""Text from a server, made safe to print: no terminal escapes, no control characters.

Prompts, task errors, e-mail addresses and URLs come from the service (or whoever answers in
its place). Printed raw, an ``ESC [`` sequence could move the cursor, clear the screen or retitle
the terminal. :func:`printable` is the one place that decides what may be shown as is.
"""

from __future__ import annotations

import unicodedata
from typing import Any

__all__ = ("printable",)


def printable(value: Any, *, newlines: bool = False) -> str:
    """``value`` as text with every control or format character shown as ``?``.

    Tabs and carriage returns become spaces; newlines too, unless ``newlines`` keeps them.
    """
    text = "" if value is None else str(value)
    out = []
    for ch in text:
        if ch == "\n" and newlines:
            out.append(ch)
        elif ch in "\t\n\r":
            out.append(" ")
        elif unicodedata.category(ch)[0] == "C":
            out.append("?")
        else:
            out.append(ch)
    return "".join(out)
