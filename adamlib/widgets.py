"""Interactive figures with two faces drawn by ONE function.

A chapter writes ``draw(**params) -> matplotlib.figure.Figure`` once and gets

* :func:`live`: sliders that call ``draw`` again on every change. Needs a running kernel
  (Jupyter, Colab, Binder); on the published page it shows its first frame and then nothing.
* :func:`static_slider`: a few frames rendered now, one PNG per value of one parameter, in an
  ipywidgets ``Stack`` whose visible child is chosen by a ``SelectionSlider`` through
  ``jslink``. The link runs in the browser, so the saved widget state works on a static page
  with no kernel.

Frames are rendered deterministically: fixed size and dpi, and no PNG metadata
(``Software``), so identical figures give identical bytes and stored notebooks diff cleanly.
"""
from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence

import ipywidgets
import matplotlib.pyplot as plt
from IPython.display import Image as DisplayImage

from .plots import DPI

__all__ = ["live", "static_slider", "render_png", "MAX_FRAMES"]

#: More frames make the stored notebook heavy (each PNG is tens of kB).
MAX_FRAMES = 8

_LAYOUT = {"width": "28em"}
_STYLE = {"description_width": "initial"}


def _check_dpi(dpi) -> None:
    if not isinstance(dpi, int) or isinstance(dpi, bool) or not 20 <= dpi <= 300:
        raise ValueError(f"dpi={dpi!r} is not accepted: expected an int in [20, 300]")


def render_png(fig, dpi: int = DPI) -> bytes:
    """The figure as PNG bytes, without the metadata that would vary between runs."""
    _check_dpi(dpi)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()


def _draw_and_close(draw: Callable, params: Mapping):
    fig = draw(**params)
    if fig is None or not hasattr(fig, "savefig"):
        raise ValueError(f"draw={getattr(draw, '__name__', draw)!r} returned {fig!r}: "
                         "expected a matplotlib Figure")
    return fig


def _control(name: str, spec):
    """A widget for one parameter: widgets pass through, lists become SelectionSliders."""
    if isinstance(spec, ipywidgets.ValueWidget):
        if not spec.description:
            spec.description = name
        style = getattr(spec, "style", None)
        if style is not None and hasattr(style, "description_width") and not style.description_width:
            style.description_width = "initial"  # show the whole label, not "learning r..."
        return spec
    if isinstance(spec, Sequence) and not isinstance(spec, str):
        if len(spec) < 2:
            raise ValueError(f"{name}={spec!r} is not accepted: expected at least two values")
        return ipywidgets.SelectionSlider(options=list(spec), value=spec[0], description=name,
                                          continuous_update=False, layout=_LAYOUT, style=_STYLE)
    return ipywidgets.fixed(spec)


def live(draw: Callable, *, dpi: int = DPI, **controls) -> ipywidgets.VBox:
    """Sliders that redraw ``draw(**params)`` into an ``Output`` on every change (needs a kernel).

    Each keyword is a parameter of ``draw``: an ipywidgets value widget (used as is; its
    ``description`` defaults to the name), a list of values (a ``SelectionSlider`` over them,
    starting at the first), or any other value (held fixed).

    The figure is rendered like a static frame (:func:`render_png` at ``dpi``), put into the
    Output's state and closed, so the cell gets no extra figure output (from the inline
    backend, or under nbval). Returns a ``VBox`` of the controls and the Output; display it
    as the last expression of a cell.
    """
    if not callable(draw):
        raise ValueError(f"draw={draw!r} is not accepted: expected a callable returning a Figure")
    _check_dpi(dpi)
    widgets = {name: _control(name, spec) for name, spec in controls.items()}
    sliders = [w for w in widgets.values() if isinstance(w, ipywidgets.DOMWidget)]
    if not sliders:
        raise ValueError("live() needs at least one control: pass a widget or a list of values")
    out = ipywidgets.Output()

    def redraw(change=None):
        params = {name: widget.value for name, widget in widgets.items()}
        fig = _draw_and_close(draw, params)
        try:
            png = render_png(fig, dpi)
        finally:
            plt.close(fig)
        # Set the Output's state directly rather than printing inside `with out:`: the
        # image then travels as widget state, never as a display message of the cell, which
        # nbval (no widget manager) would count as an extra output of the cell.
        out.outputs = ()
        out.append_display_data(DisplayImage(data=png, format="png"))

    # Not interactive_output: it would add a second, empty Output widget to the saved state.
    for slider in sliders:
        slider.observe(redraw, names="value")
    redraw()
    return ipywidgets.VBox([*sliders, out])


