"""A class for the relay tests: a real relay on 127.0.0.1 port 0 in front of a real sandbox.

``Classroom(sandbox, tmp_path, **relay_options)`` starts the relay (its SQLite file in
``tmp_path``), makes student tokens, and gives plain HTTP helpers and ready ``LumaClient``s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests

from luma_nb import LumaClient
from luma_nb.contract.polling import FixedPolicy
from luma_nb.relay import IssuedToken, Relay
from luma_nb.sandbox import Sandbox

#: The relay's poller looks this often in tests (the sandbox runs fast too).
POLL = 0.05


class Classroom:
    """A started relay in front of ``sandbox``, with ``students`` tokens made."""

    def __init__(
        self, sandbox: Sandbox, folder: Path, *, students: int = 2, **options: Any
    ) -> None:
        options.setdefault("poll", FixedPolicy(POLL))
        options.setdefault("class_name", "Year 9 Art")
        # The parent ``extend`` uses is published, as a rehearsal publishes the demo parents.
        options.setdefault("publish", [sandbox.demo_parents[0].task_id])
        self.sandbox = sandbox
        self.db = folder / "class.sqlite"
        self.options = options
        self.relay = Relay(sandbox.base_url, api_key=sandbox.api_key, db=self.db, **options)
        self.relay.start()
        self.tokens: list[IssuedToken] = self.relay.add_students(students) if students else []
        self._sessions: list[requests.Session] = []
        self._clients: list[LumaClient] = []

    @property
    def url(self) -> str:
        """The relay's base URL."""
        return self.relay.base_url

    def restart(self, **changes: Any) -> Relay:
        """Stop the relay and start a new one on the same database (a crash or restart)."""
        port = self.relay.port
        self.relay.stop()
        options = self.options | {"port": port} | changes
        self.relay = Relay(
            self.sandbox.base_url, api_key=self.sandbox.api_key, db=self.db, **options
        ).start()
        return self.relay

    def http(self, student: int = 0) -> requests.Session:
        """A plain session sending student ``student``'s token."""
        session = requests.Session()
        session.headers["Authorization"] = self.tokens[student].token
        self._sessions.append(session)
        return session

    def post(self, path: str, body: Any, student: int = 0) -> requests.Response:
        """POST JSON as a student."""
        return self.http(student).post(self.url + path, json=body, timeout=10)

    def client(self, student: int = 0) -> LumaClient:
        """A LumaClient for the student, exactly as a notebook makes it."""
        client = LumaClient(
            self.tokens[student].token, base_url=self.url, poll=FixedPolicy(POLL), journal=None
        )
        self._clients.append(client)
        return client

    def extend(self, student: int = 0, prompt: str = "the tide comes in") -> requests.Response:
        """An extend of the first demo parent, as plain HTTP."""
        parent = self.sandbox.demo_parents[0].task_id
        return self.post("/luma-extend", {"parent_task_id": parent, "prompt": prompt}, student)

    def upstream_submits(self) -> int:
        """Submits that reached the sandbox."""
        return self.sandbox.count("/luma-extend") + self.sandbox.count("/luma-imagine")

    def close(self) -> None:
        """Stop the relay and close every session."""
        for session in self._sessions:
            session.close()
        for client in self._clients:
            client.close()
        self.relay.stop()


class TeacherSession:
    """The teacher in a plain HTTP session: logged in at ``/teacher`` with the XSRF cookie."""

    def __init__(self, room: Classroom, token: str | None = None) -> None:
        from luma_nb.relay.settings import issue_teacher_token

        self.room = room
        self.token = token or issue_teacher_token(room.relay.store)
        self.http = requests.Session()
        room._sessions.append(self.http)
        self.answers: list[requests.Response] = []
        """Every answer the dashboard gave this session (to look for leaked secrets)."""
        login = self.get("/teacher/login")
        assert login.status_code == 200, login.text
        answer = self.post("/teacher/login", {"token": self.token})
        assert answer.status_code == 303, (answer.status_code, answer.text)

    @property
    def xsrf(self) -> str:
        """The XSRF cookie Tornado set (the forms carry the same token)."""
        return str(self.http.cookies.get("_xsrf", ""))

    def get(self, path: str) -> requests.Response:
        """GET a dashboard path (redirects are not followed)."""
        answer = self.http.get(self.room.url + path, timeout=10, allow_redirects=False)
        self.answers.append(answer)
        return answer

    def post(self, path: str, fields: dict[str, str]) -> requests.Response:
        """POST a form with the XSRF token, as the page's forms do."""
        answer = self.http.post(
            self.room.url + path,
            data={"_xsrf": self.xsrf, **fields},
            timeout=60,
            allow_redirects=False,
        )
        self.answers.append(answer)
        return answer

    def act(self, action: str, **fields: str) -> dict[str, Any]:
        """One of the dashboard's actions, as the page's script posts it; its JSON outcome."""
        answer = self.http.post(
            f"{self.room.url}/teacher/act/{action}",
            data={"_xsrf": self.xsrf, **fields},
            headers={"X-Luma-Dashboard": "1"},
            timeout=60,
        )
        self.answers.append(answer)
        outcome: dict[str, Any] = answer.json()
        return outcome

    def live(self) -> dict[str, Any]:
        """The dashboard's live JSON (its ``state`` and ``html`` sections)."""
        answer = self.get("/teacher/live.json")
        assert answer.status_code == 200, answer.text
        live: dict[str, Any] = answer.json()
        return live
