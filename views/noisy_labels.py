"""Noisy labels in 2-D: SGD memorizes flipped labels, SAM and ASAM resist
(SAM paper, Section 3.3; ASAM paper, Table 6)."""
from __future__ import annotations

import threading
from collections import OrderedDict

import plotly.graph_objects as go
import streamlit as st
from pydantic import ValidationError

from views import common
from views.classifier_plots import boundary_figure
from views.style import method_line
from toy_problems.classification import DATASETS, ClassifierConfig, ClassifierRun, train_classifiers
from toy_problems.noisy_labels import CLAIM_POINTS, PAPER_EFFECT, PRESETS, QUICK, clean_test_gains

CONTROLS = {  # config field -> (label, min, max, step, widget)
    "n_train": ("Training points", 20, 1000, 10, common.slider),
    "flip_rate": ("Flipped labels (fraction)", 0.0, 0.5, 0.05, common.slider),
    "seed": ("Seed (points, initialization)", 0, 100, 1, common.slider),
    "flip_seed": ("Seed of the label flips", 0, 100, 1, common.slider),
    "members": ("Seeds averaged", 1, 5, 1, common.slider),
    "width": ("Width", 4, 512, 4, common.number),
    "depth": ("Hidden layers", 1, 4, 1, common.number),
    "steps": ("Steps (full batch)", 50, 5000, 50, common.number),
    "lr": ("Learning rate", 0.01, 1.0, 0.01, common.number),
    "rho_sam": ("ρ of SAM", 0.0, 1.0, 0.01, common.number),
    "rho_asam": ("ρ of ASAM", 0.0, 5.0, 0.05, common.number),
    "eta": ("η of ASAM", 0.0, 0.1, 0.005, common.number),
}
MAX_RUNS = 12
PROGRESS_UPDATES = 20  # each update is a message the browser redraws
DATA_FIELDS = ("n_train", "flip_rate", "seed", "flip_seed", "members")
METRIC_TITLES = {
    "train_acc": "Training accuracy on the noisy labels",
    "test_acc": "Clean test accuracy",
    "flipped_fit": "Flipped points fitted to their wrong label",
}


def apply_preset() -> None:
    """Copy the chosen preset into every control (before they are drawn)."""
    preset = PRESETS[st.session_state["nl_preset"]]
    st.session_state["nl_dataset"] = preset.dataset
    for field in CONTROLS:
        st.session_state[f"nl_{field}"] = getattr(preset, field)


def control(field: str, default: ClassifierConfig):
    label, low, high, step, widget = CONTROLS[field]
    value = getattr(default, field)
    kind = type(value)
    return widget(label, f"nl_{field}", kind(low), kind(high), value, kind(step))


@st.cache_resource
def finished_runs() -> OrderedDict[str, ClassifierRun]:
    """Runs by config, shared by all sessions.  Not st.cache_data: a cached function may not
    update a progress bar drawn outside it, and training shows its progress."""
    return OrderedDict()


@st.cache_resource
def training_lock() -> threading.Lock:
    """One training at a time for all sessions: a class opening the page together trains the
    preset once, the others wait and take it from finished_runs()."""
    return threading.Lock()


def trained(config: ClassifierConfig) -> ClassifierRun:
    """The run of ``config``: from the cache, or trained now with a progress bar."""
    runs, key = finished_runs(), config.model_dump_json()
    with training_lock():
        if key not in runs:
            bar = st.progress(0.0, text="Training SGD, SAM and ASAM…")
            runs[key] = train_classifiers(config, progress=lambda s, n: bar.progress(s / n, text=f"Training step {s} / {n}"),
                                          progress_calls=PROGRESS_UPDATES)
            bar.empty()
            while len(runs) > MAX_RUNS:
                runs.popitem(last=False)
        runs.move_to_end(key)
        return runs[key]


@common.shared_figures
def curves_figure(config: ClassifierConfig, metric: str, presenter: bool, _run: ClassifierRun) -> go.Figure:
    """``metric`` over training, mean over seeds, per optimizer (``_run``: the run of ``config``)."""
    fig = go.Figure()
    for name, curve in _run.seed_mean_curves(metric).items():
        fig.add_trace(go.Scatter(x=_run.eval_steps, y=100 * curve, mode="lines", name=name, line=method_line(name)))
    if metric == "train_acc":
        reference = 100 * (1 - _run.config.flip_rate)
        fig.add_trace(go.Scatter(x=[_run.eval_steps[0], _run.eval_steps[-1]], y=[reference, reference], mode="lines",
                                 name="ignores the flips (1 − flip rate)", line=dict(color="black", dash="dot", width=2)))
    fig.update_layout(
        title=METRIC_TITLES[metric], height=380, margin=dict(l=10, r=10, t=45, b=10),
        xaxis=dict(title="step"), yaxis=dict(title="% (mean over seeds)", range=[0, 101] if metric == "flipped_fit" else [40, 101]),
    )
    return fig


