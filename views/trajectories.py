"""Trajectories of SGD, SAM and ASAM: ASAM paper, Figure 3, plus a convergence map."""
from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch
from plotly.subplots import make_subplots

from views import common
from views.style import TOY_P_CHOICES, method_color, method_line, method_title
from toy_problems.convergence import OUTCOMES, convergence_map
from toy_problems.export import trajectories_csv
from toy_problems.losses import LOSSES, bounding_box, get_loss, loss_grid
from toy_problems.presets import FIGURE3_CONFIG, FIGURE3_LOSS, FIGURE3_STARTS
from toy_problems.simulate import SimulationConfig, simulate

CUSTOM = "custom start"
MAP_COLORINGS = {
    "final w₁/w₂ (log₁₀)": "balance",
    "final loss (log₁₀)": "final_loss",
    "outcome (stuck / converged / neither)": "outcome",
}
PRESET_WIDGETS = {
    "traj_loss": FIGURE3_LOSS, "traj_lr": FIGURE3_CONFIG.lr, "traj_steps": FIGURE3_CONFIG.steps,
    "traj_rho": FIGURE3_CONFIG.rho, "traj_p": "2", "traj_eta": FIGURE3_CONFIG.eta, "traj_momentum": FIGURE3_CONFIG.momentum,
}


def apply_preset() -> None:
    """Widget callback: a Figure 3 preset sets the start and the paper's settings."""
    preset = st.session_state["traj_preset"]
    if preset in FIGURE3_STARTS:
        st.session_state["traj_w1"], st.session_state["traj_w2"] = FIGURE3_STARTS[preset]
        st.session_state.update(PRESET_WIDGETS)


def mark_custom() -> None:
    st.session_state["traj_preset"] = CUSTOM


@st.cache_data(max_entries=32, show_spinner="Simulating SGD, SAM and ASAM…")
def run(loss_name: str, w1: float, w2: float, config: SimulationConfig):
    return simulate(get_loss(loss_name), torch.tensor([[w1, w2]], dtype=torch.float64), config)


@st.cache_data(max_entries=16, show_spinner="Computing the convergence map (all starts and methods in one batch)…")
def cached_map(loss_name: str, box, n: int, config: SimulationConfig):
    return convergence_map(get_loss(loss_name), box, n, config)


def paths_figure(trajectories, loss, box, step_index: int) -> go.Figure:
    xs, ys, values = (t.numpy() for t in loss_grid(loss, box, n=200))
    fig = go.Figure(go.Contour(
        x=xs, y=ys, z=values, ncontours=30, colorscale="Greys", reversescale=True, opacity=0.35, showscale=False,
        name="L(w)", hovertemplate="w₁=%{x:.3f}<br>w₂=%{y:.3f}<br>L=%{z:.4g}<extra></extra>",
        contours=dict(coloring="heatmap", showlines=True), line=dict(width=0.5, color="white"),
    ))
    if loss.valley is not None:
        w1 = torch.linspace(max(box[0][0], 1e-3), box[0][1], 300, dtype=torch.float64)
        fig.add_trace(go.Scatter(x=w1.numpy(), y=loss.valley(w1).numpy(), mode="lines", name="minimizers (valley)",
                                 line=dict(color="red", width=2)))
    low, high = max(box[0][0], box[1][0]), min(box[0][1], box[1][1])
    fig.add_trace(go.Scatter(x=[low, high], y=[low, high], mode="lines", name="diagonal w₁ = w₂",
                             line=dict(color="black", width=1, dash="dot")))
    start = trajectories.points[0, 0, 0]
    fig.add_trace(go.Scatter(x=[float(start[0])], y=[float(start[1])], mode="markers", name="w₀",
                             marker=dict(symbol="star", size=14, color="black")))
    for m, method in enumerate(trajectories.methods):
        path = trajectories.points[m, : step_index + 1, 0].numpy()
        fig.add_trace(go.Scatter(x=path[:, 0], y=path[:, 1], mode="lines", name=method_title(method),
                                 line=method_line(method)))
        fig.add_trace(go.Scatter(x=[float(path[-1, 0])], y=[float(path[-1, 1])], mode="markers", showlegend=False,
                                 marker=dict(size=11, color=method_color(method), line=dict(color="black", width=1)),
                                 hovertemplate=f"{method_title(method)}: (%{{x:.4f}}, %{{y:.4f}})<extra></extra>"))
    (x0, x1), (y0, y1) = box
    fig.update_layout(
        height=520, margin=dict(l=10, r=10, t=40, b=10), title=f"Paths up to step {int(trajectories.steps[step_index])}",
        xaxis=dict(title="w₁", range=[x0, x1]), yaxis=dict(title="w₂", range=[y0, y1]),
        legend=dict(orientation="h", yanchor="bottom", y=1.0, x=1.0, xanchor="right"),
    )
    return fig


