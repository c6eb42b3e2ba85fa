"""What the journal shows: :class:`Entry` rows and the :class:`History` table (text and HTML).

Prompts, error texts and URLs in the journal came from users and from the service: they are
untrusted. The HTML table escapes every one of them, and only ``http(s)`` URLs become links.
"""

from __future__ import annotations

import html
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..contract.errors import ValidationError
from ..contract.printable import printable
from ..contract.text import esc, safe_url

if TYPE_CHECKING:
    from .client import LumaClient
    from .job import Job
    from .journal import Journal

__all__ = ("STALE_SENDING", "Entry", "History", "pid_alive", "this_host")

#: A submit still marked "sending" after this many seconds was cut off (the kernel stopped while
#: the request was in flight) and counts as uncertain.
STALE_SENDING = 300.0


def this_host() -> str:
    """The name of this machine, as journal entries record it."""
    return socket.gethostname()


def pid_alive(pid: int) -> bool:
    """True when process ``pid`` runs on this machine (or cannot be checked)."""
    if pid == os.getpid() or sys.platform == "win32":  # Windows: os.kill would end it
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, OverflowError, ValueError):
        return True  # someone else's process, or no way to ask: assume it still works
    return True


_TERMINAL = ("finished", "failed")


@dataclass(frozen=True)
class Entry:
    """One submit recorded in the journal, with what became of it."""

    id: int
    """The entry's number in the journal (what :meth:`Journal.resubmit` takes)."""
    created: float
    """Unix time the intent was written, just before the submit was sent."""
    updated: float
    """Unix time of the last change."""
    service: str
    """The API base URL, or ``"sandbox"`` for the offline sandbox."""
    kind: str
    """``"extend"`` or ``"imagine"``."""
    endpoint: str
    """The path the submit went to."""
    prompt: str | None
    """The prompt sent."""
    parent: str | None
    """The parent task of an extend."""
    state: str
    """``sending``, ``submitted``, ``uncertain``, ``rejected``, ``resubmitted`` or ``dismissed``."""
    reason: str | None = None
    """Why a submit is uncertain or was rejected."""
    task_id: str | None = None
    """The task id, once the service answered."""
    status: str | None = None
    """The last task status seen, as the service sent it."""
    percentage: float | None = None
    """The last progress seen (0-100)."""
    video_url: str | None = None
    """The video's URL once finished."""
    error: str | None = None
    """The reason of a failed task."""
    local_file: str | None = None
    """Where the video was saved on this machine."""
    pid: int | None = None
    """The process that submitted it."""
    follow_up: str | None = None
    """The task id of the resubmit that replaced this uncertain entry."""
    host: str | None = None
    """The machine of the process that submitted it."""
    request: Mapping[str, Any] = field(default_factory=dict, repr=False)
    """The request body as sent, without the webhook secret."""

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Entry:
        """Build an entry from a database row."""
        try:
            request = json.loads(row.get("request") or "{}")
        except ValueError:
            request = {}
        values: dict[str, Any] = {
            name: row.get(name) for name in cls.__dataclass_fields__ if name != "request"
        }
        return cls(**values, request=request if isinstance(request, dict) else {})

    @property
    def options(self) -> dict[str, Any]:
        """The request's options (everything but prompt and parent)."""
        return {k: v for k, v in self.request.items() if k not in ("prompt", "parent_task_id")}

    @property
    def age(self) -> float:
        """Seconds since the submit."""
        return max(0.0, time.time() - self.created)

    @property
    def is_terminal(self) -> bool:
        """True once the task finished or failed."""
        return self.status in _TERMINAL

    @property
    def is_unfinished(self) -> bool:
        """True for a submitted task whose end was not seen yet (what ``resume`` re-attaches)."""
        return self.state == "submitted" and bool(self.task_id) and not self.is_terminal

    @property
    def is_uncertain(self) -> bool:
        """True when the submit may or may not have created a (paid) job."""
        if self.state == "uncertain":
            return True
        return self.state == "sending" and (self.age > STALE_SENDING or self.writer_gone)

    @property
    def writer_gone(self) -> bool:
        """True when the process that was sending this submit no longer runs (it was killed).

        Only known on the machine that sent it; elsewhere a ``sending`` entry becomes uncertain
        after :data:`STALE_SENDING` seconds.
        """
        if self.pid is None or self.host != this_host():
            return False
        return not pid_alive(self.pid)

    @property
    def shown_status(self) -> str:
        """The status to show: the task's status once submitted, else the entry's state."""
        if self.state == "submitted":
            if self.status == "processing" and self.percentage is not None:
                return f"processing {self.percentage:g}%"
            return self.status or "submitted"
        if self.is_uncertain:
            return "uncertain"
        return self.state

    @property
    def explanation(self) -> str:
        """What happened to this submit and what the user can do, in plain words."""
        if self.is_uncertain:
            why = f" ({self.reason})" if self.reason else ""
            what = (
                f"The submit to {self.endpoint} was sent but its answer was lost{why}"
                if self.state == "uncertain"
                else f"luma_nb stopped (a kernel restart?) while the submit to {self.endpoint} "
                "was being sent"
            )
            return (
                f"{what}. The job may exist at the service and may have been charged; luma_nb "
                "did not send it again, and the API offers no way to list tasks. Check your "
                "credits or the provider's dashboard. If it was not created, send it again "
                f"with resubmit({self.id}); to forget it, dismiss({self.id})."
            )
        if self.state == "rejected":
            return f"The service did not accept this submit: {self.reason or 'no reason given'}."
        if self.state == "resubmitted":
            again = f" as task {self.follow_up}" if self.follow_up else ""
            return f"This uncertain submit was sent again{again}."
        if self.state == "dismissed":
            return "Dismissed: luma_nb no longer offers to resume or resubmit it."
        if self.state == "sending":
            return "Being sent right now (or just cut off)."
        if self.status == "failed":
            return f"Task {self.task_id} failed: {self.error or 'no reason given'}."
        if self.status == "finished":
            return f"Task {self.task_id} finished."
        return f"Task {self.task_id} is {self.shown_status}; luma_nb.resume() re-attaches to it."


