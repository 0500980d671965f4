"""adamlib.widgets and adamlib.plots: both faces of an interactive figure."""
import base64
import hashlib
import io

import ipywidgets
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from adamlib import plots  # noqa: E402
from adamlib.train import History  # noqa: E402
from adamlib.widgets import (  # noqa: E402
    LIVE_LABEL, LIVE_NOTE, MAX_FRAMES, STATIC_LABEL, MAX_GRID_FRAMES, Drawing, StaticFigure, live, render_png, static_figure, static_slider)


def draw_line(slope, offset=0.0):
    fig, ax = plots.figure(width=3, height=2)
    ax.plot([0, 1], [offset, offset + slope])
    ax.set_ylim(-3, 3)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    return fig


PNG = b"\x89PNG\r\n\x1a\n"


def frame_size(png: bytes) -> tuple[int, int]:
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def test_static_slider_has_one_distinct_png_per_value_behind_a_range_input():
    values = [-2, -1, 0, 1, 2]
    face = static_slider(draw_line, "slope", values, fixed={"offset": 0.5}, value=1,
                         description="slope a")
    assert isinstance(face, StaticFigure)
    assert face.labels == [["-2", "-1", "0", "1", "2"]] and face.start == [3]
    assert len(face.frames) == len(values) and all(f[:8] == PNG for f in face.frames)
    assert len({hashlib.sha256(f).hexdigest() for f in face.frames}) == len(values)
    page = face._repr_html_()
    assert STATIC_LABEL in page  # which face is which, where a kernel shows both
    assert page.count('<input type="range"') == 1
    assert 'min="0" max="4" step="1" value="3"' in page
    assert 'aria-label="slope a" aria-valuetext="1"' in page and "<output>1</output>" in page
    assert page.count("<img data-frame=") == 5 and page.count(" hidden>") == 4
    assert '<img data-frame="3" ' in page and "document.currentScript" in page
    assert plt.get_fignums() == []  # every frame's figure was closed


def test_frames_are_drawn_at_twice_the_dpi_and_shown_at_the_figure_size():
    face = static_slider(draw_line, "slope", [1, 2], dpi=50)
    assert face.size == (150, 100)  # 3 x 2 inches at 50 dpi, in CSS pixels
    assert all(frame_size(f) == (300, 200) for f in face.frames)
    assert 'width="150" height="100"' in face._repr_html_()


def test_a_face_over_two_parameters_has_every_combination_in_row_major_order():
    face = static_figure(draw_line, {"slope": [1, 2, 3], "offset": [0.0, 1.0]},
                         value={"slope": 2, "offset": 1.0}, format={"offset": "{:.1f}"},
                         alt="line of slope {slope} from {offset}")
    assert face.names == ["slope", "offset"] and face.labels == [["1", "2", "3"], ["0.0", "1.0"]]
    assert len(face.frames) == 6 and face.start == [1, 1] and face.frame_index([1, 1]) == 3
    assert face.alts[3] == "line of slope 2 from 1.0"
    assert face.frames[3] == render_png(draw_line(2, 1.0), 2 * plots.DPI, quantize=True)
    page = face._repr_html_()
    assert page.count('<input type="range"') == 2
    assert '<img data-frame="3" ' in page and page.count(" hidden>") == 5
    plt.close("all")


def test_default_alt_text_describes_the_frame_from_its_own_labels():
    def draw(slope):
        fig = draw_line(slope)
        fig.axes[0].set_title(r"a line, $\beta$ = " + str(slope))
        return fig

    face = static_slider(draw, "slope", [1, 2], description=r"$\beta$")
    assert face.alts == ["a line, β = 1, y against x (β = 1)", "a line, β = 2, y against x (β = 2)"]
    assert 'aria-label="β"' in face._repr_html_()


def test_the_static_face_switches_frames_in_a_browser_without_a_kernel(tmp_path):
    """The face's own script, in Chromium: keyboard on the range input changes the frame."""
    import shutil

    if shutil.which("chromium") is None:
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    face = static_figure(draw_line, {"slope": [1, 2], "offset": [0.0, 1.0]})
    page_file = tmp_path / "face.html"
    page_file.write_text("<!doctype html><html><body>" + face._repr_html_() + "</body></html>")
    shown = """() => Array.from(document.querySelectorAll('img[data-frame]'))
        .filter(i => i.checkVisibility()).map(i => +i.dataset.frame)"""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"),
                                             args=["--no-sandbox", "--headless"])
        try:
            page = browser.new_page()
            page.goto(page_file.as_uri())
            assert page.evaluate(shown) == [0]
            inputs = page.locator("input[type=range]")
            inputs.nth(1).focus()
            page.keyboard.press("ArrowRight")
            assert page.evaluate(shown) == [1]
            assert inputs.nth(1).get_attribute("aria-valuetext") == "1.0"
            inputs.nth(0).focus()
            page.keyboard.press("ArrowRight")
            assert page.evaluate(shown) == [3]
            assert page.locator("output").all_text_contents() == ["2", "1.0"]
        finally:
            browser.close()


