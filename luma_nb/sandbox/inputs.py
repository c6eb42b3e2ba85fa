"""The frame images a task names: read from the sandbox's own media, or fetched from loopback.

Images elsewhere are never fetched (the sandbox stays offline); an image that cannot be had
is not an error, the video says so in a note instead.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from urllib.parse import urlsplit

from ._net import is_loopback_url, loopback_get

__all__ = ("fetch_image",)

log = logging.getLogger("luma_nb.sandbox")

_IMAGE_LIMIT = 16 * 1024 * 1024
_IMAGE_TIMEOUT = 3.0


def fetch_image(
    url: str | None,
    label: str,
    notes: list[str],
    own_urls: list[str],
    local_media: Callable[[str], bytes | None],
) -> bytes | None:
    """The bytes of an image URL on this machine, or None with a note (appended) saying why.

    :param own_urls: the sandbox's base URLs; ``<base>/media/<name>`` is read through
        ``local_media(name)`` without a request.
    """
    if not url:
        return None
    data: bytes | None = None
    parts = urlsplit(url)
    own = [urlsplit(base) for base in own_urls]
    if any(
        parts.netloc == o.netloc and parts.path.startswith(o.path.rstrip("/") + "/media/")
        for o in own
    ):
        data = local_media(parts.path.rsplit("/media/", 1)[1])
    elif is_loopback_url(url):
        try:
            data = loopback_get(url, timeout=_IMAGE_TIMEOUT, limit=_IMAGE_LIMIT)
        except (OSError, ValueError) as exc:
            log.info("sandbox: could not fetch %s: %s", url, exc)
    if data is not None and _is_image(data):
        return data
    notes.append(f"{label}: {url} (not fetched)")
    return None


def _is_image(data: bytes) -> bool:
    """True when Pillow recognises ``data`` as an image."""
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as image:
            image.verify()
    except Exception:
        return False
    return True
