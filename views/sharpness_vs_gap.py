"""Sharpness vs the generalization gap: ASAM Table 1 / Figure 2 in two dimensions (toy_problems.table1).

Many small ReLU MLPs trained with SGD over a grid of learning rate, width and training steps; each
network's sharpness and adaptive sharpness against its generalization gap, with Kendall's tau and
Jiang et al.'s Psi.  The "rescale" toggle applies random function-preserving node-wise rescalings.
"""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from toy_problems.classification import DATASETS
from toy_problems.table1 import Table1Config, Table1Result, run_table1
from views import common
from views.style import method_color

MEASURE_COLORS = {"sharpness": method_color("sam"), "adaptive sharpness": method_color("asam")}


@st.cache_data(max_entries=16, show_spinner="Training 16 small MLPs and measuring their sharpness…")
def study(dataset: str, flip_rate: float, rescale: bool, rescale_seed: int) -> Table1Result:
    return run_table1(Table1Config(dataset=dataset, flip_rate=flip_rate), rescale=rescale, rescale_seed=rescale_seed)


def scatter_figure(result: Table1Result) -> go.Figure:
    """Each measure against the gap, one point per network, tau in the panel titles."""
    measures = {"sharpness": result.sharpness, "adaptive sharpness": result.adaptive}
    fig = make_subplots(rows=1, cols=2, subplot_titles=[
        f"{name} (Kendall τ = {result.tau[name]:+.2f})" for name in measures])
    hover = [f"lr {s['lr']:g}, width {s['width']}, {s['steps']} steps, seed {s['seed']}" for s in result.settings]
    for col, (name, values) in enumerate(measures.items(), start=1):
        fig.add_trace(go.Scatter(
            x=values.tolist(), y=result.gap.tolist(), mode="markers", name=name, text=hover,
            marker=dict(size=11, color=MEASURE_COLORS[name], line=dict(color="black", width=1)),
            hovertemplate="%{text}<br>measure %{x:.3g}<br>gap %{y:.1f} points<extra></extra>",
        ), row=1, col=col)
        fig.update_xaxes(title_text=name, type="log", row=1, col=col)
    fig.update_yaxes(title_text="generalization gap (train − test accuracy, points)", row=1, col=1)
    fig.update_layout(height=440, showlegend=False, margin=dict(t=60))
    return fig


st.title("Sharpness vs the generalization gap")
st.markdown(
    "**ASAM paper, Table 1 and Figure 2, in two dimensions.** A measure of sharpness is useful if flatter networks "
    "generalize better: ranked by the measure, networks should come out ranked by their generalization gap "
    "(Kendall's τ near 1). Here 16 ReLU MLPs are trained with SGD on one noisy 2-D dataset over a grid of learning "
    "rate × width × training steps (two seeds each). Then turn on **rescale**: every hidden unit of every network is "
    "multiplied by its own random factor a ∈ [0.1, 10] (outgoing weights by 1/a). The networks compute exactly "
    "what they computed before, so their gaps do not move, and neither should a good measure."
)

with st.sidebar:
    st.subheader("Sharpness vs gap")
    dataset = common.choice("Dataset", "sg_dataset", list(DATASETS), "moons")
    flip_rate = common.slider("Flipped training labels", "sg_flip", 0.0, 0.4, 0.2, 0.05)
    rescale = common.toggle("Rescale the networks (same functions)", "sg_rescale", False)
    rescale_seed = common.number("Rescaling seed", "sg_rescale_seed", 0, 1000, 0, 1)

result = study(dataset, float(flip_rate), rescale, int(rescale_seed))
common.chart(scatter_figure(result), key="sg_scatter")
st.table(pd.DataFrame({
    "measure": list(result.tau),
    "Kendall τ with the gap": [f"{result.tau[name]:+.3f}" for name in result.tau],
    "Ψ (granulated, Jiang et al.)": [f"{result.psi[name]:+.3f}" for name in result.tau],
    **{f"ψ {p}": [f"{result.psi_per_parameter[name][p]:+.3f}" for name in result.tau] for p in ("lr", "width", "steps")},
}).set_index("measure"))
st.caption(
    f"The gap compares accuracy on the training labels, {flip_rate:.0%} of them flipped, with accuracy on a clean "
    f"test set: a network that ignores the flips scores about {-100 * flip_rate:+.0f} points, one that memorizes "
    "them climbs towards a positive gap. "
    "Sharpness: max of L(w + ε) − L(w) over ‖ε‖₂ ≤ 0.05 (SAM Eq. 2). Adaptive sharpness: the same over "
    "‖T_w⁻¹ε‖₂ ≤ 0.5 with T_w = diag(|w|), biases normalized (ASAM Eq. 4 with η = 0): invariant under rescaling "
    "(Theorem 1), so its τ does not change when you toggle rescale; plain sharpness moves, and so does its τ. "
    "ψ: τ within the groups of networks that differ in one hyper-parameter only; Ψ their mean. "
    "Computed by toy_problems.table1 and asam_core.stats."
)