def test_frames_are_deterministic_bytes_without_software_metadata():
    a = static_slider(draw_line, "slope", [1, 2])
    b = static_slider(draw_line, "slope", [1, 2])
    assert a.frames == b.frames
    png = render_png(draw_line(1.0), dpi=80)
    assert b"Software" not in png and b"Matplotlib" not in png
    plt.close("all")


def test_frame_size_follows_dpi():
    fig = draw_line(1.0)
    png = render_png(fig, dpi=50)
    assert frame_size(png) == (150, 100)  # 3 x 2 inches at 50 dpi
    quantized = render_png(fig, dpi=50, quantize=True)
    assert frame_size(quantized) == (150, 100) and quantized[25] == 3  # colour type 3: a palette
    plt.close(fig)


def test_display_png_renders_at_twice_the_size_it_says_to_show():
    fig = draw_line(1.0)
    png, metadata = plots.display_png(fig)
    width, height = frame_size(png)
    assert metadata == {"width": round(width / 2), "height": round(height / 2)}
    # 3 inches at DPI (240 px), cropped to its content plus a 0.1-inch pad, as the inline backend does
    assert 220 <= metadata["width"] <= 260
    plt.close(fig)


def test_static_slider_labels_follow_format():
    face = static_slider(draw_line, "slope", [0.001, 0.01], format="{:.0e}")
    assert face.labels == [["1e-03", "1e-02"]]


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"values": [1]}, "values"),
        ({"values": list(range(MAX_FRAMES + 1))}, "values"),
        ({"values": "12"}, "values"),
        ({"values": [1, 2], "value": 3}, "value"),
        ({"values": [1, 2], "fixed": {"slope": 1}}, "fixed"),
        ({"values": [1, 2], "dpi": 5}, "dpi"),
        ({"values": [0.001, 0.0011], "format": "{:.0e}"}, "format"),
        ({"values": [1, 2], "name": ""}, "name"),
    ],
)
def test_static_slider_bad_arguments_raise_value_error_naming_the_parameter(kwargs, name):
    kwargs = {"name": "slope", **kwargs}
    with pytest.raises(ValueError, match=rf"^{name}=.*expected"):
        static_slider(draw_line, **kwargs)
    plt.close("all")


@pytest.mark.parametrize(
    "params, kwargs, name",
    [
        ({}, {}, "params"),
        ({"a": [1, 2], "b": [1, 2], "c": [1, 2], "d": [1, 2]}, {}, "params"),
        ({"slope": [1, 2, 3, 4, 5], "offset": [0, 1, 2, 3]}, {}, "params"),  # 20 > MAX_GRID_FRAMES
        ({"slope": [1, 2]}, {"value": {"offset": 1}}, "value"),
        ({"slope": [1, 2]}, {"description": {"offset": "o"}}, "description"),
        ({"slope": [1, 2], "offset": [0, 1]}, {"value": {"offset": 5}}, "value"),
    ],
)
def test_static_figure_bad_arguments_raise_value_error_naming_the_parameter(params, kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name}=.*expected"):
        static_figure(draw_line, params, **kwargs)
    plt.close("all")
    assert MAX_GRID_FRAMES < 20


def test_every_frame_must_have_the_same_size():
    def draw(slope):
        fig, ax = plots.figure(width=2 + slope, height=2)
        return fig

    with pytest.raises(ValueError, match="^draw=.*expected one figure size"):
        static_slider(draw, "slope", [1, 2])
    plt.close("all")


def test_draw_must_return_a_figure():
    with pytest.raises(ValueError, match="^draw=.*expected a matplotlib Figure"):
        static_slider(lambda slope: None, "slope", [1, 2])


