"""A real PostgreSQL server for the tests, from Debian's package, on 127.0.0.1 and a free port.

:class:`PostgresServer` runs ``initdb`` and ``postgres`` (``/usr/lib/postgresql/<N>/bin``) in a
temporary folder, as an unprivileged system user when the tests run as root (PostgreSQL
refuses to run as root; ``setpriv`` drops the privileges), with trust authentication on
loopback only. ``database()`` makes a fresh database and returns its DSN (with a dummy
password in it, so the tests can check it is never shown). Without the package the tests
fail with how to install it (:class:`PostgresMissing`); they never skip.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

#: The system user the server runs as when the tests run as root.
USER = "luma-pg"
#: What the DSNs carry as password (ignored by trust authentication, never to be shown).
PASSWORD = "pg-secret-never-shown"

INSTALL = (
    "PostgreSQL's server is not installed: the relay's PostgreSQL tests start a real one from "
    "Debian's package. Install it with `apt-get install -y postgresql` (as root; .ci/run does "
    "this), or `pip install 'psycopg[binary]'` if psycopg is what is missing."
)


class PostgresMissing(RuntimeError):
    """PostgreSQL's server (or psycopg) is not installed; the message says how to install it."""


def bin_dir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<N>/bin`` holding initdb and postgres, or None."""
    root = Path("/usr/lib/postgresql")
    found = []
    for version in root.glob("*/bin") if root.is_dir() else ():
        if (version / "initdb").exists() and (version / "postgres").exists():
            with contextlib.suppress(ValueError):
                found.append((float(version.parent.name), version))
    return max(found)[1] if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """A started PostgreSQL server; ``stop()`` shuts it down and removes its folder."""

    def __init__(self) -> None:
        binaries = bin_dir()
        if binaries is None:
            raise PostgresMissing(INSTALL)
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise PostgresMissing(INSTALL) from None
        self.bin = binaries
        self.folder = Path(tempfile.mkdtemp(prefix="luma-pg-"))
        self.port = _free_port()
        self._prefix: list[str] = []
        self._count = 0
        self._lock = threading.Lock()
        if os.geteuid() == 0:
            try:
                pwd.getpwnam(USER)
            except KeyError:
                subprocess.run(
                    [
                        "useradd",
                        "--system",
                        "--no-create-home",
                        "--shell",
                        "/usr/sbin/nologin",
                        USER,
                    ],
                    check=True,
                )
            entry = pwd.getpwnam(USER)
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
            # setpriv execs (no wrapper process), so signals reach postgres itself.
            self._prefix = [
                "setpriv",
                f"--reuid={entry.pw_uid}",
                f"--regid={entry.pw_gid}",
                "--clear-groups",
                "--",
            ]
        data, sockets = self.folder / "data", self.folder / "run"
        self._run("mkdir", str(data), str(sockets))
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--no-instructions",
        )
        self._log = open(self.folder / "server.log", "wb")  # noqa: SIM115
        self._proc = subprocess.Popen(
            [
                *self._prefix,
                str(self.bin / "postgres"),
                "-D",
                str(data),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-k",
                str(sockets),
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready()

    def _run(self, *command: str) -> None:
        done = subprocess.run(
            [*self._prefix, *command], capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode:
            raise RuntimeError(f"{command[0]} failed: {done.stdout}{done.stderr}")

    def _wait_ready(self) -> None:
        import psycopg

        deadline = time.monotonic() + 60
        while True:
            if self._proc.poll() is not None:
                log = (self.folder / "server.log").read_text(errors="replace")
                raise RuntimeError(f"postgres exited at start:\n{log}")
            try:
                psycopg.connect(self.admin_dsn, connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    @property
    def admin_dsn(self) -> str:
        """The DSN of the ``postgres`` maintenance database."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def dsn(self, name: str) -> str:
        """The DSN of database ``name`` (with the dummy password)."""
        return f"postgresql://postgres:{PASSWORD}@127.0.0.1:{self.port}/{name}"

    def database(self) -> str:
        """A new empty database; its DSN."""
        import psycopg

        with self._lock:
            self._count += 1
            name = f"class_{self._count}"
        with psycopg.connect(self.admin_dsn, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def stop(self) -> None:
        """Fast shutdown, then remove the folder."""
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)  # fast shutdown: clients are cut off
            try:
                self._proc.wait(30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
        self._log.close()
        shutil.rmtree(self.folder, ignore_errors=True)
