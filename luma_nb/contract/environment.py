"""Every environment variable luma_nb reads, read in this one place.

:func:`environment` reads them when called (not at import), so a change made in a notebook
(``os.environ[...] = ...``) counts from the next call on. An explicit argument always wins over
a variable, and a variable over the default: ``LumaClient(api_key=...)`` beats
``APIFRAME_API_KEY``. The README's table lists the same names.

The separate programs read their own few settings here too: the sandbox its speed and cache,
the relay its upstream key and URL, and what a JupyterHub tells the relay as its service.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ("VARIABLES", "Environment", "environment")

#: Every variable read, with what it does (the README's table says the same).
VARIABLES: dict[str, str] = {
    "APIFRAME_API_KEY": "the API key; without it, notebooks run against the offline sandbox",
    "APIFRAME_BASE_URL": "another service speaking the same API (default the real API)",
    "APIFRAME_WEBHOOK_SECRET": "the webhook secret `luma-nb extend --webhook-url` sends",
    "LUMA_NB_CLASS_URL": "a classroom relay: default_client() talks to it",
    "LUMA_NB_CLASS_TOKEN": "the student's class token for that relay",
    "JUPYTERHUB_API_TOKEN": "on a JupyterHub server: who the student is, without a class token",
    "JUPYTERHUB_API_URL": "on a JupyterHub server (set by the Hub)",
    "JUPYTERHUB_USER": "on a JupyterHub server (set by the Hub)",
    "JUPYTERHUB_SERVICE_PREFIX": "on a JupyterHub server: the browser is elsewhere",
    "JUPYTERHUB_SERVICE_URL": "on a JupyterHub server or Hub service: where it listens",
    "JUPYTERHUB_SERVICE_NAME": "the relay as a Hub service (`--hub`): its name (set by the Hub)",
    "LUMA_NB_HOME": "where the journal lives (default the user's data folder)",
    "XDG_DATA_HOME": "the user's data folder (Linux)",
    "LOCALAPPDATA": "the user's data folder (Windows)",
    "LUMA_NB_SANDBOX_SPEED": "how much faster than real time the demo sandbox runs (default 10)",
    "LUMA_NB_SANDBOX_CACHE": "where the sandbox keeps its demo parents' videos; empty: nowhere",
    "XDG_CACHE_HOME": "the user's cache folder (default ~/.cache)",
    "LUMA_NB_KEEP_VIDEOS": "1/0: keep copies of shown videos beside the notebook",
    "LUMA_NB_KEEP_VIDEOS_MB": "the most those copies may take (default 100)",
    "LUMA_NB_REMOTE_BROWSER": "1/0: the browser is (not) on another machine than the kernel",
    "JUPYTER_RUNTIME_DIR": "where the kernel's Jupyter server describes itself",
    "JPY_PARENT_PID": "the kernel's Jupyter server (set by Jupyter)",
}

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _switch(text: str) -> bool | None:
    """``1/true/yes/on`` -> True, ``0/false/no/off`` -> False, anything else -> None (unset)."""
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return None


@dataclass(frozen=True)
class Environment:
    """What the environment says; ``""`` (or None for a switch) where a variable is unset."""

    api_key: str
    """``APIFRAME_API_KEY``, stripped."""
    base_url: str
    """``APIFRAME_BASE_URL``."""
    webhook_secret: str
    """``APIFRAME_WEBHOOK_SECRET``."""
    class_url: str
    """``LUMA_NB_CLASS_URL`` without a trailing slash."""
    class_token: str
    """``LUMA_NB_CLASS_TOKEN``."""
    hub_token: str
    """``JUPYTERHUB_API_TOKEN``, only inside a Hub user's server (with its API URL and user)."""
    hub_api_token: str
    """``JUPYTERHUB_API_TOKEN`` as it is (what a Jupyter server may accept from its kernel)."""
    hub_service_url: str
    """``JUPYTERHUB_SERVICE_URL``: where a Hub user's server listens."""
    hub_service_prefix: str
    """``JUPYTERHUB_SERVICE_PREFIX``."""
    hub_service_name: str
    """``JUPYTERHUB_SERVICE_NAME``: a Hub-managed service's name."""
    hub_api_url: str
    """``JUPYTERHUB_API_URL``: the Hub's REST API."""
    home: str
    """``LUMA_NB_HOME``."""
    xdg_data_home: str
    """``XDG_DATA_HOME``."""
    local_app_data: str
    """``LOCALAPPDATA``."""
    sandbox_speed: str
    """``LUMA_NB_SANDBOX_SPEED`` as written (see :meth:`speed`)."""
    sandbox_cache: str | None
    """``LUMA_NB_SANDBOX_CACHE``; None when unset, ``""`` when set empty (no cache)."""
    xdg_cache_home: str
    """``XDG_CACHE_HOME``."""
    keep_videos: bool | None
    """``LUMA_NB_KEEP_VIDEOS`` as a switch; None when unset."""
    keep_videos_mb: str
    """``LUMA_NB_KEEP_VIDEOS_MB`` as written."""
    remote_browser: bool | None
    """``LUMA_NB_REMOTE_BROWSER`` as a switch; None when unset."""
    jupyter_runtime_dir: str
    """``JUPYTER_RUNTIME_DIR``."""
    jpy_parent_pid: str
    """``JPY_PARENT_PID``."""

    def speed(self, default: float) -> float:
        """The sandbox speed: ``LUMA_NB_SANDBOX_SPEED``, else ``default``. Raises
        :class:`ValueError` for anything but a positive number."""
        text = self.sandbox_speed
        if not text:
            return default
        try:
            value = float(text)
        except ValueError:
            value = float("nan")  # refused just below, with the same message
        if not value > 0:
            raise ValueError(f"LUMA_NB_SANDBOX_SPEED must be a positive number, got {text!r}.")
        return value


