"""The notebook layer: display, media and widgets (the only code importing IPython/ipywidgets).

Nothing heavy loads here: IPython and ipywidgets are imported when something is first shown.
Inside an IPython shell (a Jupyter kernel), importing this package tells IPython's display
formatter how to show a :class:`~luma_nb.Job` as a cell's result: a live progress view
(:func:`~luma_nb.notebook.showing.register_formatters`). Everywhere else a job shows its own
text and HTML.
"""

from __future__ import annotations

import sys


def _register_with_running_shell() -> None:
    # Only a shell that is already running can show anything: IPython is then imported, and
    # is never imported here just to look.
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is not None and hasattr(shell, "display_formatter"):
        from .showing import register_formatters

        register_formatters(shell)


_register_with_running_shell()
