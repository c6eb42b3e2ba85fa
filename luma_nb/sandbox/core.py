"""The :class:`Sandbox`: an offline stand-in of the APIFRAME Luma API on a loopback port."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from ._net import is_http_url
from .api import ApiContext
from .cache import clean_parts, default_demo_cache
from .demo import DEMO_PARENTS, DemoParent, demo_records
from .faults import Faults
from .hooks import Delivery, Ticker, WebhookSender
from .media_library import MediaLibrary
from .render import Renderer, RenderStats
from .reqlog import RequestLog, RequestRecord
from .scratch import make_scratch, sweep_scratch
from .server import Backend, SandboxServer
from .state import Store

__all__ = ("DEMO_API_KEY", "Sandbox")

#: The key ``Sandbox.api_key`` gives when the sandbox accepts any key.
DEMO_API_KEY = "sandbox-demo-key"


class Sandbox:
    """An offline, threaded HTTP server that speaks the APIFRAME Luma API on loopback.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`::

        with Sandbox(speed=100) as sandbox:
            requests.post(f"{sandbox.base_url}/luma-imagine", json={"prompt": "a cat"},
                          headers={"Authorization": sandbox.api_key})

    :param host: interface to bind (loopback by default).
    :param port: port to bind; 0 picks a free one.
    :param api_key: the only key accepted; None accepts any non-empty key.
    :param speed: simulated seconds per real second (a job takes 60-300 s divided by this).
    :param data_dir: keep tasks and media here across restarts; None uses a temporary folder.
    :param seed: makes task ids, durations and videos reproducible.
    :param credits: credits the account starts with (each submit costs 6); None: unlimited.
    :param reset_credits: with ``data_dir``, start with ``credits`` again instead of what the
        last run left (a new lesson; the tasks are kept).
    :param public_url: the base of the ``video_url`` links, e.g. ``http://classroom:8765``
        (default: this sandbox's own address). Fixed, it keeps links valid across restarts.
    :param render_mode: ``"processes"`` (a pool of worker processes with a render cache) or
        ``"threads"`` (two render threads, every extension re-encoded; the earlier design).
    :param max_queue: renders that may wait in line before submits get 429.
    :param max_running: tasks that may be running (not finished or failed) at once before
        submits get 429 with ``Retry-After``, uncharged, as the provider's plans limit
        generations running at once; None (the default) for no limit. Settable.
    :param finished_status: add ``"status": "finished"`` to finished tasks (undocumented).
    :param percentage_as_number: send ``percentage`` as a number instead of the documented string.
    :param verbose: log every request to stderr.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        speed: float = 1.0,
        data_dir: str | Path | None = None,
        seed: int | None = None,
        credits: int | None = 1200,
        reset_credits: bool = False,
        public_url: str | None = None,
        render_mode: str = "processes",
        max_queue: int = 5000,
        max_running: int | None = None,
        finished_status: bool = False,
        percentage_as_number: bool = False,
        verbose: bool = False,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        if api_key is not None and not api_key.strip():
            raise ValueError("api_key must be a non-empty string, or None to accept any key")
        self.host, self.port, self.verbose = host, port, verbose
        self._api_key = api_key
        if credits is not None and credits < 0:
            raise ValueError("credits must be 0 or more, or None for unlimited credits")
        if public_url is not None and not is_http_url(public_url):
            raise ValueError(f"public_url must be an http(s) URL, got {public_url!r}")
        self._data_dir = Path(data_dir) if data_dir is not None else None
        self._reset_credits = reset_credits
        self._start_credits = credits
        self._temp_dir: str | None = None
        self.faults = Faults()
        self._webhooks = WebhookSender()
        self._log = RequestLog()
        self._stopping = threading.Event()
        self._server: SandboxServer | None = None
        self._thread: threading.Thread | None = None
        self._state = "new"
        self._start_lock = threading.Lock()
        self._store = Store(
            persist=self._data_dir is not None,
            speed=speed,
            seed=seed,
            credits=credits,
            on_render=self._on_render,
            on_hook=self._webhooks.send,
        )
        self._store.finished_status = finished_status
        self._store.percentage_as_number = percentage_as_number
        self._store.public_url = public_url.rstrip("/") if public_url else None
        self._renderer = Renderer(
            self._store,
            local_media=lambda name: self._media.read(name),
            mode=render_mode,
            max_queue=max_queue,
            demo_cache=default_demo_cache(),
        )
        self._store.render_stage = self._renderer.stage
        self._media = MediaLibrary(self._store, self._renderer.ensure)
        self._ticker = Ticker(self._store.tick)
        self._api = ApiContext(
            self._store, self.faults, api_key, self._ticker.wake, self._renderer.full
        )
        self.max_running = max_running

    # -- life ------------------------------------------------------------------------------

    def start(self) -> Sandbox:
        """Bind, load the data dir, and serve from a daemon thread; returns self once ready.

        :raises OSError: when the port cannot be bound.
        :raises RuntimeError: when the sandbox was stopped before (make a new one).
        """
        with self._start_lock:
            if self._state == "running":
                return self
            if self._state == "stopped":
                raise RuntimeError("a stopped Sandbox cannot be restarted; create a new one")
            if self._data_dir is None:
                sweep_scratch()  # the folders of sandboxes killed before they could clean up
                self._temp_dir = make_scratch()
            self._store.use_workdir(self._data_dir or Path(self._temp_dir or "."))
            try:
                clean_parts(self._store.media_dir, self._renderer.cache_dir)
                clean_parts(self._renderer.demo_cache, older_than=3600.0)  # shared: spare live ones
                self._store.load(demo_records(), reset_credits=self._reset_credits)
                backend = Backend(self._api, self._log, self._media, self.faults, self._stopping)
                self._server = SandboxServer(self.host, self.port, backend, verbose=self.verbose)
            except BaseException:
                self._cleanup_temp()
                raise
            host = self.host if self.host not in ("0.0.0.0", "::", "") else "127.0.0.1"  # noqa: S104
            if ":" in host:
                host = f"[{host}]"
            self.port = self._server.server_address[1]
            self._store.base_url = f"http://{host}:{self.port}"
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"luma-sandbox-{self.port}",
                daemon=True,
            )
            self._thread.start()
            self._state = "running"
            if any(r.webhook_url for r in self._store.records()):
                self._ticker.wake()
            return self

    def stop(self) -> None:
        """Stop serving, cut connections, join the threads, remove the temp dir (idempotent)."""
        with self._start_lock:
            if self._state != "running":
                self._state = "stopped"
                return
            self._state = "stopped"
            self._stopping.set()
            server, thread = self._server, self._thread
            assert server is not None and thread is not None
            server.shutdown()
            server.server_close()
            server.close_connections()
            thread.join(10)
            self._ticker.stop()
            self._webhooks.stop()
            self._renderer.stop()
            self._store.close()
            self._cleanup_temp()

    def _cleanup_temp(self) -> None:
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None

    def __enter__(self) -> Sandbox:
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
        return f"<Sandbox {where} speed={self.speed:g}>"

    # -- what clients need -----------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The URL clients use, e.g. ``http://127.0.0.1:54321`` (raises before start)."""
        if not self._store.base_url:
            raise RuntimeError("the sandbox is not started; call start() first")
        return self._store.base_url

    @property
    def api_key(self) -> str:
        """The key to send: the configured one, or :data:`DEMO_API_KEY` when any key works."""
        return self._api_key if self._api_key is not None else DEMO_API_KEY

    @property
    def running(self) -> bool:
        """True between start() and stop()."""
        return self._state == "running"

    @property
    def demo_parents(self) -> tuple[DemoParent, ...]:
        """The finished demo tasks every sandbox has (ready to extend)."""
        return DEMO_PARENTS

    @property
    def data_dir(self) -> Path | None:
        """Where tasks and media persist, or None (a temporary folder)."""
        return self._data_dir

    # -- settings --------------------------------------------------------------------------

    @property
    def speed(self) -> float:
        """Simulated seconds per real second."""
        return self._store.speed

    @property
    def max_running(self) -> int | None:
        """Tasks that may run at once before submits get 429 (None: no limit)."""
        return self._api.max_running

    @max_running.setter
    def max_running(self, value: int | None) -> None:
        if value is not None and value < 1:
            raise ValueError("max_running must be 1 or more, or None for no limit")
        self._api.max_running = value

    @property
    def running_tasks(self) -> int:
        """How many submitted tasks are not finished or failed yet."""
        with self._store.lock:
            return self._store.running()

    @property
    def finished_status(self) -> bool:
        """Whether finished tasks carry ``"status": "finished"`` (documented: they do not)."""
        return self._store.finished_status

    @finished_status.setter
    def finished_status(self, value: bool) -> None:
        self._store.finished_status = bool(value)

    @property
    def percentage_as_number(self) -> bool:
        """Whether ``percentage`` is sent as a number (documented: a string)."""
        return self._store.percentage_as_number

    @percentage_as_number.setter
    def percentage_as_number(self, value: bool) -> None:
        self._store.percentage_as_number = bool(value)

    @property
    def credits(self) -> int | None:
        """Credits left on the account, None when unlimited (settable, e.g. to provoke a 402)."""
        return self._store.credits

    @credits.setter
    def credits(self, value: int | None) -> None:
        with self._store.lock:
            self._store.credits = None if value is None else int(value)
            self._store.save_account()

    def reset_credits(self, credits: int | None = None, *, unlimited: bool = False) -> None:
        """Start a new lesson: the account gets ``credits`` (default: what it started with, or
        unlimited with ``unlimited=True``) and its image count goes back to 0. Tasks are kept.

        :raises ValueError: for negative credits.
        """
        if credits is not None and credits < 0:
            raise ValueError("credits must be 0 or more")
        self._store.reset_credits(
            None if unlimited else (self._start_credits if credits is None else credits)
        )

    def pause_renders(self, paused: bool = True) -> None:
        """Let no new render start (tasks wait in line) until ``pause_renders(False)``."""
        self._renderer.pause(paused)

    @property
    def render_stats(self) -> RenderStats:
        """What the renderer did so far: videos rendered, cache hits, shared renders, failures."""
        return self._renderer.stats

    # -- inspection for tests --------------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot of every request received so far, oldest first."""
        return self._log.snapshot()

    def count(self, path: str, method: str | None = None) -> int:
        """How many requests reached ``path`` (with ``method``, if given)."""
        return self._log.count(path, method)

    def clear_requests(self) -> None:
        """Forget the requests logged so far."""
        self._log.clear()

    @property
    def webhooks(self) -> list[Delivery]:
        """Every webhook the sandbox sent or skipped, in order."""
        return list(self._webhooks.deliveries)

    def wait_webhooks(self, timeout: float = 10.0) -> bool:
        """Wait until queued webhooks are delivered or given up; False on timeout."""
        return self._webhooks.wait_idle(timeout)

    def task(self, task_id: str) -> dict[str, Any]:
        """The server-side view of a task: status, percentage, prompt, parent, fetch body, ...

        :raises KeyError: for an unknown id.
        """
        return self._store.view(task_id)

    @property
    def task_ids(self) -> list[str]:
        """Ids of the tasks submitted so far (demo parents excluded), oldest first."""
        with self._store.lock:
            records = [r for r in self._store.records() if not r.demo]
            return [r.task_id for r in sorted(records, key=lambda r: r.created_wall)]

    def complete(self, task_id: str, *, wait: float | None = 30.0) -> dict[str, Any]:
        """Skip a task's remaining simulated time; with ``wait``, block until it is finished.

        Returns the server-side view. :raises KeyError: for an unknown id.
        :raises TimeoutError: when the video is not ready within ``wait`` seconds.
        """
        self._store.force_finish(task_id)
        deadline = time.monotonic() + (wait or 0.0)
        while True:
            view = self._store.view(task_id)
            if view["status"] in ("finished", "failed") or wait is None:
                return view
            if time.monotonic() > deadline:
                raise TimeoutError(f"task {task_id} did not finish within {wait} s")
            time.sleep(0.02)

    def advance(self, seconds: float) -> None:
        """Move the simulated clock of every task forward by ``seconds``."""
        with self._store.lock:
            self._store.skew += seconds
        self._ticker.wake()

    # -- for the server ----------------------------------------------------------------------

    def _on_render(self, task_id: str) -> None:
        self._renderer.submit(task_id)
