"""Level curves {z = level} of a function sampled on a grid, as polylines (marching squares).

The figures draw them as plain lines, so the browser does not compute contours: on the
Maximization regions page, eight plotly contour traces per slider move cost more browser time
than everything else in their figures.

Grid convention (as toy_problems.losses.loss_grid and plotly): z[j, i] is the value at
(xs[i], ys[j]).  A level crossing on a cell edge is placed by linear interpolation between the
edge's two samples; a cell whose four corners alternate in sign (a saddle) is split by the sign of
its centre value, the mean of the corners.  Samples equal to the level count as above it.
"""
from __future__ import annotations

import numpy as np

Edge = tuple[str, int, int]  # ("h", j, i): (xs[i], ys[j])-(xs[i+1], ys[j]); ("v", j, i): (xs[i], ys[j])-(xs[i], ys[j+1])
_BOTTOM, _RIGHT, _TOP, _LEFT = range(4)  # a cell's edges, in the order of _cell_links' crossings


def level_curve(xs: np.ndarray, ys: np.ndarray, z: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """The curve z = ``level`` as (x, y) arrays: one polyline after another, separated by NaN;
    a closed curve ends on its first point.  Empty arrays when the level is not crossed."""
    xs, ys = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
    above = np.asarray(z, dtype=np.float64) - level
    if above.shape != (len(ys), len(xs)):
        raise ValueError(f"z must be shaped (len(ys), len(xs)) = {(len(ys), len(xs))}, got {above.shape}")
    points, links = _crossings(xs, ys, above), _cell_links(above)
    return _chain(points, links)


def _crossings(xs: np.ndarray, ys: np.ndarray, s: np.ndarray) -> dict[Edge, tuple[float, float]]:
    """Edge -> crossing point for every grid edge whose two samples lie on different sides."""
    points: dict[Edge, tuple[float, float]] = {}
    sides = s >= 0
    for j, i in zip(*np.nonzero(sides[:, :-1] != sides[:, 1:])):  # horizontal edge (j, i)-(j, i+1)
        t = s[j, i] / (s[j, i] - s[j, i + 1])
        points[("h", j, i)] = (xs[i] + t * (xs[i + 1] - xs[i]), ys[j])
    for j, i in zip(*np.nonzero(sides[:-1, :] != sides[1:, :])):  # vertical edge (j, i)-(j+1, i)
        t = s[j, i] / (s[j, i] - s[j + 1, i])
        points[("v", j, i)] = (xs[i], ys[j] + t * (ys[j + 1] - ys[j]))
    return points


def _cell_links(s: np.ndarray) -> list[tuple[Edge, Edge]]:
    """Pairs of crossed edges joined inside a cell: one pair, or two in a saddle cell."""
    sides = s >= 0
    bl, br, tl, tr = sides[:-1, :-1], sides[:-1, 1:], sides[1:, :-1], sides[1:, 1:]
    crossed = np.stack([bl != br, br != tr, tl != tr, bl != tl], axis=-1)
    links = []
    for j, i in zip(*np.nonzero(crossed.any(-1))):
        edges = {
            _BOTTOM: ("h", j, i), _RIGHT: ("v", j, i + 1), _TOP: ("h", j + 1, i), _LEFT: ("v", j, i),
        }
        cut = [edges[k] for k in range(4) if crossed[j, i, k]]
        if len(cut) == 2:
            links.append((cut[0], cut[1]))
            continue
        centre_like_bottom_left = (s[j:j + 2, i:i + 2].mean() >= 0) == bl[j, i]
        if centre_like_bottom_left:  # the centre joins bottom-left and top-right: cut off the other two corners
            links += [(edges[_BOTTOM], edges[_RIGHT]), (edges[_TOP], edges[_LEFT])]
        else:
            links += [(edges[_BOTTOM], edges[_LEFT]), (edges[_TOP], edges[_RIGHT])]
    return links


def _chain(points: dict[Edge, tuple[float, float]], links: list[tuple[Edge, Edge]]) -> tuple[np.ndarray, np.ndarray]:
    """Join the links into polylines: open ones from an end (on the grid's border) first, then loops."""
    neighbours: dict[Edge, list[Edge]] = {edge: [] for edge in points}
    for a, b in links:
        neighbours[a].append(b)
        neighbours[b].append(a)
    unvisited = set(points)
    starts = [edge for edge, near in neighbours.items() if len(near) == 1] + list(points)
    xs: list[float] = []
    ys: list[float] = []
    for start in starts:
        if start not in unvisited:
            continue
        line, previous, current = [start], None, start
        unvisited.discard(start)
        while True:
            following = [edge for edge in neighbours[current] if edge != previous]
            if not following:
                break
            previous, current = current, following[0]
            line.append(current)
            if current not in unvisited:  # back at the start of a loop
                break
            unvisited.discard(current)
        if xs:
            xs.append(np.nan)
            ys.append(np.nan)
        xs += [points[edge][0] for edge in line]
        ys += [points[edge][1] for edge in line]
    return np.array(xs), np.array(ys)
