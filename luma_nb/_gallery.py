"""``luma_nb.class_gallery()``: the class's published videos, live, when a class is set."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .contract.errors import ValidationError
from .defaults import class_url, default_client

if TYPE_CHECKING:
    from .api.client import LumaClient
    from .notebook.widgets.class_gallery import ClassGallery

__all__ = ("class_gallery",)


def class_gallery(client: LumaClient | None = None, **options: Any) -> ClassGallery:
    """Every published video of your class, live (a widget that follows the class relay).

    Parameters:
        client: a client of the class relay; default: the class of ``LUMA_NB_CLASS_URL``.
        options: passed to :class:`~luma_nb.notebook.widgets.ClassGallery` (``columns``,
            ``video_width``, ``transport``).

    Without a class (no ``LUMA_NB_CLASS_URL``, or a client of the API or the sandbox) the
    widget says there is no class gallery and how to join a class; nothing is started.
    """
    from .api.gallery import require_class
    from .contract.errors import ClassOnlyError
    from .notebook.widgets.class_gallery import ClassGallery

    if client is None:
        if class_url() is None:
            return ClassGallery(None, **options)
        try:
            client = default_client()
        except ValidationError as error:  # the URL is set, the token is not
            return ClassGallery(None, notice=f"No class gallery: {error}", **options)
    try:
        require_class(client)
    except ClassOnlyError as error:
        return ClassGallery(None, notice=f"No class gallery. {error}", **options)
    return ClassGallery(client, **options)
