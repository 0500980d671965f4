"""Plotting helpers shared by the chapters: one style, labelled axes, small stored images.

Figures are laid out at ``DPI`` dots per inch and, in a notebook, rendered at twice that and
displayed at their laid-out size (sharp on high-density screens), as 256-colour PNGs so that
executed notebooks, which the repository stores with their outputs, stay light. Colours are fixed per label through :func:`color_for`,
so "b = 32" has the same colour in every figure of a chapter.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt

__all__ = ["DPI", "STYLE", "figure", "figure_legend", "color_for", "loss_curves", "X_CHOICES",
           "png_bytes", "display_png", "describe"]

#: Resolution of stored figures and static-widget frames (72-100 keeps notebooks small).
DPI = 80

#: Display figures are rendered at SCALE x DPI and shown at DPI (CSS pixels).
SCALE = 2

#: rcParams applied by :func:`figure`; readable at DPI 80 on a book page.
STYLE = {
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 1.6,
}

def png_bytes(fig, dpi: int, *, quantize: bool = False, fast: bool = False, description: str | None = None,
              **savefig_kwargs) -> bytes:
    """The figure as PNG bytes with no metadata (identical figures give identical bytes).

    With ``quantize`` the image is reduced to a 256-colour palette (median cut, no dithering):
    line plots lose nothing visible and the file shrinks about threefold. With ``fast`` the
    PNG is compressed at zlib level 1 (larger, encoded in a fraction of the time: for a live
    redraw, whose bytes are never stored). A ``description`` is stored in the PNG's
    ``Description`` text chunk: the book's build reads it as the image's alt text
    (book_ext/figure_alt.py).
    """
    import io

    buffer = io.BytesIO()
    if fast:
        savefig_kwargs.setdefault("pil_kwargs", {"compress_level": 1})
    metadata = {"Software": None}
    if description:
        metadata["Description"] = description
    fig.savefig(buffer, format="png", dpi=dpi, metadata=metadata, **savefig_kwargs)
    if not quantize:
        return buffer.getvalue()
    from PIL import Image, PngImagePlugin

    image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    image = image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    info = PngImagePlugin.PngInfo()
    if description:
        info.add_text("Description", description)
    out = io.BytesIO()
    image.save(out, format="png", optimize=True, pnginfo=info)
    return out.getvalue()


_TEX_NAMES = {"alpha": "α", "beta": "β", "epsilon": "ε", "varepsilon": "ε", "eps": "ε", "eta": "η",
              "lambda": "λ", "theta": "θ", "kappa": "κ", "sigma": "σ", "gamma": "γ", "Gamma": "Γ",
              "Delta": "Δ", "delta": "δ", "mu": "μ", "rho": "ρ", "tau": "τ", "nabla": "∇", "infty": "∞",
              "sqrt": "√", "cdot": "·", "times": "×", "le": "≤", "leq": "≤", "ge": "≥", "geq": "≥",
              "approx": "≈", "to": "→", "ell": "ℓ", "pm": "±",
              # accents and fonts: the letter they decorate says it
              "hat": "", "bar": "", "tilde": "", "mathrm": "", "mathbf": "", "boldsymbol": "", "text": "",
              "left": "", "right": "", ",": "", "quad": " ", "qquad": " "}


def describe_text(text: str) -> str:
    """Matplotlib's mathtext as readable text: ``$\\hat\\beta_1$`` -> ``β_1``, braces dropped."""
    import re

    # An accent on one letter stays on it: \hat v -> v̂, \bar{x} -> x̄ (combining marks).
    marks = {"hat": "\u0302", "bar": "\u0304", "tilde": "\u0303"}

    def accent(m):
        base = m.group(2)
        base = _TEX_NAMES.get(base[1:], base[1:]) if base.startswith("\\") else base
        return base + marks[m.group(1)]

    text = re.sub(r"\\(hat|bar|tilde)\s*\{?\s*(\\[A-Za-z]+|[A-Za-z])\s*\}?", accent, text)
    text = re.sub(r"\\([A-Za-z]+)", lambda m: _TEX_NAMES.get(m.group(1), m.group(1)), text)
    return re.sub(r"\s+", " ", text.replace("$", "").replace("{", "").replace("}", "")).strip()


