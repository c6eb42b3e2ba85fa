"""The HTML of the teacher's dashboard: the page's sections, as keyed items.

Each section is a list of items with a key (a student's name, a submit's or a task's id) and a
signature of their markup; the page's script swaps in only the items whose signature changed,
so a playing video or a half-typed field stays. Every value is escaped here, in one place.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import quote

__all__ = ("SECTIONS", "container", "document", "esc", "fragment")

#: Stands for the per-page XSRF field while an item's signature is computed.
_SLOT = "\x00xsrf\x00"


class Page(Protocol):
    """What rendering needs from the request's handler."""

    def url(self, path: str = "") -> str:
        """A dashboard URL (under the relay's prefix)."""
        ...

    def xsrf_input(self) -> str:
        """The hidden ``_xsrf`` field of this page's forms."""
        ...


def esc(value: Any) -> str:
    """HTML-escaped text (quotes too), for content and attribute values alike."""
    return html.escape("" if value is None else str(value), quote=True)


def _credits(value: float | None) -> str:
    return "no limit" if value is None else f"{value:g}"


def _origin(value: float | None, origin: str | None) -> str:
    """A budget and where it came from: ``600 (from --class-budget)``."""
    if origin is None:
        return esc(_credits(value))
    word = "set on" if origin == "the dashboard" else "from"
    return esc(f"{_credits(value)} ({word} {origin})")


SECTIONS = {
    "controls": "Controls",
    "students": "Students",
    "held": "Waiting for your approval",
    "queue": "The class's queue",
    "uncertain": "Uncertain submits",
    "gallery": "Class gallery",
}


def container(name: str, page: Page, state: dict[str, Any]) -> str:
    inner = fragment(name, page, state)
    if name == "students":
        head = "".join(
            f"<th>{h}</th>"
            for h in (
                "Student",
                "State",
                "Used",
                "Budget",
                "Left",
                "Running",
                "Finished",
                "Failed",
                "Waiting",
                "Last error",
                "",
            )
        )
        return (
            f'<table><thead><tr>{head}</tr></thead><tbody data-section="students">{inner}'
            "</tbody></table>"
        )
    return f'<div data-section="{name}">{inner}</div>'


def fragment(name: str, page: Page, state: dict[str, Any]) -> str:
    items: list[tuple[str, str]] = _RENDER[name](page, state)
    token = page.xsrf_input()
    parts = []
    for key, markup in items:
        sig = hashlib.sha256(markup.encode()).hexdigest()[:16]  # without the per-page token
        markup = markup.replace(_SLOT, token)
        # The key and signature go on the item's first tag.
        head, _, rest = markup.partition(">")
        parts.append(f'{head} data-key="{esc(key)}" data-sig="{sig}">{rest}')
    return "".join(parts)


def _form(page: Page, action: str, fields: dict[str, str], label: str, extra: str = "") -> str:
    hidden = "".join(
        f'<input type="hidden" name="{esc(k)}" value="{esc(v)}">' for k, v in fields.items()
    )
    return (
        f'<form method="post" class="inline" action="{esc(page.url("/act/" + action))}">'
        f'{_SLOT}{hidden}{extra}<button type="submit">{esc(label)}</button></form>'
    )


def _controls(page: Page, state: dict[str, Any]) -> list[tuple[str, str]]:
    paused = state["class_paused"]
    approve = state["approve"]
    pause = _form(
        page,
        "pause",
        {"paused": "0" if paused else "1"},
        "Resume the class" if paused else "Pause the class",
    )
    mode = _form(
        page,
        "approve-mode",
        {"on": "0" if approve else "1"},
        "Turn approve mode off" if approve else "Turn approve mode on",
    )

    def number(value: float | None = None, empty: str = "no limit") -> str:
        now = "" if value is None else f' value="{value:g}"'
        return (
            f'<input type="number" name="value"{now} min="0" step="any" placeholder="{esc(empty)}">'
        )

    options = "".join(f"<option>{esc(s['name'])}</option>" for s in state["students"])
    return [
        (
            "switches",
            f'<div class="row"><p>Submits: <strong class="state">'
            f"{'paused for the whole class' if paused else 'open'}</strong></p>{pause}"
            f'<p>Approve mode: <strong class="state">{"on" if approve else "off"}</strong></p>'
            f"{mode}</div>",
        ),
        (
            "budgets",
            f'<div class="row"><p>Spent by the class: {state["spent"]:g} credits. Class budget: '
            f"{_origin(state['class_budget'], state['class_budget_from'])}; each student: "
            f"{_origin(state['student_budget'], state['student_budget_from'])}.</p>"
            + _form(
                page,
                "budget",
                {"scope": "class"},
                "Set the class budget",
                "<label>Class " + number(state["class_budget"]) + "</label>",
            )
            + _form(
                page,
                "budget",
                {"scope": "student"},
                "Set each student's budget",
                "<label>Each student " + number(state["student_budget"]) + "</label>",
            )
            + _form(
                page,
                "budget",
                {"scope": "one"},
                "Set one student's budget",
                f'<label>Student <select name="name">{options}</select></label>'
                "<label> " + number(empty="the class's rule") + "</label>",
            )
            + "</div>",
        ),
    ]


def _students(page: Page, state: dict[str, Any]) -> list[tuple[str, str]]:
    rows = []
    for s in state["students"]:
        status = "revoked" if s["revoked"] else "paused" if s["paused"] else "active"
        budget = _credits(s["budget"]) + (" (own)" if s["own_budget"] is not None else "")
        action = _form(
            page,
            "pause",
            {"name": s["name"], "paused": "0" if s["paused"] else "1"},
            "Resume" if s["paused"] else "Pause",
        )
        cells = [
            s["name"],
            status,
            f"{s['used']:g}",
            budget,
            _credits(s["left"]),
            s["running"],
            s["finished"],
            s["failed"],
            s["held"],
            s["last_error"],
        ]
        tds = "".join(f"<td>{esc(c)}</td>" for c in cells)
        rows.append((s["name"], f"<tr>{tds}<td>{action}</td></tr>"))
    return rows or [("none", '<tr><td colspan="11">No students yet.</td></tr>')]


