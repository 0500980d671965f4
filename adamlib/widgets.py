"""Interactive figures with two faces drawn by ONE function.

A chapter writes ``draw(**params) -> matplotlib.figure.Figure`` once and gets

* :func:`live`: ipywidgets controls that call ``draw`` again on every change. Needs a running
  kernel (Jupyter, Colab, Binder). Its stored output says so in plain words (``text/plain`` and
  ``text/html``): the published page shows that one line instead of controls that would do
  nothing (the book drops widget views from the HTML and stores no widget state).
* :func:`static_figure` (and :func:`static_slider`, its one-parameter form): every combination of
  one to three parameters rendered now, one PNG per frame, behind range inputs switched by a few
  lines of plain JavaScript in the output itself. It works on the published page with no kernel
  and no widget manager, in a trusted notebook, and in Colab; before a notebook is run (scripts
  stripped) the first frame still shows.

``draw`` may also be a :class:`Drawing`: ``setup(**params)`` draws the figure (every static frame,
and the live face's first), ``update(fig, **params)`` changes it in place (the live face's later
moves: no new figure or contours, and no layout pass unless the drawing asks for one;
``tools/redraw_bench.py`` times the moves in a kernel).

Frames are rendered at twice the figure's dpi and displayed at its size (sharp on high-density
screens), quantized to a 256-colour palette (a third of the bytes), deterministically: no PNG
metadata, so identical figures give identical bytes and stored notebooks diff cleanly.
"""
from __future__ import annotations

import base64
import html
import itertools
import json
from collections.abc import Callable, Mapping, Sequence

import ipywidgets
import matplotlib.pyplot as plt
from .plots import DPI, SCALE, describe, describe_text, png_bytes

__all__ = ["live", "static_figure", "static_slider", "render_png", "figure_alt", "StaticFigure", "LiveFigure",
           "Drawing",
           "LIVE_LABEL", "STATIC_LABEL",
           "MAX_FRAMES", "MAX_GRID_FRAMES", "LIVE_NOTE"]

#: Frames of a one-parameter face (each PNG is tens of kB, and the notebook stores them all).
MAX_FRAMES = 8
#: Frames of a face over two or three parameters (their product).
MAX_GRID_FRAMES = 16

#: What a live figure's stored output says where its controls cannot run.
LIVE_NOTE = ("Live controls (they need a running kernel: run this notebook in Jupyter, Colab or "
             "Binder). The precomputed figure below works without one.")

#: Which face is which, where a reader with a kernel sees both: the live one says so under its
#: controls, the static one over its frames.
LIVE_LABEL = "<small><b>Live figure</b>: redrawn by the kernel on every move.</small>"
STATIC_LABEL = "Precomputed frames: these controls work without a kernel."

_LAYOUT = {"width": "min(28em, 100%)"}
_STYLE = {"description_width": "initial"}


def _check_dpi(dpi) -> None:
    if not isinstance(dpi, int) or isinstance(dpi, bool) or not 20 <= dpi <= 300:
        raise ValueError(f"dpi={dpi!r} is not accepted: expected an int in [20, 300]")


def render_png(fig, dpi: int = DPI, *, quantize: bool = False) -> bytes:
    """The figure as PNG bytes, without the metadata that would vary between runs
    (:func:`adamlib.plots.png_bytes`; ``quantize`` reduces it to 256 colours)."""
    _check_dpi(dpi)
    return png_bytes(fig, dpi, quantize=quantize)


def _draw_and_close(draw: Callable, params: Mapping):
    fig = draw(**params)
    if fig is None or not hasattr(fig, "savefig"):
        raise ValueError(f"draw={getattr(draw, '__name__', draw)!r} returned {fig!r}: "
                         "expected a matplotlib Figure")
    return fig


def _plain(text: str) -> str:
    """Matplotlib's mathtext as readable text: $\\beta_1$ -> β_1, braces dropped."""
    return describe_text(text)


def figure_alt(fig) -> str:
    """A description of a figure from its own texts (:func:`adamlib.plots.describe`)."""
    return describe(fig)


# ---------------------------------------------------------------------------------------
# The live face.

