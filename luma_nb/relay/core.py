"""The :class:`Relay`: a class's one door to the video API, holding the teacher's key.

It runs a Tornado server (the web framework Jupyter and JupyterHub run on, so it is already
installed wherever notebooks are served) on its own thread and event loop, one poller thread
for the whole class, a small thread pool for the upstream submits (``requests`` blocks) and
another for the store's calls (the event loop never waits for the database). It listens with
a backlog for a whole class connecting in the same second.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any

import tornado.httpserver
import tornado.netutil
import tornado.web

from ..client.client import LumaClient
from ..client.deadline import guarded_session
from ..contract.environment import environment
from ..contract.errors import (
    AuthenticationError,
    BadRequestError,
    InsufficientCreditsError,
    LumaError,
    RateLimitError,
    SubmitUncertainError,
)
from ..contract.polling import DefaultPolicy, PollPolicy
from .backends import open_store
from .checks import RateLimiter
from .dashboard import install as install_dashboard
from .handlers import Forwarded, RelayContext, make_app
from .hub import HubIdentity, HubUser
from .poller import DEFAULT_LEASE, Poller, gone, new_holder
from .queue import DEFAULT_RETRY_AFTER, Dispatcher
from .settings import remember_start_budgets
from .store import Budgets, LedgerEntry, RelayStore, SubmitRecord
from .teacher import Teacher
from .tokens import IssuedToken, issue

__all__ = ("BACKLOG", "DEFAULT_COST", "POLLER_HEADER", "Relay")

log = logging.getLogger("luma_nb.relay")

#: The header that names the polling relay (its lease holder) on its upstream polls.
POLLER_HEADER = "X-Luma-NB-Poller"
#: Credits per submit, as the provider documents for extend and imagine.
DEFAULT_COST = 6.0
#: Connections the listening socket queues before the relay accepts them: a class opening its
#: notebooks at once must not be turned away (Tornado's default is 128; the kernel caps this
#: at ``net.core.somaxconn``, 4096 on current Linux).
BACKLOG = 4096
#: Threads running store calls for the handlers (PostgreSQL serves them on as many
#: connections; SQLite on its one).
_STORE_THREADS = 8
_KINDS = {"/luma-extend": "luma-ext", "/luma-imagine": "luma"}
_STOPPED = "the relay stopped while this submit was on its way"
#: Seconds after which a submit still "reserved" cannot be on its way any more (the upstream
#: timeout, with a long queue of submits before it, is far shorter).
_STALE = 600.0
_UNCERTAIN = (
    "The upstream answer to this submit was lost: the job may exist and its credits stay "
    "reserved. The relay did not send it again; your teacher sees it in the class status."
)


class Relay:
    """The classroom relay: the provider's API for students, one key and one ledger for all.

    Parameters:
        upstream_url: the API the relay forwards to (the real API, or a sandbox's URL).
        api_key: the upstream key; else ``APIFRAME_API_KEY`` of the relay's environment.
        db: where the students, submits, tasks and the ledger are kept: a SQLite file, a
            ``postgresql://`` URL (several relay processes may share it), or a RelayStore.
        class_name: shown to students; else the one stored in ``db``, else ``"Class"``.
        class_budget, student_budget: credit limits (None: no limit); the defaults only, until
            the teacher sets a budget on the dashboard (stored in ``db``, so it wins over
            these across restarts).
        rate: submits per student per minute (None: no limit).
        costs: credits per submit endpoint (default 6 each).
        host, port: where to listen (port 0 picks a free one).
        poll: the polling policy of the class's one poller (default DefaultPolicy).
        rate_clock: clock of the rate limiter (injectable for tests).
        publish: task ids every student may fetch (e.g. the parents to extend).
        upstream_timeout: seconds each upstream request may take.
        lease: seconds this relay's claim to poll a task lasts unless renewed; relays sharing
            one database poll each task from one of them only, and take over the tasks of a
            relay that died once its leases expire.
        hub: JupyterHub mode: a :class:`~luma_nb.relay.hub.HubIdentity`; a Hub user's token
            is then a student's credential too (enrolled on first use), beside class tokens.
        base_path: the path prefix to serve under (the Hub gives ``/services/luma-class/``).
        hub_login: JupyterHub mode, as a Hub-managed service: teachers' browsers sign in
            through the Hub's OAuth (``hub-login``; needs jupyterhub and the Hub's service
            environment).
        max_running: jobs the class may have running upstream at once (the provider's plans
            limit them); past that, submits wait in the class's queue at the relay (None: no
            limit; a submit the upstream refuses with 429 waits in the queue either way).
    """

    def __init__(
        self,
        upstream_url: str,
        *,
        api_key: str | None = None,
        db: str | Path | RelayStore = "luma-class.sqlite",
        class_name: str | None = None,
        class_budget: float | None = None,
        student_budget: float | None = None,
        rate: float | None = None,
        costs: dict[str, float] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        poll: PollPolicy | None = None,
        rate_clock: Callable[[], float] | None = None,
        publish: Sequence[str] = (),
        upstream_timeout: float = 30.0,
        lease: float = DEFAULT_LEASE,
        hub: HubIdentity | None = None,
        base_path: str = "/",
        hub_login: bool = False,
        max_running: int | None = None,
    ) -> None:
        key = api_key if api_key is not None else environment().api_key
        if not key.strip():
            raise ValueError("the relay needs the upstream key: set APIFRAME_API_KEY")
        self.store: RelayStore = db if not isinstance(db, (str, Path)) else open_store(db)
        if class_name:
            self.store.set_meta("class_name", class_name)
        self.class_name = class_name or self.store.get_meta("class_name") or "Class"
        self.budgets = Budgets(class_budget, student_budget)
        self.costs = {path: DEFAULT_COST for path in _KINDS} | dict(costs or {})
        unknown = set(self.costs) - set(_KINDS)
        if unknown:
            raise ValueError(f"costs are for /luma-extend and /luma-imagine, not {unknown}")
        self.host, self.port = host, port

        def make_upstream() -> LumaClient:
            return LumaClient(key, base_url=upstream_url, journal=None, timeout=upstream_timeout)

        self._make_upstream: Callable[[], LumaClient] = make_upstream
        self.upstream_url = self._make_upstream().base_url
        self._local = threading.local()
        self._stale = max(_STALE, 10 * upstream_timeout)
        holder = new_holder()
        # The poller names itself to the upstream, so a sandbox's request log shows which
        # relay polled (the lease is what keeps that to one relay per task).
        polling = guarded_session()
        polling.headers[POLLER_HEADER] = holder
        poll_client = LumaClient(
            key, base_url=upstream_url, journal=None, timeout=upstream_timeout, session=polling
        )
        #: The upstream clients made so far (the poller's, one per forwarding thread): what
        #: they learned from the answers tells which service makes the videos.
        self._upstreams: list[LumaClient] = [poll_client]
        self.poller = Poller(
            self.store,
            poll_client,
            poll or DefaultPolicy(),
            lease=lease,
            holder=holder,
            on_renew=self._sweep,
        )
        limiter = RateLimiter(rate, rate_clock) if rate_clock else RateLimiter(rate)
        self.queue = Dispatcher(self.store, max_running, self._send_queued)
        """The class's queue: forwards the submits waiting at the relay as room opens."""
        self.teacher = Teacher(
            self.store, self.budgets, self._forward, self.poller.watch, max_running=max_running
        )
        self.teacher.on_queue_change = self.queue.wake
        """The teacher's controls: pause, budgets, approve mode, uncertain submits."""
        self._ctx = RelayContext(
            store=self.store,
            class_name=self.class_name,
            costs=self.costs,
            rate=limiter,
            forward=self._forward,
            watch=self.poller.watch,
            last_look=lambda: self.poller.last_look,
            upstream_service=lambda: self.upstream_service,
            teacher=self.teacher,
            identify=None if hub is None else hub.name,
            base_path="/" + base_path.strip("/") + "/" if base_path.strip("/") else "/",
        )
        #: JupyterHub mode's identity check (None for a class of tokens only).
        self.hub = hub
        self._hub_login: Any = None
        if hub_login:
            if hub is None:
                raise ValueError("hub_login needs hub (JupyterHub mode)")
            from .hub_pages import HubLogin  # jupyterhub: only where a Hub runs

            self._hub_login = HubLogin(hub, self._ctx.base_path)
        self._publish = list(publish)
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="luma-relay-submit")
        self._ctx.store_threads = self._store_threads = ThreadPoolExecutor(
            max_workers=_STORE_THREADS, thread_name_prefix="luma-relay-store"
        )
        self.app: tornado.web.Application | None = None
        """The Tornado application, once serving (e.g. to add a teacher check)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._state = "new"

    # -- life ------------------------------------------------------------------------------

    def _sweep(self) -> None:
        """Reservations of a relay that died, too old to be on their way: uncertain."""
        left = self.store.recover(_STOPPED, before=time.time() - self._stale)
        if left:
            log.warning("relay: %d submit(s) of a stopped relay are uncertain", left)

    def start(self) -> Relay:
        """Recover from a crash, bind, and serve from a daemon thread; returns self when ready."""
        if self._state != "new":
            raise RuntimeError("a Relay starts once; make a new one (the store survives)")
        # Submits left "reserved" by a relay that stopped are uncertain. While another relay
        # shares the database, a reserved submit may be one of its own, on its way: only those
        # too old for that are, and the sweep goes on while this relay runs. A predecessor on
        # this host whose process is gone (killed before its heartbeat lapsed) is no neighbour.
        others = []
        for holder in self.store.live_relays():
            if holder == self.poller.holder:
                continue
            if gone(holder):
                self.store.drop_leases(holder)  # its tasks are free to poll at once
            else:
                others.append(holder)
        left = self.store.recover(_STOPPED, before=time.time() - self._stale if others else None)
        if left:
            log.warning("relay: %d submit(s) of a previous run are uncertain", left)
        for task_id in self._publish:
            self.store.publish(task_id)
        remember_start_budgets(self.store, self.budgets)  # for `luma-nb class status`
        sockets = tornado.netutil.bind_sockets(
            self.port, self.host, family=socket.AF_INET, backlog=BACKLOG
        )
        self.port = sockets[0].getsockname()[1]
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._serve, args=(sockets, ready), name=f"luma-relay-{self.port}", daemon=True
        )
        self._thread.start()
        ready.wait(10)
        self.poller.start()
        self.queue.start()
        self._state = "running"
        return self

    def _serve(self, sockets: list[socket.socket], ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        app = make_app(self._ctx)
        prefix = self._ctx.base_path.rstrip("/")
        install_dashboard(app, self._ctx, prefix)
        if self._hub_login is not None:
            self._hub_login.install(app)
        self.app = app
        server = tornado.httpserver.HTTPServer(app, max_body_size=8 * 1024 * 1024)
        server.add_sockets(sockets)
        loop.call_soon(ready.set)
        try:
            loop.run_forever()
        finally:
            server.stop()
            # Live gallery streams end their answers themselves (an "event: close") first.
            loop.run_until_complete(self._ctx.gallery.drain())
            loop.run_until_complete(server.close_all_connections())
            loop.close()

    def stop(self) -> None:
        """Stop serving and polling, and close the store (idempotent)."""
        if self._state != "running":
            self._state = "stopped"
            return
        self._state = "stopped"
        self.queue.stop()
        self.poller.stop()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._pool.shutdown(wait=True)
        self._store_threads.shutdown(wait=True)
        self.store.close()

    def __enter__(self) -> Relay:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.base_url if self._state == "running" else self._state
        return f"<Relay {self.class_name!r} {where}>"

    @property
    def base_url(self) -> str:
        """The URL students use (LUMA_NB_CLASS_URL)."""
        host = self.host if self.host not in ("0.0.0.0", "") else "127.0.0.1"  # noqa: S104
        return f"http://{host}:{self.port}{self._ctx.base_path.rstrip('/')}"

    @property
    def served(self) -> dict[str, int]:
        """How many answers the relay gave, by API path (``other`` for anything else)."""
        return dict(self._ctx.served)

    # -- the teacher's side ----------------------------------------------------------------

    def add_students(
        self, count: int | None = None, names: Sequence[str] | None = None
    ) -> list[IssuedToken]:
        """Make tokens for new students (shown once; only their hashes are stored)."""
        return issue(self.store, count, names)

    def revoke(self, name: str) -> bool:
        """Refuse a student's token from the next request on; False for an unknown name."""
        return self.store.revoke(name)

    def publish(self, task_id: str) -> None:
        """Let every student fetch a task (a parent to extend, or a video for the gallery)."""
        self.store.publish(task_id)
        self.poller.watch(task_id)

    def uncertain(self) -> list[SubmitRecord]:
        """Submits whose upstream answer was lost (their credits stay reserved)."""
        return self.store.submits("uncertain")

    def ledger(self) -> list[LedgerEntry]:
        """Every reservation, charge, release and refund, oldest first."""
        return self.store.ledger()

    def hub_teacher(self, token: str, timeout: float = 15.0) -> HubUser | None:
        """JupyterHub mode: the Hub user owning ``token`` if they are a teacher (a Hub admin or
        a member of the teacher group), else None. Callable from any thread but the relay's;
        handlers on the relay's loop await ``relay.hub.teacher(token)`` instead. Raises
        HubUnavailable when the Hub cannot be asked, RuntimeError when not in Hub mode."""
        if self.hub is None or self._loop is None:
            raise RuntimeError("hub_teacher needs a started relay in JupyterHub mode")
        future = asyncio.run_coroutine_threadsafe(self.hub.teacher(token), self._loop)
        return future.result(timeout)

    # -- forwarding ------------------------------------------------------------------------

    def _upstream(self) -> LumaClient:
        client: LumaClient | None = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self._make_upstream()
            self._upstreams.append(client)
        return client

    @property
    def upstream_service(self) -> str:
        """Which service makes the class's videos (``"sandbox"`` once it said so; see
        :mod:`luma_nb.contract.service`), as the relay's upstream clients learned it."""
        for client in list(self._upstreams):
            if client.service in ("sandbox", "relay"):
                return client.service
        return self._upstreams[0].service

    async def _forward(self, path: str, body: dict[str, Any], submit_id: int) -> Forwarded:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._send, path, body, submit_id)

    def _waiting(self, path: str) -> tuple[str, dict[str, Any]]:
        """A new relay-made task id and its fetch body, for a submit that waits in line."""
        task_id = str(uuid.uuid4())
        return task_id, {"task_id": task_id, "task_type": _KINDS[path], "status": "pending"}

    def _send_queued(self, record: SubmitRecord) -> None:
        """The queue's turn for one submit it took from the line: forward it, watch its task."""
        result = self._send(record.endpoint, dict(record.request), record.id, admitted=True)
        if result.task_id is not None and not result.queued:
            self.poller.watch(result.task_id)

    def _send(
        self, path: str, body: dict[str, Any], submit_id: int, *, admitted: bool = False
    ) -> Forwarded:
        """Send one submit upstream, exactly once, and settle its reservation; or, when the
        class's queue says so (``admitted``: it did already), keep it waiting in line."""
        store = self.store
        if not admitted:
            waiting = store.admit(submit_id, self.queue.max_running, *self._waiting(path))
            if waiting is not None:
                self.queue.wake()
                return Forwarded(task_id=waiting, queued=True)
        client = self._upstream()
        try:
            if path == "/luma-extend":
                job: Any = client.extend(**body)
            else:
                job = client.imagine(**body)
        except SubmitUncertainError as error:
            store.uncertain(submit_id, str(error.cause or "answer lost"))
            return Forwarded(status=502, message=_UNCERTAIN, uncertain=True)
        except RateLimitError as error:
            # Not accepted upstream: safe to send later. It waits in line, keeping its place.
            pause = error.retry_after if error.retry_after is not None else DEFAULT_RETRY_AFTER
            waiting = store.queue(submit_id, *self._waiting(path), time.time() + pause)
            self.queue.wake()
            if waiting is not None:
                return Forwarded(task_id=waiting, queued=True)
            store.release(submit_id, f"upstream rate limit: {error}")
            return Forwarded(
                status=429,
                message="The class is sending too fast; try again shortly.",
                retry_after=error.retry_after,
            )
        except InsufficientCreditsError as error:
            store.release(submit_id, f"upstream account: {error}")
            return Forwarded(status=402, message="The class account has run out of credits.")
        except AuthenticationError as error:
            store.release(submit_id, f"upstream refused the relay's key: {error}")
            return Forwarded(status=503, message="The relay's key was refused; tell your teacher.")
        except BadRequestError as error:
            store.release(submit_id, f"upstream refused the request: {error}")
            text = "; ".join(error.messages) or "The service found the request invalid."
            return Forwarded(status=400, message=text)
        except LumaError as error:
            store.release(submit_id, f"upstream failed: {error}")
            return Forwarded(status=503, message="The video service failed; try again later.")
        except BaseException as error:
            store.uncertain(submit_id, f"unexpected error while submitting: {type(error).__name__}")
            if not isinstance(error, Exception):
                raise
            return Forwarded(status=502, message=_UNCERTAIN, uncertain=True)
        store.forwarded(submit_id, job.task_id, _KINDS[path])
        return Forwarded(task_id=job.task_id)
