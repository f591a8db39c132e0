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
from toy_problems.simulate import SimulationConfig, simulate_start

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


PATH_POINTS = 250  # recorded points drawn per path (the table and the CSV keep every step)
FRAMES = 26  # play-back positions, animated in the browser
OUTCOME_COLORS = ("#d62728", "#2ca02c", "#bcbd22")  # stuck, converged, neither


@st.cache_data(max_entries=64, show_spinner=False)
def run(loss_name: str, w1: float, w2: float, config: SimulationConfig):
    return simulate_start(get_loss(loss_name), (w1, w2), config)


@common.shared_figures
def trajectories_figure(loss_name: str, w1: float, w2: float, config: SimulationConfig, box, presenter: bool) -> dict:
    """Paths on the loss (left) and the lowest loss so far (right), with a play-back slider and
    play button that animate in the browser (no server round trip); as plotly JSON."""
    loss, full = get_loss(loss_name), run(loss_name, w1, w2, config)
    shown = full.thinned(PATH_POINTS)
    fig = make_subplots(rows=1, cols=2, column_widths=[0.56, 0.44], horizontal_spacing=0.13,
                        subplot_titles=("Paths on L(w)", "Lowest loss so far, min over s ≤ t of L(wₛ)"))
    xs, ys, values = (t.float().numpy() for t in loss_grid(loss, box, n=100))
    fig.add_trace(go.Heatmap(  # an image, drawn much faster by the browser than filled contours
        x=xs, y=ys, z=values, zsmooth="fast", colorscale="Greys", reversescale=True, opacity=0.35, showscale=False,
        name="L(w)", hovertemplate="w₁=%{x:.3f}<br>w₂=%{y:.3f}<br>L=%{z:.4g}<extra></extra>",
    ), row=1, col=1)
    if loss.valley is not None:
        valley_w1 = torch.linspace(max(box[0][0], 1e-3), box[0][1], 200, dtype=torch.float64)
        fig.add_trace(go.Scatter(x=valley_w1.numpy(), y=loss.valley(valley_w1).numpy(), mode="lines",
                                 name="minimizers (valley)", line=dict(color="#d62728", width=2)), row=1, col=1)
    low, high = max(box[0][0], box[1][0]), min(box[0][1], box[1][1])
    fig.add_trace(go.Scatter(x=[low, high], y=[low, high], mode="lines", name="diagonal w₁ = w₂",
                             line=dict(color="black", width=1, dash="dot")), row=1, col=1)
    fig.add_trace(go.Scatter(x=[w1], y=[w2], mode="markers", name="w₀", marker=dict(symbol="star", size=14, color="black")),
                  row=1, col=1)
    best = full.running_min_losses()[:, shown.steps].clamp_min(1e-12)  # over every step, then thinned
    steps = shown.steps.numpy()
    order = list(reversed(range(len(shown.methods))))  # sharpness-aware first and widest: SGD stays visible on top
    animated = []
    for rank, m in enumerate(order):
        name, width = method_title(shown.methods[m]), 2.5 + 2.0 * (len(order) - 1 - rank)
        fig.add_trace(go.Scatter(x=steps, y=best[m, :, 0].numpy(), mode="lines", name=name, legendgroup=name,
                                 showlegend=False, line=method_line(shown.methods[m], width=2.5)), row=1, col=2)
        animated.append(len(fig.data))
        fig.add_trace(go.Scatter(mode="lines", name=name, legendgroup=name, line=method_line(shown.methods[m], width)),
                      row=1, col=1)
        animated.append(len(fig.data))
        fig.add_trace(go.Scatter(mode="markers", legendgroup=name, showlegend=False, name=f"{name} now",
                                 marker=dict(size=12, color=method_color(shown.methods[m]),
                                             line=dict(color="black", width=1))), row=1, col=1)
    animated.append(len(fig.data))
    low_loss, high_loss = float(best.min()), float(best.max())
    fig.add_trace(go.Scatter(mode="lines", name="play-back step", showlegend=False, line=dict(color="black", dash="dot")),
                  row=1, col=2)
    positions = sorted({round(i * (len(steps) - 1) / (FRAMES - 1)) for i in range(FRAMES)})
    frames = []
    for i in positions:
        data = []
        for m in order:
            path = shown.points[m, : i + 1, 0].float().numpy()
            data += [dict(type="scatter", x=path[:, 0], y=path[:, 1]), dict(type="scatter", x=path[-1:, 0], y=path[-1:, 1])]
        data.append(dict(type="scatter", x=[int(steps[i])] * 2, y=[low_loss, high_loss]))
        frames.append(dict(data=data, traces=animated, name=str(int(steps[i]))))  # JSON: plotly's Frame objects took 0.1 s
    for trace, shown_last in zip(animated, data):  # the figure opens on the last frame
        fig.data[trace].update(x=shown_last["x"], y=shown_last["y"])
    still = dict(mode="immediate", frame=dict(duration=0, redraw=False), transition=dict(duration=0))
    fig.update_layout(
        height=640, margin=dict(l=10, r=10, t=60, b=130),
        legend=dict(orientation="h", yanchor="bottom", y=1.08, x=0.0, xanchor="left"),
        sliders=[dict(
            active=len(frames) - 1, y=0, yanchor="top", pad=dict(t=75), len=0.88, x=0.12,
            currentvalue=dict(prefix="play-back: paths up to step "), transition=dict(duration=0),
            steps=[dict(method="animate", label=f["name"], args=[[f["name"]], still]) for f in frames],
        )],
        updatemenus=[dict(type="buttons", direction="left", x=0.0, y=0, xanchor="left", yanchor="top", pad=dict(t=95),
                          buttons=[
            dict(label="▶", method="animate",
                 args=[None, dict(frame=dict(duration=80, redraw=False), transition=dict(duration=0), fromcurrent=True)]),
            dict(label="❚❚", method="animate", args=[[None], still]),
        ])],
    )
    (x0, x1), (y0, y1) = box
    fig.update_xaxes(title_text="w₁", range=[x0, x1], row=1, col=1)
    fig.update_yaxes(title_text="w₂", range=[y0, y1], row=1, col=1)
    fig.update_xaxes(title_text="step t", row=1, col=2)
    fig.update_yaxes(title_text="min L(wₛ), s ≤ t", type="log", exponentformat="power", dtick=1, row=1, col=2)
    return {**fig.to_dict(), "frames": frames}


