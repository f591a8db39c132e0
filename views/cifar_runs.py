"""CIFAR runs: queue SGD / SAM / ASAM runs, watch them train live, compare them, download metrics.

The page is a viewer over the run store (asam_core.runs.store, folder $ASAM_LAB_RUNS_DIR or
./runs): a background worker process trains the runs, so a browser refresh loses nothing.  The
page starts a worker (asam_core.runs.launcher) when runs are queued and none is alive, unless
ASAM_LAB_WORKER_AUTOSTART=0.  The compared runs live in the URL (``?cifar_runs=3,5``).
"""
import os

import plotly.graph_objects as go
import streamlit as st
from plotly.colors import qualitative
from plotly.subplots import make_subplots
from pydantic import ValidationError

from asam_core.runs import views
from asam_core.runs.launcher import ensure_worker
from asam_core.runs.store import RunRecord, RunStore, default_root, this_host
from asam_core.train.config import PRESET_DESCRIPTIONS, PRESETS, RunConfig, format_validation_error

AUTOSTART_WORKER = os.environ.get("ASAM_LAB_WORKER_AUTOSTART", "1") != "0"
MAIN_FIELDS = ("optimizer", "model", "rho", "epochs", "subset_per_class", "lr", "batch_size", "label")
PALETTE = qualitative.Plotly
FIELDS = views.form_fields()


@st.cache_resource
def run_store(root: str) -> RunStore:
    return RunStore(root)


store = run_store(str(default_root().resolve()))


def load_preset() -> None:
    """Fill the form with the chosen preset member."""
    config = PRESETS[st.session_state.cifar_preset][st.session_state.cifar_member]
    for name, value in views.form_values(config).items():
        st.session_state[f"cifar_f_{name}"] = value


def queued(run_ids: list[int]) -> None:
    """After a submission: show the new runs in the comparison and make sure a worker runs."""
    st.session_state.cifar_compare = list(dict.fromkeys(st.session_state.get("cifar_compare", []) + run_ids))
    st.success(f"Queued run{'s' if len(run_ids) > 1 else ''} {', '.join(f'#{i}' for i in run_ids)}.")
    if AUTOSTART_WORKER and ensure_worker(store):
        st.toast("Started a background worker.")


def field_widget(spec: views.FieldSpec) -> None:
    key, label = f"cifar_f_{spec.name}", spec.name
    if spec.kind == "select":
        default_text = "default for the optimizer"
        st.selectbox(label, spec.options, key=key, help=spec.help, placeholder=default_text,
                     format_func=lambda o: default_text if o is None else str(o))
    elif spec.kind == "checkbox":
        st.checkbox(label, key=key, help=spec.help)
    elif spec.kind == "text":
        st.text_input(label, key=key, help=spec.help)
    else:
        st.number_input(label, value=None, step=1 if spec.kind == "int" else None,
                        format="%d" if spec.kind == "int" else "%g", key=key, help=spec.help,
                        placeholder="default" if spec.optional else "required")


st.title("CIFAR runs")
st.write(
    "Queue training runs of SGD, SAM and ASAM on CIFAR and watch them train. A background worker "
    "process trains the runs one after another; you can close or refresh this page at any time."
)

st.session_state.setdefault("cifar_preset", next(iter(PRESETS)))
st.session_state.setdefault("cifar_member", 2)
if "cifar_f_optimizer" not in st.session_state:
    load_preset()

st.subheader("Start a run")
left, right = st.columns([2, 3])
left.selectbox("Preset", list(PRESETS), key="cifar_preset", on_change=load_preset)
members = [config.optimizer.upper() for config in PRESETS[st.session_state.cifar_preset]]
left.radio("Optimizer of the preset", range(len(members)), key="cifar_member", on_change=load_preset,
           horizontal=True, format_func=members.__getitem__)
right.caption(PRESET_DESCRIPTIONS[st.session_state.cifar_preset])
owner = left.text_input("Your name", key="cifar_owner", placeholder="anonymous",
                        help="Shown as the owner of the runs you queue.")
if left.button(f"Queue all three runs of “{st.session_state.cifar_preset}”", key="cifar_queue_preset"):
    queued([store.submit(config, owner) for config in PRESETS[st.session_state.cifar_preset]])

with st.form("cifar_launch"):
    st.caption("The form holds the chosen preset; change any field. Hover over a field's question mark for its allowed values.")
    columns = st.columns(4)
    for i, spec in enumerate(s for s in FIELDS if s.name in MAIN_FIELDS):
        with columns[i % 4]:
            field_widget(spec)
    with st.expander("All options"):
        columns = st.columns(4)
        for i, spec in enumerate(s for s in FIELDS if s.name not in MAIN_FIELDS):
            with columns[i % 4]:
                field_widget(spec)
    errors = st.container()
    submitted = st.form_submit_button("Start run", type="primary")

if submitted:
    try:
        config = RunConfig.model_validate({s.name: st.session_state[f"cifar_f_{s.name}"] for s in FIELDS})
    except ValidationError as err:
        errors.error("Nothing was queued. Please fix:\n\n" + "\n".join(
            f"- {line}" for line in format_validation_error(err).splitlines()))
    else:
        queued([store.submit(config, owner)])