def _label(value, format: str | Callable | None) -> str:
    if format is None:
        return str(value)
    if callable(format):
        return format(value)
    return format.format(value)


def static_slider(draw: Callable, name: str, values: Sequence, fixed: Mapping | None = None, *,
                  dpi: int = DPI, value=None, description: str | None = None,
                  format: str | Callable | None = None,
                  max_frames: int = MAX_FRAMES) -> ipywidgets.VBox:
    """Precomputed frames of ``draw`` over one parameter, switched in the browser (no kernel).

    Renders ``draw(**fixed, **{name: v})`` for every ``v`` in ``values`` to a PNG, puts the
    images in an ``ipywidgets.Stack`` and links a ``SelectionSlider`` to it with
    ``jslink((slider, "index"), (stack, "selected_index"))``.

    Args:
        draw: returns a matplotlib Figure for keyword parameters; the figure is closed after
            rendering.
        name: the parameter of ``draw`` the slider moves.
        values: its values, 2 to ``max_frames`` of them, in slider order.
        fixed: the other parameters of ``draw``, held fixed.
        dpi: resolution of the frames.
        value: the value shown first (default: the first one).
        description: the slider's label (default: ``name``).
        format: how a value is labelled on the slider: a format string such as
            ``"{:.0e}"`` or a callable (default: ``str``). Labels must be distinct.
        max_frames: refuse more frames than this (the notebook stores every PNG).

    Returns:
        ``VBox([slider, stack])``; the link is kept as its ``link`` attribute.
    """
    if not callable(draw):
        raise ValueError(f"draw={draw!r} is not accepted: expected a callable returning a Figure")
    if not isinstance(name, str) or not name:
        raise ValueError(f"name={name!r} is not accepted: expected the name of a parameter of draw")
    fixed = dict(fixed or {})
    if name in fixed:
        raise ValueError(f"fixed={fixed!r} is not accepted: it also sets the slider's parameter "
                         f"{name!r}; expected only the other parameters of draw")
    values = list(values) if isinstance(values, Sequence) and not isinstance(values, str) else None
    if values is None or not 2 <= len(values) <= max_frames:
        raise ValueError(f"values={values!r} is not accepted: expected a list of 2 to {max_frames} values")
    labels = [_label(v, format) for v in values]
    if len(set(labels)) != len(labels):
        raise ValueError(f"format={format!r} is not accepted: it gives repeated labels {labels}; "
                         "expected one distinct label per value")
    if value is None:
        value = values[0]
    if value not in values:
        raise ValueError(f"value={value!r} is not accepted: expected one of {values}")
    start = values.index(value)

    images = []
    for v in values:
        fig = _draw_and_close(draw, {**fixed, name: v})
        try:
            png = render_png(fig, dpi)
        finally:
            plt.close(fig)
        images.append(ipywidgets.Image(value=png, format="png"))
    slider = ipywidgets.SelectionSlider(
        options=labels, index=start, description=description or name,
        continuous_update=True, layout=_LAYOUT, style=_STYLE,
    )
    stack = ipywidgets.Stack(children=images, selected_index=start)
    link = ipywidgets.jslink((slider, "index"), (stack, "selected_index"))
    box = ipywidgets.VBox([slider, stack])
    box.link = link  # keep a reference: the link must live as long as the widgets
    return box
