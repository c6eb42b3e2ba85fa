"""The teacher's dashboard over plain HTTP: who gets in (the teacher's token, never a
student's), CSRF on every POST, escaping of hostile names and prompts, a strict CSP, a CSV
safe in a spreadsheet, the gallery's Hide/Show, and no key or token in anything it answers."""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterator
from html.parser import HTMLParser

import pytest
import requests

from luma_nb.relay.dashboard import SESSION_COOKIE, csv_cell
from luma_nb.relay.settings import issue_teacher_token
from luma_nb.sandbox import Sandbox
from tests.relay_support import Classroom, TeacherSession

HOSTILE = ["<script>alert(1)</script>", "\"quoted\" & 'single'", "=cmd|' /C calc'!A0"]
HOSTILE_PROMPT = '<img src=x onerror="alert(1)"> "} = @SUM(A1) </video><script>x()</script>'


@pytest.fixture
def room(sandbox: Sandbox, tmp_path) -> Iterator[Classroom]:
    classroom = Classroom(sandbox, tmp_path, students=0, student_budget=30)
    classroom.tokens = classroom.relay.add_students(names=HOSTILE)
    yield classroom
    classroom.close()


class _Elements(HTMLParser):
    """Every start tag of a page, with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _tags(markup: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Elements()
    parser.feed(markup)
    return parser.tags


def test_without_the_teacher_token_nothing_gets_in(room):
    url = room.url
    first = requests.get(url + "/teacher", timeout=10, allow_redirects=False)
    assert first.status_code == 302 and first.headers["Location"] == "/teacher/login"
    for path in ("/teacher/live.json", "/teacher/ledger.csv"):
        assert requests.get(url + path, timeout=10).status_code == 403
    # A student's token is a token of the class, but not the teacher's.
    student = requests.Session()
    student.headers["Authorization"] = room.tokens[0].token
    assert student.get(url + "/teacher/live.json", timeout=10).status_code == 403
    student.get(url + "/teacher/login", timeout=10)
    xsrf = student.cookies["_xsrf"]
    for token in (room.tokens[0].token, "", "lnbt_guess"):
        answer = student.post(
            url + "/teacher/login", data={"_xsrf": xsrf, "token": token}, timeout=10
        )
        assert answer.status_code == 403
        assert "not the teacher" in answer.text
        assert SESSION_COOKIE not in student.cookies
    issue_teacher_token(room.relay.store)  # a teacher exists now; still not these tokens
    answer = student.post(
        url + "/teacher/login", data={"_xsrf": xsrf, "token": room.tokens[1].token}, timeout=10
    )
    assert answer.status_code == 403


def test_the_session_cookie_is_signed_httponly_strict_and_ends_with_a_new_token(room):
    teacher = TeacherSession(room)
    login = teacher.answers[-1]
    cookie = login.headers["Set-Cookie"]
    assert cookie.startswith(SESSION_COOKIE + "=")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/teacher" in cookie
    assert teacher.get("/teacher").status_code == 200
    forged = requests.Session()
    forged.cookies.set(SESSION_COOKIE, "teacher", path="/teacher")
    assert forged.get(room.url + "/teacher/live.json", timeout=10).status_code == 403
    issue_teacher_token(room.relay.store)  # the teacher made a new one: old sessions end
    assert teacher.get("/teacher/live.json").status_code == 403


def test_every_post_needs_the_xsrf_token(room):
    teacher = TeacherSession(room)
    url = room.url + "/teacher/act/pause"
    bare = teacher.http.post(url, data={"paused": "1"}, timeout=10)
    wrong = teacher.http.post(url, data={"paused": "1", "_xsrf": "2|00|00|00"}, timeout=10)
    cookies = {SESSION_COOKIE: teacher.http.cookies[SESSION_COOKIE]}
    # A cross-site form would carry the session cookie but not the page's token.
    foreign = requests.post(url, data={"paused": "1"}, cookies=cookies, timeout=10)
    assert [a.status_code for a in (bare, wrong, foreign)] == [403, 403, 403]
    assert not teacher.live()["state"]["class_paused"]
    assert teacher.act("pause", paused="1")["ok"]  # with it, the action runs
    assert teacher.live()["state"]["class_paused"]
    # A plain form post (no script) is answered with a redirect back to the page.
    plain = teacher.post("/teacher/act/pause", {"paused": "0"})
    assert plain.status_code == 303 and plain.headers["Location"] == "/teacher"
    assert not teacher.live()["state"]["class_paused"]
    logout = teacher.post("/teacher/logout", {})
    assert logout.status_code == 303
    assert teacher.get("/teacher/live.json").status_code == 403


def test_hostile_names_and_prompts_are_escaped_everywhere_and_the_csp_is_strict(room):
    teacher = TeacherSession(room)
    assert teacher.act("approve-mode", on="1")["ok"]
    room.client(0).imagine(HOSTILE_PROMPT)
    page = teacher.get("/teacher")
    live = teacher.live()
    assert page.status_code == 200
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert live["state"]["held"][0]["prompt"] == HOSTILE_PROMPT  # JSON keeps it as data
    markups = [page.text, *live["html"].values()]
    for markup in markups:
        for raw in [*HOSTILE[:2], HOSTILE_PROMPT, "<script>x()", "<img"]:
            assert raw not in markup
        for tag, attrs in _tags(markup):
            assert tag not in ("img", "iframe", "object", "embed")
            assert not any(name.startswith("on") for name in attrs), (tag, attrs)
            if tag == "script":
                assert attrs.get("src") == "/teacher/static/dashboard.js"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "&quot;quoted&quot; &amp; &#x27;single&#x27;" in page.text
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in live["html"]["held"]
    script = teacher.get("/teacher/static/dashboard.js")
    assert script.status_code == 200 and "javascript" in script.headers["Content-Type"]
    assert teacher.get("/teacher/static/../dashboard.py").status_code == 404


def test_the_ledger_csv_is_safe_against_formula_injection(room):
    teacher = TeacherSession(room)
    bad = room.client(2)  # the student named =cmd|' /C calc'!A0
    bad.imagine("a lighthouse").wait(timeout=30)
    answer = teacher.get("/teacher/ledger.csv")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in answer.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert [r["kind"] for r in rows] == ["reserve", "charge"]
    assert {r["student"] for r in rows} == {"'" + HOSTILE[2]}
    assert all(r["credits"] == "6" for r in rows)
    for line in answer.text.splitlines()[1:]:
        for cell in next(csv.reader([line])):
            assert cell[:1] not in ("=", "+", "-", "@", "|")
    assert [csv_cell(v) for v in ("=1+1", "+1", "-1", "@x", "\tx", "ok", 6.0)] == [
        "'=1+1",
        "'+1",
        "'-1",
        "'@x",
        "'\tx",
        "ok",
        6.0,
    ]


def test_the_gallery_plays_finished_videos_and_the_teacher_hides_one(room):
    teacher = TeacherSession(room)
    task = room.client(1).imagine("a paper boat").wait(timeout=30)
    [item] = teacher.live()["state"]["gallery"]
    assert (item["task_id"], item["video_url"], item["hidden"]) == (
        task.task_id,
        task.video_url,
        False,
    )
    page = teacher.get("/teacher")
    tags = _tags(page.text)
    # A poster and a play link through the relay; no player, no video URL on the page.
    assert not [a for tag, a in tags if tag == "video"] and task.video_url not in page.text
    [poster] = [a for tag, a in tags if tag == "img"]
    assert poster["src"] == f"/teacher/poster/{task.task_id}" and poster["loading"] == "lazy"
    [play] = [a for tag, a in tags if tag == "a" and a.get("data-luma") == "play"]
    assert play["href"] == f"/teacher/play/{task.task_id}"
    csp = page.headers["Content-Security-Policy"]
    assert "img-src 'self' http: https:" in csp and "media-src http: https:" in csp

    # Play: the relay sends the browser to the video; the poster to the sandbox's poster.
    played = teacher.get(play["href"])
    assert played.status_code == 302 and played.headers["Location"] == task.video_url
    shown = teacher.get(poster["src"])
    assert shown.status_code == 302
    assert shown.headers["Location"] == f"{room.sandbox.base_url}/media/{task.task_id}.jpg"
    image = requests.get(shown.headers["Location"], timeout=10)
    assert image.status_code == 200 and image.headers["Content-Type"] == "image/jpeg"
    for path in ("/teacher/play/no-such-task", "/teacher/poster/no-such-task"):
        assert teacher.get(path).status_code == 404
    stranger = requests.get(room.url + play["href"], timeout=10, allow_redirects=False)
    assert stranger.status_code == 403  # the teacher's only

    assert teacher.act("hide", task_id=task.task_id, hidden="1")["ok"]
    assert teacher.live()["state"]["gallery"][0]["hidden"]
    _, items = room.relay.store.gallery()
    assert not items[-1].visible
    assert "Show" in teacher.live()["html"]["gallery"]
    assert teacher.get(play["href"]).status_code == 302  # the teacher still sees a hidden one
    assert teacher.act("hide", task_id=task.task_id, hidden="0")["ok"]
    assert room.relay.store.gallery()[1][-1].visible
    assert not teacher.act("hide", task_id="no-such-task", hidden="1")["ok"]


def test_a_gallery_of_many_videos_has_no_player_and_no_media_url_until_played(
    sandbox: Sandbox, tmp_path
):
    room = Classroom(sandbox, tmp_path, students=4)
    try:
        teacher = TeacherSession(room)
        # One prompt for all: the sandbox renders it once and serves the rest from its cache.
        jobs = [
            room.client(n).extend(sandbox.demo_parents[0].task_id, "the same wave")
            for n in range(4)
            for _ in range(10)
        ]
        tasks = [job.wait(timeout=120) for job in jobs]
        assert len(teacher.live()["state"]["gallery"]) == 40
        page = teacher.get("/teacher").text
        fragment = teacher.live()["html"]["gallery"]
        for markup in (page, fragment):
            tags = _tags(markup)
            assert not [a for tag, a in tags if tag in ("video", "source", "audio")]
            assert ".mp4" not in markup and sandbox.base_url not in markup
            assert not any(t.video_url in markup for t in tasks)
            posters = [a["src"] for tag, a in tags if tag == "img"]
            assert len(posters) == 40 and all(p.startswith("/teacher/poster/") for p in posters)
            plays = [a for tag, a in tags if tag == "a" and a.get("data-luma") == "play"]
            assert len(plays) == 40
    finally:
        room.close()


def test_without_a_sandbox_upstream_a_card_shows_its_prompt_instead_of_a_poster():
    from luma_nb.relay.dashboard_pages import fragment

    class Page:
        def url(self, path: str = "") -> str:
            return "/teacher" + path

        def xsrf_input(self) -> str:
            return ""

    state = {
        "upstream_service": "api",
        "gallery": [
            {
                "task_id": "t1",
                "student": "Ada",
                "prompt": "a <b>bold</b> kite",
                "video_url": "https://cdn.example.invalid/t1.mp4",
                "hidden": False,
                "shared": True,
            }
        ],
    }
    markup = fragment("gallery", Page(), state)
    assert "<img" not in markup and "cdn.example" not in markup and "<video" not in markup
    assert 'data-luma="poster"' in markup and "a &lt;b&gt;bold&lt;/b&gt; kite" in markup


def test_no_key_or_token_in_any_page_json_csv_or_log(room, caplog):
    caplog.set_level(logging.DEBUG)
    teacher = TeacherSession(room)
    assert teacher.act("approve-mode", on="1")["ok"]
    job = room.client(0).imagine("to approve")
    room.client(1).imagine("to reject")
    held = teacher.live()["state"]["held"]
    assert teacher.act("approve", submit_id=str(held[0]["submit_id"]))["ok"]
    assert teacher.act("reject", submit_id=str(held[1]["submit_id"]), reason="no")["ok"]
    job.wait(timeout=30)
    for path in ("/teacher", "/teacher/live.json", "/teacher/ledger.csv", "/teacher/login"):
        teacher.get(path)
    teacher.get("/teacher/static/dashboard.js")
    teacher.get("/teacher/static/dashboard.css")
    secrets = [room.sandbox.api_key, teacher.token, *(t.token for t in room.tokens)]
    assert len(teacher.answers) > 10
    for answer in teacher.answers:
        seen = answer.text + "\n".join(f"{k}: {v}" for k, v in answer.headers.items())
        for secret in secrets:
            assert secret not in seen, answer.url
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "/teacher/act/approve" in logged  # the log has the requests, not their secrets
    for secret in secrets:
        assert secret not in logged


def test_another_deployment_adds_its_own_teacher_check(room):
    """The hook a Hub deployment uses: a check of its own, asked after the session cookie."""
    from luma_nb.relay.dashboard import add_teacher_check

    async def header_check(handler):
        # Stands for a Hub's OAuth: here, a header only this test sends.
        return "hub-admin" if handler.request.headers.get("X-Test-Teacher") == "yes" else None

    add_teacher_check(room.relay.app, header_check, login_url="/hub/login")
    url = room.url + "/teacher"
    ok = requests.get(url + "/live.json", headers={"X-Test-Teacher": "yes"}, timeout=10)
    assert ok.status_code == 200 and "students" in ok.json()["state"]
    assert requests.get(url + "/live.json", timeout=10).status_code == 403
    stranger = requests.get(url, timeout=10, allow_redirects=False)
    assert stranger.headers["Location"] == "/hub/login?next=/teacher"
    assert TeacherSession(room).get("/teacher").status_code == 200  # the token still works


def test_a_video_the_teacher_hides_leaves_the_students_gallery(room):
    teacher = TeacherSession(room)
    client = room.client(0)
    task = room.client(1).imagine("a lantern").wait(timeout=30)
    first = client.class_gallery(0)
    assert [v.task_id for v in first.videos] == [task.task_id]
    assert teacher.act("hide", task_id=task.task_id, hidden="1")["ok"]
    later = client.class_gallery(first.seq, wait=10)
    assert later.seq > first.seq and later.removed == (task.task_id,) and not later.videos
    assert teacher.act("hide", task_id=task.task_id, hidden="0")["ok"]
    again = client.class_gallery(later.seq, wait=10)
    assert [v.task_id for v in again.videos] == [task.task_id]
