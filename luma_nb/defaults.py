"""``default_client()``: a class relay when one is set, the real API when a key is set, else the
offline sandbox (demo mode)."""

from __future__ import annotations

import contextlib
import os
import threading

from .api import hooks
from .api.client import LumaClient
from .contract.errors import ValidationError

__all__ = ("DEMO_SPEED", "class_url", "default_client", "demo_parent_ids", "demo_parent_ratios")

#: Sandbox speed-up in demo mode: a job takes 60-300 simulated seconds, so 6-30 s in real time
#: (realistic, yet short enough for a class). ``LUMA_NB_SANDBOX_SPEED`` overrides it.
DEMO_SPEED = 10.0

#: How long the launcher waits for a service to say who it is.
_IDENTIFY_SECONDS = 5.0
_client: LumaClient | None = None
_class_token: str | None = None  # the token the cached class client was made with
_lock = threading.Lock()


def _speed() -> float:
    text = os.environ.get("LUMA_NB_SANDBOX_SPEED", "").strip()
    if not text:
        return DEMO_SPEED
    try:
        value = float(text)
    except ValueError:
        value = float("nan")  # refused just below, with the same message
    if not value > 0:
        raise ValueError(f"LUMA_NB_SANDBOX_SPEED must be a positive number, got {text!r}.")
    return value


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
        if os.environ.get("APIFRAME_API_KEY", "").strip():
            _client = LumaClient()
            _identify(_client)
            return _client
        from .sandbox import shared_sandbox

        sandbox = shared_sandbox(speed=_speed())
        _client = LumaClient(sandbox.api_key, base_url=sandbox.base_url, service="sandbox")
        return _client


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
    text = os.environ.get("LUMA_NB_CLASS_URL", "").strip()
    return text.rstrip("/") or None


def _class_client(url: str, cached: LumaClient | None) -> LumaClient:
    """The client of the class relay at ``url``: ``cached`` while URL and token are the same."""
    global _class_token
    token = os.environ.get("LUMA_NB_CLASS_TOKEN", "").strip() or _hub_token()
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


def _hub_token() -> str:
    """The Hub token of this JupyterHub user's server, or "" outside a Hub's server.

    A Hub sets ``JUPYTERHUB_API_TOKEN`` with ``JUPYTERHUB_API_URL`` and ``JUPYTERHUB_USER`` in
    every user's server (and its kernels); all three must be there, so a stray token alone
    (a Hub service's, say) is never sent.
    """
    if not all(os.environ.get(v, "").strip() for v in ("JUPYTERHUB_API_URL", "JUPYTERHUB_USER")):
        return ""
    return os.environ.get("JUPYTERHUB_API_TOKEN", "").strip()


def _usable(client: LumaClient) -> bool:
    """False when the cached demo client's sandbox has been stopped since (then start anew)."""
    if client.has_key and os.environ.get("APIFRAME_API_KEY", "").strip():
        return True  # a client of the configured service, not of the shared sandbox
    if not client.is_sandbox:
        return True
    from .sandbox import shared_sandbox

    try:
        return shared_sandbox(speed=_speed()).base_url == client.base_url
    except Exception:
        return False


def demo_parent_ids(client: LumaClient) -> tuple[tuple[str, str], ...]:
    """``(task_id, prompt)`` of the ready-made parents every sandbox has; empty for the real API."""
    if not client.is_sandbox:
        return ()
    try:
        from .sandbox import DEMO_PARENTS
    except ImportError:  # pragma: no cover - the sandbox ships with the package
        return ()
    return tuple((p.task_id, p.prompt) for p in DEMO_PARENTS)


def demo_parent_ratios(client: LumaClient) -> dict[str, str]:
    """``task_id -> aspect ratio`` of the sandbox's ready-made parents; empty for the real API."""
    if not client.is_sandbox:
        return {}
    from .sandbox import DEMO_PARENTS

    return {p.task_id: p.aspect_ratio for p in DEMO_PARENTS}


# The layers below ask for the default client (and the demo parents) through these slots.
hooks.default_client.fill(default_client)
hooks.demo_parents.fill(demo_parent_ids)
hooks.demo_ratios.fill(demo_parent_ratios)