def describe(fig) -> str:
    """What a figure shows, from its own texts: title, panel titles, axis labels and legend
    entries ("training cost against epochs; curves: Adam, SGD"). The alt text of the book's
    figures, so a screen reader hears what the picture shows rather than a file name."""
    plain = describe_text
    parts = []
    suptitle = getattr(fig, "_suptitle", None)
    if suptitle is not None and suptitle.get_text():
        parts.append(plain(suptitle.get_text()))
    panels = []
    for ax in fig.axes:
        title, x, y = (plain(s) for s in (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()))
        axes_text = " against ".join(s for s in (y, x) if s)
        legend = ax.get_legend()
        entries = [plain(t.get_text()) for t in legend.get_texts()][:8] if legend is not None else []
        panel = ", ".join(s for s in (title, axes_text) if s)
        if entries:
            panel += ("; " if panel else "") + "curves: " + ", ".join(e for e in entries if e)
        if panel and panel not in panels:
            panels.append(panel)
    legends = [plain(t.get_text()) for legend in getattr(fig, "legends", []) for t in legend.get_texts()][:8]
    if panels:
        parts.append(("Panels: " if len(panels) > 1 else "") + " | ".join(panels))
    if legends:
        parts.append("curves: " + ", ".join(e for e in legends if e))
    return ". ".join(parts) or "Figure"


def display_png(fig):
    """IPython's ``image/png`` for a Figure: rendered at ``SCALE x DPI`` (cropped to its content,
    as the inline backend does), with ``width``/``height`` metadata that show it at ``DPI``."""
    png = png_bytes(fig, SCALE * DPI, quantize=True, bbox_inches="tight", description=describe(fig))
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    return png, {"width": round(width / SCALE), "height": round(height / SCALE)}