#: What a submit to each endpoint asks for, in the teacher's words.
_WANTS = {"/luma-extend": "wants to extend a video", "/luma-imagine": "wants a new video"}


def _held(page: Page, state: dict[str, Any]) -> list[tuple[str, str]]:
    items = []
    for h in state["held"]:
        sid = str(h["submit_id"])
        reason = '<input type="text" name="reason" maxlength="300" placeholder="why (optional)">'
        items.append(
            (
                sid,
                f'<div class="card held"><p><strong>{esc(h["student"])}</strong> '
                f"{_WANTS.get(h['endpoint'], 'wants a video')}:</p>"
                f'<blockquote class="prompt">{esc(h["prompt"])}</blockquote>'
                + _form(page, "approve", {"submit_id": sid}, "Approve")
                + _form(page, "reject", {"submit_id": sid}, "Reject", reason)
                + "</div>",
            )
        )
    return items or [("none", "<p>Nothing waits for you.</p>")]


def _queue(page: Page, state: dict[str, Any]) -> list[tuple[str, str]]:
    limit = state["max_running"]
    running = f"{state['running']} running at the video service" + (
        f" (at most {limit} at once)" if limit is not None else ""
    )
    items = [("running", f'<p class="hint">{esc(running)}.</p>')]
    for q in state["queue"]:
        sid = str(q["submit_id"])
        items.append(
            (
                sid,
                f'<div class="card queued"><p>{q["position"]}. '
                f"<strong>{esc(q['student'])}</strong> "
                f"{_WANTS.get(q['endpoint'], 'wants a video')}:</p>"
                f'<blockquote class="prompt">{esc(q["prompt"])}</blockquote>'
                + _form(page, "cancel", {"submit_id": sid}, "Cancel (credits back)")
                + "</div>",
            )
        )
    if not state["queue"]:
        items.append(("none", "<p>Nothing waits: every submit went to the video service.</p>"))
    return items


def _uncertain(page: Page, state: dict[str, Any]) -> list[tuple[str, str]]:
    items = []
    for u in state["uncertain"]:
        sid = str(u["submit_id"])
        box = '<input type="text" name="task_id" placeholder="the task id" required>'
        items.append(
            (
                sid,
                f'<div class="card"><p><strong>{esc(u["student"])}</strong> '
                f"({esc(u['endpoint'].lstrip('/'))}, #{sid}, {u['cost']:g} credits held): "
                f'{esc(u["note"])}</p><blockquote class="prompt">{esc(u["prompt"])}</blockquote>'
                + _form(page, "resolve", {"submit_id": sid, "ran": "1"}, "It ran: charge it", box)
                + _form(page, "resolve", {"submit_id": sid, "ran": "0"}, "It never ran: release")
                + "</div>",
            )
        )
    return items or [("none", "<p>None: every submit has a known fate.</p>")]


def _gallery(page: Page, state: dict[str, Any]) -> list[tuple[str, str]]:
    """A card per finished video: its poster (through the relay, when the upstream is the
    sandbox) or its prompt, and a play link. No ``<video>`` and no video URL is on the page:
    the script makes a player only once the teacher presses play, so a class of 300 videos
    costs no video bytes until one is watched (without the script, the link opens the video)."""
    items = []
    posters = state.get("upstream_service") == "sandbox"
    for g in state["gallery"]:
        url = str(g["video_url"] or "")
        if not url.startswith(("https://", "http://")):
            continue
        hidden = g["hidden"]
        note = " (hidden from the class)" if hidden else "" if g["shared"] else " (not shared)"
        button = _form(
            page,
            "hide",
            {"task_id": g["task_id"], "hidden": "0" if hidden else "1"},
            "Show" if hidden else "Hide",
        )
        task = quote(str(g["task_id"]), safe="")
        picture = (
            f'<img data-luma="poster" src="{esc(page.url(f"/poster/{task}"))}" alt="" '
            'loading="lazy" decoding="async">'
            if posters
            else f'<span class="placeholder" data-luma="poster">{esc(g["prompt"])}</span>'
        )
        items.append(
            (
                g["task_id"],
                f'<figure class="video{" hidden" if hidden else ""}" data-luma="card">'
                f'<a class="play" data-luma="play" href="{esc(page.url(f"/play/{task}"))}" '
                f'aria-label="Play the video of {esc(g["student"])}">{picture}'
                '<span class="play-icon" aria-hidden="true"></span></a>'
                f"<figcaption><strong>{esc(g['student'])}</strong>{esc(note)}: "
                f"{esc(g['prompt'])}</figcaption>{button}</figure>",
            )
        )
    return items or [("none", "<p>No finished videos yet.</p>")]


_RENDER: dict[str, Callable[[Page, dict[str, Any]], list[tuple[str, str]]]] = {
    "controls": _controls,
    "students": _students,
    "held": _held,
    "queue": _queue,
    "uncertain": _uncertain,
    "gallery": _gallery,
}


def document(page: Page, title: str, body: str, *, script: bool = False) -> str:
    src = f'<script src="{esc(page.url("/static/dashboard.js"))}" defer></script>' if script else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="{esc(page.url("/static/favicon.svg"))}" type="image/svg+xml">
<link rel="stylesheet" href="{esc(page.url("/static/dashboard.css"))}">{src}</head>
<body>{body}</body></html>
"""
