"""Studies: the papers' sweeps as one-click studies, their figures live while they run.

Start: a study preset (asam_core.runs.study_presets) or your own Sweep as JSON, seeds and data
folder; the page shows the study's size and estimated time before anything is queued, checks the
data, and queues it as one study in the run store (identical runs already there are reused).
Results (refreshed every 3 s): the chosen study's state, cancel / resume, the paper's figure drawn
from its runs (asam_core.runs.study_results), the paper's own statement next to it, the runs as a
table and CSV.  The URL holds every control: the preset (``study_preset``), the seeds
(``study_seeds``), the data folder, the owner and the study shown (``study``).
"""
import os

import streamlit as st

from asam_core.runs import resources, studies, study_results
from asam_core.runs.launcher import ensure_worker
from asam_core.runs.store import RunStore, StoreError, StoreGone, UnknownRun, default_root
from asam_core.runs.study_presets import STUDY_PRESETS, paper_reference
from asam_core.runs.sweep import Sweep
from asam_core.train.config import MAX_SEEDS
from asam_core.train.data import DataUnavailable, data_status
from views import study_figures as figures
from views.common import chart, choice, number, shown, text, to_url

AUTOSTART_WORKER = os.environ.get("ASAM_LAB_WORKER_AUTOSTART", "1") != "0"
OWN_SWEEP = "Your own sweep (JSON)"
EXAMPLE = Sweep(name="my rho sweep", base={"model": "small_cnn", "subset_per_class": 100, "epochs": 10},
                variants=[{"optimizer": "sam"}, {"optimizer": "asam"}], grid={"rho": [0.05, 0.1, 0.5]}, seeds=[0, 1])


@st.cache_resource
def run_store(root: str) -> RunStore:
    return RunStore(root)


st.title("Studies")
st.write("The papers' experiments as sweeps of CIFAR runs: pick one, see its size, queue it, and watch the "
         "paper's figure fill in as its runs finish. Runs already trained with the same settings are reused.")
try:
    store = run_store(str(default_root().resolve()))
    store.check_same_file()
except StoreGone as err:
    run_store.clear()
    st.error(f"{err}: reload the page to open the run store again.")
    st.stop()
except StoreError as err:
    st.error(f"The run store cannot be used: {err}")
    st.stop()


def history() -> list:
    try:
        return resources.finished_runs(store)
    except StoreError:
        return []


def chosen_sweep(source: str, seeds: int, data_dir: str) -> Sweep | None:
    """The sweep to queue with the page's seeds and data folder; None (with the problems shown) if invalid."""
    if source == OWN_SWEEP:
        try:
            sweep = studies.sweep_from_json(st.session_state.get("study_json", ""), "the sweep JSON")
        except ValueError as err:
            st.error(f"Nothing can be queued yet. Fix {shown(str(err), 1000)}")
            return None
    else:
        sweep = STUDY_PRESETS[source]
    first = sweep.seeds[0]
    changes = {"seeds": list(range(first, first + seeds)), "base": {**sweep.base, "data_dir": data_dir}}
    try:
        return studies.sweep_from_json(sweep.model_copy(update=changes).model_dump_json(), "the sweep")
    except ValueError as err:
        st.error(shown(str(err), 1000))
        return None


def queue(sweep: Sweep, owner: str) -> None:
    configs = sweep.configs()
    try:
        data = sorted({data_status(c.dataset, c.data_dir, c.download) for c in configs})
    except DataUnavailable as err:
        st.error(f"Nothing was queued: the data is not there (data folder `data_dir`). {err}")
        return
    refused = {resources.refusal(c, resources.estimate(c, history())) for c in configs} - {None}
    if refused:
        st.error("Nothing was queued: " + " ".join(sorted(refused)))
        return
    try:
        study = studies.submit(store, sweep, owner)
    except (ValueError, StoreError) as err:
        st.error(f"Nothing was queued: {err}")
        return
    st.session_state.study_shown = study.id
    st.query_params["study"] = str(study.id)
    st.success(f"Queued study {study.id}: {len(set(study.run_ids) - study.reused)} new runs, "
               f"{len(study.reused)} reused. Data: {'; '.join(data)}.")
    if AUTOSTART_WORKER and ensure_worker(store):
        st.toast("Started a background worker.")


st.subheader("Start a study")
left, right = st.columns([2, 3])
with left:
    source = choice("Study", "study_preset", list(STUDY_PRESETS) + [OWN_SWEEP], next(iter(STUDY_PRESETS)))
    seeds = number("Seeds per setting", "study_seeds", 1, MAX_SEEDS,
                   len(STUDY_PRESETS[source].seeds) if source in STUDY_PRESETS else 1, 1,
                   help="Every setting is trained once per seed; curves show mean ± 95% interval over seeds.")
    data_dir = text("Data folder (CIFAR archive)", "study_data_dir", "data",
                    help="Folder holding the CIFAR archive or its extracted folder (field data_dir); "
                         "the official archive is downloaded there when missing.")
    owner = text("Your name", "study_owner", "", max_chars=100, placeholder="anonymous")
