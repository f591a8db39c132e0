"""Maximization regions: ASAM paper, Figure 1 and Theorem 1 in two dimensions."""
from __future__ import annotations

import pandas as pd
import streamlit as st
import torch

from views import common
from views.style import P_CHOICES
from toy_problems.contours import level_curve
from toy_problems.losses import LOSSES, bounding_box, get_loss, loss_grid
from toy_problems.regions import EQUAL_TOLERANCE, REGIONS, RegionPair, adaptive_region, region_pair, rescale, theorem1_visible

TITLES = {"sphere": "Sphere (SAM)", "cuboid": "Cuboid (Keskar et al.)", "ellipsoid": "Ellipsoid (ASAM, p = 2)"}
NOTES = {
    "sphere": "The same round ball at w and w′: at w′ = Aw it reaches a different maximum loss, so SAM's sharpness "
    "changes although the loss did not.",
    "cuboid": "The box is scaled by T_w = diag(|w| + η): at w′ it is (for η = 0) A times the box at w and reaches the "
    "same maximum loss.",
    "ellipsoid": "ASAM's ellipse scales with |w| as well: the same maximum loss at w and at w′.",
}
COLORS = {"w": "#1f77b4", "w_prime": "#d62728"}
LOSS_COLORS = [[0.0, "#f7fbff"], [0.05, "#c6dbef"], [0.2, "#6baed6"], [0.5, "#2171b5"], [1.0, "#08306b"]]
PLOT_WIDTH_PX = {False: 480, True: 620}  # by presenter mode: figures have a fixed size, so w₁ and w₂ share a scale
MARGINS = {False: dict(l=62, r=12, t=46, b=54), True: dict(l=80, r=14, t=56, b=68)}
ASPECT = (0.6, 1.4)  # height / width of the plotting area
GRID = 80  # loss grid per axis (float32), the background of every figure


@st.cache_data(max_entries=64, show_spinner="Maximizing the loss over every region…")
def scene(loss_name: str, w1: float, w2: float, a: float, rho: float, eta: float, p: float):
    """Region pairs for the three paper regions and the adaptive p-ball, a shared view box (within
    ASPECT), the loss grid over it, and per pair the level curves of its maximum loss at w and at w′
    (toy_problems.contours)."""
    loss = get_loss(loss_name)
    w = torch.tensor([w1, w2], dtype=torch.float64)
    pairs = [region_pair(loss, w, a, region, rho, eta) for region in [*REGIONS.values(), adaptive_region(p)]]
    box = shaped(bounding_box([curve for pair in pairs for curve in (pair.boundary, pair.boundary_prime)]))
    xs, ys, values = (t.numpy() for t in loss_grid(loss, box, n=GRID))
    levels = [tuple(level_curve(xs, ys, values, result.max_loss) for result in (pair.at_w, pair.at_w_prime))
              for pair in pairs]
    return pairs, box, (xs.astype("float32"), ys.astype("float32"), values.astype("float32")), levels


def shaped(box, aspect: tuple[float, float] = ASPECT):
    """``box`` grown along one axis so that its height / width lies within ``aspect``."""
    (x0, x1), (y0, y1) = box
    ratio = min(max((y1 - y0) / (x1 - x0), aspect[0]), aspect[1])
    half_x, half_y = max(x1 - x0, (y1 - y0) / ratio) / 2, max(y1 - y0, (x1 - x0) * ratio) / 2
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return (cx - half_x, cx + half_x), (cy - half_y, cy + half_y)


def level_line(curve, color: str, name: str) -> dict:
    x, y = curve
    return dict(type="scatter", x=x, y=y, mode="lines", name=name, hoverinfo="skip",
                line=dict(color=color, width=2, dash="dot"))


def arrow(start: torch.Tensor, offset: torch.Tensor, color: str, name: str, dash: str = "solid") -> dict:
    end = start + offset
    return dict(
        type="scatter", x=[float(start[0]), float(end[0])], y=[float(start[1]), float(end[1])], mode="lines+markers",
        name=name, line=dict(color=color, width=2.5 if dash == "solid" else 1.5, dash=dash),
        marker=dict(symbol=["circle", "arrow" if dash == "solid" else "x"], size=[1, 13 if dash == "solid" else 8],
                    angleref="previous", color=color),
    )


