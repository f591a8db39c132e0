"""AppTest of the Studies page over a temporary run store (no worker is started): size before queuing,
data checked, bad sweeps named by grid entry, figures drawn from the study's runs, URL, cancel/resume."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cifar_fixtures import write_cifar
from asam_core.runs import studies, study_results
from asam_core.runs.store import METRIC_FIELDS, RunStore, this_host
from asam_core.runs.study_presets import STUDY_PRESETS
from asam_core.runs.sweep import Sweep
from views.common import shown
from conftest import figure_specs, open_view


def open_page(query: dict[str, str] | None = None) -> AppTest:
    return open_view("studies", query)


def finish(app_store: RunStore, values: dict[int, dict]) -> None:
    """Train the queued runs in made-up fashion: one epoch each with ``values[run id]`` (test_acc, ...)."""
    while (claim := app_store.claim(1, this_host())) is not None:
        row = {f: None for f in METRIC_FIELDS} | {"epoch": 1, "train_loss": 0.1, "train_acc": 0.9, "lr": 0.1,
                                                 "seconds": 1.0, "traj_x": 0.0, "traj_y": 0.0}
        app_store.record_epoch(claim.lease, row | values[claim.run.id])
        app_store.finish(claim.lease, "done")


def texts(at: AppTest) -> str:
    return " ".join(str(e.value) for kind in ("markdown", "caption", "info", "success", "error", "warning")
                    for e in getattr(at, kind))


def test_a_preset_shows_its_size_and_the_paper_note_and_broken_data_queues_nothing(app_store, tmp_path):
    (tmp_path / "broken" / "cifar-10-batches-py").mkdir(parents=True)
    at = open_page()
    title = next(iter(STUDY_PRESETS))
    assert "30 runs over" in at.info[0].value and "2 seeds" in at.info[0].value and "min" in at.info[0].value
    assert "github.com/davda54/sam" in texts(at)
    at.text_input(key="study_data_dir").set_value(str(tmp_path / "broken")).run()
    at.button(key="study_queue").click().run()
    assert "Nothing was queued" in at.error[0].value and "is incomplete" in at.error[0].value
    assert app_store.studies() == [] and at.query_params["study_preset"] in (title, [title])


def test_queuing_a_study_with_its_seeds_in_the_url_selects_it(app_store, tmp_path):
    write_cifar(tmp_path / "cifar", "cifar10", per_class=1, test_per_class=1)
    preset = "Label-noise rates (ASAM Table 6) · classroom"
    at = open_page({"study_preset": preset, "study_seeds": "2", "study_data_dir": str(tmp_path / "cifar"),
                    "study_owner": "ada"})
    assert "24 runs over" in at.info[0].value
    at.button(key="study_queue").click().run()
    assert not at.exception and "Queued study 1: 24 new runs, 0 reused" in at.success[0].value
    (study,) = app_store.studies()
    assert len(study["run_ids"]) == 24 and {app_store.get(i).config.seed for i in study["run_ids"]} == {0, 1}
    assert study["owner"] == "ada" and {app_store.get(i).config.data_dir for i in study["run_ids"]} == {str(tmp_path / "cifar")}
    assert at.query_params["study"] in ("1", ["1"]) and "24 runs: 24 queued" in texts(at)


def test_a_bad_own_sweep_is_named_by_its_grid_entry_and_cannot_be_queued(app_store):
    at = open_page({"study_preset": "Your own sweep (JSON)"})
    assert "runs over" in at.info[0].value  # the example is valid
    at.text_area(key="study_json").set_value(json.dumps({"name": "x", "grid": {"rho": [0.1, -2]}})).run()
    assert shown("the sweep JSON: grid.rho[1]: must be >= 0 (got -2)", 1000) in at.error[0].value
    assert not [b for b in at.button if b.key == "study_queue"] and app_store.studies() == []


def test_a_finished_curve_study_draws_means_with_intervals_like_the_core(app_store):
    sweep = Sweep(name="rho", base={"model": "small_cnn"}, variants=[{"optimizer": "sam", "label": "SAM"}],
                  grid={"rho": [0.05, 0.1]}, seeds=[0, 1])
    study = studies.submit(app_store, sweep, "ada")
    accuracy = dict(zip(study.run_ids, (0.50, 0.54, 0.60, 0.61)))
    finish(app_store, {i: {"test_acc": a, "test_loss": 1.0} for i, a in accuracy.items()})
    at = open_page({"study": str(study.id)})
    spec = figure_specs(at)[0]
    (trace,) = spec["data"]
    (curve,) = study_results.curves(sweep, studies.runs(app_store, study), app_store.metrics(list(study.run_ids)))
    assert trace["x"] == [0.05, 0.1] and trace["y"] == pytest.approx([p.mean for p in curve.points])
    assert trace["error_y"]["array"] == pytest.approx([p.half for p in curve.points])
    assert spec["layout"]["xaxis"]["title"]["text"] == "ρ (region radius)" and spec["layout"]["xaxis"]["type"] == "log"
    assert "best ρ = 0.1, 60.50%" in texts(at) and "4 runs: 4 done" in texts(at)
    assert len(at.get("download_button")) == 1


def test_a_study_of_one_setting_puts_its_series_side_by_side(app_store):
    sweep = Sweep(name="one", base={"model": "small_cnn", "label_noise": 0.4}, x="label_noise",
                  variants=[{"optimizer": "sgd", "label": "SGD"}, {"optimizer": "sam", "label": "SAM"}], seeds=[0, 1])
    study = studies.submit(app_store, sweep, "ada")
    finish(app_store, {i: {"test_acc": a, "test_loss": 1.0} for i, a in zip(study.run_ids, (0.30, 0.32, 0.35, 0.36))})
    spec = figure_specs(open_page())[0]
    assert [t["x"] for t in spec["data"]] == [["SGD"], ["SAM"]]
    assert [t["y"] for t in spec["data"]] == [pytest.approx([31.0]), pytest.approx([35.5])]
    assert "at label_noise = 0.4" in spec["layout"]["title"]["text"]


def test_a_correlation_study_shows_table1_and_four_scatters(app_store):
    sweep = Sweep(name="gap", figure="correlation", base={"model": "small_cnn", "optimizer": "sgd"},
                  grid={"lr": [0.05, 0.1], "weight_decay": [0.0, 5e-4]})
    study = studies.submit(app_store, sweep, "ada")
    values = {}
    for k, run_id in enumerate(study.run_ids):
        values[run_id] = {"test_acc": 0.5, "test_loss": 1.0, "sharpness": [3.0, 1.0, 2.0, 4.0][k],
                          "adaptive_sharpness": 0.1 * (k + 1), "sharpness_inf": 1.0 - 0.1 * k,
                          "adaptive_sharpness_inf": 0.2 * (k + 1), "train_acc": 0.55 + 0.1 * k}
    finish(app_store, values)
    at = open_page()
    table = at.dataframe[0].value
    result = study_results.correlation(sweep, studies.runs(app_store, study), app_store.metrics(list(study.run_ids)))
    tau_row = dict(zip(table.columns, table.iloc[0]))
    assert tau_row["adaptive sharpness, p = 2"] == "+1.00" == f"{result.tau['adaptive_sharpness']:+.2f}"
    assert tau_row["sharpness, p = ∞"] == "-1.00" and tau_row["sharpness, p = 2"] == f"{result.tau['sharpness']:+.2f}"
    spec = figure_specs(at)[0]
    assert len(spec["data"]) == 4 and all(len(t["x"]) == 4 for t in spec["data"])
    titles = [a["text"] for a in spec["layout"]["annotations"]]
    assert any(t.startswith("adaptive sharpness, p = 2: τ = +1.00") for t in titles)
    assert not math.isnan(result.psi["sharpness"])


def test_cancel_and_resume_act_on_the_shown_study(app_store):
    study = studies.submit(app_store, Sweep(name="c", base={"model": "small_cnn"}, grid={"lr": [0.05, 0.1]}), "ada")
    at = open_page()
    at.button(key="study_cancel").click().run()
    assert {app_store.get(i).status for i in study.run_ids} == {"cancelled"}
    at.run()
    at.button(key="study_resume").click().run()
    assert {app_store.get(i).status for i in study.run_ids} == {"queued"}


def test_an_unknown_study_in_the_url_is_named_and_the_newest_shown(app_store):
    studies.submit(app_store, Sweep(name="only", base={"model": "small_cnn"}), "ada")
    at = open_page({"study": "99"})
    assert "`study` = 99 is not a stored study" in at.warning[0].value
    assert at.selectbox(key="study_shown").value == 1