def loss_figure(trajectories, step_index: int) -> go.Figure:
    fig = go.Figure()
    steps = trajectories.steps.numpy()
    for m, method in enumerate(trajectories.methods):
        fig.add_trace(go.Scatter(x=steps, y=trajectories.losses[m, :, 0].clamp_min(1e-12).numpy(), mode="lines",
                                 name=method_title(method), line=method_line(method, width=1), opacity=0.8))
    fig.add_vline(x=int(steps[step_index]), line=dict(color="black", dash="dot"))
    fig.update_layout(height=520, margin=dict(l=10, r=10, t=40, b=10), title="Loss at w (log scale)",
                      xaxis_title="step", yaxis=dict(title="L(w)", type="log"),
                      legend=dict(orientation="h", yanchor="bottom", y=1.0, x=1.0, xanchor="right"))
    return fig


def map_figure(cmap, coloring: str) -> go.Figure:
    field = MAP_COLORINGS[coloring]
    fig = make_subplots(rows=1, cols=len(cmap.methods), subplot_titles=[method_title(m) for m in cmap.methods],
                        shared_yaxes=True, horizontal_spacing=0.03)
    if field == "outcome":
        z, colorscale, zrange = cmap.outcome.float(), [[0, "#d62728"], [0.5, "#2ca02c"], [1, "#bcbd22"]], (0, 2)
        colorbar = dict(tickvals=[0, 1, 2], ticktext=list(OUTCOMES))
    elif field == "balance":
        z, colorscale, zrange = cmap.balance.clamp(-2, 2), "RdBu", (-2, 2)
        colorbar = dict(title="log₁₀ w₁/w₂")
    else:
        z = cmap.final_loss.clamp_min(1e-8).log10()
        colorscale, zrange, colorbar = "Viridis", (float(z.min()), float(z.max())), dict(title="log₁₀ L")
    for m in range(len(cmap.methods)):
        fig.add_trace(go.Heatmap(
            x=cmap.w1.numpy(), y=cmap.w2.numpy(), z=z[m].numpy(), colorscale=colorscale, zmin=zrange[0], zmax=zrange[1],
            showscale=m == 0, colorbar=colorbar,
            hovertemplate="w₀=(%{x:.3f}, %{y:.3f})<br>%{z:.3g}<extra></extra>",
        ), row=1, col=m + 1)
        fig.update_xaxes(title_text="w₁ at start", row=1, col=m + 1)
    fig.update_yaxes(title_text="w₂ at start", row=1, col=1)
    fig.update_layout(height=380, margin=dict(l=10, r=10, t=40, b=10), plot_bgcolor="#d9d9d9")
    return fig


st.title("Trajectories")
st.markdown(
    "**ASAM paper, Figure 3.** SGD, SAM and ASAM on "
    r"$L(w) = |w_1\,\mathrm{ReLU}(w_2) - 0.04|$, whose minimizers form the red valley $w_1 w_2 = 0.04$, $w_2 > 0$. "
    "Each step perturbs w by ε from `asam_core.perturbation` (the function the optimizers use) and descends with "
    "the gradient at w + ε."
)

with st.sidebar:
    st.subheader("Trajectories")
    common.choice("Start", "traj_preset", [*FIGURE3_STARTS, CUSTOM], next(iter(FIGURE3_STARTS)), on_change=apply_preset)
    w1 = common.number("w₁ at start", "traj_w1", -2.0, 2.0, FIGURE3_STARTS[next(iter(FIGURE3_STARTS))][0], 0.001,
                       format="%.3f", on_change=mark_custom)
    w2 = common.number("w₂ at start", "traj_w2", -2.0, 2.0, FIGURE3_STARTS[next(iter(FIGURE3_STARTS))][1], 0.001,
                       format="%.3f", on_change=mark_custom)
    loss_name = common.choice("Loss", "traj_loss", list(LOSSES), FIGURE3_LOSS, format_func=lambda n: LOSSES[n].title)
    lr = common.slider("learning rate α", "traj_lr", 0.001, 0.1, FIGURE3_CONFIG.lr, 0.001, format="%.3f")
    steps = common.slider("steps", "traj_steps", 100, 10_000, FIGURE3_CONFIG.steps, 100)
    rho = common.slider("ρ (SAM and ASAM)", "traj_rho", 0.0, 0.5, FIGURE3_CONFIG.rho, 0.01)
    p = common.choice("ASAM's p", "traj_p", list(TOY_P_CHOICES), "2")
    eta = common.slider("ASAM's η", "traj_eta", 0.0, 0.1, FIGURE3_CONFIG.eta, 0.005, format="%.3f")
    momentum = common.slider("momentum", "traj_momentum", 0.0, 0.95, FIGURE3_CONFIG.momentum, 0.05)

