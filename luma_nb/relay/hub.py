"""JupyterHub mode: the relay as a Hub-managed service, students known by their Hub tokens.

A student's kernel sends its ``JUPYTERHUB_API_TOKEN`` (the token the Hub gives every user's
server) instead of a class token. :class:`HubIdentity` asks the Hub who owns it with
``GET {JUPYTERHUB_API_URL}/user`` and that token: the Hub lets every token identify its owner
(name, admin flag and groups) with no extra scope, so the relay's own service token needs no
role for it. Answers are cached briefly (by the token's hash, never the token; a bounded
cache), so a revoked token is refused within ``cache_seconds``.

A teacher, in Hub mode, is a Hub admin or a member of ``teacher_group``.

Only Tornado is needed here; the Hub's own OAuth helpers (``jupyterhub.services.auth``) are
imported lazily, by the browser pages that need them, since jupyterhub is installed wherever
the Hub runs.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import tornado.httpclient

from ..contract.environment import environment

__all__ = (
    "HubIdentity",
    "HubService",
    "HubUnavailable",
    "HubUser",
    "service_from_env",
    "user_from_model",
)

log = logging.getLogger("luma_nb.relay")

#: How long an answer of the Hub is trusted (seconds): the most a revoked token keeps working.
CACHE_SECONDS = 30.0
#: How long "this token is unknown" is remembered (a flood of bad tokens does not reach the Hub).
UNKNOWN_SECONDS = 5.0
#: How many tokens' answers are kept (the oldest go first).
CACHE_SIZE = 4096


class HubUnavailable(Exception):
    """The Hub could not be asked (down, slow, or an unexpected answer): the relay answers 503."""


@dataclass(frozen=True)
class HubUser:
    """A Hub user, as the Hub described the owner of a token."""

    name: str
    """The Hub user name (the student's name in the class)."""
    admin: bool = False
    """True for a Hub admin."""
    groups: frozenset[str] = frozenset()
    """The Hub groups the user is in."""


class HubIdentity:
    """Who sends a token, asked of the Hub's REST API and cached briefly.

    Parameters:
        api_url: the Hub's API (``JUPYTERHUB_API_URL``, e.g. ``http://127.0.0.1:8081/hub/api``).
        teacher_group: members of this Hub group are teachers (admins always are).
        cache_seconds: how long an answer is trusted (0: ask every time).
        cache_size: how many tokens' answers are kept.
        timeout: seconds to wait for the Hub.
        clock: monotonic clock of the cache (injectable for tests).
    """

    def __init__(
        self,
        api_url: str,
        *,
        teacher_group: str | None = None,
        cache_seconds: float = CACHE_SECONDS,
        cache_size: int = CACHE_SIZE,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if urlsplit(api_url).scheme not in ("http", "https"):
            raise ValueError(f"the Hub's API URL must be http(s), got {api_url!r}")
        if cache_seconds < 0 or cache_size < 1:
            raise ValueError("cache_seconds must be >= 0 and cache_size >= 1")
        self.api_url = api_url.rstrip("/")
        self.teacher_group = teacher_group or None
        self.cache_seconds = cache_seconds
        self.cache_size = cache_size
        self.timeout = timeout
        self._clock = clock
        self._cache: OrderedDict[str, tuple[float, HubUser | None]] = OrderedDict()
        self._asking: dict[str, asyncio.Future[HubUser | None]] = {}
        #: How many times the Hub was asked (the cache's effect, for tests and logs).
        self.asked = 0

    def __repr__(self) -> str:
        return f"<HubIdentity {self.api_url} teacher_group={self.teacher_group!r}>"

    async def user(self, token: str) -> HubUser | None:
        """The Hub user owning ``token``; None when the Hub does not know it (or it is a
        service's). Raises HubUnavailable when the Hub cannot be asked."""
        token = _bare(token)
        if not token:
            return None
        key = hashlib.sha256(token.encode("utf-8")).hexdigest()
        now = self._clock()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            self._cache.move_to_end(key)
            return cached[1]
        pending = self._asking.get(key)
        if pending is not None:  # the same token, asked by another request right now
            return await asyncio.shield(pending)
        future: asyncio.Future[HubUser | None] = asyncio.get_running_loop().create_future()
        self._asking[key] = future
        try:
            found = await self._ask(token)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as error:
            future.set_exception(error)
            future.exception()  # marked as retrieved: the waiters, if any, get it
            raise
        else:
            future.set_result(found)
        finally:
            del self._asking[key]
        ttl = self.cache_seconds if found is not None else min(UNKNOWN_SECONDS, self.cache_seconds)
        if ttl > 0:
            self._cache[key] = (self._clock() + ttl, found)
            self._cache.move_to_end(key)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return found

    async def name(self, token: str) -> str | None:
        """The Hub user name owning ``token``, or None (what the relay's handlers ask)."""
        found = await self.user(token)
        return None if found is None else found.name

    def is_teacher(self, user: HubUser | None) -> bool:
        """True for a Hub admin or a member of ``teacher_group``."""
        if user is None:
            return False
        return user.admin or (self.teacher_group is not None and self.teacher_group in user.groups)

    async def teacher(self, token: str) -> HubUser | None:
        """The Hub user owning ``token`` if they are a teacher, else None."""
        found = await self.user(token)
        return found if self.is_teacher(found) else None

    def forget(self) -> None:
        """Drop every cached answer (the next request of each token asks the Hub)."""
        self._cache.clear()

    async def _ask(self, token: str) -> HubUser | None:
        self.asked += 1
        client = tornado.httpclient.AsyncHTTPClient()
        try:
            response = await client.fetch(
                self.api_url + "/user",
                headers={"Authorization": f"token {token}", "Accept": "application/json"},
                request_timeout=self.timeout,
                connect_timeout=self.timeout,
                follow_redirects=False,
                raise_error=False,
            )
        except Exception as error:  # DNS, refused connection: no answer at all
            log.warning("hub: could not ask the Hub who a token is: %s", type(error).__name__)
            raise HubUnavailable(type(error).__name__) from None
        if response.code in (401, 403):
            return None
        if response.code != 200:
            log.warning("hub: the Hub answered %d to a token check", response.code)
            raise HubUnavailable(f"HTTP {response.code}")
        try:
            model = json.loads(response.body)
        except ValueError:
            raise HubUnavailable("the Hub's answer is not JSON") from None
        return user_from_model(model)


def _bare(token: str) -> str:
    """The token without an ``Authorization`` scheme (``token`` or ``Bearer``)."""
    token = token.strip()
    scheme, _, rest = token.partition(" ")
    if scheme.lower() in ("token", "bearer") and rest.strip():
        return rest.strip()
    return token


def user_from_model(model: object) -> HubUser | None:
    """A HubUser from the Hub's ``/user`` model; None for a service or an odd model."""
    if not isinstance(model, dict) or model.get("kind", "user") != "user":
        return None
    name = model.get("name")
    if not isinstance(name, str) or not name.strip():
        return None
    groups = model.get("groups")
    names = frozenset(g for g in groups if isinstance(g, str)) if isinstance(groups, list) else ()
    return HubUser(name=name, admin=model.get("admin") is True, groups=frozenset(names))


@dataclass(frozen=True)
class HubService:
    """Where a Hub-managed service listens and what the Hub tells it (its environment)."""

    name: str
    """``JUPYTERHUB_SERVICE_NAME`` (``luma-class``)."""
    host: str
    """The interface of ``JUPYTERHUB_SERVICE_URL``."""
    port: int
    """The port of ``JUPYTERHUB_SERVICE_URL``."""
    prefix: str
    """``JUPYTERHUB_SERVICE_PREFIX`` (``/services/luma-class/``): the path the proxy sends."""
    api_url: str
    """``JUPYTERHUB_API_URL``: the Hub's REST API."""


def service_from_env(env: Mapping[str, str] | None = None) -> HubService:
    """The service's settings from the environment the Hub gives a managed service.

    Raises ValueError, naming the variable, when one is missing or unreadable (the relay was
    started with ``--hub`` outside a Hub, or without a ``url`` in its service entry).
    """
    settings = environment(env)

    def need(variable: str, value: str) -> str:
        if not value:
            raise ValueError(
                f"{variable} is not set: --hub runs the relay as a JupyterHub-managed service "
                "(an entry with 'url' and 'command' in c.JupyterHub.services)"
            )
        return value

    name = need("JUPYTERHUB_SERVICE_NAME", settings.hub_service_name)
    url = urlsplit(need("JUPYTERHUB_SERVICE_URL", settings.hub_service_url))
    try:
        port = url.port
    except ValueError:
        port = None
    if url.scheme != "http" or not url.hostname or port is None:
        raise ValueError(
            f"JUPYTERHUB_SERVICE_URL must look like http://127.0.0.1:10101, got {url.geturl()!r}"
        )
    prefix = settings.hub_service_prefix or f"/services/{name}/"
    prefix = "/" + prefix.strip("/") + "/"
    api_url = need("JUPYTERHUB_API_URL", settings.hub_api_url)
    return HubService(name, url.hostname, port, prefix, api_url)
