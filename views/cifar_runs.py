"""CIFAR runs: queue SGD / SAM / ASAM runs, watch them train live, compare them, download metrics.

The page is a viewer over the run store (asam_core.runs.store, folder $ASAM_LAB_RUNS_DIR or
./runs): a background worker process trains the runs, so a browser refresh loses nothing.  The
page starts a worker (asam_core.runs.launcher) when runs are queued and none is alive, unless
ASAM_LAB_WORKER_AUTOSTART=0.  Before queuing, each run's memory and time are estimated
(asam_core.runs.resources): a run that cannot fit is refused, one over an hour needs the
confirmation box.  The URL holds the preset, its member, the owner, every form field that
differs from the preset (``cifar_f_<field>``) and the compared runs (``?cifar_runs=3,5``).
"""
import os

import streamlit as st
from pydantic import ValidationError
from streamlit.delta_generator import DeltaGenerator

from asam_core.methods import METHODS
from asam_core.runs import reports, resources
from asam_core.runs.launcher import ensure_worker, ray_address
from asam_core.runs.store import RunRecord, RunStore, StoreError, StoreGone, default_root, this_host
from asam_core.train.config import (
    MAX_SEEDS, PRESET_DESCRIPTIONS, PRESET_MEASURED, PRESETS, RunConfig, find_preset, format_validation_error,
    with_seeds,
)
from asam_core.train.data import DataUnavailable, data_status
from views import cifar_analysis as analysis
from views import cifar_figures as figures
from views import cifar_form as form
from views import teacher
from views.common import chart, keep_pinned, shown, to_url

AUTOSTART_WORKER = os.environ.get("ASAM_LAB_WORKER_AUTOSTART", "1") != "0"
MAX_CANCEL_ROWS = 8  # running and queued runs listed with a Cancel button
MAIN_FIELDS = ("optimizer", "model", "rho", "epochs", "subset_per_class", "lr", "batch_size", "label")
FIELDS = form.form_fields()


@st.cache_resource
def run_store(root: str) -> RunStore:
    return RunStore(root)


st.title("CIFAR runs")
st.write(
    "Queue training runs of SGD, SAM and ASAM on CIFAR and watch them train. A background worker "
    "process trains each run in its own process; you can close or refresh this page at any time."
)
try:
    store = run_store(str(default_root().resolve()))
    store.check_same_file()
except StoreGone as err:
    run_store.clear()  # the next run of the page opens the store at that path afresh
    st.error(f"{err}: reload the page to open the run store again.")
    st.stop()
except StoreError as err:
    st.error(f"The run store cannot be used: {err}")
    st.stop()


def history() -> list[tuple[RunConfig, float]]:
    """What finished runs took, for the time estimates (none when the store cannot be read)."""
    try:
        return resources.finished_runs(store)
    except StoreError:
        return []


def preset_member() -> RunConfig:
    return PRESETS[st.session_state.cifar_preset][st.session_state.cifar_member]


def load_preset() -> None:
    """Fill the form with the chosen preset member (fields the teacher hid or locked keep their values:
    ``keep_pinned``)."""
    for name, value in form.form_values(preset_member()).items():
        st.session_state[f"{form.URL_PREFIX}{name}"] = value


def state_from_url() -> None:
    """First run of a session: preset, member, owner and form fields from the URL (bad ones named and ignored)."""
    query, problems = st.query_params, []
    try:
        st.session_state.cifar_preset = find_preset(query.get("cifar_preset", next(iter(PRESETS))))
    except KeyError:
        problems.append(f"cifar_preset = {shown(query['cifar_preset'])} is not a preset")
        st.session_state.cifar_preset = next(iter(PRESETS))
    members = [c.optimizer for c in PRESETS[st.session_state.cifar_preset]]
    member = query.get("cifar_member", "asam")
    if member not in members:
        problems.append(f"cifar_member = {shown(member)} is not one of {members}")
        member = "asam"
    st.session_state.cifar_member = members.index(member)
    st.session_state.cifar_owner = query.get("cifar_owner", "")
    seeds = query.get("cifar_seeds", "1")
    if not (seeds.isascii() and seeds.isdigit() and 1 <= int(seeds) <= MAX_SEEDS):
        problems.append(f"cifar_seeds = {shown(seeds)} is not a number of seeds from 1 to {MAX_SEEDS}")
        seeds = "1"
    st.session_state.cifar_seeds = int(seeds)
    values, rejected = form.form_from_url(query.to_dict(), preset_member())
    problems += [shown(line, 80) for line in rejected]
    for name, value in values.items():
        st.session_state[f"{form.URL_PREFIX}{name}"] = value
    if problems:
        st.warning("Ignored from the URL: " + "; ".join(problems))


