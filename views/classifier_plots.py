"""Plotly figures shared by the 2-D classifier pages (scale invariance, noisy labels)."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from toy_problems.contours import level_curve

CLASS_COLORS = ("#762a83", "#1b7837")  # purple, green: no method's colour (views.style), so red means no class
CLASS_SCALE = [[0.0, "#762a83"], [0.5, "#f7f7f7"], [1.0, "#1b7837"]]


def boundary_figure(
    x1: np.ndarray,
    x2: np.ndarray,
    probs: np.ndarray,
    points: np.ndarray,
    labels: np.ndarray,
    flipped: np.ndarray | None = None,
    title: str = "",
    height: int = 380,
) -> go.Figure:
    """P(class 1 | x) as a heatmap with the decision boundary P = 0.5 (toy_problems.contours: a line
    the browser only draws), and the labelled points (flipped ones drawn as crosses)."""
    fig = go.Figure(go.Heatmap(
        x=x1, y=x2, z=probs, zmin=0.0, zmax=1.0, zsmooth="fast", colorscale=CLASS_SCALE, opacity=0.55, showscale=False,
        name="P(class 1)", hovertemplate="x₁=%{x:.2f}<br>x₂=%{y:.2f}<br>P(class 1)=%{z:.2f}<extra></extra>",
    ))
    boundary_x, boundary_y = level_curve(x1, x2, probs, 0.5)
    fig.add_trace(go.Scatter(x=boundary_x, y=boundary_y, mode="lines", name="boundary P = 0.5", hoverinfo="skip",
                             line=dict(color="black", width=2.5)))
    flipped = np.zeros(len(labels), dtype=bool) if flipped is None else flipped
    for label, color in enumerate(CLASS_COLORS):
        for was_flipped, symbol, suffix in ((False, "circle", ""), (True, "x", ", flipped")):
            keep = (labels == label) & (flipped == was_flipped)
            if keep.any() or not was_flipped:
                fig.add_trace(go.Scatter(
                    x=points[keep, 0], y=points[keep, 1], mode="markers", name=f"label {label}{suffix}",
                    marker=dict(color=color, symbol=symbol, size=8 if was_flipped else 6,
                                line=dict(color="black" if was_flipped else "white", width=1)),
                ))
    fig.update_layout(
        title=title, height=height, margin=dict(l=10, r=10, t=40, b=10),
        legend=dict(orientation="h", yanchor="top", y=-0.3),
        xaxis=dict(title="x₁", range=[float(x1[0]), float(x1[-1])], constrain="domain"),
        yaxis=dict(title="x₂", range=[float(x2[0]), float(x2[-1])], scaleanchor="x", scaleratio=1, constrain="domain"),
    )
    return fig
