"""The notebook UI: the extend form, live progress cards, galleries and storyboards.

The form (:mod:`.form`) and the progress card (:mod:`.progress`) are anywidget widgets
(ipywidgets ``DOMWidget`` s rendered by one ES module, ``static/luma.js``, with
``static/luma.css``, both shipped in the package: no build step, nothing fetched at run time).
Their state lives in synced traits; the view sends edits and messages, and Python validates
and submits. Their elements carry ``data-luma="..."`` attributes (``status-line``, ``picker``,
``picker-item``, ``parent``, ``prompt``, ``ratio``, ``submit``, ``submit-reason``, ``message``,
``use-sandbox``, ``card``, ``progress``, ``card-status``, ``video``, ``extend-this``, ``save``).

Widgets drive jobs and never build HTTP requests themselves: submits go through
``client.extend`` and progress comes from the one background watcher
(:mod:`luma_nb.client.watcher`), which is the only writer of progress values once a view is
watching.

Outputs and nbval. Every widget's bundle carries the widget view plus a ``text/plain`` and a
``text/html`` fallback (for nbconvert, nbval, and front-ends without the widget manager).

- Stable ``text/plain``: ``ProgressView(prompt='...')`` (also what ``job`` shows as a cell result
  in a kernel), ``Gallery(3 jobs)``, ``Storyboard(2 extends)``, ``ClassGallery('<class>')`` (or,
  outside a class, its notice); the form's says what it is for, where it works and the
  ``client.extend`` line that does the same (with the parent's id). No ports or times.
- The form's ``text/html`` is a static card (banner, parent, how to use it), never a
  "needs a front-end" placeholder: it is what nbconvert, GitHub and VS Code without a widget
  renderer show.
- The galleries' ``text/html`` (``Gallery``, ``Storyboard``, ``ClassGallery``) is a static list
  of their cards (label, prompt, state) and "Run the cell to see the videos": no player and no
  media URL, so a saved notebook never shows a dead one and the text is stable.
- Volatile ``text/html`` (sanitize it or do not compare it): task ids (random UUIDs unless the
  sandbox has a ``seed``), the status at the moment of display (``pending``/``staged``/...), and
  video URLs, which carry the sandbox's port (``http://127.0.0.1:PORT/media/<id>.mp4``).
  Suggested nbval sanitizers: ``[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}``
  -> ``TASK_ID`` and ``127\\.0\\.0\\.1:\\d+`` -> ``SANDBOX``.
- Outside a kernel, ``job`` shows ``job_text`` (which includes the task id) and ``job.show()``
  prints one line per status change: which statuses are seen depends on timing.
- ``Task`` HTML and ``Video`` HTML are deterministic given the task id and URL.
"""

from __future__ import annotations

from .class_gallery import ClassGallery, class_gallery
from .form import ExtendForm, extend_form
from .gallery import Gallery
from .progress import ProgressView
from .storyboard import Storyboard, storyboard

__all__ = (
    "ClassGallery",
    "ExtendForm",
    "Gallery",
    "ProgressView",
    "Storyboard",
    "class_gallery",
    "extend_form",
    "storyboard",
)