@st.cache_data(max_entries=16, show_spinner="Computing the convergence map (all starts and methods in one batch)…")
def cached_map(loss_name: str, box, n: int, config: SimulationConfig):
    return convergence_map(get_loss(loss_name), box, n, config)


def map_figure(cmap, coloring: str) -> go.Figure:
    field = MAP_COLORINGS[coloring]
    fig = make_subplots(rows=1, cols=len(cmap.methods), subplot_titles=[method_title(m) for m in cmap.methods],
                        shared_yaxes=True, horizontal_spacing=0.03)
    if field == "outcome":  # three categories: one flat band of colour each
        bands = len(OUTCOMES)
        z, zrange = cmap.outcome.float(), (-0.5, bands - 0.5)
        colorscale = [[edge, color] for k, color in enumerate(OUTCOME_COLORS) for edge in (k / bands, (k + 1) / bands)]
        colorbar = dict(tickvals=list(range(bands)), ticktext=list(OUTCOMES), title="outcome")
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
    fig.update_layout(height=400, margin=dict(l=10, r=10, t=40, b=10), plot_bgcolor="#d9d9d9")
    return fig


@st.fragment
def convergence_section(loss, box, config: SimulationConfig) -> None:
    """The map and its controls: moving one of them reruns only this part of the page."""
    st.subheader("Convergence map")
    st.caption("Every start of a grid over the plotted box, run by all three methods in one batched call "
               "(same α, ρ, p, η, momentum as above).")
    columns = st.columns(3)
    with columns[0]:
        show_map = common.toggle("Compute the map", "traj_map", False,
                                 help="Off by default: with the map on, every slider above also recomputes the map.")
    with columns[1]:
        n = int(common.choice("grid points per axis", "traj_map_n", ["25", "50", "100", "200"], "50"))
    with columns[2]:
        coloring = common.choice("colour by", "traj_map_color", list(MAP_COLORINGS), next(iter(MAP_COLORINGS)))
    map_steps = common.slider("map steps", "traj_map_steps", 100, 5_000, 1_000, 100)
    if not show_map:
        return
    cmap = cached_map(loss.name, box, n, config.model_copy(update=dict(steps=map_steps)))
    common.chart(map_figure(cmap, coloring), key="traj_map_plot")
    counts = cmap.outcome_counts().tolist()
    st.caption(
        "Starts per outcome (stuck / converged / neither): "
        + "; ".join(f"{method_title(m)}: {' / '.join(map(str, c))}" for m, c in zip(cmap.methods, counts))
        + ". Converged means final loss < 5·10⁻³. Log₁₀ w₁/w₂ = 0 is the diagonal; grey cells never moved (stuck)."
        + ("" if loss.name == FIGURE3_LOSS else f" (This loss: {loss.title}.)")
    )


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
    loss_name = common.choice("Loss", "traj_loss", list(LOSSES), FIGURE3_LOSS, format_func=lambda n: LOSSES[n].title,
                              on_change=mark_custom)
    lr = common.slider("learning rate α", "traj_lr", 0.001, 0.1, FIGURE3_CONFIG.lr, 0.001, format="%.3f",
                       on_change=mark_custom)
    steps = common.slider("steps", "traj_steps", 100, 10_000, FIGURE3_CONFIG.steps, 100, on_change=mark_custom)
    rho = common.slider("ρ (SAM and ASAM)", "traj_rho", 0.0, 0.5, FIGURE3_CONFIG.rho, 0.01, on_change=mark_custom)
    p = common.choice("ASAM's p", "traj_p", list(TOY_P_CHOICES), "2", on_change=mark_custom)
    eta = common.slider("ASAM's η", "traj_eta", 0.0, 0.1, FIGURE3_CONFIG.eta, 0.005, format="%.3f",
                        on_change=mark_custom)
    momentum = common.slider("momentum", "traj_momentum", 0.0, 0.95, FIGURE3_CONFIG.momentum, 0.05,
                             on_change=mark_custom)

