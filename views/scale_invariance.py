"""Scale invariance: sharpness measures of a ReLU classifier w and of its rescalings Aw
(ASAM paper, Theorem 1 and Eq. 4; SAM paper, Eq. 2)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from views import common
from views.style import P_CHOICES, TOY_P_CHOICES, method_color
from views.classifier_plots import boundary_figure
from toy_problems.classification import DATASETS, decision_grid, grid_axes
from toy_problems.memo import BatchMemo
from toy_problems.scale_invariance import (
    HESSIAN,
    MEASURES,
    REGION_MEASURES,
    MeasureConfig,
    Reference,
    measures,
    measures_over_scales,
    ratio_curves,
    reference_config,
    rescale_layer,
    train_reference,
)

SCALES = tuple(np.logspace(-1.0, 1.0, 9).tolist())
A_STOPS = tuple(float(f"{a:.3g}") for a in np.logspace(-1.0, 1.0, 41))  # the a slider: log-spaced, 1 included


@st.cache_data(max_entries=8, show_spinner="Training a 2-16-16-2 ReLU MLP with SGD…")
def reference(dataset: str, seed: int) -> Reference:
    return train_reference(reference_config(dataset, seed))


@st.cache_resource
def region_memo() -> BatchMemo:
    """Region measures of one network Aw by (dataset, seed, layer, ρ, p, a), shared by every session."""
    return BatchMemo()


def region_sweep(dataset: str, seed: int, layer: int, rho: float, p: float, a: float) -> dict[str, np.ndarray]:
    """The region measures over SCALES and, last, at the slider's a. What the memo lacks is measured in
    one batched ascent: a ρ move measures ten networks together, an a move one."""
    def measure(keys: list[tuple]) -> list[dict[str, float]]:
        ref = reference(dataset, seed)
        with st.spinner(f"Measuring sharpness of Aw for {len(keys)} values of a…"):
            found = measures_over_scales(ref.model, ref.x, ref.y, layer, [key[-1] for key in keys],
                                         MeasureConfig(rho=rho, p=p), REGION_MEASURES)
        return [{name: float(values[i]) for name, values in found.items()} for i in range(len(keys))]

    rows = region_memo().values([(dataset, seed, layer, rho, p, scale) for scale in SCALES + (a,)], measure)
    return {name: np.array([row[name] for row in rows]) for name in REGION_MEASURES}


@st.cache_data(max_entries=8, show_spinner="Measuring the Hessian of Aw for a from 0.1 to 10…")
def hessian_sweep(dataset: str, seed: int, layer: int) -> dict[str, np.ndarray]:
    """λ_max over the scales: it does not depend on ρ or p, so a ρ move does not recompute it."""
    ref = reference(dataset, seed)
    return measures_over_scales(ref.model, ref.x, ref.y, layer, SCALES, MeasureConfig(), (HESSIAN,))


@st.cache_data(max_entries=64, show_spinner=False)
def hessian_and_boundary_at(dataset: str, seed: int, layer: int, a: float):
    ref = reference(dataset, seed)
    model = rescale_layer(ref.model, layer, a)
    x1, x2 = grid_axes(ref.x, 90)
    grid = decision_grid(model, x1, x2).numpy()
    return measures(model, ref.x, ref.y, MeasureConfig(), (HESSIAN,)), (x1.numpy(), x2.numpy(), grid)


ONE = SCALES.index(1.0)


def sweep(dataset: str, seed: int, layer: int, a: float, rho: float, p: float):
    """Every measure over SCALES (name -> array), at the slider's a and at a = 1 (name -> value)."""
    region, hessian = region_sweep(dataset, seed, layer, rho, p, a), hessian_sweep(dataset, seed, layer)
    curves = {name: values[:-1] for name, values in region.items()} | hessian
    current = {name: float(values[-1]) for name, values in region.items()}
    current |= hessian_and_boundary_at(dataset, seed, layer, a)[0]
    return curves, current, {name: float(values[ONE]) for name, values in curves.items()}


SAM, ASAM = method_color("sam"), method_color("asam")
STYLES = {  # measure -> (color, dash, width): plain sharpness in SAM's colour, adaptive in ASAM's; the wide
    # element-wise line under the narrow dashed filter-wise one, so both stay visible where they coincide
    "loss": ("#000000", "solid", 2.5),
    "sharpness": (SAM, "solid", 3),
    "adaptive, element-wise": (ASAM, "solid", 8),
    "adaptive, filter-wise": ("#7f3b00", "dash", 3),
    "adaptive, element-wise (ASAM defaults)": (ASAM, "dot", 3),
    "adaptive, filter-wise (ASAM defaults)": ("#7f3b00", "dot", 2),
    "Hessian λ_max": ("#9467bd", "dashdot", 2.5),
}


@common.shared_figures
def boundary_at(dataset: str, seed: int, layer: int, a: float, presenter: bool) -> go.Figure:
    ref = reference(dataset, seed)
    _, (x1, x2, grid) = hessian_and_boundary_at(dataset, seed, layer, a)
    return boundary_figure(x1, x2, grid, ref.x.numpy(), ref.y.numpy(), title=f"Decision boundary of Aw, a = {a:.3g}")


