"""views.common.shared_figures: one build per setting for every session, readable, never changed by drawing."""
import plotly.graph_objects as go
import pytest

from views import common
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
    assert first.layout.font.size == FONT_SIZE and first.layout.height == 400
    assert projected.layout.font.size == PRESENTER_FONT_SIZE and projected.layout.height == int(400 * PRESENTER_HEIGHT)

    drawn = []
    monkeypatch.setattr(common.st, "plotly_chart", lambda figure, **kwargs: drawn.append(figure.to_dict()))
    before = first.to_dict()
    common.chart(first, key="shared_test", shared=True)
    common.chart(first, key="shared_test_2", shared=True)
    assert first.to_dict() == before == drawn[0] == drawn[1]


@pytest.mark.parametrize("presenter", [False, True])
def test_a_list_of_figures_is_made_readable_figure_by_figure(presenter):
    @common.shared_figures
    def pair(presenter: bool) -> list[go.Figure]:
        return [go.Figure(layout=dict(height=300)), go.Figure(layout=dict(height=300, width=500))]

    tall, fixed = pair(presenter=presenter)
    size = PRESENTER_FONT_SIZE if presenter else FONT_SIZE
    assert tall.layout.font.size == fixed.layout.font.size == size
    assert tall.layout.height == (int(300 * PRESENTER_HEIGHT) if presenter else 300)
    assert fixed.layout.height == 300  # a figure of fixed size keeps it