def region_figure(pair: RegionPair, box, grid, levels, title: str, presenter: bool) -> dict:
    """The loss, the region at w and at w′ with their worst cases and maximum-loss level curves, as
    plotly JSON (plotly's figure objects took ~30 ms a figure to build, four figures a move).

    A fixed size whose plotting area has the box's shape, so plotly's scaleanchor has nothing to do at
    that size (constraining a stretched figure cost the browser ~0.1 s per figure and slider move) and
    only keeps one scale where a narrow window shrinks the figure; the background heatmap smooths with
    the browser's image scaling (zsmooth "fast": "best" interpolates every pixel in JavaScript)."""
    xs, ys, values = grid
    data = [dict(
        type="heatmap", x=xs, y=ys, z=values, zsmooth="fast", colorscale=LOSS_COLORS, showscale=False, name="L(w)",
        hovertemplate="w₁=%{x:.3f}<br>w₂=%{y:.3f}<br>L=%{z:.4g}<extra></extra>",
    )]
    for result, curve, level, key, label in (
        (pair.at_w, pair.boundary, levels[0], "w", "w"), (pair.at_w_prime, pair.boundary_prime, levels[1], "w_prime", "w′ = Aw"),
    ):
        color = COLORS[key]
        data += [
            level_line(level, color, f"L = max loss at {label}"),
            dict(type="scatter", x=curve[:, 0].numpy(), y=curve[:, 1].numpy(), mode="lines", fill="toself",
                 name=f"region at {label}", line=dict(color=color, width=2), fillcolor="rgba(255,255,255,0.45)",
                 hoverinfo="skip"),
            arrow(result.w, result.e_first_order, color, f"first-order ε̂ at {label}", dash="dash"),
            arrow(result.w, result.e_star, color, f"exact ε* at {label}"),
            dict(type="scatter", x=[float(result.w[0])], y=[float(result.w[1])], mode="markers", name=label,
                 marker=dict(symbol="circle" if key == "w" else "triangle-up", size=11, color=color,
                             line=dict(color="black", width=1))),
        ]
    (x0, x1), (y0, y1) = box
    margin, width = MARGINS[presenter], PLOT_WIDTH_PX[presenter]
    height = round((width - margin["l"] - margin["r"]) * (y1 - y0) / (x1 - x0)) + margin["t"] + margin["b"]
    layout = dict(  # one scale for w₁ and w₂: the plotting area has the box's shape; scaleanchor keeps it
        title=dict(text=title), width=width, height=height, margin=margin, showlegend=False,  # where a narrow column shrinks it
        xaxis=dict(title=dict(text="w₁"), range=[x0, x1], automargin=False, constrain="domain"),
        yaxis=dict(title=dict(text="w₂"), range=[y0, y1], automargin=False, scaleanchor="x", scaleratio=1, constrain="domain"),
    )
    return dict(data=data, layout=layout)


@common.shared_figures
def region_figures(loss_name: str, w1: float, w2: float, a: float, rho: float, eta: float, p_name: str,
                   presenter: bool) -> list[dict]:
    """The page's four figures (sphere, cuboid, ellipsoid, adaptive p-ball) for one setting."""
    pairs, box, grid, levels = scene(loss_name, w1, w2, a, rho, eta, P_CHOICES[p_name])
    titles = {**TITLES, adaptive_region(P_CHOICES[p_name]).name: f"Adaptive p-ball (ASAM, p = {p_name})"}
    return [region_figure(pair, box, grid, pair_levels, titles[pair.region.name], presenter)
            for pair, pair_levels in zip(pairs, levels)]


def caption(pair: RegionPair, note: str) -> None:
    st.caption(
        f"{note} Max loss {pair.at_w.max_loss:.5g} at w, {pair.at_w_prime.max_loss:.5g} at w′; the first-order "
        f"ε̂ from `perturbation()` reaches {pair.at_w.first_order_loss:.5g} and {pair.at_w_prime.first_order_loss:.5g}."
    )