loss = get_loss(loss_name)
config = SimulationConfig(lr=lr, steps=steps, rho=rho, p=float(p), eta=eta, momentum=momentum)
trajectories = run(loss_name, w1, w2, config)
box = bounding_box([torch.tensor(loss.box).T, torch.tensor([w1, w2])], margin=0.02)
common.chart(trajectories_figure(loss_name, w1, w2, config, box), key="traj_paths")
st.caption("▶ plays the paths back in the browser; drag the slider under the figure to scrub through the steps.")

summary = trajectories.summary()
st.table(pd.DataFrame({  # a static table: st.dataframe's grid rewrote its hidden copy 0.2 s after each move
    "method": [method_title(m) for m in trajectories.methods], "final w₁": summary["w1"], "final w₂": summary["w2"],
    "w₁·w₂": summary["w1*w2"], "w₁ / w₂": summary["w1/w2"], "final loss": summary["loss"],
    "distance moved": summary["moved"],
}).set_index("method").style.format("{:.4f}"))
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
st.download_button("Download the trajectories (CSV)", lambda: trajectories_csv(trajectories), file_name="trajectories.csv",
                   mime="text/csv", key="traj_csv")

convergence_section(loss, box, config)
if not math.isfinite(float(trajectories.losses[:, -1].max())):
    st.warning("A method diverged (loss is not finite): lower the learning rate.")