def test_live_draws_into_the_output_state_and_redraws_on_change():
    calls = []

    def draw(slope, offset):
        calls.append((slope, offset))
        return draw_line(slope, offset)

    box = live(draw, slope=ipywidgets.SelectionSlider(options=[1, 2, 3], value=2), offset=0.25)
    slider, busy, out = box.children
    assert isinstance(out, ipywidgets.Output) and isinstance(busy, ipywidgets.HTML)
    assert slider.description == "slope" and slider.style.description_width == "initial"
    assert calls == [(2, 0.25)] and busy.value == LIVE_LABEL  # "drawing ..." only while it draws
    assert len(out.outputs) == 1 and "image/png" in out.outputs[0]["data"]
    assert out.outputs[0]["metadata"]["image/png"] == {"width": 240, "height": 160}
    first = out.outputs[0]["data"]["image/png"]
    slider.value = 3
    assert calls == [(2, 0.25), (3, 0.25)]
    assert len(out.outputs) == 1 and out.outputs[0]["data"]["image/png"] != first
    assert plt.get_fignums() == []


def test_live_figure_stores_a_plain_note_besides_its_widget_view():
    bundle = live(draw_line, slope=[1, 2])._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/plain"] == LIVE_NOTE
    assert bundle["text/html"] == f'<p class="adamlib-live-note">{LIVE_NOTE}</p>'
    plt.close("all")


def test_live_list_becomes_selection_slider_and_needs_a_control():
    box = live(draw_line, slope=[1, 2, 3])
    assert isinstance(box.children[0], ipywidgets.SelectionSlider)
    assert box.children[0].value == 1
    with pytest.raises(ValueError, match="at least one control"):
        live(draw_line, slope=1.0)
    with pytest.raises(ValueError, match=r"^slope=\[1\] .*expected"):
        live(draw_line, slope=[1])


def history(batch_size, losses, m=4):
    """A History as train() would record it for len(losses) - 1 epochs."""
    per_epoch = -(-m // batch_size)
    h = History(batch_size=batch_size, m=m, updates_per_epoch=per_epoch, seed=0)
    h.epoch = list(range(len(losses)))
    h.epoch_loss = list(losses)
    h.updates = [e * per_epoch for e in h.epoch]
    h.examples = [e * m for e in h.epoch]
    h.time = [0.1 * e for e in h.epoch]
    for e in h.epoch[1:]:
        for k in range(per_epoch):
            h.iteration_examples.append((e - 1) * m + min((k + 1) * batch_size, m))
            h.iteration_loss.append(losses[e - 1] - 0.1 * k)
    return h


@pytest.mark.parametrize("x", ["epoch", "examples", "updates", "time"])
def test_loss_curves_labels_axes_and_legend(x):
    fig, ax = plots.figure()
    plots.loss_curves(ax, [history(1, [2.0, 1.0]), history(2, [2.0, 1.5])], x=x, iterations=x != "time")
    assert ax.get_xlabel() == plots.X_CHOICES[x]
    assert "training cost" in ax.get_ylabel()
    assert ax.get_yscale() == "log"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["b = 1", "b = 2"]
    plt.close(fig)


def test_loss_curves_bad_x_and_fixed_colours():
    fig, ax = plots.figure()
    with pytest.raises(ValueError, match="^x='steps' .*expected"):
        plots.loss_curves(ax, [history(1, [1.0])], x="steps")
    with pytest.raises(ValueError, match="^iterations=True"):
        plots.loss_curves(ax, [history(1, [1.0])], x="time", iterations=True)
    assert plots.color_for("b = 99") == plots.color_for("b = 99")
    assert fig.dpi == plots.DPI
    plt.close(fig)


def test_live_keeps_what_it_drew_and_shows_it_again_without_drawing():
    calls = []

    def draw(slope):
        calls.append(slope)
        return draw_line(slope)

    box = live(draw, slope=[1, 2, 3])
    slider, _, out = box.children
    first = out.outputs[0]["data"]["image/png"]
    slider.value = 2
    slider.value = 1
    assert calls == [1, 2] and out.outputs[0]["data"]["image/png"] == first
    plt.close("all")


# A Drawing: the live face sets a figure up once and then updates it in place (issue 16).

class LineDrawing(Drawing):
    """draw_line as a Drawing: the axes are built once, a move sets the line's data."""

    def __init__(self):
        self.calls = []

    def setup(self, slope, offset=0.0):
        self.calls.append(("setup", slope, offset))
        fig = draw_line(slope, offset)
        fig.axes[0].set_title(f"slope {slope}")
        return fig

    def update(self, fig, slope, offset=0.0):
        self.calls.append(("update", slope, offset))
        ax = fig.axes[0]
        ax.lines[0].set_ydata([offset, offset + slope])
        ax.set_title(f"slope {slope}")


def pixels(png: bytes):
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))


