"""The CIFAR page's figures: learning curves, step losses and weight trajectories of the compared runs.

- ``curve_traces``: accuracy and loss per epoch, one colour per run, test solid, train dotted.
- ``step_loss_traces``: the training loss every log_every_steps steps, one line per run.
- ``trajectory_groups``: runs whose trajectories share a plane (same dataset, model and seed
  give the same initial weights w0 and directions d1, d2), each path starting at w0 = (0, 0).
- ``curves_figure`` / ``step_loss_figure`` / ``trajectory_figure``: the plotly figures.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping, Sequence

import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from asam_core.runs.reports import run_name
from asam_core.runs.store import RunRecord

PALETTE = qualitative.Plotly


@dataclass(frozen=True)
class CurveTrace:
    """One line of the learning-curve figure."""

    run_id: int
    name: str
    panel: Literal["accuracy", "loss"]
    split: Literal["test", "train"]
    epochs: list[int]
    values: list[float]
    color_index: int
    dash: Literal["solid", "dot"]


def curve_traces(runs: Sequence[RunRecord], metrics: Sequence[Mapping[str, float]]) -> list[CurveTrace]:
    """Test (solid) and train (dotted) accuracy in % and loss per epoch for each of ``runs``.

    ``metrics`` are the store's rows (run_id plus METRIC_FIELDS); run i gets colour index i.
    Epochs without evaluation (test values None) are left out of the test lines.
    """
    traces = []
    for color, run in enumerate(runs):
        for split, dash in (("test", "solid"), ("train", "dot")):
            rows = [m for m in metrics if m["run_id"] == run.id and m[f"{split}_acc"] is not None]
            name, epochs = f"{run_name(run)} ({split})", [int(m["epoch"]) for m in rows]
            acc = [100.0 * m[f"{split}_acc"] for m in rows]
            loss = [m[f"{split}_loss"] for m in rows]
            traces.append(CurveTrace(run.id, name, "accuracy", split, epochs, acc, color, dash))
            traces.append(CurveTrace(run.id, name, "loss", split, epochs, loss, color, dash))
    return traces


@dataclass(frozen=True)
class TrajectoryPath:
    """One run's weights in its plane: (0, 0) is w0, then one point per finished epoch."""

    run_id: int
    name: str
    x: list[float]
    y: list[float]
    epochs: list[int]
    color_index: int


@dataclass(frozen=True)
class TrajectoryGroup:
    """Runs sharing one plane: same dataset, model and seed."""

    title: str
    paths: list[TrajectoryPath]


def trajectory_groups(runs: Sequence[RunRecord], metrics: Sequence[Mapping[str, float]]) -> list[TrajectoryGroup]:
    """The paths of ``runs`` (colour index = position in ``runs``), grouped by shared plane."""
    groups: dict[tuple[str, str, int], list[TrajectoryPath]] = {}
    for color, run in enumerate(runs):
        rows = [m for m in metrics if m["run_id"] == run.id]
        path = TrajectoryPath(
            run.id, run_name(run),
            [0.0] + [m["traj_x"] for m in rows], [0.0] + [m["traj_y"] for m in rows],
            [0] + [int(m["epoch"]) for m in rows], color,
        )
        groups.setdefault((run.config.dataset, run.config.model, run.config.seed), []).append(path)
    return [
        TrajectoryGroup(f"{model} on {dataset}, seed {seed}", paths)
        for (dataset, model, seed), paths in groups.items()
    ]


@dataclass(frozen=True)
class StepLossTrace:
    """One run's training loss every log_every_steps steps."""

    run_id: int
    name: str
    steps: list[int]
    losses: list[float]
    color_index: int


def step_loss_traces(runs: Sequence[RunRecord], losses: Sequence[tuple[int, int, float]]) -> list[StepLossTrace]:
    """One trace per run with step losses (the store's (run id, step, loss) rows); run i gets colour i."""
    traces = []
    for color, run in enumerate(runs):
        rows = [(step, loss) for run_id, step, loss in losses if run_id == run.id]
        if rows:
            traces.append(StepLossTrace(run.id, run_name(run), [s for s, _ in rows], [v for _, v in rows], color))
    return traces


def _color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def curves_figure(traces: Sequence[CurveTrace]) -> go.Figure:
    """Accuracy (left) and loss (right) per epoch."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Accuracy", "Loss"))
    for t in traces:
        fig.add_trace(go.Scatter(
            x=t.epochs, y=t.values, name=t.name, mode="lines+markers", legendgroup=t.name,
            showlegend=t.panel == "accuracy", line=dict(color=_color(t.color_index), dash=t.dash),
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
        fig.add_trace(go.Scatter(x=t.steps, y=t.losses, name=t.name, mode="lines", line=dict(color=_color(t.color_index))))
    fig.update_layout(title="Training loss per step (mean since the last point)", height=320, xaxis_title="step",
                      yaxis_title="training loss", legend=dict(orientation="h", y=-0.3), margin=dict(t=40))
    return fig


def trajectory_figure(group: TrajectoryGroup) -> go.Figure:
    """The paths of one plane, w0 marked."""
    fig = go.Figure()
    for path in group.paths:
        fig.add_trace(go.Scatter(
            x=path.x, y=path.y, name=path.name, mode="lines+markers", customdata=path.epochs,
            line=dict(color=_color(path.color_index)),
            hovertemplate="epoch %{customdata}<br>x = %{x:.3g}<br>y = %{y:.3g}",
        ))
    fig.add_trace(go.Scatter(x=[0], y=[0], mode="markers+text", text=["w₀"], textposition="top left",
                             marker=dict(color="black", size=10, symbol="x"), name="w₀ (initial weights)"))
    fig.update_layout(title=f"Weights w ≈ w₀ + x·d₁ + y·d₂ ({group.title})", height=420,
                      xaxis_title="x (along d₁)", yaxis_title="y (along d₂)", legend=dict(orientation="h", y=-0.2))
    return fig
