"""The render cache: one video per distinct request, shared by every task that asks for it.

A render is keyed by what it shows: the prompt (with enhancement), the aspect ratio, the
parent's own key, the bytes of the first and last frame images and the notes drawn on it.
A class typing the suggested prompt therefore renders it once; each task's video is a hard
link (or a copy) of the cached file. The demo parents are kept in a per-user folder, so they
are drawn once per machine, not once per sandbox.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from ..contract.environment import environment

__all__ = ("RENDER_VERSION", "clean_parts", "default_demo_cache", "link_into", "render_key")

log = logging.getLogger("luma_nb.sandbox")

#: Bumped whenever the drawing or the encoding changes, so stale cached videos are not reused.
RENDER_VERSION = "2"


def render_key(
    *,
    prompt: str,
    aspect_ratio: str,
    parent_key: str | None,
    first_frame: bytes | None,
    last_frame: bytes | None,
    notes: Sequence[str],
    seconds: float,
) -> str:
    """The cache key (hex) of a render; equal keys make the same video."""
    digest = hashlib.sha256()
    for part in (
        RENDER_VERSION,
        prompt,
        aspect_ratio,
        parent_key or "",
        hashlib.sha256(first_frame).hexdigest() if first_frame is not None else "",
        hashlib.sha256(last_frame).hexdigest() if last_frame is not None else "",
        "\n".join(notes),
        f"{seconds:g}",
    ):
        digest.update(part.encode("utf-8", "surrogatepass") + b"\x00")
    return digest.hexdigest()[:40]


def key_seed(key: str) -> int:
    """The colour seed of a cached render: taken from its key, so whoever renders it first
    draws the same video."""
    return int(key[:8], 16) & 0x7FFFFFFF


def default_demo_cache() -> Path | None:
    """Where demo parents are kept: ``$LUMA_NB_SANDBOX_CACHE``, else the user's cache folder.

    An empty ``LUMA_NB_SANDBOX_CACHE`` turns the per-user cache off (None).
    """
    env = environment()
    configured = env.sandbox_cache
    if configured is not None:
        return Path(configured).expanduser() if configured.strip() else None
    base = env.xdg_cache_home or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "luma_nb" / "sandbox"


def link_into(source: Path, target: Path) -> None:
    """Make ``target`` the same file as ``source`` (hard link, else copy), atomically."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}-{threading.get_ident()}.link.part")
    with contextlib.suppress(OSError):
        tmp.unlink()
    try:
        os.link(source, tmp)
    except OSError:
        with source.open("rb") as src, tmp.open("wb") as dst:
            while chunk := src.read(1024 * 1024):
                dst.write(chunk)
    os.replace(tmp, target)


def clean_parts(*folders: Path | None, older_than: float = 0.0) -> int:
    """Remove the ``.part`` files a killed render left behind; returns how many went.

    ``older_than`` (seconds) spares younger files: in a folder other sandboxes share, they may
    be renders under way.
    """
    removed = 0
    now = time.time()
    for folder in folders:
        if folder is None or not folder.is_dir():
            continue
        for path in folder.glob(".*.part"):
            try:
                if older_than and now - path.stat().st_mtime < older_than:
                    continue
                path.unlink()
                removed += 1
            except OSError as exc:
                log.info("sandbox: cannot remove %s: %s", path, exc)
    return removed