def _install_display_formatter() -> None:
    """In an IPython kernel, show every Figure through :func:`display_png`.

    The inline backend registers its own PNG formatter when it is first loaded; it is loaded
    here first, so this registration is the one that stays.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None or not hasattr(shell, "display_formatter"):
        return
    if "inline" in str(mpl.get_backend(auto_select=False)):
        import matplotlib_inline.backend_inline  # noqa: F401  (configures the inline backend)
    from matplotlib.figure import Figure

    shell.display_formatter.formatters["image/png"].for_type(Figure, display_png)


_install_display_formatter()

_PALETTE = [c["color"] for c in mpl.rcParams["axes.prop_cycle"]] or ["C0"]
_COLORS: dict[str, str] = {}

#: At most about this many per-update points are drawn per curve (every k-th update beyond).
MAX_ITERATION_POINTS = 2000

#: What :func:`loss_curves` can put on the x axis, and the axis label of each.
X_CHOICES = {
    "epoch": "epochs (passes over the training set)",
    "examples": "examples processed",
    "updates": "updates (optimizer steps)",
    "time": "wall time of the updates [s]",
}


def figure(ncols: int = 1, nrows: int = 1, width: float = 4.2, height: float = 3.2, **kwargs):
    """``plt.subplots`` in the book's style: each panel ``width`` x ``height`` inches at ``DPI``.

    Returns ``(fig, axes)`` like ``plt.subplots`` (a single Axes for one panel).
    """
    if ncols < 1 or nrows < 1:
        raise ValueError(f"ncols={ncols!r}, nrows={nrows!r} are not accepted: expected ints >= 1")
    with mpl.rc_context(STYLE):
        fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows),
                                 dpi=DPI, layout="constrained", **kwargs)
    # rc_context only affects creation; keep the grid and spines on the created axes.
    for ax in fig.axes:
        ax.grid(True, alpha=STYLE["grid.alpha"])
        ax.spines[["top", "right"]].set_visible(False)
    return fig, axes


def figure_legend(fig, ax=None, ncols: int | None = None):
    """One legend for the whole figure, below the panels (needs :func:`figure`'s layout).

    Takes the labelled lines of ``ax`` (default: the first Axes); returns the Legend.
    """
    ax = ax if ax is not None else fig.axes[0]
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        raise ValueError("ax has no labelled lines: expected curves drawn with labels")
    return fig.legend(handles, labels, loc="outside lower center", frameon=False,
                      ncols=ncols or min(len(handles), 4))


def color_for(label: str) -> str:
    """A colour fixed for ``label`` within this Python session (first come, first served)."""
    if label not in _COLORS:
        _COLORS[label] = _PALETTE[len(_COLORS) % len(_PALETTE)]
    return _COLORS[label]


def _as_labelled(histories) -> list[tuple[str, object]]:
    if isinstance(histories, Mapping):
        return [(str(k), v) for k, v in histories.items()]
    if isinstance(histories, Sequence) and not isinstance(histories, str):
        return [(f"b = {h.batch_size}", h) for h in histories]
    return [(f"b = {histories.batch_size}", histories)]  # a single History


def loss_curves(ax, histories, x: str = "epoch", *, logy: bool = True, logx: bool = False,
                iterations: bool = False, legend: bool = True, title: str | None = None,
                ylabel: str = "training cost  $f(\\theta)$"):
    """Plot training cost curves of :class:`adamlib.train.History` objects on ``ax``.

    Args:
        ax: a matplotlib Axes.
        histories: a ``{label: History}`` mapping, a sequence of histories (labelled by batch
            size), or one History.
        x: ``"epoch"``, ``"examples"``, ``"updates"`` or ``"time"`` (see ``X_CHOICES``).
        logy, logx: logarithmic axes. With ``logx`` the initial point (x = 0) is left out.
        iterations: also draw the mini-batch cost of every update, thin and faint (needs
            histories recorded with ``record="iteration"``; not available for ``x="time"``).
        legend, title, ylabel: decorations.

    Full-data costs at epoch ends are drawn as lines with dots; per-update costs of long runs
    are thinned to about ``MAX_ITERATION_POINTS`` points. Returns ``ax``.
    """
    if x not in X_CHOICES:
        raise ValueError(f"x={x!r} is not accepted: expected one of {tuple(X_CHOICES)}")
    if iterations and x == "time":
        raise ValueError("iterations=True is not accepted with x='time': per-update times are not recorded")
    first = 1 if logx else 0
    for label, h in _as_labelled(histories):
        color = color_for(label)
        if iterations and h.iteration_loss:
            n = len(h.iteration_loss)
            xs = {"epoch": [e / h.m for e in h.iteration_examples],
                  "examples": h.iteration_examples,
                  "updates": list(range(1, n + 1))}[x]
            # Thin out long runs (b = 1 takes m updates per epoch): a few thousand points
            # show the noise just as well, and draw (and lay out) much faster.
            stride = max(1, n // MAX_ITERATION_POINTS)
            (line,) = ax.plot(xs[::stride], h.iteration_loss[::stride], color=color, alpha=0.35,
                              linewidth=0.7)
            line.set_in_layout(False)  # inside the axes anyway; skips a slow extent computation
        xs = {"epoch": h.epoch, "examples": h.examples, "updates": h.updates, "time": h.time}[x]
        (line,) = ax.plot(xs[first:], h.epoch_loss[first:], "o-", color=color, markersize=3,
                          label=label)
        line.set_in_layout(False)
    if logy:
        ax.set_yscale("log")
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(X_CHOICES[x])
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if legend:
        ax.legend(frameon=False)
    return ax
