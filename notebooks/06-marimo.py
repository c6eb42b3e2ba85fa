import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="luma_nb in marimo")


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    # Extend a video, in marimo

    The same widgets as in Jupyter: the extend form with its parent picker and live progress,
    and a gallery of what you made. They are anywidget widgets, so marimo shows them as they
    are; `mo.ui.anywidget(...)` also makes the form reactive (a cell that reads `form.value`
    runs again when you change it).

    **Demo mode.** Without an `APIFRAME_API_KEY`, luma_nb starts an offline sandbox in this
    notebook's process: the same API, real (synthetic) MP4s, no credits. Start marimo with the
    key set to use the real service.

    Open it with `marimo edit notebooks/06-marimo.py`, or as an app with
    `marimo run notebooks/06-marimo.py`.
    """)
    return


@app.cell
def _():
    import marimo as mo

    import luma_nb

    return luma_nb, mo


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## The form

    Pick a parent (click a thumbnail), type what happens next, press **Submit**
    (or Ctrl/Cmd+Enter). The progress card appears below the form, then the video.
    """)
    return


@app.cell
def _(luma_nb, mo):
    extend = luma_nb.extend_form()
    form = mo.ui.anywidget(extend)
    form
    return extend, form


@app.cell
def _(form, mo):
    # Reactive: marimo runs this cell again whenever the form's value changes.
    _prompt = (form.value.get("prompt") or "").strip()
    mo.md(
        f"You are about to extend with **{len(_prompt)}** characters of prompt."
        if _prompt
        else "Type a prompt in the form above."
    )
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## Everything you made

    Every submit of the form also lands in this gallery. Each card shows a picture of its own
    new part, and fetches no video until you play it.
    """)
    return


@app.cell
def _(extend, luma_nb):
    gallery = luma_nb.Gallery([], columns=3)
    extend.on_submit(gallery.add)
    gallery
    return


if __name__ == "__main__":
    app.run()
