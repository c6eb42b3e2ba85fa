"""ipywidgets UI: the extend form, live progress views, galleries and storyboards.

Widgets drive jobs and never build HTTP requests themselves: submits go through
``client.extend`` and progress comes from the one background watcher (:mod:`luma_nb.watcher`).
"""

from __future__ import annotations

from .form import ExtendForm, extend_form
from .gallery import Gallery
from .progress import ProgressView
from .storyboard import Storyboard, storyboard

__all__ = ("ExtendForm", "Gallery", "ProgressView", "Storyboard", "extend_form", "storyboard")