def state_to_url() -> None:
    """The page's controls in the URL (form fields only where they differ from the preset)."""
    values = {s.name: st.session_state.get(f"{form.URL_PREFIX}{s.name}") for s in FIELDS}
    wanted = {"cifar_preset": st.session_state.cifar_preset,
              "cifar_member": preset_member().optimizer,
              **({"cifar_owner": st.session_state.cifar_owner} if st.session_state.get("cifar_owner") else {}),
              **({"cifar_seeds": str(st.session_state.cifar_seeds)} if st.session_state.get("cifar_seeds", 1) > 1
                 else {}),
              **form.form_to_url(values, preset_member())}
    for key in [k for k in st.query_params if k.startswith(form.URL_PREFIX) or k in ("cifar_owner", "cifar_seeds")]:
        if key not in wanted:
            del st.query_params[key]
    for key, value in wanted.items():
        to_url(key, value)


def queue(configs: list[RunConfig], owner: str, where: DeltaGenerator) -> None:
    """Repeat with the chosen number of seeds, estimate, refuse what cannot fit, ask for runs over an
    hour, then queue and make sure a worker runs."""
    first = configs[0].seed
    try:
        configs = with_seeds(configs, list(range(first, first + st.session_state.cifar_seeds)))
    except ValueError as err:
        where.error(f"Nothing was queued: {err}")
        return
    try:
        data = sorted({data_status(c.dataset, c.data_dir, c.download) for c in configs})
    except DataUnavailable as err:
        where.error(f"Nothing was queued: the data is not there (data folder `data_dir`). {err}")
        return
    estimates = [resources.estimate(c, history()) for c in configs]
    refused = [f"{c.label or c.optimizer}: {resources.refusal(c, e)}" for c, e in zip(configs, estimates)
               if not e.fits]
    if refused:
        where.error("Nothing was queued: " + " ".join(refused))
        return
    long = [f"{c.label or c.optimizer} ({resources.duration(e.seconds)})" for c, e in zip(configs, estimates)
            if e.needs_confirmation]
    if long and not st.session_state.get("cifar_confirm_long"):
        where.warning(f"Nothing was queued: {', '.join(long)} would take over an hour on {estimates[0].device}. "
                      "Tick “I accept runs over an hour” and press the button again.")
        return
    try:
        run_ids = [store.submit(c, owner) for c in configs]
    except (ValueError, StoreError) as err:
        where.error(f"Nothing was queued: {err}")
        return
    st.session_state.cifar_compare = list(dict.fromkeys(st.session_state.get("cifar_compare", []) + run_ids))
    where.success(f"Queued run{'s' if len(run_ids) > 1 else ''} {', '.join(f'#{i}' for i in run_ids)}: "
                  + "; ".join(resources.summary(e) for e in estimates[:1]) + ". Data: " + "; ".join(data) + ".")
    if AUTOSTART_WORKER and ensure_worker(store):
        st.toast("Started a background worker.")


def field_widget(spec: form.FieldSpec) -> None:
    """The form field of ``spec``: not drawn when the teacher hid it, disabled when locked (views.teacher)."""
    key, label = f"{form.URL_PREFIX}{spec.name}", spec.label
    if teacher.hidden(key):
        return
    common = dict(key=key, help=spec.help, disabled=teacher.locked(key))
    if spec.kind == "select":
        default_text = "default for the optimizer"
        st.selectbox(label, spec.options, placeholder=default_text,
                     format_func=lambda o: default_text if o is None else str(o), **common)
    elif spec.kind == "checkbox":
        st.checkbox(label, **common)
    elif spec.kind == "text":
        st.text_input(label, **common)
    else:
        st.number_input(label, value=None, step=1 if spec.kind == "int" else None,
                        format="%d" if spec.kind == "int" else "%g",
                        placeholder="default" if spec.optional else "required", **common)


