"""JupyterHub mode's browser side: a teacher signs in to the relay's pages through the Hub.

The Hub is the OAuth provider of its services; JupyterHub's own Tornado helpers
(``jupyterhub.services.auth``: ``HubOAuth``, ``HubOAuthenticated``, the OAuth callback) do the
flow and keep the user's Hub token in a cookie confined to the service's path. This module is
imported only in Hub mode, where jupyterhub is installed (it runs the Hub).

:class:`HubLogin` adds, under the service's prefix:

- ``oauth_callback``: where the Hub sends the browser back after login;
- ``hub-login``: sends a browser through the Hub's login, then to ``?next=`` (a page of this
  relay) for a teacher, or answers who is signed in (403 for a Hub user who is no teacher);

and registers :func:`hub_teacher` among the application's teacher checks
(``luma_teacher_checks``, which the teacher's pages ask), so a Hub admin or a member of the
teacher group is a teacher on every page that asks.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import tornado.web
from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler, HubOAuthenticated

from .hub import HubIdentity, HubUnavailable, user_from_model

__all__ = ("LOGIN_PATH", "HubLogin", "hub_teacher")

#: The login page, under the service's prefix.
LOGIN_PATH = "hub-login"


def _auth(handler: tornado.web.RequestHandler) -> tuple[HubOAuth, HubIdentity]:
    return handler.settings["luma_hub_auth"], handler.settings["luma_hub_identity"]


async def _signed_in(handler: tornado.web.RequestHandler) -> Any:
    """The Hub's model of the user signed in on this browser (or sending a Hub token)."""
    auth, _ = _auth(handler)
    try:
        return await auth.get_user(handler, sync=False)
    except tornado.web.HTTPError:
        raise
    except Exception as error:  # the Hub down: no one is signed in right now
        raise HubUnavailable(type(error).__name__) from None


async def hub_teacher(handler: tornado.web.RequestHandler) -> str | None:
    """A teacher check: the Hub user signed in (the Hub's OAuth cookie, or a Hub token) if
    they are a Hub admin or in the teacher group, else None."""
    _, identity = _auth(handler)
    try:
        model = await _signed_in(handler)
    except HubUnavailable:
        return None
    user = user_from_model(model) if model else None
    return user.name if user is not None and identity.is_teacher(user) else None


class _Callback(HubOAuthCallbackHandler):  # type: ignore[misc]
    def initialize(self) -> None:
        self.hub_auth = self.settings["luma_hub_auth"]


class _Login(HubOAuthenticated, tornado.web.RequestHandler):  # type: ignore[misc]
    def initialize(self) -> None:
        self.hub_auth = self.settings["luma_hub_auth"]

    def set_default_headers(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Luma-NB-Service", "relay")

    async def get(self) -> None:
        try:
            model = await _signed_in(self)
        except HubUnavailable:
            self._answer(503, {"errors": [{"msg": "JupyterHub could not be asked; try again."}]})
            return
        if not model:
            self.redirect(self.get_login_url())  # the Hub's login, then back here
            return
        teacher = await hub_teacher(self)  # the same check as every teacher's page
        if teacher is None:
            name = model.get("name", "") if isinstance(model, dict) else ""
            self._answer(403, {"name": name, "teacher": False})
            return
        target = self.get_argument("next", "")
        prefix = self.settings["luma_hub_prefix"]
        if target.startswith(prefix) and not target.startswith("//") and "\\" not in target:
            self.redirect(target)  # only a page of this relay, never another site
            return
        self._answer(200, {"name": teacher, "teacher": True})

    def _answer(self, status: int, body: Any) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))


class HubLogin:
    """The Hub's OAuth login of the relay's pages, made before the server starts (so a wrong
    environment fails there), installed into the relay's application by :meth:`install`.

    The OAuth client's settings (its id, token and callback) come from the environment the Hub
    gives its managed service.
    """

    def __init__(self, identity: HubIdentity, prefix: str) -> None:
        self.identity = identity
        self.prefix = "/" + prefix.strip("/") + "/" if prefix.strip("/") else "/"
        self.auth = HubOAuth(cache_max_age=int(identity.cache_seconds))

    def install(self, app: tornado.web.Application) -> None:
        """Add the routes under the prefix, and :func:`hub_teacher` to the teacher checks."""
        app.settings.setdefault("cookie_secret", secrets.token_bytes(32))
        app.settings["luma_hub_auth"] = self.auth
        app.settings["luma_hub_identity"] = self.identity
        app.settings["luma_hub_prefix"] = self.prefix
        app.settings.setdefault("luma_teacher_checks", []).append(hub_teacher)
        app.settings.setdefault("luma_teacher_login", self.prefix + LOGIN_PATH)
        app.add_handlers(
            r".*",
            [(self.prefix + "oauth_callback", _Callback), (self.prefix + LOGIN_PATH, _Login)],
        )