with right:
    if source == OWN_SWEEP:
        st.text_area("Sweep (JSON)", value=EXAMPLE.model_dump_json(indent=1, exclude_defaults=True), height=260,
                     key="study_json", help="name, base (run options), variants (list values sweep within the "
                     "variant), grid (option -> values, crossed with every variant), seeds, figure "
                     "(curves | correlation), x, y (test_acc | test_error). `python -m asam_core.runs study "
                     "submit FILE.json` takes the same.")
    else:
        st.caption(STUDY_PRESETS[source].description)
        st.caption(paper_reference(source))
sweep = chosen_sweep(source, seeds, data_dir)
if sweep is not None:
    st.info(f"**{sweep.name}**: {studies.describe_size(sweep, studies.estimated_seconds(sweep.configs(), history()))}.")
    if st.button("Queue this study", type="primary", key="study_queue"):
        queue(sweep, owner)


def select_study(found: list[studies.Study]) -> studies.Study:
    by_id = {study.id: study for study in found}
    if "study_shown" not in st.session_state:
        raw = st.query_params.get("study", "")
        wanted = int(raw) if raw.isascii() and raw.isdigit() else None
        if raw and wanted not in by_id:
            st.warning(f"URL parameter `study` = {shown(raw)} is not a stored study: showing the newest.")
        st.session_state.study_shown = wanted if wanted in by_id else found[0].id
    if st.session_state.study_shown not in by_id:
        st.session_state.study_shown = found[0].id
    chosen = st.selectbox("Study", list(by_id), key="study_shown",
                          format_func=lambda i: f"#{i} {by_id[i].name} (by {by_id[i].owner})")
    to_url("study", chosen)
    return by_id[chosen]


def act(action: str, study_id: int) -> None:
    study = studies.get(store, study_id)
    touched = (studies.cancel if action == "cancel" else studies.resume)(store, study)
    st.toast(f"Study {study_id}: {len(touched)} run(s) " + ("cancelled" if action == "cancel" else "queued again"))
    if action == "resume" and AUTOSTART_WORKER:
        ensure_worker(store)


def show_results() -> None:
    found = studies.all_studies(store)
    if not found:
        st.info("No study yet: queue one above.")
        return
    study = select_study(found)
    records = studies.runs(store, study)
    counts = studies.counts(records)
    text, cancel, resume = st.columns([4, 1, 1])
    text.write(f"**{studies.state(records)}** · {studies.summary(records)}"
               + (f" · {len(study.reused)} reused from earlier runs" if study.reused else ""))
    text.progress(sum(run.progress for run in records) / max(len(records), 1))
    cancel.button("Cancel study", key="study_cancel", on_click=act, args=("cancel", study.id),
                  disabled=not (counts["queued"] or counts["running"]))
    resume.button("Resume study", key="study_resume", on_click=act, args=("resume", study.id),
                  disabled=not (counts["failed"] or counts["cancelled"]))
    if study.sweep is None:
        st.error(f"Study {study.id} cannot be shown: {study.problem}")
        return
    for run in [run for run in records if run.status == "failed"][-2:]:
        st.error(f"Run #{run.id} failed: {shown(run.error or 'no reason was recorded', 600)}", icon="⚠️")
    metrics = store.metrics([run.id for run in records])
    reference = paper_reference(study.name)
    if study.sweep.figure == "curves":
        curves = study_results.curves(study.sweep, records, metrics)
        if not curves:
            st.info("The figure appears when the first run of the study has been tested.")
        else:
            chart(figures.curves_figure(curves, study.sweep), "study_curves")
            higher = study.sweep.y == "test_acc"
            if study_results.names_best(study.sweep):  # "which rho?": the best of each curve, with its interval
                st.write("  \n".join(
                    f"**{c.series}**: best {figures.x_symbol(study.sweep)} = {c.best(higher).x:g}, {c.best(higher).mean:.2f}%"
                    + (f" ± {c.best(higher).half:.2f}" if c.best(higher).half else "") for c in curves))
    else:
        result = study_results.correlation(study.sweep, records, metrics)
        st.caption("ASAM Table 1 from this study's networks (Kendall rank correlation with the generalization gap; "
                   "Ψ averages τ over groups that differ in one hyper-parameter only):")
        st.dataframe(figures.table1_rows(result), hide_index=True, key="study_table1")
        if any(result.points.values()):
            chart(figures.correlation_figure(result), "study_scatter")
        else:
            st.info("The scatter plots appear when the first run has finished (flatness is measured at the end).")
    if reference:
        st.caption(reference)
    rows = study_results.study_rows(study.sweep, study.run_ids, records, metrics)
    with st.expander(f"The study's {len(rows)} runs"):
        st.dataframe(rows, hide_index=True, key="study_rows")
    st.download_button("Download the study (CSV)", study_results.study_csv(rows), key="study_csv",
                       file_name=f"study_{study.id}.csv", mime="text/csv", on_click="ignore")


@st.fragment(run_every=3)
def live_results() -> None:
    try:
        store.check_same_file()
        show_results()
    except StoreGone as err:
        run_store.clear()
        st.error(f"{err}: reload the page to open the run store again.")
    except (StoreError, UnknownRun) as err:
        st.error(f"The run store cannot be read: {err}")


st.subheader("Results")
live_results()