if "cifar_preset" not in st.session_state:
    state_from_url()
for pinned_key in ("cifar_preset", "cifar_member", *(f"{form.URL_PREFIX}{s.name}" for s in FIELDS)):
    keep_pinned(pinned_key)

st.subheader("Start a run")
left, right = st.columns([2, 3])
if not teacher.hidden("cifar_preset"):
    left.selectbox("Preset", list(PRESETS), key="cifar_preset", on_change=load_preset,
                   disabled=teacher.locked("cifar_preset"))
members = [METHODS[config.optimizer].title for config in PRESETS[st.session_state.cifar_preset]]
if not teacher.hidden("cifar_member"):
    left.radio("Optimizer of the preset", range(len(members)), key="cifar_member", on_change=load_preset,
               horizontal=True, format_func=members.__getitem__, disabled=teacher.locked("cifar_member"))
right.caption(PRESET_DESCRIPTIONS[st.session_state.cifar_preset])
right.caption(PRESET_MEASURED[st.session_state.cifar_preset])
preset_estimates = [resources.estimate(c, history()) for c in PRESETS[st.session_state.cifar_preset]]
right.caption("Estimated per run here: " + "; ".join(
    f"{METHODS[c.optimizer].title} {resources.summary(e)}" for c, e in zip(PRESETS[st.session_state.cifar_preset], preset_estimates)))
owner = left.text_input("Your name", key="cifar_owner", placeholder="anonymous",
                        help="Shown as the owner of the runs you queue.")
left.number_input("Repeat with N seeds", 1, MAX_SEEDS, key="cifar_seeds", step=1,
                  help="Queue every run once per seed (seed, seed + 1, ...): the Seeds tab below shows runs that "
                       "differ only in seed as mean ± 95% interval, as the papers report. Field: --seeds on the CLI.")
left.checkbox("I accept runs over an hour", key="cifar_confirm_long",
              help="Runs estimated to take more than an hour are queued only with this ticked.")
preset_result = left.container()
if left.button(f"Queue all three runs of “{st.session_state.cifar_preset}”", key="cifar_queue_preset"):
    queue(PRESETS[st.session_state.cifar_preset], owner, preset_result)

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

try:
    form_config = RunConfig.model_validate({s.name: st.session_state[f"{form.URL_PREFIX}{s.name}"] for s in FIELDS})
except ValidationError as err:
    if submitted:
        errors.error("Nothing was queued. Please fix:\n\n" + "\n".join(
            f"- {line}" for line in format_validation_error(err).splitlines()))
else:
    st.caption(f"This run: {resources.summary(resources.estimate(form_config, history()))}.")
    if submitted:
        queue([form_config], owner, errors)
state_to_url()


def cancel(run_id: int) -> None:
    status = store.request_cancel(run_id)
    st.toast(f"Run #{run_id}: {'cancelled' if status == 'cancelled' else 'stopping at its next step'}.")


def retry(run_id: int, fresh: bool) -> None:
    try:
        store.retry(run_id, fresh=fresh)
    except (ValueError, StoreError) as err:
        st.toast(str(err))
        return
    st.toast(f"Run #{run_id} is back in the queue{' (from scratch)' if fresh else ''}.")
    if AUTOSTART_WORKER:
        ensure_worker(store)


@st.fragment(run_every=2)
def live_runs() -> None:
    """Runs table, cancel and retry buttons, comparison charts and CSV: refreshed every 2 s."""
    try:
        store.check_same_file()
        show_runs()
    except StoreGone as err:
        run_store.clear()  # the next run of the page opens the store at that path afresh
        st.error(f"{err}: reload the page to open the run store again.")
    except StoreError as err:
        st.error(f"The run store cannot be read: {err}")


