"""views.common.shared_figures: one build per setting for every session, readable, drawn as made;
views.style.readable on a figure's JSON."""
import json

import plotly.graph_objects as go
import pytest

from plotly.subplots import make_subplots

from views import common, figure_frame
from views.style import FONT_SIZE, INK, LEGEND_SMALLER, PRESENTER_FONT_SIZE, PRESENTER_HEIGHT, TEMPLATE, readable


class Unhashable:
    def __reduce__(self):
        raise TypeError("not hashable")


def test_a_setting_is_built_once_readable_and_drawing_leaves_it_unchanged(monkeypatch):
    builds = []

    @common.shared_figures
    def figure_of(level: float, presenter: bool, _source: Unhashable) -> go.Figure:
        builds.append((level, presenter))
        return go.Figure(go.Scatter(x=[0, 1], y=[level, level]), layout=dict(height=400))

    first = figure_of(0.5, presenter=False, _source=Unhashable())
    again = figure_of(0.5, presenter=False, _source=Unhashable())
    projected = figure_of(0.5, presenter=True, _source=Unhashable())
    assert again is first and builds == [(0.5, False), (0.5, True)]
    layout, projected_layout = json.loads(first.spec)["layout"], json.loads(projected.spec)["layout"]
    assert layout["font"]["size"] == FONT_SIZE and layout["height"] == 400
    assert projected_layout["font"]["size"] == PRESENTER_FONT_SIZE
    assert projected_layout["height"] == int(400 * PRESENTER_HEIGHT)

    drawn = []
    monkeypatch.setattr(figure_frame, "draw", lambda spec, key, fixed_size: drawn.append(spec))
    common.chart(first, key="shared_test")
    common.chart(first, key="shared_test_2")
    assert drawn == [first.spec, first.spec]


@pytest.mark.parametrize("presenter", [False, True])
def test_a_list_of_figures_is_made_readable_figure_by_figure(presenter):
    @common.shared_figures
    def pair(presenter: bool) -> list[go.Figure]:
        return [go.Figure(layout=dict(height=300)), go.Figure(layout=dict(height=300, width=500))]

    tall, fixed = (json.loads(shared.spec)["layout"] for shared in pair(presenter=presenter))
    size = PRESENTER_FONT_SIZE if presenter else FONT_SIZE
    assert tall["font"]["size"] == fixed["font"]["size"] == size
    assert tall["height"] == (int(300 * PRESENTER_HEIGHT) if presenter else 300)
    assert fixed["height"] == 300  # a figure of fixed size keeps it


def test_readable_styles_every_axis_title_and_annotation_and_keeps_what_the_figure_set():
    fig = make_subplots(rows=1, cols=3, subplot_titles=("a", "b", "c"))
    fig.update_layout(title="t", font=dict(family="serif"), xaxis3=dict(title="step", range=[0, 1]))
    spec = readable(fig, presenter=True)
    layout = spec["layout"]
    size = PRESENTER_FONT_SIZE
    axes = [key for key in layout if key[1:5] == "axis"]
    assert sorted(axes) == ["xaxis", "xaxis2", "xaxis3", "yaxis", "yaxis2", "yaxis3"]
    for key in axes:
        assert layout[key]["tickfont"] == {"size": size, "color": INK}
        assert layout[key]["title"]["font"] == {"size": size + 1, "color": INK}
    assert layout["xaxis3"]["title"]["text"] == "step" and layout["xaxis3"]["range"] == [0, 1]
    assert layout["xaxis"]["domain"] == list(fig.layout.xaxis.domain)
    assert [a["font"]["size"] for a in layout["annotations"]] == [size] * 3
    assert [a["text"] for a in layout["annotations"]] == ["a", "b", "c"]
    assert layout["font"] == {"family": "serif", "size": size, "color": INK}
    assert layout["legend"]["font"]["size"] == size - LEGEND_SMALLER
    assert layout["title"] == {"text": "t", "font": {"size": size + 3, "color": INK}}
    assert layout["template"] == TEMPLATE
    assert "height" not in layout  # plotly's default height is not scaled


def test_readable_accepts_the_json_object_and_changes_it_in_place():
    spec = {"data": [{"type": "scatter", "x": [0], "y": [1]}], "layout": {"height": 300, "title": "t", "xaxis": {"title": "x"}}}
    assert readable(spec) is spec and spec["layout"]["yaxis"]["tickfont"]["size"] == FONT_SIZE
    assert spec["layout"]["title"]["text"] == "t" and spec["layout"]["xaxis"]["title"]["text"] == "x"
    assert go.Figure(spec).layout.height == 300  # still a valid figure
