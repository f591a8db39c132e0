"""The CIFAR page's figures: learning curves and step losses of the compared runs.

- ``curve_traces``: accuracy and loss per epoch, one colour per run, test solid, train dotted.
- ``step_loss_traces``: the training loss every log_every_steps steps, one line per run.
- ``curves_figure`` / ``step_loss_figure``: the plotly figures.

Colours: one per run, by run id (views.style.run_color), the same on every figure and page load.
The paths, flatness and seed views live in views.cifar_analysis.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from asam_core.runs.reports import run_name
from asam_core.runs.store import RunRecord
from views.style import run_color



@dataclass(frozen=True)
class CurveTrace:
    """One line of the learning-curve figure."""

    run_id: int
    name: str
    panel: Literal["accuracy", "loss"]
    split: Literal["test", "train"]
    epochs: list[int]
    values: list[float]
    dash: Literal["solid", "dot"]


def curve_traces(runs: Sequence[RunRecord], metrics: Sequence[Mapping[str, float]]) -> list[CurveTrace]:
    """Test (solid) and train (dotted) accuracy in % and loss per epoch for each of ``runs``.

    ``metrics`` are the store's rows (run_id plus METRIC_FIELDS).
    Epochs without evaluation (test values None) are left out of the test lines.
    """
    traces = []
    for run in runs:
        for split, dash in (("test", "solid"), ("train", "dot")):
            rows = [m for m in metrics if m["run_id"] == run.id and m[f"{split}_acc"] is not None]
            name, epochs = f"{run_name(run)} ({split})", [int(m["epoch"]) for m in rows]
            acc = [100.0 * m[f"{split}_acc"] for m in rows]
            loss = [m[f"{split}_loss"] for m in rows]
            traces.append(CurveTrace(run.id, name, "accuracy", split, epochs, acc, dash))
            traces.append(CurveTrace(run.id, name, "loss", split, epochs, loss, dash))
    return traces


@dataclass(frozen=True)
class StepLossTrace:
    """One run's training loss every log_every_steps steps."""

    run_id: int
    name: str
    steps: list[int]
    losses: list[float]


def step_loss_traces(runs: Sequence[RunRecord], losses: Sequence[tuple[int, int, float]]) -> list[StepLossTrace]:
    """One trace per run with step losses (the store's (run id, step, loss) rows)."""
    traces = []
    for run in runs:
        rows = [(step, loss) for run_id, step, loss in losses if run_id == run.id]
        if rows:
            traces.append(StepLossTrace(run.id, run_name(run), [s for s, _ in rows], [v for _, v in rows]))
    return traces


def curves_figure(traces: Sequence[CurveTrace]) -> go.Figure:
    """Accuracy (left) and loss (right) per epoch."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Accuracy", "Loss"))
    for t in traces:
        fig.add_trace(go.Scatter(
            x=t.epochs, y=t.values, name=t.name, mode="lines+markers", legendgroup=t.name,
            showlegend=t.panel == "accuracy", line=dict(color=run_color(t.run_id), dash=t.dash),
        ), row=1, col=1 if t.panel == "accuracy" else 2)
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text="accuracy (%)", row=1, col=1)
    fig.update_yaxes(title_text="cross-entropy loss", row=1, col=2)
    fig.update_layout(height=420, legend=dict(orientation="h", y=-0.2), margin=dict(t=40))
    return fig


def step_loss_figure(traces: Sequence[StepLossTrace]) -> go.Figure:
    """Training loss against the global step: progress inside an epoch, live."""
    fig = go.Figure()
    for t in traces:
        fig.add_trace(go.Scatter(x=t.steps, y=t.losses, name=t.name, mode="lines", line=dict(color=run_color(t.run_id))))
    fig.update_layout(title="Training loss per step (mean since the last point)", height=320, xaxis_title="step",
                      yaxis_title="training loss", legend=dict(orientation="h", y=-0.3), margin=dict(t=40))
    return fig