class Drawing:
    """A figure that is drawn once and then changed in place: the fast form of a draw function.

    Subclass it and define

    * ``setup(**params) -> Figure``: the whole figure for these values, exactly what a plain
      draw function returns (the static face draws every frame this way);
    * ``update(fig, **params)``: change a figure made by ``setup`` in place so that it shows
      what ``setup(**params)`` would draw: set the data of lines, the heights of bars, texts and
      limits; leave what does not depend on the values (contours, labels, the layout) alone.

    Calling an instance is ``setup``, so the same object is the ``draw`` of :func:`live`,
    :func:`static_figure` and :func:`static_slider`. :func:`live` calls ``setup`` once, lays the
    figure out (constrained layout) while rendering its first frame, and then keeps that layout
    and the titles' positions (``fixed_layout``): every later move is ``update`` and a render,
    with no new figure, no new contours and no layout pass.
    With ``fixed_layout = True`` an update must not change what the layout depends on: the
    number of lines of a title or legend, the widths of tick labels (fixed limits keep them),
    the place of a suptitle (``fig.suptitle(text)`` puts it back where the layout moved it from).
    Set ``fixed_layout = False`` where it does; the figure is then laid out on every frame.
    """

    #: Keep the first frame's layout in the live face (see the class docstring).
    fixed_layout = True

    def setup(self, **params):
        raise NotImplementedError(f"{type(self).__name__}.setup(**params) must return a Figure")

    def update(self, fig, **params) -> None:
        raise NotImplementedError(f"{type(self).__name__}.update(fig, **params) must change fig in place")

    def __call__(self, *args, **params):
        return self.setup(*args, **params)


def _updatable(draw) -> bool:
    return callable(getattr(draw, "setup", None)) and callable(getattr(draw, "update", None))


