"""The teacher's dashboard at ``/teacher``: the class live, and the teacher's controls.

Plain server-rendered HTML. Every form posts with Tornado's XSRF token (checked on every POST
here; the students' API stays token-authenticated JSON) and works without JavaScript; the one
served script (no inline code, so the Content-Security-Policy allows ``'self'`` scripts only)
polls ``/teacher/live.json`` every 2 s and swaps in the sections that changed, keeping a video
that plays. Everything a student typed (names, prompts) is escaped; no page, JSON or log line
carries a key or a token.

Who is a teacher is decided by :func:`is_teacher`, which asks each check in the application's
``luma_teacher_checks`` list: the standalone relay's is :func:`session_teacher` (the signed
session cookie that the login page sets for the teacher's token). Another deployment (a Hub's
OAuth) appends its own check and may point ``luma_teacher_login`` at its own login.
"""

from __future__ import annotations

import csv
import hmac
import io
import json
import time
from collections.abc import Awaitable, Callable
from importlib.resources import files
from typing import Any
from urllib.parse import quote

import tornado.web

from ..contract.posters import poster_url
from ..contract.text import safe_url
from .dashboard_pages import SECTIONS, container, document, esc, fragment
from .handlers import RelayContext
from .settings import cookie_secret, teacher_session
from .teacher import Outcome, Teacher

__all__ = (
    "SESSION_COOKIE",
    "TeacherCheck",
    "add_teacher_check",
    "csv_cell",
    "install",
    "is_teacher",
    "ledger_csv",
    "session_teacher",
)

#: The dashboard's session cookie (signed, HttpOnly, SameSite=Strict).
SESSION_COOKIE = "luma_teacher"
#: A session lasts a school day at most.
SESSION_DAYS = 1.0
#: ``async check(handler) -> who or None``: one way to recognise a teacher.
TeacherCheck = Callable[[tornado.web.RequestHandler], Awaitable[str | None]]

# Posters are the relay's URLs, redirected to the sandbox that serves them (img-src); a video
# plays from where its service keeps it (media-src).
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' http: https:; "
    "media-src http: https:; connect-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
_STATIC = {
    "dashboard.js": "text/javascript",
    "dashboard.css": "text/css",
    "favicon.svg": "image/svg+xml",
}


async def session_teacher(handler: tornado.web.RequestHandler) -> str | None:
    """The standalone relay's check: the session cookie of the current teacher token."""
    ctx: RelayContext = handler.settings["relay"]
    value = handler.get_signed_cookie(SESSION_COOKIE, max_age_days=SESSION_DAYS)
    expected = await ctx.blocking(teacher_session, ctx.store)
    if value is None or expected is None:
        return None
    return "teacher" if hmac.compare_digest(value, expected.encode()) else None


async def is_teacher(handler: tornado.web.RequestHandler) -> str | None:
    """Who the teacher making this request is, or None: the first check that knows them."""
    checks: list[TeacherCheck] = handler.settings.get("luma_teacher_checks", [session_teacher])
    for check in checks:
        who = await check(handler)
        if who:
            return who
    return None


def add_teacher_check(
    app: tornado.web.Application, check: TeacherCheck, *, login_url: str | None = None
) -> None:
    """Let ``check`` recognise teachers too (asked after the session cookie), e.g. a Hub's
    admins or a named group; ``login_url`` is where a stranger to ``/teacher`` is sent."""
    app.settings.setdefault("luma_teacher_checks", [session_teacher]).append(check)
    if login_url is not None:
        app.settings["luma_teacher_login"] = login_url


class _Page(tornado.web.RequestHandler):
    """Security headers, the teacher check, XSRF on every POST, errors without details."""

    needs_teacher = True
    teacher_name: str | None = None

    @property
    def ctx(self) -> RelayContext:
        ctx: RelayContext = self.settings["relay"]
        return ctx

    @property
    def teacher(self) -> Teacher:
        return self.ctx.teacher

    def url(self, path: str = "") -> str:
        return str(self.settings.get("luma_prefix", "")) + "/teacher" + path

    def set_default_headers(self) -> None:
        self.set_header("Content-Security-Policy", _CSP)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("X-Frame-Options", "DENY")
        self.set_header("Referrer-Policy", "no-referrer")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Luma-NB-Service", "relay")

    async def prepare(self) -> None:
        if self.request.method not in ("GET", "HEAD"):
            self.check_xsrf_cookie()  # raises 403 without the form's (or header's) token
        if not self.needs_teacher:
            return  # the login page and the static files: no teacher check to pay for
        self.teacher_name = await is_teacher(self)
        if self.teacher_name is None:
            if self.request.method == "GET" and self.request.path == self.url():
                other = self.settings.get("luma_teacher_login")
                # Another deployment's login comes back to this page afterwards.
                self.redirect(
                    f"{other}?next={quote(self.url(), safe='/')}" if other else self.url("/login")
                )
            else:
                self.send_error(403, reason="Log in as the teacher first")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(f"{status_code}: {self._reason}\n")

    def xsrf_input(self) -> str:
        return f'<input type="hidden" name="_xsrf" value="{esc(self.xsrf_token.decode())}">'


