"""Student tokens: made at random, shown once (CSV and a printable sheet), stored hashed.

A token is 144 random bits, so a plain SHA-256 is enough to store it: nothing can be
guessed back from the hash, and a lookup by hash takes the same time whatever is sent.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .store import RelayStore

__all__ = ("TOKEN_PREFIX", "IssuedToken", "hash_token", "html_sheet", "issue", "to_csv")

#: Every class token starts with this, so a pasted one is recognisable (and never an API key).
TOKEN_PREFIX = "lnbc_"  # noqa: S105 - a prefix, not a secret


@dataclass(frozen=True)
class IssuedToken:
    """A student's name and their token, in clear: exists only until it is printed."""

    name: str
    """The student's name."""
    token: str = ""
    """The token to paste into LUMA_NB_CLASS_TOKEN."""

    def __repr__(self) -> str:
        return f"IssuedToken(name={self.name!r}, token=<hidden>)"


def hash_token(token: str) -> str:
    """The stored form of a token (hex SHA-256 of its stripped text)."""
    return hashlib.sha256(token.strip().encode("utf-8")).hexdigest()


def _names(count: int | None, names: Sequence[str] | None) -> list[str]:
    if names:
        cleaned = [n.strip() for n in names if n.strip()]
        if len(set(cleaned)) != len(cleaned):
            raise ValueError("the names list has duplicates; every student needs their own name")
        return cleaned
    if count is None or count < 1:
        raise ValueError("give a count of at least 1, or a list of names")
    return [f"student-{i:02d}" for i in range(1, count + 1)]


def issue(
    store: RelayStore, count: int | None = None, names: Sequence[str] | None = None
) -> list[IssuedToken]:
    """Make one token per name (or ``student-01``.. for ``count``), store their hashes.

    Names already in the class are refused with ValueError before anything is stored.
    """
    wanted = _names(count, names)
    taken = {s.name for s in store.students()}
    clash = [n for n in wanted if n in taken]
    if clash:
        if not names:
            start = len(taken) + 1
            wanted = [f"student-{i:02d}" for i in range(start, start + len(wanted))]
            clash = [n for n in wanted if n in taken]
        if clash:
            raise ValueError(f"already in the class: {', '.join(clash)}")
    issued = []
    for name in wanted:
        token = TOKEN_PREFIX + secrets.token_urlsafe(18)
        store.add_student(name, hash_token(token))
        issued.append(IssuedToken(name, token))
    return issued


def to_csv(tokens: Iterable[IssuedToken]) -> str:
    """``name,token`` lines with a header."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["name", "token"])
    for item in tokens:
        writer.writerow([item.name, item.token])
    return out.getvalue()


def html_sheet(tokens: Iterable[IssuedToken], *, class_name: str, url: str | None = None) -> str:
    """A printable page: one card per student to cut out, with what to set in the notebook."""
    where = html.escape(url or "http://<teacher's machine>:8765")
    cards = "\n".join(
        f'<div class="card"><h2>{html.escape(t.name)}</h2>'
        f"<p>LUMA_NB_CLASS_URL=<code>{where}</code></p>"
        f"<p>LUMA_NB_CLASS_TOKEN=<code>{html.escape(t.token)}</code></p>"
        '<p class="small">Keep this token to yourself; it spends the class\'s credits.</p></div>'
        for t in tokens
    )
    title = html.escape(class_name)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{title}: class tokens</title>
<style>
body {{ font-family: sans-serif; }}
.card {{ display: inline-block; width: 45%; margin: 1%; padding: 8px 12px;
         border: 1px dashed #888; page-break-inside: avoid; vertical-align: top; }}
code {{ font-size: 1.1em; }}
.small {{ color: #555; font-size: 0.85em; }}
</style></head>
<body><h1>{title}: class tokens</h1>
{cards}
</body></html>
"""