loss = get_loss(loss_name)
config = SimulationConfig(lr=lr, steps=steps, rho=rho, p=float(p), eta=eta, momentum=momentum)
trajectories = run(loss_name, w1, w2, config)
if st.session_state.get("traj_step", 0) > steps:
    st.session_state["traj_step"] = steps
shown = common.slider("Play back: show the paths up to step", "traj_step", 0, steps, steps, 1)
box = bounding_box([torch.tensor(loss.box).T, torch.tensor([w1, w2])], margin=0.02)

left, right = st.columns([3, 2])
with left:
    st.plotly_chart(paths_figure(trajectories, loss, box, shown), key="traj_paths")
with right:
    st.plotly_chart(loss_figure(trajectories, shown), key="traj_losses")

summary = trajectories.summary()
st.dataframe(
    pd.DataFrame({
        "method": [method_title(m) for m in trajectories.methods], "final w₁": summary["w1"], "final w₂": summary["w2"],
        "w₁·w₂": summary["w1*w2"], "w₁ / w₂": summary["w1/w2"], "final loss": summary["loss"],
        "distance moved": summary["moved"],
    }),
    hide_index=True, key="traj_table",
    column_config={c: st.column_config.NumberColumn(format="%.4f")
                   for c in ("final w₁", "final w₂", "w₁·w₂", "w₁ / w₂", "final loss", "distance moved")},
)
st.caption(
    f"Learning rate α = {lr:g} for {steps} steps (presets: α = {FIGURE3_CONFIG.lr:g}, {FIGURE3_CONFIG.steps} steps, "
    f"ρ = {FIGURE3_CONFIG.rho:g}, ASAM p = 2, η = {FIGURE3_CONFIG.eta:g}). Small steps matter: the valley is a kink of "
    "|·|, so the gradient never shrinks near it and each step overshoots by about α·‖∇L‖; with α ≈ 0.05 every method "
    "bounces across the valley and drifts to the diagonal w₁ = w₂, hiding the difference the figure is about."
)
st.markdown(
    "**Why.** From (0.3, 0.033) SAM's ε = ρ ∇L/‖∇L‖ points mostly along −w₂ with length ρ = 0.05 > w₂, so "
    "w₂ + ε₂ < 0: the ReLU is off at w + ε, the gradient there is zero and SAM never moves. ASAM's "
    r"$\epsilon = \rho\, T_w^2 \nabla L / \|T_w \nabla L\|$ with $T_w = \mathrm{diag}(|w|)$ is $\pm\rho\, w/\sqrt{2}$ on this "
    r"loss: it rescales w, so $w_2 + \epsilon_2 = w_2 (1 \pm \rho/\sqrt{2}) > 0$ whenever $\rho < \sqrt{2}$ and ASAM "
    "converges from any start, to the valley point its gradient flow reaches. SAM's fixed round ball keeps pushing "
    "it along the valley towards the balanced point (0.2, 0.2), where the ball sees the flattest neighbourhood; "
    "ASAM stops off the diagonal (w₁ > w₂), because in its normalized view every valley point is equally flat."
)
st.download_button("Download the trajectories (CSV)", trajectories_csv(trajectories), file_name="trajectories.csv",
                   mime="text/csv", key="traj_csv")

st.subheader("Convergence map")
st.caption("Every start of a grid over the plotted box, run by all three methods in one batched call "
           "(same α, ρ, p, η, momentum as above).")
columns = st.columns(3)
with columns[0]:
    show_map = common.toggle("Compute the map", "traj_map", True)
with columns[1]:
    n = int(common.choice("grid points per axis", "traj_map_n", ["25", "50", "100", "200"], "50"))
with columns[2]:
    coloring = common.choice("colour by", "traj_map_color", list(MAP_COLORINGS), next(iter(MAP_COLORINGS)))
map_steps = common.slider("map steps", "traj_map_steps", 100, 5_000, 1_000, 100)
if show_map:
    cmap = cached_map(loss_name, box, n, config.model_copy(update=dict(steps=map_steps)))
    st.plotly_chart(map_figure(cmap, coloring), key="traj_map_plot")
    counts = cmap.outcome_counts().tolist()
    st.caption(
        "Starts per outcome (stuck / converged / neither): "
        + "; ".join(f"{method_title(m)}: {' / '.join(map(str, c))}" for m, c in zip(cmap.methods, counts))
        + ". Converged means final loss < 5·10⁻³. Log₁₀ w₁/w₂ = 0 is the diagonal; grey cells never moved (stuck)."
        + ("" if loss.name == FIGURE3_LOSS else f" (This loss: {loss.title}.)")
    )
if not math.isfinite(float(trajectories.losses[:, -1].max())):
    st.warning("A method diverged (loss is not finite): lower the learning rate.")
