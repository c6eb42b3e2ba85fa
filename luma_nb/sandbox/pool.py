"""The sandbox's render processes: a small executor of plain worker programs.

Each worker is ``python -m luma_nb.sandbox.worker``, started with :mod:`subprocess` and fed
pickled calls (a module-level function and its arguments) over its standard input; it answers
over its standard output. A worker is a fresh interpreter that never imports the starter's
``__main__``, so a script that renders without an ``if __name__ == "__main__":`` guard works
(a :class:`concurrent.futures.ProcessPoolExecutor` re-runs such a script in every worker, which
then fails its first render). Nothing is inherited from the starter's threads or locks.

The workers never outlive their starter, however it ends (SIGKILL included): the write end of
a worker's standard input is held by the starter only (``close_fds``; a child the starter
forks closes its copy, see :func:`forget_in_forked_child`), and a thread in the worker ends it
the moment that pipe reads end of file. A parent-death signal (Linux ``PR_SET_PDEATHSIG``)
would follow the *thread* that started the worker, which may end long before the process,
and exists on Linux only; the pipe works everywhere.

The workers share the starter's process group, so an interrupt meant for the starter (a
kernel interrupted or shut down, Ctrl-C in a terminal) reaches them too; they ignore it and
the sandbox decides what happens to their jobs.

Like :class:`~concurrent.futures.ProcessPoolExecutor`, a worker that dies mid-call breaks the
pool: the other workers are ended, their calls and every queued one fail with
:class:`~concurrent.futures.process.BrokenProcessPool`, and the caller starts a new pool.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
import pickle
import struct
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import IO, Any

__all__ = ("WorkerPool", "read_frame", "write_frame")

_LENGTH = struct.Struct("!Q")
#: The worker program (a module never imported by the package itself).
WORKER_MODULE = "luma_nb.sandbox.worker"


def write_frame(stream: IO[bytes], payload: bytes) -> None:
    """Write one length-prefixed message and flush it."""
    stream.write(_LENGTH.pack(len(payload)) + payload)
    stream.flush()


def read_frame(stream: IO[bytes]) -> bytes | None:
    """Read one length-prefixed message; None at end of file (the other side is gone)."""
    header = _read_exactly(stream, _LENGTH.size)
    if header is None:
        return None
    return _read_exactly(stream, _LENGTH.unpack(header)[0])


def _read_exactly(stream: IO[bytes], size: int) -> bytes | None:
    chunks = []
    while size:
        chunk = stream.read(size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _worker_env() -> dict[str, str]:
    """The starter's environment, with the folder this package was imported from first on the
    path (a notebook that put it on ``sys.path`` by hand gets the same package in its workers)."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


class _Worker:
    """One worker process and the parent's ends of its pipes."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", WORKER_MODULE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=_worker_env(),
            close_fds=True,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.requests: IO[bytes] = self.process.stdin
        self.answers: IO[bytes] = self.process.stdout

    def call(self, payload: bytes) -> bytes | None:
        """Send one call, wait for its answer; None when the worker died."""
        try:
            write_frame(self.requests, payload)
            return read_frame(self.answers)
        except (OSError, ValueError):  # a closed pipe
            return None

    def end(self, timeout: float = 10.0) -> None:
        """Close its input (it ends at end of file) and reap it."""
        with contextlib.suppress(OSError, ValueError):
            self.requests.close()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        with contextlib.suppress(OSError, ValueError):
            self.answers.close()

    def forget(self) -> None:
        """In a forked child: let go of this copy of the pipes without touching the process.

        Each descriptor is pointed at the null device rather than closed: the file objects
        still own their numbers and close them when collected, which must not close whatever
        the child opened later under the same number (nor flush a half-written call into the
        worker's pipe)."""
        null = os.open(os.devnull, os.O_RDWR)
        try:
            for stream in (self.requests, self.answers):
                with contextlib.suppress(OSError, ValueError):
                    os.dup2(null, stream.fileno())
        finally:
            os.close(null)


class WorkerPool(cf.Executor):
    """Up to ``workers`` worker processes, started as calls come (one more while every
    started one is busy); each runs one call at a time."""

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError("a pool needs one worker at least")
        self.max_workers = workers
        self._cv = threading.Condition()
        self._pending: deque[tuple[cf.Future[Any], bytes]] = deque()
        self._workers: list[_Worker] = []
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._closing = False
        self._broken: str | None = None

    @property
    def pids(self) -> list[int]:
        """The worker processes' ids."""
        with self._cv:
            return [w.process.pid for w in self._workers]

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        """Run ``fn(*args, **kwargs)`` in a worker (``fn`` must be importable by name)."""
        payload = pickle.dumps((fn, args, kwargs))
        future: cf.Future[Any] = cf.Future()
        with self._cv:
            if self._broken is not None:
                raise BrokenProcessPool(self._broken)
            if self._closing:
                raise RuntimeError("cannot schedule new calls after shutdown")
            self._pending.append((future, payload))
            if len(self._pending) > self._idle and len(self._workers) < self.max_workers:
                self._start_worker()
            self._cv.notify()
        return future

    def _start_worker(self) -> None:
        worker = _Worker()
        self._workers.append(worker)
        self._idle += 1
        thread = threading.Thread(
            target=self._serve, args=(worker,), name="luma-sandbox-worker", daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def _serve(self, worker: _Worker) -> None:
        """Hand calls to one worker until the pool closes or breaks."""
        while True:
            with self._cv:
                self._cv.wait_for(
                    lambda: bool(self._pending) or self._closing or self._broken is not None
                )
                if not self._pending or self._broken is not None:
                    break
                future, payload = self._pending.popleft()
                self._idle -= 1
            if future.set_running_or_notify_cancel():
                answer = worker.call(payload)
                if answer is None:
                    code = worker.process.poll()
                    self._break(f"a render worker ended abruptly (exit code {code})")
                    future.set_exception(BrokenProcessPool(self._broken or ""))
                    break
                ok, value = pickle.loads(answer)  # noqa: S301 - our own worker's answer
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)
            with self._cv:
                self._idle += 1
        worker.end()

    def _break(self, why: str) -> None:
        """A worker died: fail every queued call and end the other workers (their calls fail
        too), as a broken process pool does."""
        with self._cv:
            if self._broken is None:
                self._broken = why
            failed = list(self._pending)
            self._pending.clear()
            self._cv.notify_all()
            others = list(self._workers)
        for worker in others:
            with contextlib.suppress(OSError):
                worker.process.kill()
        for future, _ in failed:
            if future.set_running_or_notify_cancel():
                future.set_exception(BrokenProcessPool(why))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking calls; the workers end once the queued calls are done (``cancel_futures``:
        queued calls are cancelled instead). ``wait``: return when they have ended."""
        with self._cv:
            self._closing = True
            cancelled = list(self._pending) if cancel_futures else []
            if cancel_futures:
                self._pending.clear()
            self._cv.notify_all()
            threads = list(self._threads)
        for future, _ in cancelled:
            future.cancel()
        if wait:
            for thread in threads:
                if thread is not threading.current_thread():
                    thread.join()

    def forget_in_forked_child(self) -> None:
        """In a child forked (os.fork) from the starter: close its copies of the workers' pipes,
        so the workers never wait on the child."""
        for worker in self._workers:
            worker.forget()