def environment(env: Mapping[str, str] | None = None) -> Environment:
    """Read the variables now, from ``env`` (default ``os.environ``)."""
    env = os.environ if env is None else env

    def get(name: str) -> str:
        return (env.get(name) or "").strip()

    in_hub = bool(get("JUPYTERHUB_API_URL") and get("JUPYTERHUB_USER"))
    return Environment(
        api_key=get("APIFRAME_API_KEY"),
        base_url=get("APIFRAME_BASE_URL"),
        webhook_secret=get("APIFRAME_WEBHOOK_SECRET"),
        class_url=get("LUMA_NB_CLASS_URL").rstrip("/"),
        class_token=get("LUMA_NB_CLASS_TOKEN"),
        hub_token=get("JUPYTERHUB_API_TOKEN") if in_hub else "",
        hub_api_token=get("JUPYTERHUB_API_TOKEN"),
        hub_service_url=get("JUPYTERHUB_SERVICE_URL"),
        hub_service_prefix=get("JUPYTERHUB_SERVICE_PREFIX"),
        hub_service_name=get("JUPYTERHUB_SERVICE_NAME"),
        hub_api_url=get("JUPYTERHUB_API_URL"),
        home=get("LUMA_NB_HOME"),
        xdg_data_home=get("XDG_DATA_HOME"),
        local_app_data=get("LOCALAPPDATA"),
        sandbox_speed=get("LUMA_NB_SANDBOX_SPEED"),
        sandbox_cache=env.get("LUMA_NB_SANDBOX_CACHE"),
        xdg_cache_home=get("XDG_CACHE_HOME"),
        keep_videos=_switch(get("LUMA_NB_KEEP_VIDEOS")),
        keep_videos_mb=get("LUMA_NB_KEEP_VIDEOS_MB"),
        remote_browser=_switch(get("LUMA_NB_REMOTE_BROWSER")),
        jupyter_runtime_dir=get("JUPYTER_RUNTIME_DIR"),
        jpy_parent_pid=get("JPY_PARENT_PID"),
    )
