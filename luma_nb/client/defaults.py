"""The default client of a notebook, and what is done with it when no client is named.

``default_client()`` is a class relay when one is set, the real API when a key is set, else the
offline sandbox (demo mode), which it starts. ``resume()`` and ``history()`` act on the default
client's journal; the demo parents are the sandbox's ready-made videos to extend.
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING

from ..contract.environment import environment
from ..contract.errors import ValidationError
from ..contract.polling import DefaultPolicy
from .client import LumaClient

if TYPE_CHECKING:
    from .history import History
    from .job import Job

__all__ = (
    "DEMO_SPEED",
    "class_start_videos",
    "class_url",
    "default_client",
    "demo_parent_ids",
    "demo_parent_ratios",
    "history",
    "resume",
    "sandbox_client",
)

#: Sandbox speed-up in demo mode: a job takes 60-300 simulated seconds, so 6-30 s in real time
#: (realistic, yet short enough for a class). ``LUMA_NB_SANDBOX_SPEED`` overrides it.
DEMO_SPEED = 10.0

#: How long the launcher waits for a service to say who it is.
_IDENTIFY_SECONDS = 5.0
_client: LumaClient | None = None
_class_token: str | None = None  # the token the cached class client was made with
_lock = threading.Lock()


def _speed() -> float:
    return environment().speed(DEMO_SPEED)


def default_client() -> LumaClient:
    """The client notebooks use when none is given, made once per process.

    With ``LUMA_NB_CLASS_URL`` set: the class relay at that URL, with the student's
    ``LUMA_NB_CLASS_TOKEN`` (the teacher's key stays on the relay); on JupyterHub, where the
    Hub's config sets the URL for every server, without a class token the server's own
    ``JUPYTERHUB_API_TOKEN`` says who the student is. Else, with
    ``APIFRAME_API_KEY`` set: ``LumaClient()`` (the real API, which costs credits).
    Without it: demo mode - the process-wide offline sandbox is started (speed
    ``LUMA_NB_SANDBOX_SPEED``, default 10: jobs take 6-30 s) and the client points at it;
    ``client.is_sandbox`` is then True.
    """
    global _client
    with _lock:
        relay = class_url()
        if relay is not None:
            _client = _class_client(relay, _client)
            return _client
        if _client is not None and _usable(_client):
            return _client
        if environment().api_key:
            _client = LumaClient()
            _identify(_client)
            return _client
        _client = sandbox_client()
        return _client


def sandbox_client() -> LumaClient:
    """A client of the process-wide offline sandbox (started on first use), whatever key or
    class is configured: what "use the offline sandbox instead" switches a form to.

    The sandbox runs at ``LUMA_NB_SANDBOX_SPEED`` (default 10: jobs take 6-30 s); no credits
    are spent.
    """
    from ..sandbox import shared_sandbox

    speed = _speed()
    sandbox = shared_sandbox(speed=speed)
    # The sandbox's clock runs `speed` times faster: so does the polling, so a demo job gets
    # as many looks as a real one and its bar moves.
    return LumaClient(
        sandbox.api_key,
        base_url=sandbox.base_url,
        service="sandbox",
        poll=DefaultPolicy.at_speed(speed),
    )


def _identify(client: LumaClient) -> None:
    """Ask a service at an undocumented URL who it is (``GET /account`` is free); the answer's
    ``X-Luma-NB-Service`` header sets ``client.service``. Silence and errors leave it unknown."""
    if client.service != "unknown":
        return
    with contextlib.suppress(Exception):
        client._request("GET", "/account", timeout=_IDENTIFY_SECONDS)


# -- a class relay (luma-nb class serve) ---------------------------------------------------------


def class_url() -> str | None:
    """The class relay's URL from ``LUMA_NB_CLASS_URL`` (without a trailing slash), or None."""
    return environment().class_url or None


def _class_client(url: str, cached: LumaClient | None) -> LumaClient:
    """The client of the class relay at ``url``: ``cached`` while URL and token are the same."""
    global _class_token
    env = environment()
    token = env.class_token or env.hub_token
    if not token:
        raise ValidationError(
            "LUMA_NB_CLASS_URL is set but LUMA_NB_CLASS_TOKEN is not: set it to the class token "
            "your teacher gave you.",
            field="LUMA_NB_CLASS_TOKEN",
        )
    if cached is not None and cached.base_url == url and _class_token == token:
        return cached
    _class_token = token
    # The token, never APIFRAME_API_KEY: a student's own key must not go to the relay.
    client = LumaClient(token, base_url=url)
    _identify(client)  # the relay says so, and names the class, in its headers
    return client


def _usable(client: LumaClient) -> bool:
    """False when the cached demo client's sandbox has been stopped since (then start anew)."""
    if client.has_key and environment().api_key:
        return True  # a client of the configured service, not of the shared sandbox
    if not client.is_sandbox:
        return True
    from ..sandbox import shared_sandbox

    try:
        return shared_sandbox(speed=_speed()).base_url == client.base_url
    except Exception:
        return False


def demo_parent_ids(client: LumaClient) -> tuple[tuple[str, str], ...]:
    """``(task_id, prompt)`` of the ready-made parents every sandbox has; empty for the real API."""
    if not client.is_sandbox:
        return ()
    try:
        from ..sandbox import DEMO_PARENTS
    except ImportError:  # pragma: no cover - the sandbox ships with the package
        return ()
    return tuple((p.task_id, p.prompt) for p in DEMO_PARENTS)


def class_start_videos(client: LumaClient) -> list[tuple[str, str, str, str | None]]:
    """The sandbox's demo parents that ``client``'s service has, finished: the start videos of a
    class relay whose upstream is the sandbox. ``(task_id, prompt, aspect_ratio, video_url)``
    each; empty when the service has none (the real API) or does not answer. One fetch, free.
    """
    from ..sandbox import DEMO_PARENTS

    known = {p.task_id: p for p in DEMO_PARENTS}
    try:
        tasks = client.fetch_many(list(known))
    except Exception:
        return []
    return [
        (t.task_id, known[t.task_id].prompt, known[t.task_id].aspect_ratio, t.video_url)
        for t in tasks
        if t.is_finished and t.task_id in known
    ]


def demo_parent_ratios(client: LumaClient) -> dict[str, str]:
    """``task_id -> aspect ratio`` of the sandbox's ready-made parents; empty for the real API."""
    if not client.is_sandbox:
        return {}
    from ..sandbox import DEMO_PARENTS

    return {p.task_id: p.aspect_ratio for p in DEMO_PARENTS}


# -- the default client's journal ------------------------------------------------------------


def resume(client: LumaClient | None = None) -> list[Job]:
    """``(client or default_client()).resume()``: re-attach to every unfinished job recorded in
    the journal and watch them (see :meth:`LumaClient.resume`)."""
    return (client or default_client()).resume()


def history(limit: int = 50) -> History:
    """Past submits in the default journal, newest first (a table in notebooks); its
    ``resubmit`` uses :func:`default_client` unless given a client."""
    from .journal import Journal

    journal = Journal()
    return journal.history(limit, client=default_client)
