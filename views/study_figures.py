"""The Studies page's figures, drawn from asam_core.runs.study_results (no numbers computed here).

- ``curves_figure``: the paper's curve figure (ASAM Fig. 4, SAM Fig. 3, ASAM Table 6 as curves):
  mean over seeds with 95% interval bars, one line per series.
- ``correlation_figure``: ASAM Figure 2: one scatter per measure against the generalization gap,
  Kendall tau in each panel's title.
Series named like a method (SGD, SAM, ASAM) take its registry colour and dash; others the palette.
"""
from __future__ import annotations

import math
from typing import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from asam_core.methods import METHODS
from asam_core.runs.study_results import CORRELATION_MEASURES, Correlation, Curve
from asam_core.runs.sweep import Sweep
from asam_core.train.config import RunConfig
from views.style import RUN_PALETTE

Y_TITLES = {"test_acc": "clean test accuracy (%)", "test_error": "test error (%)"}
LOG_AXES = ("rho", "lr", "weight_decay", "eta")


def _line(series: str, index: int) -> dict:
    titles = {entry.title: entry for entry in METHODS.values()}
    if series in titles:
        return dict(color=titles[series].color, dash=titles[series].dash, width=3)
    return dict(color=RUN_PALETTE[index % len(RUN_PALETTE)], width=3, dash="dash" if "reference" in series else "solid")


def x_symbol(sweep: Sweep) -> str:
    """The x option as the papers write it: ρ, η, else its field name."""
    return {"rho": "ρ", "eta": "η"}.get(sweep.x, sweep.x)


def x_title(sweep: Sweep) -> str:
    return RunConfig.model_fields[sweep.x].title or sweep.x


def curves_figure(curves: Sequence[Curve], sweep: Sweep) -> go.Figure:
    """y (mean ± 95% interval over seeds) against the option x, one line per series; when the study
    has a single x, one point per series side by side (series on the x axis), so none hides another."""
    single = len({p.x for c in curves for p in c.points}) == 1
    fig = go.Figure()
    for index, curve in enumerate(curves):
        halves = [p.half if p.half is not None else 0.0 for p in curve.points]
        fig.add_trace(go.Scatter(
            x=[curve.series] * len(curve.points) if single else [p.x for p in curve.points],
            y=[p.mean for p in curve.points], name=curve.series,
            mode="lines+markers", line=_line(curve.series, index), marker=dict(size=9),
            error_y=dict(type="data", array=halves, visible=any(halves), thickness=1.5, width=6),
            customdata=[[len(p.run_ids), "" if p.half is None else f" ± {p.half:.2f}"] for p in curve.points],
            hovertemplate=(f"{curve.series}<br>{sweep.x} = " + (f"{curve.points[0].x:g}" if single else "%{x:g}")
                           + "<br>%{y:.2f}%{customdata[1]} (%{customdata[0]} run(s))<extra></extra>"),
        ))
    seeds = len(sweep.seeds)
    spread = f": mean ± 95% interval over {seeds} seeds" if seeds > 1 else ": one seed per point"
    where = f" at {x_symbol(sweep)} = {curves[0].points[0].x:g}" if single and curves else f" against {x_title(sweep)}"
    fig.update_layout(
        title=f"{Y_TITLES[sweep.y]}{where}{spread}", height=480, showlegend=True,
        xaxis_title="" if single else x_title(sweep), yaxis_title=Y_TITLES[sweep.y],
        legend=dict(orientation="h", yanchor="top", y=-0.2), margin=dict(t=60, b=40),
    )
    if sweep.x in LOG_AXES and not single:
        fig.update_xaxes(type="log", exponentformat="power")
    return fig


def _tau(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:+.2f}"


def correlation_figure(result: Correlation) -> go.Figure:
    """ASAM Figure 2: each measure against the generalization gap, one point per trained network."""
    measures = list(CORRELATION_MEASURES)
    fig = make_subplots(rows=2, cols=2, horizontal_spacing=0.12, vertical_spacing=0.2, subplot_titles=[
        f"{CORRELATION_MEASURES[m]}: τ = {_tau(result.tau[m])}" for m in measures])
    for index, measure in enumerate(measures):
        points = result.points[measure]
        row, col = index // 2 + 1, index % 2 + 1
        fig.add_trace(go.Scatter(
            x=[v for _, _, v in points], y=[g for _, g, _ in points], mode="markers", showlegend=False,
            marker=dict(size=10, color=RUN_PALETTE[0] if "adaptive" not in measure else RUN_PALETTE[1],
                        line=dict(color="black", width=0.5)),
            customdata=[run_id for run_id, _, _ in points],
            hovertemplate="run #%{customdata}<br>measure %{x:.3g}<br>gap %{y:.2f} points<extra></extra>",
        ), row=row, col=col)
        fig.update_xaxes(title_text=CORRELATION_MEASURES[measure], row=row, col=col)
        fig.update_yaxes(title_text="gap (points)", row=row, col=col)
    fig.update_layout(height=720, margin=dict(t=60, b=40),
                      title="Generalization gap (train − test accuracy) against each measure, one point per network")
    return fig


def table1_rows(result: Correlation) -> list[dict[str, str]]:
    """ASAM Table 1 layout: rows tau and Psi, columns the four measures."""
    return [{"statistic": name, **{CORRELATION_MEASURES[m]: _tau(values[m]) for m in CORRELATION_MEASURES}}
            for name, values in (("Kendall τ", result.tau), ("granulated Ψ", result.psi))]
