"""The notebook layer: display, media and widgets (the only code importing IPython/ipywidgets)."""