st.title("Maximization regions")
st.markdown(
    "**ASAM paper, Figure 1 and Theorem 1.** Sharpness is the largest loss increase in a region around w: "
    r"$\max_{\epsilon \in R(w)} L(w+\epsilon) - L(w)$. Rescaling $w' = Aw$ with $A = \mathrm{diag}(a, 1/a)$ leaves a "
    "loss of $w_1 w_2$ unchanged. Does the sharpness change? It depends on the region $R$."
)

with st.sidebar:
    st.subheader("Regions")
    loss_name = common.choice("Loss", "regions_loss", list(LOSSES), "product", format_func=lambda n: LOSSES[n].title)
    w1 = common.number("w₁", "regions_w1", -5.0, 5.0, 1.0, 0.1)
    w2 = common.number("w₂", "regions_w2", -5.0, 5.0, 1.0, 0.1)
    a = common.slider("a in A = diag(a, 1/a)", "regions_a", 0.2, 5.0, 3.0, 0.1)
    rho = common.slider("ρ (radius)", "regions_rho", 0.05, 1.0, 0.3, 0.05)
    eta = common.slider("η in T_w = diag(|w| + η)", "regions_eta", 0.0, 0.5, 0.0, 0.01)
    p = common.choice("p of the adaptive region", "regions_p", list(P_CHOICES), "4")

loss = get_loss(loss_name)
w_prime = rescale(torch.tensor([w1, w2], dtype=torch.float64), a).tolist()
st.latex(loss.latex + r",\qquad w = (%.3g,\ %.3g),\quad w' = Aw = (%.3g,\ %.3g)" % (w1, w2, *w_prime))
pairs, _, _, _ = scene(loss_name, w1, w2, a, rho, eta, P_CHOICES[p])

st.caption(
    "Blue: at w (dot); red: at w′ = Aw (triangle). Solid arrows: the exact worst case ε* (the true loss maximized over "
    "the region); dashed: the first-order guess ε̂ that SAM/ASAM use; dotted lines: the loss level of each maximum."
)
notes = {**NOTES, adaptive_region(P_CHOICES[p]).name: "Any p > 1 gives a scale-invariant region: p = 2 is the "
         "ellipsoid, p = ∞ the cuboid."}
figures = region_figures(loss_name, w1, w2, a, rho, eta, p)
for row in (0, 2):
    for column, pair, figure in zip(st.columns(2), pairs[row:row + 2], figures[row:row + 2]):
        with column:
            common.chart(figure, key=f"regions_plot_{pair.region.name}", fixed_size=True)
            st.markdown(f"${pair.region.formula}$")
            caption(pair, notes[pair.region.name])

rows = [pair.row for pair in pairs]
tolerance = f"{EQUAL_TOLERANCE:.0e}".replace("e-0", "e-")
left, right = st.columns([3, 2])
with left:
    st.subheader("Sharpness at w and at w′ = Aw")
    st.table(pd.DataFrame({  # a static table: st.dataframe's grid rewrote its hidden copy 0.2 s after each move
        "region": [row.region for row in rows],
        "sharpness at w": [f"{row.at_w:.8g}" for row in rows],
        "sharpness at w′": [f"{row.at_w_prime:.8g}" for row in rows],
        "relative difference": [f"{row.relative_difference:.1e}" for row in rows],
        f"equal ({tolerance})": ["yes" if row.equal else "no" for row in rows],
    }).set_index("region"))
with right:
    st.markdown(
        "**Theorem 1** (ASAM paper): with $T_w = \\mathrm{diag}(|w|)$, $T_{Aw} = A\\,T_w$, so the normalized regions "
        "at $Aw$ are the images under $A$ of those at $w$, and a loss with $L(Aw) = L(w)$ has the same maximum in both: "
        "adaptive sharpness is scale-invariant. The sphere is not rescaled with $w$, so its row differs."
    )
    if theorem1_visible(rows):
        st.success(f"Every adaptive row agrees to {tolerance} and the sphere row does not: Theorem 1, computed.")
    if eta > 0:
        st.info(
            f"η = {eta:g} > 0: T_w = diag(|w| + η) is no longer exactly rescaled by A, so the adaptive rows differ a "
            "little. Set η = 0 to see Theorem 1 hold exactly."
        )
    if not loss.scale_invariant:
        st.warning(f"{loss.title} is not scale-invariant (L(Aw) ≠ L(w)), so Theorem 1 does not apply to it.")