class LoginHandler(_Page):
    needs_teacher = False

    def get(self) -> None:
        self.page(200, "")

    async def post(self) -> None:
        token = self.get_body_argument("token", "")
        store = self.ctx.store
        session = await self.ctx.blocking(teacher_session, store, token) if token.strip() else None
        if session is None:
            self.page(403, "That is not the teacher's token.")
            return
        self.set_signed_cookie(
            SESSION_COOKIE,
            session,
            expires_days=None,  # gone with the browser; the signature expires after a day
            path=self.url(),
            httponly=True,
            samesite="Strict",
            secure=self.request.protocol == "https",
        )
        self.redirect(self.url(), status=303)

    def page(self, status: int, error: str) -> None:
        self.set_status(status)
        message = f'<p class="error" role="alert">{esc(error)}</p>' if error else ""
        self.finish(
            document(
                self,
                "Teacher login",
                f"""<main class="login"><h1>{esc(self.ctx.class_name)}: teacher login</h1>
{message}<form method="post" action="{esc(self.url("/login"))}">{self.xsrf_input()}
<label>Teacher token <input type="password" name="token" autocomplete="off" required
 autofocus></label> <button type="submit">Log in</button></form>
<p class="hint">Make one with <code>luma-nb class teacher-token</code>; it is shown once.</p>
</main>""",
            )
        )


class LogoutHandler(_Page):
    needs_teacher = False

    def post(self) -> None:
        self.clear_cookie(SESSION_COOKIE, path=self.url())
        self.redirect(self.url("/login"), status=303)


async def _snapshot(page: _Page) -> dict[str, Any]:
    """The class's state for the pages, with who makes the videos (posters or not)."""
    state: dict[str, Any] = await page.ctx.blocking(page.teacher.snapshot)
    state["upstream_service"] = page.ctx.upstream_service()
    return state


class DashboardHandler(_Page):
    async def get(self) -> None:
        state = await _snapshot(self)
        sections = "\n".join(
            f'<section id="{name}"><h2>{esc(title)}</h2>{container(name, self, state)}</section>'
            for name, title in SECTIONS.items()
        )
        body = f"""<header><h1>{esc(self.ctx.class_name)}: the class</h1>
<form method="post" action="{esc(self.url("/logout"))}">{self.xsrf_input()}
<button type="submit">Log out</button></form>
<p id="flash" role="status" aria-live="polite"></p></header>
<main data-live="{esc(self.url("/live.json"))}" data-xsrf="{esc(self.xsrf_token.decode())}">
{sections}
<p class="hint"><a href="{esc(self.url("/ledger.csv"))}" download>Download the ledger (CSV)</a>
</p></main>"""
        self.finish(document(self, "Teacher's dashboard", body, script=True))


class LiveHandler(_Page):
    async def get(self) -> None:
        state = await _snapshot(self)
        fragments = {name: fragment(name, self, state) for name in SECTIONS}
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"state": state, "html": fragments, "at": time.time()}))


