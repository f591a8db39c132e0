"""The CIFAR page's view of what the papers claim: the runs' paths on their shared PCA plane, the
flatness of the trained models (1-D loss profiles, sharpness, adaptive sharpness, lambda_max), and
runs that differ only in seed as mean +- 95% interval.  The numbers come from asam_core
(runs.analysis, runs.seed_groups, train.flatness); this module only draws them.

One colour per run, by run id (``views.style.run_color``), on every figure and across page loads.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from asam_core.runs.analysis import LossProfile, LossSurface, SharedPlane, loss_profiles, loss_surface, shared_planes
from asam_core.runs.reports import run_name
from asam_core.runs.seed_groups import group_rows, groups_csv, seed_groups
from asam_core.runs.store import RunRecord, RunStore
from views.common import chart
from views.style import run_color

FLATNESS_COLUMNS = {"sharpness": "sharpness (SAM Eq. 2, ρ = 0.05)",
                    "adaptive_sharpness": "adaptive sharpness (ASAM Eq. 4, ρ = 0.5)",
                    "lambda_max": "Hessian λ_max"}


def plane_figure(plane: SharedPlane, runs: Mapping[int, RunRecord]) -> go.Figure:
    """Every path of the plane from w0 (black cross): a dot per epoch, an arrow into the last point,
    and the last recorded epoch as a large diamond (its epoch in the hover)."""
    fig = go.Figure()
    for run_id in plane.run_ids:
        xy, epochs, color = plane.coordinates[run_id], plane.epochs[run_id], run_color(run_id)
        fig.add_trace(go.Scatter(
            x=xy[:, 0].tolist(), y=xy[:, 1].tolist(), mode="lines+markers", name=run_name(runs[run_id]),
            legendgroup=str(run_id),
            customdata=epochs, line=dict(color=color, width=3), marker=dict(size=6, color=color),
            hovertemplate="epoch %{customdata}<br>PC1 %{x:.3g}<br>PC2 %{y:.3g}<extra></extra>",
        ))
        if len(xy) > 1:
            (x0, y0), (x1, y1) = xy[-2].tolist(), xy[-1].tolist()
            fig.add_annotation(x=x1, y=y1, ax=x0, ay=y0, xref="x", yref="y", axref="x", ayref="y", text="",
                               showarrow=True, arrowhead=3, arrowsize=1.6, arrowwidth=2.5, arrowcolor=color)
        fig.add_trace(go.Scatter(
            x=xy[-1:, 0].tolist(), y=xy[-1:, 1].tolist(), mode="markers", customdata=[epochs[-1]],
            marker=dict(symbol="diamond", size=15, color=color, line=dict(color="black", width=1)),
            legendgroup=str(run_id), showlegend=False, hovertemplate="last recorded epoch %{customdata}<extra></extra>",
        ))
    fig.add_trace(go.Scatter(x=[0], y=[0], mode="markers+text", text=["w₀"], textposition="bottom left",
                             marker=dict(color="black", size=12, symbol="x"), name="w₀ (shared initial weights)"))
    model, seed, dataset = plane.initialization
    fig.update_layout(
        title=f"Paths of the weights on their top two principal directions ({model}, {dataset}, seed {seed})",
        height=480, xaxis_title=plane.axis_title(0), yaxis_title=plane.axis_title(1),
        legend=dict(orientation="h", yanchor="top", y=-0.28), margin=dict(t=50, b=40),
    )
    return fig


def profile_figure(profiles: Mapping[int, LossProfile], runs: Mapping[int, RunRecord]) -> go.Figure:
    """L(w + t d) of each run: the mean over its random directions (solid) and each direction (thin)."""
    fig = go.Figure()
    for run_id, profile in profiles.items():
        color, name = run_color(run_id), run_name(runs[run_id])
        for row in profile.loss:
            fig.add_trace(go.Scatter(x=profile.t, y=row, mode="lines", line=dict(color=color, width=1), opacity=0.45,
                                     legendgroup=str(run_id), showlegend=False, hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=profile.t, y=np.mean(profile.loss, axis=0).tolist(), mode="lines+markers", name=name,
                                 legendgroup=str(run_id), line=dict(color=color, width=3)))
    fig.update_layout(
        title="Loss along filter-normalized random directions d (Li et al. 2018): flatter is wider",
        height=420, xaxis_title="t in L(w + t·d)", yaxis_title="training loss (fixed 128 images)",
        legend=dict(orientation="h", yanchor="top", y=-0.28), margin=dict(t=50, b=40),
    )
    return fig


def flatness_rows(runs: Sequence[RunRecord], metrics: Sequence[Mapping]) -> list[dict]:
    """Per run, the last measured flatness values (runs never measured are left out)."""
    rows = []
    for run in runs:
        measured = [m for m in metrics if m["run_id"] == run.id and m.get("sharpness") is not None]
        if measured:
            last = measured[-1]
            rows.append({"run": run_name(run), "epoch": int(last["epoch"]),
                         **{title: last[field] for field, title in FLATNESS_COLUMNS.items()}})
    return rows


def show_plane(store: RunStore, runs: Sequence[RunRecord]) -> None:
    by_id = {run.id: run for run in runs}
    planes = shared_planes(runs, store.artifacts([run.id for run in runs], "path_sketch"))
    if not planes:
        st.info("The paths appear when the first epoch of a compared run has finished.")
    for plane in planes:
        chart(plane_figure(plane, by_id), key=f"cifar_plane_{'_'.join(map(str, plane.run_ids))}")
    if len(planes) > 1:
        st.caption("Runs from different initial weights (model, seed or dataset differ) get separate planes.")
    st.caption("Dots: epochs (hover for the number); arrow and diamond: the direction of travel and the last "
               "recorded epoch. Each epoch the run stores a 4,096-number sketch of its displacement w − w₀ "
               "(asam_core.train.path_sketch); the plane is spanned by the top two principal directions of all the "
               "compared paths together (Li et al. 2018, Section 7), and each axis title gives the share of the "
               "paths' squared length it explains.")


def show_flatness(store: RunStore, runs: Sequence[RunRecord], metrics: Sequence[Mapping]) -> None:
    by_id = {run.id: run for run in runs}
    profiles = loss_profiles(store.artifacts([run.id for run in runs], "loss_profile"))
    rows = flatness_rows(runs, metrics)
    if not profiles and not rows:
        st.info("Flatness is measured at the end of each run (and every `flatness_every_epochs` epochs).")
        return
    if profiles:
        chart(profile_figure(profiles, by_id), key="cifar_profiles")
    show_surface(store, runs)
    if rows:
        st.dataframe(rows, hide_index=True, key="cifar_flatness", column_config={
            title: st.column_config.NumberColumn(format="%.4g") for title in FLATNESS_COLUMNS.values()})
    st.caption("Measured on 128 fixed training images with BatchNorm in eval mode (asam_core.train.flatness): "
               "the worst loss increase in SAM's ball, in ASAM's normalized region, and the Hessian's top "
               "eigenvalue. Lower is flatter.")


def show_seed_groups(runs: Sequence[RunRecord], metrics: Sequence[Mapping]) -> None:
    groups = seed_groups(runs, metrics)
    if not any(len(g.run_ids) > 1 for g in groups):
        st.info("Queue a setting with several seeds (“Repeat with N seeds”) to see mean ± 95% intervals.")
        return
    st.dataframe(group_rows(groups), hide_index=True, key="cifar_seed_groups")
    st.caption("Runs that differ only in their seed, grouped: mean ± half-width of the 95% t-interval over seeds, "
               "as the SAM paper reports its results (asam_core.runs.seed_groups).")
    st.download_button("Download grouped table (CSV)", groups_csv(groups), key="cifar_groups_csv",
                       file_name="cifar_seed_groups.csv", mime="text/csv", on_click="ignore")


def surface_figure(surface: LossSurface, run: RunRecord) -> go.Figure:
    """The loss around one run's path (contours) with the path on top: w0 at (0, 0), the trained weights at (1, 0)."""
    color = run_color(run.id)
    fig = go.Figure(go.Contour(
        x=surface.alpha, y=surface.beta, z=surface.loss, colorscale="Viridis", ncontours=24,
        colorbar=dict(title="loss"), contours=dict(showlabels=True, labelfont=dict(size=11, color="white")),
        hovertemplate="a %{x:.2f}<br>b %{y:.2f}<br>loss %{z:.3g}<extra></extra>",
    ))
    fig.add_trace(go.Scatter(
        x=surface.path[:, 0].tolist(), y=surface.path[:, 1].tolist(), mode="lines+markers", name=run_name(run),
        customdata=surface.epochs, line=dict(color="white", width=4), marker=dict(size=7, color=color),
        hovertemplate="epoch %{customdata}<extra></extra>",
    ))
    fig.add_trace(go.Scatter(x=[0.0], y=[0.0], mode="markers+text", text=["w₀"], textposition="bottom left",
                             marker=dict(color="black", size=12, symbol="x"), name="w₀", textfont=dict(color="white")))
    fig.update_layout(
        title=f"Loss around {run_name(run)}: the plane of its path w₀ → w (length {surface.length:.3g})",
        height=480, xaxis_title="a: along w − w₀ (units of |w − w₀|)",
        yaxis_title="b: random filter-normalized direction ⟂ (same units)", legend=dict(orientation="h", y=-0.22),
        margin=dict(t=50),
    )
    return fig


def show_surface(store: RunStore, runs: Sequence[RunRecord]) -> None:
    ids = [run.id for run in runs]
    surfaces = store.artifacts(ids, "loss_surface")
    if not surfaces:
        return
    by_id = {run.id: run for run in runs}
    chosen = st.selectbox("Loss surface around run", list(surfaces), key="cifar_surface_run",
                          format_func=lambda i: run_name(by_id[i]))
    surface = loss_surface(surfaces[chosen], store.artifacts([chosen], "path_sketch").get(chosen, []))
    chart(surface_figure(surface, by_id[chosen]), key="cifar_surface")
    st.caption("Measured once at the end of the run on the fixed 128 training images (asam_core.train.flatness): "
               "every epoch of the path is placed on this plane through its sketch (accurate to about 2%).")