def _live_canvas(fig, dpi: int):
    """Take ``fig`` out of pyplot (no inline output of the cell) onto an Agg canvas of its own,
    at the resolution it is rendered at: ``savefig(dpi=...)`` would set the figure's dpi there and
    back on every frame, which throws away its cached transforms and text layouts."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    plt.close(fig)
    FigureCanvasAgg(fig)
    fig.set_dpi(dpi)
    return fig


def _live_png(fig) -> bytes:
    """The figure as a PNG at its own dpi: the same pixels as ``png_bytes(fig, fig.dpi)``, at
    zlib level 1 and without metadata (a live frame is never stored)."""
    import io

    from PIL import Image

    fig.canvas.draw()
    width, height = fig.canvas.get_width_height(physical=True)
    image = Image.frombuffer("RGBA", (width, height), fig.canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
    buffer = io.BytesIO()
    image.save(buffer, format="png", compress_level=1)
    return buffer.getvalue()


def _fix_layout(fig) -> None:
    """Keep the layout of the frame just rendered: no constrained-layout pass, and no search for
    the titles' positions (matplotlib's ``_autotitlepos``; it moves a title above top tick
    labels, of which these figures have none) on later frames."""
    fig.set_layout_engine("none")
    for ax in fig.axes:
        if getattr(ax, "_autotitlepos", None) is not None:
            ax._autotitlepos = False


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


class LiveFigure(ipywidgets.VBox):
    """The live face: controls, a busy line and the figure. Displays as a widget with a kernel;
    its stored ``text/plain`` and ``text/html`` are :data:`LIVE_NOTE` (what a page or a
    not-yet-run notebook shows instead of controls that cannot work there)."""

    def _repr_mimebundle_(self, **kwargs):
        bundle = super()._repr_mimebundle_(**kwargs) or {}
        bundle["text/plain"] = LIVE_NOTE
        bundle["text/html"] = f'<p class="adamlib-live-note">{html.escape(LIVE_NOTE)}</p>'
        return bundle


def live(draw: Callable, *, dpi: int = DPI, **controls) -> LiveFigure:
    """Controls that redraw ``draw(**params)`` on every change (needs a kernel).

    Each keyword is a parameter of ``draw``: an ipywidgets value widget (used as is; its
    ``description`` defaults to the name), a list of values (a ``SelectionSlider`` over them,
    starting at the first), or any other value (held fixed).

    ``draw`` is a function returning a new Figure for every move, or a :class:`Drawing` (any
    object with ``setup(**params) -> Figure`` and ``update(fig, **params)``): then ``setup``
    draws the first frame and every later move calls ``update`` on that same figure, which keeps
    its first layout (unless ``draw.fixed_layout`` is false).

    The figure is rendered at ``SCALE`` x ``dpi`` and shown at its size, put into an
    ``Output``'s state and taken out of pyplot, so the cell gets no extra figure output (from
    the inline backend, or under nbval). While ``draw`` runs, a line says "drawing ..."; a
    combination of values drawn once is kept and shown again at once. Returns a
    :class:`LiveFigure`; display it as the last expression of a cell.
    """
    updatable = _updatable(draw)
    if not callable(draw) and not updatable:
        raise ValueError(f"draw={draw!r} is not accepted: expected a callable returning a Figure, "
                         "or a Drawing (setup and update)")
    _check_dpi(dpi)
    widgets = {name: _control(name, spec) for name, spec in controls.items()}
    sliders = [w for w in widgets.values() if isinstance(w, ipywidgets.DOMWidget)]
    if not sliders:
        raise ValueError("live() needs at least one control: pass a widget or a list of values")
    out = ipywidgets.Output()
    busy = ipywidgets.HTML(value=LIVE_LABEL, layout={"min_height": "1.5em"})
    # A value the reader has seen once comes back at once: its PNG is kept (a few dozen
    # frames at most, tens of kB each), keyed by the controls' values.
    seen: dict = {}
    # The figure a Drawing was set up in, changed in place by every later move.
    kept: dict = {}

    def render(params):
        if not updatable:
            fig = _live_canvas(_draw_and_close(draw, params), SCALE * dpi)
            return _live_png(fig), fig.get_size_inches()
        fig = kept.get("fig")
        if fig is None:
            fig = _live_canvas(_draw_and_close(draw.setup, params), SCALE * dpi)
            png = _live_png(fig)  # lays the figure out (constrained layout), once
            if getattr(draw, "fixed_layout", True):
                _fix_layout(fig)
            kept["fig"] = fig
        else:
            draw.update(fig, **params)
            png = _live_png(fig)
        return png, fig.get_size_inches()

    def redraw(change=None):
        params = {name: widget.value for name, widget in widgets.items()}
        key = repr(sorted(params.items(), key=lambda item: item[0]))
        if key not in seen:
            busy.value = "<em>drawing ...</em>"  # sent at once: the reader sees the move was taken
            try:
                png, inches = render(params)
            finally:
                busy.value = LIVE_LABEL
            width, height = (round(v * dpi) for v in inches)
            seen[key] = (png, width, height)
        png, width, height = seen[key]
        # Set the Output's state directly rather than printing inside `with out:`: the image
        # then travels as widget state, never as a display message of the cell, which nbval
        # (no widget manager) would count as an extra output of the cell.
        out.outputs = ({"output_type": "display_data", "metadata": {"image/png": {"width": width, "height": height}},
                        "data": {"image/png": base64.b64encode(png).decode("ascii"),
                                 "text/plain": f"<Figure {width}x{height}>"}},)

    # Not interactive_output: it would add a second, empty Output widget to the saved state.
    for slider in sliders:
        slider.observe(redraw, names="value")
    redraw()
    return LiveFigure([*sliders, busy, out])


# ---------------------------------------------------------------------------------------
# The static face.

def _label(value, format: str | Callable | None) -> str:
    if format is None:
        return str(value)
    if callable(format):
        return format(value)
    return format.format(value)


# Switches the frames of the face just before this script. Plain JavaScript, no dependencies;
# runs on the published page, in a trusted notebook and in Colab. Frame k is the row-major
# index of the inputs' values. Each input names its parameter (aria-label) and says its value
# (aria-valuetext and the <output> beside it).
_SCRIPT = """<script>(function (s) {
  var f = s && s.previousElementSibling;
  if (!f || f.getAttribute("data-ready")) return;
  f.setAttribute("data-ready", "1");
  var inputs = Array.prototype.slice.call(f.querySelectorAll("input[type=range]"));
  var frames = Array.prototype.slice.call(f.querySelectorAll("img[data-frame]"));
  function show() {
    var k = 0;
    inputs.forEach(function (x) {
      var labels = JSON.parse(x.getAttribute("data-labels")), i = +x.value;
      k = k * labels.length + i;
      x.setAttribute("aria-valuetext", labels[i]);
      x.parentNode.querySelector("output").textContent = labels[i];
    });
    frames.forEach(function (img, j) { img.hidden = j !== k; });
  }
  inputs.forEach(function (x) { x.addEventListener("input", show); });
  show();
})(document.currentScript);</script>"""


# Inline so that Jupyter and Colab lay the face out as the page does: inputs that wrap on a
# phone and show their value, frames that shrink to the column, a visible keyboard focus.
_STYLE_TAG = """<style>
.adamlib-face-controls{display:flex;flex-wrap:wrap;gap:.25em 1.5em;margin:.25em 0 .5em}
.adamlib-face-control{display:flex;align-items:center;gap:.5em;max-width:100%}
.adamlib-face-control input{width:min(14em,45vw);accent-color:#1a56db}
.adamlib-face-control input:focus-visible{outline:3px solid #1a56db;outline-offset:2px}
.adamlib-face-control output{min-width:4.5em;font-variant-numeric:tabular-nums;font-weight:600}
.adamlib-face-note{font-size:.85em;color:#444}
.adamlib-face-frames img{max-width:100%;height:auto}
.adamlib-face-frames img[hidden]{display:none!important}
</style>"""


class StaticFigure:
    """Precomputed frames and their controls, displayed as HTML (see :func:`static_figure`).

    ``names``, ``labels`` (per parameter), ``frames`` (PNG bytes, row-major over the
    parameters), ``alts`` (one per frame), ``start`` (the index shown first), ``size`` (CSS
    pixels) are kept for tests and for anyone who wants to write the frames elsewhere.
    """

    def __init__(self, names, descriptions, labels, frames, alts, start, size):
        self.names, self.descriptions, self.labels = names, descriptions, labels
        self.frames, self.alts, self.start, self.size = frames, alts, start, size

    def frame_index(self, indices: Sequence[int]) -> int:
        k = 0
        for i, labels in zip(indices, self.labels):
            k = k * len(labels) + i
        return k

    def _repr_html_(self) -> str:
        width, height = self.size
        starts = self.start
        controls = []
        for name, description, labels, start in zip(self.names, self.descriptions, self.labels, starts):
            controls.append(
                f'<label class="adamlib-face-control"><span class="adamlib-face-name">'
                f"{html.escape(_plain(description))}</span>"
                f'<input type="range" min="0" max="{len(labels) - 1}" step="1" value="{start}" '
                f'aria-label="{html.escape(_plain(description))}" '
                f'aria-valuetext="{html.escape(labels[start])}" '
                f'data-labels="{html.escape(json.dumps(labels))}">'
                f'<output>{html.escape(labels[start])}</output></label>'
            )
        shown = self.frame_index(starts)
        images = []
        for k, (png, alt) in enumerate(zip(self.frames, self.alts)):
            data = base64.b64encode(png).decode("ascii")
            hidden = "" if k == shown else " hidden"
            images.append(f'<img data-frame="{k}" src="data:image/png;base64,{data}" '
                          f'width="{width}" height="{height}" alt="{html.escape(alt)}"{hidden}>')
        return (_STYLE_TAG + f'<div class="adamlib-face" role="group" aria-label="Precomputed figure">'
                f'<div class="adamlib-face-note">{STATIC_LABEL}</div>'
                f'<div class="adamlib-face-controls">{"".join(controls)}</div>'
                f'<div class="adamlib-face-frames">{"".join(images)}</div></div>' + _SCRIPT)

    def _repr_mimebundle_(self, include=None, exclude=None):
        combos = " x ".join(f"{len(labels)} values of {name}" for name, labels in zip(self.names, self.labels))
        text = f"Precomputed figure: {len(self.frames)} frames ({combos}), switched without a kernel."
        return {"text/html": self._repr_html_(), "text/plain": text}


def _values_list(name: str, values) -> list:
    values = list(values) if isinstance(values, Sequence) and not isinstance(values, str) else None
    if values is None or len(values) < 2:
        raise ValueError(f"{name}: values={values!r} are not accepted: expected a list of at least 2 values")
    return values


def static_figure(draw: Callable, params: Mapping[str, Sequence], fixed: Mapping | None = None, *,
                  value: Mapping | None = None, description: Mapping | None = None,
                  format: Mapping | None = None, alt: str | Callable | None = None,
                  dpi: int = DPI, max_frames: int | None = None) -> StaticFigure:
    """Precomputed frames of ``draw`` over one to three parameters, switched in the browser.

    Renders ``draw(**fixed, **combination)`` for every combination of ``params`` (a mapping
    from a parameter of ``draw`` to its values, in slider order) and shows them behind one
    range input per parameter. The frames are PNGs at ``SCALE`` x ``dpi`` in the output's HTML.

    Args:
        draw: returns a matplotlib Figure for keyword parameters; the figure is closed after
            rendering. Every frame must have the same size.
        params: ``{name: values}``; 1 to 3 parameters, each with at least 2 values; at most
            ``MAX_FRAMES`` frames for one parameter, ``MAX_GRID_FRAMES`` for several.
        fixed: the other parameters of ``draw``, held fixed.
        value: ``{name: value}`` shown first (default: each parameter's first value).
        description: ``{name: label}`` of each input (default: the name).
        format: ``{name: format}``, how values are labelled: a format string such as
            ``"{:.0e}"`` or a callable (default: ``str``). Labels must be distinct.
        alt: the frames' alt text: a format string over the parameters' labels (e.g.
            ``"EWA weights for beta = {beta}"``), or a callable of the parameters' values;
            default: :func:`figure_alt` of the frame followed by the parameters' values.
        dpi: the figure's display resolution (frames are rendered at ``SCALE`` x this).
        max_frames: refuse more frames than this.
    """
    if not callable(draw):
        raise ValueError(f"draw={draw!r} is not accepted: expected a callable returning a Figure")
    if not isinstance(params, Mapping) or not 1 <= len(params) <= 3 or \
            not all(isinstance(n, str) and n for n in params):
        raise ValueError(f"params={params!r} is not accepted: expected a mapping of 1 to 3 parameter "
                         "names of draw to their values")
    _check_dpi(dpi)
    fixed = dict(fixed or {})
    clash = sorted(set(fixed) & set(params))
    if clash:
        raise ValueError(f"fixed={fixed!r} is not accepted: it also sets the slider parameter(s) "
                         f"{clash}; expected only the other parameters of draw")
    for option, mapping in (("value", value), ("description", description), ("format", format)):
        unknown = sorted(set(mapping or {}) - set(params))
        if unknown:
            raise ValueError(f"{option}={mapping!r} is not accepted: {unknown} are not among the "
                             f"parameters; expected keys from {list(params)}")
    names = list(params)
    values = {n: _values_list(n, params[n]) for n in names}
    count = 1
    for n in names:
        count *= len(values[n])
    limit = max_frames if max_frames is not None else (MAX_FRAMES if len(names) == 1 else MAX_GRID_FRAMES)
    if count > limit:
        sizes = " x ".join(str(len(values[n])) for n in names)
        raise ValueError(f"params={params!r} are not accepted: {sizes} = {count} frames, expected at "
                         f"most {limit} (every frame is stored in the notebook)")
    labels = {}
    for n in names:
        labels[n] = [_label(v, (format or {}).get(n)) for v in values[n]]
        if len(set(labels[n])) != len(labels[n]):
            raise ValueError(f"format={format!r} is not accepted: it gives repeated labels "
                             f"{labels[n]} for {n}; expected one distinct label per value")
    starts = []
    for n in names:
        first = (value or {}).get(n, values[n][0])
        if first not in values[n]:
            raise ValueError(f"value={value!r} is not accepted: expected {n} to be one of {values[n]}")
        starts.append(values[n].index(first))
    descriptions = [(description or {}).get(n, n) for n in names]

    frames, alts, size = [], [], None
    for combination in itertools.product(*(range(len(values[n])) for n in names)):
        chosen = {n: values[n][i] for n, i in zip(names, combination)}
        shown = {n: labels[n][i] for n, i in zip(names, combination)}
        fig = _draw_and_close(draw, {**fixed, **chosen})
        try:
            frame_size = tuple(round(v * dpi) for v in fig.get_size_inches())
            if size is not None and frame_size != size:
                raise ValueError(f"draw={getattr(draw, '__name__', draw)!r} drew a {frame_size} figure "
                                 f"for {chosen}, the first frame was {size}: expected one figure size")
            size = frame_size
            frames.append(render_png(fig, SCALE * dpi, quantize=True))
            if alt is None:
                where = ", ".join(f"{_plain(d)} = {shown[n]}" for n, d in zip(names, descriptions))
                alts.append(f"{figure_alt(fig)} ({where})")
            elif callable(alt):
                alts.append(str(alt(**chosen)))
            else:
                alts.append(alt.format(**shown))
        finally:
            plt.close(fig)
    return StaticFigure(names, descriptions, [labels[n] for n in names], frames, alts, starts, size)


def static_slider(draw: Callable, name: str, values: Sequence, fixed: Mapping | None = None, *,
                  dpi: int = DPI, value=None, description: str | None = None,
                  format: str | Callable | None = None, alt: str | Callable | None = None,
                  max_frames: int = MAX_FRAMES) -> StaticFigure:
    """Precomputed frames of ``draw`` over one parameter: :func:`static_figure` with one slider.

    ``values`` are 2 to ``max_frames`` values of the parameter ``name``, in slider order;
    ``value`` is shown first (default: the first); ``description`` labels the slider (default:
    ``name``); ``format`` labels the values; ``alt`` as in :func:`static_figure`.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name={name!r} is not accepted: expected the name of a parameter of draw")
    values = list(values) if isinstance(values, Sequence) and not isinstance(values, str) else None
    if values is None or not 2 <= len(values) <= max_frames:
        raise ValueError(f"values={values!r} is not accepted: expected a list of 2 to {max_frames} values")
    if value is not None and value not in values:
        raise ValueError(f"value={value!r} is not accepted: expected one of {values}")
    return static_figure(draw, {name: values}, fixed, value=None if value is None else {name: value},
                         description=None if description is None else {name: description},
                         format=None if format is None else {name: format}, alt=alt, dpi=dpi,
                         max_frames=max_frames)