def show_runs() -> None:
    if AUTOSTART_WORKER and ensure_worker(store):
        st.toast("Started a background worker for the queued runs.")
    runs = store.list_runs()
    if not runs:
        st.info("No runs yet: queue one above.")
        return
    workers = len(store.live_workers(this_host()))
    address = ray_address()
    backend = f" (a Ray driver: runs train on the Ray cluster at `{address}`, from $RAY_ADDRESS)" if address else ""
    st.caption(f"{workers} worker process{'es' if workers != 1 else ''} running{backend}; runs and worker log in "
               f"`{store.root}` (command line: `python -m asam_core.runs --help`).")
    st.dataframe(reports.run_rows(runs, store.best_test_acc()), hide_index=True, key="cifar_table", column_config={
        "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0, format="percent"),
        "best test acc (%)": st.column_config.NumberColumn(format="%.2f"),
        "rho": st.column_config.NumberColumn(format="%g"),
    })
    active = [run for run in runs if run.status == "running"] + [run for run in runs if run.status == "queued"]
    if len(active) > MAX_CANCEL_ROWS:
        st.caption(f"{len(active)} runs are running or queued; the first {MAX_CANCEL_ROWS} are listed here "
                   "(a study's runs can be cancelled together on the Studies page).")
    for run in active[:MAX_CANCEL_ROWS]:
        text, button = st.columns([5, 1])
        text.write(f"**{reports.run_name(run)}**: {reports.status_text(run)}, {run.progress:.0%}, by {run.owner}")
        button.button("Cancel", key=f"cifar_cancel_{run.id}", on_click=cancel, args=(run.id,),
                      disabled=run.cancel_requested)
    for run in [run for run in runs if run.status == "failed"][-3:]:
        st.error(f"Run #{run.id} failed: {shown(run.error or 'no reason was recorded', 2000)}", icon="⚠️")
    retryable = [run for run in runs if run.status in ("failed", "cancelled") and run.config is not None]
    if retryable:
        by_id = {run.id: run for run in retryable}
        pick, fresh, button = st.columns([4, 1, 1])
        chosen = pick.selectbox("Retry a failed or cancelled run", list(by_id), key="cifar_retry_run",
                                format_func=lambda i: f"{reports.run_name(by_id[i])}: {by_id[i].error or 'cancelled'}")
        from_scratch = fresh.checkbox("from scratch", key="cifar_retry_fresh",
                                      help="Start over instead of resuming from the last checkpoint.")
        button.button("Retry", key="cifar_retry", on_click=retry, args=(chosen, from_scratch))
    compare(runs)


def compare(runs: list[RunRecord]) -> None:
    by_id = {run.id: run for run in runs if run.config is not None}
    if "cifar_compare" not in st.session_state:
        chosen, rejected = form.parse_run_ids(st.query_params.get("cifar_runs"), list(by_id))
        if rejected:
            st.warning(f"URL parameter `cifar_runs` names unknown runs {shown(', '.join(rejected))}: ignored.")
        st.session_state.cifar_compare = chosen if "cifar_runs" in st.query_params else list(by_id)[-3:]
    # Re-stated on every run so that every render carries the value: a browser that missed the first
    # render (a 2-s refresh arriving while a slow first run still draws) would otherwise send back [].
    st.session_state.cifar_compare = [i for i in st.session_state.cifar_compare if i in by_id]
    selected = st.multiselect("Compare runs", list(by_id), key="cifar_compare",
                              format_func=lambda i: reports.run_name(by_id[i]))
    to_url("cifar_runs", ",".join(str(i) for i in selected))
    if not selected:
        st.info("Pick runs to compare.")
        return
    chosen_runs = [by_id[i] for i in selected]
    steps = figures.step_loss_traces(chosen_runs, store.step_losses(selected))
    if steps:
        chart(figures.step_loss_figure(steps), key="cifar_steps")
    metrics = store.metrics(selected)
    if not metrics:
        st.info("The curves appear when the first epoch of a compared run has finished.")
        return
    chart(figures.curves_figure(figures.curve_traces(chosen_runs, metrics)), key="cifar_curves")
    paths, flatness, seeds = st.tabs(["Paths on the PCA plane", "Flatness", "Seeds: mean ± 95% interval"])
    with paths:
        analysis.show_plane(store, chosen_runs)
    with flatness:
        analysis.show_flatness(store, chosen_runs, metrics)
    with seeds:
        analysis.show_seed_groups(chosen_runs, metrics)
    st.download_button("Download metrics (CSV)", reports.metrics_csv(chosen_runs, metrics), key="cifar_csv",
                       file_name="cifar_runs_metrics.csv", mime="text/csv", on_click="ignore")


st.subheader("Runs")
live_runs()