class ActionHandler(_Page):
    async def post(self, action: str) -> None:
        outcome = await self.run(action)
        self.ctx.gallery.poke()  # a hidden (or rejected) video leaves the students' galleries now
        if self.request.headers.get("X-Luma-Dashboard") == "1":
            self.set_header("Content-Type", "application/json")
            self.set_status(200 if outcome.ok else 400)
            self.finish(json.dumps({"ok": outcome.ok, "message": outcome.message}))
        else:
            self.redirect(self.url(), status=303)

    async def run(self, action: str) -> Outcome:
        arg = self.get_body_argument
        teacher, blocking = self.teacher, self.ctx.blocking
        name = arg("name", "").strip() or None
        try:
            if action == "pause":
                return await blocking(teacher.pause, arg("paused", "1") == "1", name)
            if action == "budget":
                text = arg("value", "").strip()
                value = float(text) if text else None
                return await blocking(teacher.set_budget, arg("scope", ""), value, name)
            if action == "approve-mode":
                return await blocking(teacher.approve_mode, arg("on", "0") == "1")
            if action == "hide":
                return await blocking(teacher.hide, arg("task_id", ""), arg("hidden", "1") == "1")
            submit_id = int(arg("submit_id", ""))
        except ValueError:
            return Outcome(False, "That is not a number.")
        if action == "approve":
            return await teacher.approve(submit_id)
        if action == "reject":
            return await blocking(teacher.reject, submit_id, arg("reason", ""))
        if action == "cancel":
            return await blocking(teacher.cancel, submit_id)
        if action == "resolve":
            ran = arg("ran", "1") == "1"
            return await blocking(teacher.resolve, submit_id, arg("task_id", "") if ran else None)
        raise tornado.web.HTTPError(404, reason=f"no action {action}")


class MediaHandler(_Page):
    """``/teacher/play/<task_id>`` and ``/teacher/poster/<task_id>``: a redirect to a finished
    gallery video, or to its poster where the upstream (the sandbox) serves one; 404 else."""

    async def get(self, kind: str, task_id: str) -> None:
        _, items = await self.ctx.blocking(self.ctx.store.gallery, 0)
        found = next((i for i in items if i.task_id == task_id and i.finished), None)
        url = safe_url(found.video_url) if found is not None else None
        if url is not None and kind == "poster":
            url = poster_url(video_url=url, service=self.ctx.upstream_service())
        if url is None:
            raise tornado.web.HTTPError(404, reason="No such video")
        self.set_header("Cache-Control", "private, max-age=300")
        self.redirect(url, status=302)


class LedgerHandler(_Page):
    async def get(self) -> None:
        text = await self.ctx.blocking(ledger_csv, self.ctx)
        self.set_header("Content-Type", "text/csv; charset=utf-8")
        self.set_header("Content-Disposition", 'attachment; filename="ledger.csv"')
        self.finish(text)


class StaticHandler(_Page):
    needs_teacher = False

    def get(self, name: str) -> None:
        kind = _STATIC.get(name)
        if kind is None:
            raise tornado.web.HTTPError(404, reason="Not found")
        self.set_header("Content-Type", f"{kind}; charset=utf-8")
        self.finish(files(__package__).joinpath("dashboard_static").joinpath(name).read_bytes())


def csv_cell(value: Any) -> Any:
    """A text cell a spreadsheet will not run: one starting like a formula gets a ``'``."""
    if not isinstance(value, str):
        return value
    text = value.replace("\r", " ").replace("\n", " ")
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "|", "%") else text


def ledger_csv(ctx: RelayContext) -> str:
    """The ledger as CSV, oldest first, safe to open in a spreadsheet."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(
        ["id", "at_utc", "student", "submit_id", "task_id", "kind", "credits", "reason"]
    )
    for entry in ctx.store.ledger():
        at = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(entry.at))
        writer.writerow(
            [
                entry.id,
                at,
                csv_cell(entry.student or ""),
                "" if entry.submit_id is None else entry.submit_id,
                csv_cell(entry.task_id or ""),
                entry.kind,
                f"{entry.credits:g}",
                csv_cell(entry.reason),
            ]
        )
    return out.getvalue()


def install(app: tornado.web.Application, ctx: RelayContext, prefix: str = "") -> None:
    """Add the dashboard's routes (under ``prefix``) and its cookie settings to the relay's app."""
    app.settings.setdefault("cookie_secret", cookie_secret(ctx.store))
    app.settings.setdefault("xsrf_cookie_kwargs", {"httponly": True, "samesite": "Strict"})
    app.settings.setdefault("luma_teacher_checks", [session_teacher])
    app.settings.setdefault("luma_prefix", prefix)
    base = prefix + "/teacher"
    app.add_handlers(
        r".*",
        [
            (base, DashboardHandler),
            (base + "/login", LoginHandler),
            (base + "/logout", LogoutHandler),
            (base + "/live.json", LiveHandler),
            (base + "/ledger.csv", LedgerHandler),
            (base + r"/act/([a-z-]+)", ActionHandler),
            (base + r"/(play|poster)/([A-Za-z0-9._~-]{1,200})", MediaHandler),
            (base + r"/static/([a-z.]+)", StaticHandler),
        ],
    )