def age_text(seconds: float) -> str:
    """``"12 s"``, ``"5 min"``, ``"3 h"``, ``"2 d"``."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} d"


def plain(value: Any, width: int) -> str:
    """One line of printable text, at most ``width`` characters (control characters shown as ?)."""
    text = printable(value)
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def _link(url: str | None) -> str:
    """An escaped link for http(s) URLs; anything else as escaped text."""
    if not url:
        return ""
    shown = html.escape(plain(url, 60))
    href = safe_url(url)
    if href is None:
        return shown
    return f'<a href="{esc(href)}" target="_blank" rel="noopener noreferrer">{shown}</a>'


class History:
    """Past submits, newest first: a text table in ``repr``, an HTML table in notebooks.

    ``entries`` is the list of :class:`Entry`. ``uncertain`` lists the submits whose answer
    was lost, with an explanation each; :meth:`resubmit` sends one again, only when called.
    """

    _COLUMNS = ("#", "age", "kind", "status", "prompt", "parent", "task", "video", "file")

    def __init__(
        self,
        entries: list[Entry],
        journal: Journal,
        client: Callable[[], LumaClient] | None = None,
    ) -> None:
        self.entries = entries
        self.journal = journal
        self._client = client

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries)

    def __getitem__(self, index: int) -> Entry:
        return self.entries[index]

    @property
    def uncertain(self) -> list[Entry]:
        """The entries whose submit may or may not have created a job."""
        return [entry for entry in self.entries if entry.is_uncertain]

    def resubmit(self, entry_id: int, *, client: LumaClient | None = None, **kwargs: Any) -> Job:
        """Send an uncertain submit again; see :meth:`Journal.resubmit`. ``client`` defaults to
        the client this table was made for (:func:`luma_nb.history`: the default client)."""
        if client is None:
            if self._client is None:
                raise ValidationError(
                    "pass client=... : the client to send the submit again with.", field="client"
                )
            client = self._client()
        return self.journal.resubmit(entry_id, client=client, **kwargs)

    def dismiss(self, entry_id: int) -> None:
        """Stop offering an entry for resume or resubmit; see :meth:`Journal.dismiss`."""
        self.journal.dismiss(entry_id)

    def _cells(self, entry: Entry) -> tuple[str, ...]:
        return (
            str(entry.id),
            age_text(entry.age),
            entry.kind,
            entry.shown_status,
            entry.prompt or "",
            entry.parent or "",
            entry.task_id or "",
            entry.video_url or "",
            entry.local_file or "",
        )

    def __repr__(self) -> str:
        if not self.entries:
            return f"<History: no submits in {self.journal.path}>"
        widths = (5, 7, 8, 16, 40, 12, 12, 30, 24)
        lines = [
            "  ".join(
                name.ljust(w) for name, w in zip(self._COLUMNS, widths, strict=True)
            ).rstrip(),
        ]
        for entry in self.entries:
            cells = self._cells(entry)
            lines.append(
                "  ".join(plain(c, w).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()
            )
        for entry in self.uncertain:
            lines.append(f"! #{entry.id}: {plain(entry.explanation, 500)}")
        return "\n".join(lines)

    __str__ = __repr__

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(name)}</th>" for name in self._COLUMNS)
        rows = []
        for entry in self.entries:
            cells = self._cells(entry)
            tds = [f"<td>{html.escape(plain(c, 200))}</td>" for c in cells[:7]]
            tds.append(f"<td>{_link(entry.video_url)}</td>")
            tds.append(f"<td>{html.escape(plain(entry.local_file, 200))}</td>")
            title = html.escape(plain(entry.explanation, 1000), quote=True)
            rows.append(f'<tr title="{title}">{"".join(tds)}</tr>')
        notes = "".join(
            f"<li><b>#{entry.id}</b>: {html.escape(plain(entry.explanation, 1000))}</li>"
            for entry in self.uncertain
        )
        body = "".join(rows) or f'<tr><td colspan="{len(self._COLUMNS)}">no submits yet</td></tr>'
        table = (
            '<table class="luma-nb-history">'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        )
        if notes:
            table += f'<p>Uncertain submits:</p><ul class="luma-nb-uncertain">{notes}</ul>'
        return table