def shown_png(out) -> bytes:
    return base64.b64decode(out.outputs[0]["data"]["image/png"])


def test_live_sets_a_drawing_up_once_and_then_only_updates_it_in_place_with_its_first_layout():
    drawing = LineDrawing()
    box = live(drawing, slope=[1, 2, 3], offset=0.5)
    slider, busy, out = box.children
    assert drawing.calls == [("setup", 1, 0.5)] and busy.value == LIVE_LABEL
    assert out.outputs[0]["metadata"]["image/png"] == {"width": 240, "height": 160}
    slider.value = 2
    slider.value = 3
    slider.value = 2  # seen: shown again without an update
    assert drawing.calls == [("setup", 1, 0.5), ("update", 2, 0.5), ("update", 3, 0.5)]
    assert plt.get_fignums() == []  # the kept figure is not pyplot's: no extra output of the cell
    # The updated frame has the pixels of a figure set up afresh for the same values (whose
    # layout is the same): the update changed everything that depends on the slope.
    fresh = render_png(drawing.setup(2, 0.5), 2 * plots.DPI)
    assert (pixels(shown_png(out)) == pixels(fresh)).all()
    assert frame_size(shown_png(out)) == (480, 320)
    plt.close("all")


def test_a_drawing_keeps_its_layout_unless_it_asks_for_a_new_one_on_every_frame():
    class Wider(LineDrawing):
        def update(self, fig, slope, offset=0.0):
            LineDrawing.update(self, fig, slope, offset)
            fig.axes[0].set_ylim(-3000, 3000)  # wider tick labels: a new layout moves the axes right

    class Relayout(Wider):
        fixed_layout = False

    moved = {}
    for cls in (Wider, Relayout):
        box = live(cls(), slope=[1, 2])
        slider, _, out = box.children
        first = pixels(shown_png(out))
        slider.value = 2
        # the left edge of the axes (its frame, the darkest column of the left half)
        moved[cls.__name__] = int(np.argmin(pixels(shown_png(out))[:, :240, :3].sum(axis=(0, 2)))) \
            - int(np.argmin(first[:, :240, :3].sum(axis=(0, 2))))
    assert moved["Wider"] == 0 and moved["Relayout"] > 10, moved  # measured: 0 and 43
    plt.close("all")


def test_a_drawing_is_also_the_draw_function_of_the_static_face():
    drawing = LineDrawing()
    face = static_slider(drawing, "slope", [1, 2])
    assert [c[0] for c in drawing.calls] == ["setup", "setup"]  # every static frame is drawn afresh
    assert face.frames[1] == render_png(drawing.setup(2), 2 * plots.DPI, quantize=True)
    assert face.alts[0].startswith("slope 1")
    plt.close("all")


def test_live_frames_of_a_draw_function_have_the_pixels_of_a_saved_figure():
    box = live(draw_line, slope=[1, 2])
    assert (pixels(shown_png(box.children[2])) == pixels(render_png(draw_line(1), 2 * plots.DPI))).all()
    with pytest.raises(ValueError, match="^draw=.*Drawing"):
        live(object(), slope=[1, 2])
    plt.close("all")


BUSY = "<em>drawing ...</em>"


@pytest.mark.parametrize("kind", ["function", "Drawing"])
def test_live_says_it_is_drawing_while_a_move_recomputes_and_not_after(kind):
    """A long recomputation (seconds in some chapters) shows that the move was taken: the line
    under the controls says "drawing ..." while the kernel draws, and the label again after,
    also when the draw fails."""
    box = None
    seen = []

    def busy_now():
        if box is not None:  # the first frame is drawn before live() returns
            seen.append(box.children[1].value)

    def draw(slope):
        busy_now()
        if slope == 3:
            raise RuntimeError("no frame")
        return draw_line(slope)

    class Busy(LineDrawing):
        def update(self, fig, slope, offset=0.0):
            busy_now()
            if slope == 3:
                raise RuntimeError("no frame")
            LineDrawing.update(self, fig, slope, offset)

    box = live(draw if kind == "function" else Busy(), slope=[1, 2, 3])
    slider, busy, _ = box.children
    assert busy.value == LIVE_LABEL
    slider.value = 2
    assert seen == [BUSY] and busy.value == LIVE_LABEL
    with pytest.raises(RuntimeError, match="no frame"):
        slider.value = 3
    assert seen == [BUSY, BUSY] and busy.value == LIVE_LABEL
    plt.close("all")
