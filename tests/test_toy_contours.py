"""toy_problems.contours.level_curve: marching squares, checked against curves known in closed form."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from toy_problems.contours import level_curve

XS, YS = np.linspace(-1.0, 1.0, 81), np.linspace(-1.2, 1.2, 97)
X, Y = np.meshgrid(XS, YS)  # X[j, i] = XS[i]: the grid convention of loss_grid and plotly
H = max(XS[1] - XS[0], YS[1] - YS[0])


def polylines(x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """The NaN-separated polylines as (n, 2) arrays."""
    assert np.array_equal(np.isnan(x), np.isnan(y))
    breaks = np.flatnonzero(np.isnan(x))
    pieces = zip(np.split(x, breaks), np.split(y, breaks))
    return [np.stack([a[~np.isnan(a)], b[~np.isnan(b)]], 1) for a, b in pieces] if len(x) else []


def test_a_circle_is_one_closed_line_on_the_circle_all_the_way_round():
    x, y = level_curve(XS, YS, X ** 2 + Y ** 2, 0.25)
    (line,) = polylines(x, y)
    assert np.array_equal(line[0], line[-1])
    radius = np.hypot(line[:, 0], line[:, 1])
    assert np.abs(radius - 0.5).max() < H ** 2  # linear interpolation of r^2 along an edge
    angles = np.sort(np.arctan2(line[:, 1], line[:, 0]))
    gaps = np.diff(np.concatenate([angles, angles[:1] + 2 * math.pi]))
    assert gaps.max() < 2 * H / 0.5


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-2, 2), min_size=4, max_size=4), st.floats(-1, 1))
def test_bilinear_levels_are_exact_and_each_step_stays_in_one_cell(coefficients, level):
    """z = a + b x + c y + d x y is linear along every cell edge, so each crossing is exact."""
    a, b, c, d = coefficients
    x, y = level_curve(XS, YS, a + b * X + c * Y + d * X * Y, level)
    for line in polylines(x, y):
        values = a + b * line[:, 0] + c * line[:, 1] + d * line[:, 0] * line[:, 1]
        np.testing.assert_allclose(values, level, atol=1e-9)
        steps = np.abs(np.diff(line, axis=0))
        assert np.all(steps[:, 0] <= XS[1] - XS[0] + 1e-12) and np.all(steps[:, 1] <= YS[1] - YS[0] + 1e-12)


def test_two_bumps_give_two_loops_and_a_saddle_two_open_branches():
    bumps = np.exp(-((X - 0.5) ** 2 + Y ** 2) / 0.02) + np.exp(-((X + 0.5) ** 2 + Y ** 2) / 0.02)
    loops = polylines(*level_curve(XS, YS, bumps, 0.5))
    assert len(loops) == 2 and all(np.array_equal(line[0], line[-1]) for line in loops)
    assert sorted(np.sign(line[:, 0].mean()) for line in loops) == [-1.0, 1.0]
    branches = polylines(*level_curve(XS, YS, X * Y, 0.05))
    assert len(branches) == 2
    for line in branches:  # a hyperbola branch runs from border to border
        ends = line[[0, -1]]
        on_border = np.isclose(np.abs(ends[:, 0]), 1.0) | np.isclose(np.abs(ends[:, 1]), 1.2)
        assert on_border.all()


def test_a_level_that_is_never_crossed_gives_no_line_and_a_bad_grid_is_refused():
    x, y = level_curve(XS, YS, X ** 2 + Y ** 2, 5.0)
    assert x.size == 0 and y.size == 0
    with pytest.raises(ValueError, match="z must be shaped"):
        level_curve(XS, YS, (X ** 2).T, 0.1)