def cancel(run_id: int) -> None:
    status = store.request_cancel(run_id)
    st.toast(f"Run #{run_id}: {'cancelled' if status == 'cancelled' else 'stopping at its next step'}.")


def curves_figure(runs: list[RunRecord], metrics: list[dict]) -> go.Figure:
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Accuracy", "Loss"))
    for t in views.curve_traces(runs, metrics):
        fig.add_trace(go.Scatter(
            x=t.epochs, y=t.values, name=t.name, mode="lines+markers", legendgroup=t.name,
            showlegend=t.panel == "accuracy", line=dict(color=PALETTE[t.color_index % len(PALETTE)], dash=t.dash),
        ), row=1, col=1 if t.panel == "accuracy" else 2)
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text="accuracy (%)", row=1, col=1)
    fig.update_yaxes(title_text="cross-entropy loss", row=1, col=2)
    fig.update_layout(height=420, legend=dict(orientation="h", y=-0.2), margin=dict(t=40))
    return fig


def trajectory_figure(group: views.TrajectoryGroup) -> go.Figure:
    fig = go.Figure()
    for path in group.paths:
        fig.add_trace(go.Scatter(
            x=path.x, y=path.y, name=path.name, mode="lines+markers", customdata=path.epochs,
            line=dict(color=PALETTE[path.color_index % len(PALETTE)]),
            hovertemplate="epoch %{customdata}<br>x = %{x:.3g}<br>y = %{y:.3g}",
        ))
    fig.add_trace(go.Scatter(x=[0], y=[0], mode="markers+text", text=["w₀"], textposition="top left",
                             marker=dict(color="black", size=10, symbol="x"), name="w₀ (initial weights)"))
    fig.update_layout(title=f"Weights w ≈ w₀ + x·d₁ + y·d₂ ({group.title})", height=420,
                      xaxis_title="x (along d₁)", yaxis_title="y (along d₂)", legend=dict(orientation="h", y=-0.2))
    return fig


@st.fragment(run_every=2)
def live_runs() -> None:
    """Runs table, cancel buttons, comparison charts and CSV: refreshed every 2 s."""
    if AUTOSTART_WORKER and ensure_worker(store):
        st.toast("Started a background worker for the queued runs.")
    runs = store.list_runs()
    if not runs:
        st.info("No runs yet: queue one above.")
        return
    by_id = {run.id: run for run in runs}
    workers = len(store.live_workers(this_host()))
    st.caption(f"{workers} worker process{'es' if workers != 1 else ''} running; runs and worker log in "
               f"`{store.root}` (command line: `python -m asam_core.runs --help`).")
    st.dataframe(views.run_rows(runs, store.best_test_acc()), hide_index=True, key="cifar_table", column_config={
        "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0, format="percent"),
        "best test acc (%)": st.column_config.NumberColumn(format="%.2f"),
        "rho": st.column_config.NumberColumn(format="%g"),
    })
    active = [run for run in runs if run.status in ("queued", "running")]
    for run in active:
        text, button = st.columns([5, 1])
        stopping = " (stopping)" if run.cancel_requested else ""
        text.write(f"**{views.run_name(run)}**: {run.status}{stopping}, {run.progress:.0%}, by {run.owner}")
        button.button("Cancel", key=f"cifar_cancel_{run.id}", on_click=cancel, args=(run.id,),
                      disabled=run.cancel_requested)

    if "cifar_compare" not in st.session_state:
        chosen, rejected = views.parse_run_ids(st.query_params.get("cifar_runs"), list(by_id))
        if rejected:
            st.warning(f"URL parameter `cifar_runs` names unknown runs {rejected}: ignored.")
        st.session_state.cifar_compare = chosen if "cifar_runs" in st.query_params else list(by_id)[-3:]
    # Re-stated on every run so that every render carries the value: a browser that missed the first
    # render (a 2-s refresh arriving while a slow first run still draws) would otherwise send back [].
    st.session_state.cifar_compare = st.session_state.cifar_compare
    selected = st.multiselect("Compare runs", list(by_id), key="cifar_compare",
                              format_func=lambda i: views.run_name(by_id[i]))
    st.query_params["cifar_runs"] = ",".join(str(i) for i in selected)
    if not selected:
        st.info("Pick runs to compare.")
        return
    chosen_runs = [by_id[i] for i in selected]
    metrics = store.metrics(selected)
    if not metrics:
        st.info("The curves appear when the first epoch of a compared run has finished.")
        return
    st.plotly_chart(curves_figure(chosen_runs, metrics), key="cifar_curves")
    for group in views.trajectory_groups(chosen_runs, metrics):
        st.plotly_chart(trajectory_figure(group), key=f"cifar_traj_{group.title}")
    st.caption("Trajectories: each epoch's weights projected on the plane through the initial weights w₀ "
               "spanned by two filter-normalized random directions d₁, d₂ (Li et al. 2018); runs with the "
               "same dataset, model and seed start at the same w₀ and share the plane.")
    st.download_button("Download metrics (CSV)", views.metrics_csv(chosen_runs, metrics), key="cifar_csv",
                       file_name="cifar_runs_metrics.csv", mime="text/csv", on_click="ignore")


st.subheader("Runs")
live_runs()