@common.shared_figures
def ratio_figure(dataset: str, seed: int, layer: int, rho: float, p: float, a: float, presenter: bool) -> go.Figure:
    """Each measure over the scales divided by its value at a = 1, with the slider's a marked."""
    curves, current, base = sweep(dataset, seed, layer, a, rho, p)
    fig = go.Figure()
    ratios = ratio_curves(curves, SCALES)
    for name in MEASURES:
        color, dash, width = STYLES[name]
        fig.add_trace(go.Scatter(
            x=SCALES, y=ratios[name], mode="lines", name=name, legendgroup=name, opacity=0.6 if width > 5 else 1.0,
            line=dict(color=color, dash=dash, width=width),
        ))
        fig.add_trace(go.Scatter(
            x=[a], y=[current[name] / base[name]], mode="markers", legendgroup=name, showlegend=False,
            marker=dict(color=color, size=10, line=dict(color="white", width=1)), name=f"{name} at a = {a:.3g}",
        ))
    fig.update_layout(
        title="Each measure at Aw divided by its value at w (dots: the slider's a)", height=460,
        margin=dict(l=10, r=10, t=45, b=10),
        xaxis=dict(title="a (hidden-layer scaling)", type="log"), yaxis=dict(title="measure(Aw) / measure(w)", type="log"),
    )
    return fig


st.title("Scale invariance")
st.markdown(
    "A ReLU network computes the same function after a **node-wise rescaling** $A$: multiply a hidden unit's incoming "
    "weights and bias by $a > 0$ and its outgoing weights by $1/a$. Loss, predictions and decision boundary of $w$ and "
    "$Aw$ are identical, so a measure of sharpness that is meant to predict generalization should not change either."
)

with st.sidebar:
    st.subheader("Scale invariance")
    dataset = common.choice("Dataset", "si_dataset", list(DATASETS), "moons")
    seed = common.number("Seed", "si_seed", 0, 1000, 0, 1)
    layer = common.choice("Hidden layer to rescale", "si_layer", ["1", "2"], "1", radio=True)
    a = common.stops("a (hidden-layer scaling)", "si_a", A_STOPS, 1.0)
    rho = common.slider("ρ (radius)", "si_rho", 0.01, 0.5, 0.05, 0.01)
    p_name = common.choice("p of the region", "si_p", list(TOY_P_CHOICES), "2", radio=True)

p = P_CHOICES[p_name]
_, values, base = sweep(dataset, seed, int(layer) - 1, a, rho, p)

left, right = st.columns([1, 1])
with left:
    common.chart(boundary_at(dataset, seed, int(layer) - 1, a), key="si_boundary")
    st.caption("The 2-16-16-2 ReLU MLP trained with SGD, evaluated with the rescaled weights Aw: the same picture for every a.")
with right:
    st.subheader(f"Measures at Aw (a = {a:.3g}, ρ = {rho:g}, p = {p_name})")
    st.table(pd.DataFrame({
        "measure": list(MEASURES),
        "at Aw": [f"{values[name]:.5g}" for name in MEASURES],
        "÷ value at a = 1": [f"×{values[name] / base[name]:.4g}" for name in MEASURES],
    }).set_index("measure"))
    st.caption(
        "Element-wise: T_w = diag(|w|); filter-wise: every entry of a weight row (one unit's incoming weights) "
        "scaled by the row's L2 norm. Both with η = 0 and normalized biases, as in Theorem 1. "
        "'ASAM defaults': η = 0.01 and biases unnormalized. Estimates: 10 projected ascent steps from the "
        "first-order ε̂ and one random start (`asam_core.sharpness`)."
    )

common.chart(ratio_figure(dataset, seed, int(layer) - 1, rho, p, a), key="si_ratio")

st.markdown(
    r"""
**Theorem 1** (ASAM paper). If $A$ is a scaling operator ($L(Aw) = L(w)$ for all $w$, $A$ invertible and diagonal)
and $T_{Aw}^{-1} A = T_w^{-1}$, then adaptive sharpness is scale-invariant:
$\max_{\|T_{Aw}^{-1}\epsilon\|_p\le\rho} L(Aw+\epsilon) = \max_{\|T_w^{-1}\epsilon\|_p\le\rho} L(w+\epsilon)$.
With $T_w = \mathrm{diag}(|w|)$, $T_{Aw} = A\,T_w$: the region around $Aw$ is $A$ times the region around $w$, and
$L(Aw + A\epsilon) = L(w + \epsilon)$. The ball of plain sharpness ($T_w = I$, SAM's Eq. 2) does not move with $A$:
scaling a layer up makes the loss more sensitive to the next layer's weights, and the sharpness (and the Hessian's
top eigenvalue) changes although the network did not.
"""
)
with st.expander("Why ASAM's defaults are only nearly invariant"):
    st.markdown(
        r"""
ASAM trains with $T_w = \mathrm{diag}(|w| + \eta)$, $\eta = 0.01$, and leaves biases unnormalized. Both break
$T_{Aw} = A\,T_w$ on purpose: $\eta$ keeps the region from collapsing on weights near zero (a zero weight would
never be perturbed, and training would be unstable), and an unnormalized bias keeps the region invariant to
translations of the bias rather than to its scale. The price is visible above: the dotted curves are not flat.
Where $a < 1$ shrinks the weights towards $\eta$, $|w| + \eta \approx \eta$ and the adaptive measures behave like
plain sharpness; for $a > 1$ they drift much less than plain sharpness, by the part of the region that the
unnormalized biases take up. With η = 0 and normalized biases (the solid curves) they are flat to rounding.
"""
    )
