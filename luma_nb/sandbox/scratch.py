"""A sandbox's scratch folder (its tasks and MP4s when no data dir is given), and the sweep of
the folders that sandboxes killed before they could remove theirs left behind.

A scratch folder is ``<temp>/luma-sandbox-XXXX`` with an ``owner`` file naming the process that
made it (its pid and, on Linux, its start time, so a reused pid is not mistaken for it). A
sandbox that stops removes its folder; one whose process was killed (SIGKILL, the out-of-memory
killer, a Hub culling a server) cannot, so every sandbox that starts removes the folders of this
user whose owner is gone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

__all__ = ("make_scratch", "owner_alive", "sweep_scratch")

PREFIX = "luma-sandbox-"
_OWNER = "owner"


def _started(pid: int) -> str:
    """The start time of process ``pid`` as the kernel counts it (Linux), else ``""``."""
    if not sys.platform.startswith("linux"):
        return ""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return ""
    fields = text.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else ""


def make_scratch(root: str | None = None) -> str:
    """Make a scratch folder owned by this process in ``root`` (default: the temporary
    folder); its path."""
    folder = tempfile.mkdtemp(prefix=PREFIX, dir=root)
    pid = os.getpid()
    (Path(folder) / _OWNER).write_text(f"{pid} {_started(pid)}\n", encoding="ascii")
    return folder


def owner_alive(folder: Path) -> bool | None:
    """Whether the process that made ``folder`` still runs; None when it cannot be told
    (no owner file, or not on a POSIX system: on Windows ``os.kill`` would end the process)."""
    if os.name != "posix":
        return None
    try:
        pid_text, _, started = (folder / _OWNER).read_text(encoding="ascii").strip().partition(" ")
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    except OSError:
        return None
    return not started or _started(pid) in ("", started)


def sweep_scratch(root: str | None = None) -> list[Path]:
    """Remove this user's scratch folders whose owner is gone; the folders removed."""
    removed = []
    base = Path(root or tempfile.gettempdir())
    uid = os.getuid() if hasattr(os, "getuid") else None
    for folder in base.glob(PREFIX + "*"):
        try:
            info = folder.lstat()
        except OSError:
            continue
        if not folder.is_dir() or folder.is_symlink():
            continue
        if uid is not None and info.st_uid != uid:
            continue
        if owner_alive(folder) is not False:
            continue  # alive, or nobody can tell: left alone
        with contextlib.suppress(OSError):
            shutil.rmtree(folder)
            removed.append(folder)
    return removed
