"""adamlib.widgets and adamlib.plots: both faces of an interactive figure."""
import hashlib

import ipywidgets
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from adamlib import plots  # noqa: E402
from adamlib.train import History  # noqa: E402
from adamlib.widgets import MAX_FRAMES, live, render_png, static_slider  # noqa: E402


def draw_line(slope, offset=0.0):
    fig, ax = plots.figure(width=3, height=2)
    ax.plot([0, 1], [offset, offset + slope])
    ax.set_ylim(-3, 3)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    return fig


def test_static_slider_has_one_distinct_png_per_value_and_a_jslink():
    values = [-2, -1, 0, 1, 2]
    box = static_slider(draw_line, "slope", values, fixed={"offset": 0.5}, value=1,
                        description="slope a")
    slider, stack = box.children
    assert isinstance(slider, ipywidgets.SelectionSlider)
    assert slider.description == "slope a"
    assert list(slider.options) == ["-2", "-1", "0", "1", "2"]
    assert isinstance(stack, ipywidgets.Stack)
    images = stack.children
    assert len(images) == len(values) and all(isinstance(i, ipywidgets.Image) for i in images)
    assert all(i.value[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
    assert len({hashlib.sha256(i.value).hexdigest() for i in images}) == len(values)
    assert slider.index == stack.selected_index == 3
    link = box.link
    assert isinstance(link, ipywidgets.widgets.widget_link.Link)
    assert link.source == (slider, "index") and link.target == (stack, "selected_index")
    assert plt.get_fignums() == []  # every frame's figure was closed


def test_frames_are_deterministic_bytes_without_software_metadata():
    a = static_slider(draw_line, "slope", [1, 2])
    b = static_slider(draw_line, "slope", [1, 2])
    assert [i.value for i in a.children[1].children] == [i.value for i in b.children[1].children]
    png = render_png(draw_line(1.0), dpi=80)
    assert b"Software" not in png and b"Matplotlib" not in png
    plt.close("all")


def test_frame_size_follows_dpi():
    fig = draw_line(1.0)
    png = render_png(fig, dpi=50)
    width = int.from_bytes(png[16:20], "big")
    height = int.from_bytes(png[20:24], "big")
    assert (width, height) == (150, 100)  # 3 x 2 inches at 50 dpi
    plt.close(fig)


def test_static_slider_labels_follow_format():
    box = static_slider(draw_line, "slope", [0.001, 0.01], format="{:.0e}")
    assert list(box.children[0].options) == ["1e-03", "1e-02"]


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


def test_draw_must_return_a_figure():
    with pytest.raises(ValueError, match="^draw=.*expected a matplotlib Figure"):
        static_slider(lambda slope: None, "slope", [1, 2])


def test_live_draws_into_the_output_state_and_redraws_on_change():
    calls = []

    def draw(slope, offset):
        calls.append((slope, offset))
        return draw_line(slope, offset)

    box = live(draw, slope=ipywidgets.SelectionSlider(options=[1, 2, 3], value=2), offset=0.25)
    slider, out = box.children
    assert isinstance(out, ipywidgets.Output)
    assert slider.description == "slope" and slider.style.description_width == "initial"
    assert calls == [(2, 0.25)]
    assert len(out.outputs) == 1 and "image/png" in out.outputs[0]["data"]
    first = out.outputs[0]["data"]["image/png"]
    slider.value = 3
    assert calls == [(2, 0.25), (3, 0.25)]
    assert len(out.outputs) == 1 and out.outputs[0]["data"]["image/png"] != first
    assert plt.get_fignums() == []


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