@common.shared_figures
def boundaries_at(config: ClassifierConfig, o: int, member: int, shown: int, presenter: bool,
                  _run: ClassifierRun) -> go.Figure:
    """Optimizer ``o``'s decision boundary for seed ``member`` at snapshot ``shown`` (``_run``: the run of ``config``)."""
    data = _run.data
    return boundary_figure(_run.x1, _run.x2, _run.grids[o, member, shown], data.x_train[member].numpy(),
                           data.y_train[member].numpy(), data.flipped[member].numpy(), title=config.optimizers[o],
                           height=400)


@st.fragment
def boundaries(run: ClassifierRun, config: ClassifierConfig, final: dict[str, dict[str, float]]) -> None:
    """The decision boundaries with their snapshot and seed sliders: moving one reruns only this part."""
    snapshots = [int(step) for step in run.snapshot_steps]
    if st.session_state.get("nl_snapshot", snapshots[-1]) not in snapshots:  # a step of an earlier setting
        st.session_state["nl_snapshot"] = snapshots[-1]
    step = common.stops("Watch training: boundaries after step", "nl_snapshot", snapshots, snapshots[-1])
    shown = snapshots.index(step)
    member = 0
    if config.members > 1:
        member = common.slider("Seed shown in the pictures", "nl_member", 0, config.members - 1, 0, 1)
    st.caption(f"Decision boundaries after step {step} of {config.steps}; seed {config.seed + member}, "
               f"flip seed {config.flip_seed + member}. Crosses: points whose label was flipped (drawn in their "
               "wrong colour).")
    for o, (column, name) in enumerate(zip(st.columns(len(config.optimizers)), config.optimizers)):
        with column:
            common.chart(boundaries_at(config, o, member, shown, _run=run), key=f"nl_boundary_{name}")
            left, right = st.columns(2)
            left.metric("train acc (noisy)", f"{100 * final['train_acc'][name]:.1f}%")
            right.metric("clean test acc", f"{100 * final['test_acc'][name]:.1f}%")
            st.caption(f"{100 * final['flipped_fit'][name]:.0f}% of the flipped points fitted to their wrong label.")


st.title("Noisy labels in 2-D")
st.markdown(
    "Flip a fraction of the training labels at random, then train the **same MLP from the same initialization** with "
    "SGD, SAM and ASAM (full batch, SGD with momentum as the base optimizer). A network wide enough can memorize every "
    "flipped point; watch whether it does, and what that costs on a clean test set drawn from the same distribution."
)

with st.sidebar:
    st.subheader("Noisy labels")
    preset_name = common.choice("Preset", "nl_preset", list(PRESETS), QUICK, on_change=apply_preset)
    preset = PRESETS[preset_name]
    dataset = common.choice("Dataset", "nl_dataset", list(DATASETS), preset.dataset)
    values = {field: control(field, preset) for field in DATA_FIELDS}
    with st.expander("Network and training", expanded=False):
        values |= {field: control(field, preset) for field in CONTROLS if field not in DATA_FIELDS}

try:
    config = ClassifierConfig.model_validate(preset.model_dump() | dict(dataset=dataset, **values))
except ValidationError as error:
    st.error(f"Invalid settings, nothing was trained: {error}")
    st.stop()

run = trained(config)

final = {metric: run.final(metric) for metric in METRIC_TITLES}
boundaries(run, config, final)

gains = clean_test_gains(run)
seeds = f"seed {config.seed}" if config.members == 1 else f"mean over {config.members} seeds"
summary = ", ".join(f"{name} {gain:+.1f} points" for name, gain in gains.items())
st.markdown(f"**Clean test accuracy against SGD** at step {config.steps} ({seeds}): {summary}.")
if config == PRESETS[PAPER_EFFECT]:
    if min(gains.values()) >= CLAIM_POINTS:
        st.success(f"The paper's effect: averaged over 3 seeds, SAM and ASAM each beat SGD on clean test accuracy by "
                   f"at least {CLAIM_POINTS:g} points (this setting is checked by the test suite).")
    else:
        st.warning("This run does not reproduce the preset's measured effect.")

tabs = st.tabs(list(METRIC_TITLES.values()))
for tab, metric in zip(tabs, METRIC_TITLES):
    with tab:
        common.chart(curves_figure(config, metric, _run=run), key=f"nl_curve_{metric}")

st.markdown(
    r"""
**Why flat minima resist memorizing flipped labels.** A flipped point sits among points of the other class. To fit
it, the network must carve a small island around it: a steep, narrow change of the output in input space, which
needs large, finely balanced weights. Such a fit is *sharp*: a small perturbation $\epsilon$ of the weights wipes
the island out and the loss on that point jumps. SAM minimizes $\max_{\|\epsilon\|\le\rho} L(w+\epsilon)$, the loss
at the worst nearby weights, so every island costs it the loss it would lose under that perturbation; the
smooth boundary that follows the clean data stays flat and wins. SGD only sees $L(w)$, and given enough steps it
fits the islands one by one: its accuracy on the noisy labels climbs above the $1 - $ flip rate that a classifier
ignoring the flips would score (dotted line), and its clean test accuracy falls. ASAM does the same with a region scaled by $|w|$, so large weights cannot hide sharpness behind their scale.
"""
)
