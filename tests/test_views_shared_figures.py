"""views.common.shared_figures: one build per setting for every session, readable, never changed by drawing."""
import json

import plotly.graph_objects as go
import pytest

from views import common, figure_frame
from views.style import FONT_SIZE, PRESENTER_FONT_SIZE, PRESENTER_HEIGHT


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
    assert first.figure.layout.font.size == FONT_SIZE and first.figure.layout.height == 400
    assert projected.figure.layout.font.size == PRESENTER_FONT_SIZE
    assert projected.figure.layout.height == int(400 * PRESENTER_HEIGHT)
    assert json.loads(first.spec) == json.loads(figure_frame.spec(first.figure))

    drawn = []
    monkeypatch.setattr(figure_frame, "draw", lambda spec, key, fixed_size: drawn.append(json.loads(spec)))
    before = first.figure.to_dict()
    common.chart(first, key="shared_test")
    common.chart(first, key="shared_test_2")
    assert first.figure.to_dict() == before
    assert drawn[0] == drawn[1] == json.loads(figure_frame.spec(first.figure))


@pytest.mark.parametrize("presenter", [False, True])
def test_a_list_of_figures_is_made_readable_figure_by_figure(presenter):
    @common.shared_figures
    def pair(presenter: bool) -> list[go.Figure]:
        return [go.Figure(layout=dict(height=300)), go.Figure(layout=dict(height=300, width=500))]

    tall, fixed = (shared.figure for shared in pair(presenter=presenter))
    size = PRESENTER_FONT_SIZE if presenter else FONT_SIZE
    assert tall.layout.font.size == fixed.layout.font.size == size
    assert tall.layout.height == (int(300 * PRESENTER_HEIGHT) if presenter else 300)
    assert fixed.layout.height == 300  # a figure of fixed size keeps it
