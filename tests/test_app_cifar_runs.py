"""AppTest of the CIFAR runs page over a temporary run store (no worker is started)."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from asam_core.runs.store import METRIC_FIELDS, RunStore, this_host
from asam_core.train.config import PRESETS, RunConfig
from asam_core.train.path_sketch import SKETCH_DIM
from views.common import shown
from conftest import figure_specs, open_view

PAGE = str(Path(__file__).resolve().parents[1] / "views" / "cifar_runs.py")


def open_page(query: dict[str, str] | None = None) -> AppTest:
    return open_view("cifar_runs", query)


def finished_run(app_store: RunStore, epochs: int = 3, **config) -> int:
    """A run that went through claim -> epochs -> done, with made-up metrics."""
    run_id = app_store.submit(RunConfig(model="small_cnn", epochs=epochs, **config), "ada")
    claim = app_store.claim(1, this_host())
    direction = np.random.default_rng(run_id).standard_normal(SKETCH_DIM).astype(np.float32)
    for e in range(1, epochs + 1):
        metrics = {f: 0.1 * e for f in METRIC_FIELDS} | {"epoch": e, "test_acc": 0.2 * e + 0.01 * run_id}
        if e < epochs:
            metrics |= {"sharpness": None, "adaptive_sharpness": None, "lambda_max": None}
        app_store.record_epoch(claim.lease, metrics)
        artifacts = {"path_sketch": (e * direction).tobytes()}
        if e == epochs:
            artifacts["loss_profile"] = json.dumps({"t": [-1, 0, 1], "loss": [[2.0, 1.0, 2.0 + run_id]]}).encode()
            length = float(np.linalg.norm(epochs * direction))
            axis1 = (direction / np.linalg.norm(direction)).tolist()
            artifacts["loss_surface"] = json.dumps({"alpha": [0, 1], "beta": [-1, 1], "loss": [[3, 2], [3, 2]],
                                                    "length": length, "axis1": axis1,
                                                    "axis2": [0.0] * SKETCH_DIM}).encode()
        app_store.record_artifacts(claim.lease, e, artifacts)
    app_store.finish(claim.lease, "done")
    return run_id


def test_bad_form_input_is_reported_inline_by_field_and_range_and_queues_nothing(app_store):
    at = open_page()
    assert "No runs yet" in at.info[0].value
    at.number_input(key="cifar_f_epochs").set_value(0)
    at.number_input(key="cifar_f_rho").set_value(-1.0)
    at.text_input(key="cifar_f_p").input("one")
    at.button(key="FormSubmitter:cifar_launch-Start run").click().run()
    message = at.error[0].value
    assert "Nothing was queued" in message
    for line in ("rho: must be >= 0 (got -1.0)", "p: must be a number (got 'one')", "epochs: must be >= 1 (got 0)"):
        assert line in message
    assert app_store.list_runs() == []


def test_a_valid_form_queues_the_run_with_its_owner_and_selects_it(app_store):
    at = open_page()
    at.selectbox(key="cifar_f_optimizer").set_value("sam")
    at.number_input(key="cifar_f_epochs").set_value(3)
    at.text_input(key="cifar_owner").input("grace")
    at.button(key="FormSubmitter:cifar_launch-Start run").click().run()
    assert not at.exception and not at.error
    (run,) = app_store.list_runs()
    assert (run.status, run.owner, run.config.optimizer, run.config.rho, run.config.epochs) == (
        "queued", "grace", "sam", 0.05, 3)
    assert run.config.model == "small_cnn"  # the rest comes from the default preset
    assert at.query_params["cifar_runs"] == str(run.id)
    assert at.dataframe[0].value["status"].tolist() == ["queued"]


def test_a_run_whose_data_is_missing_is_refused_before_queuing_with_where_to_put_it(app_store, tmp_path):
    at = open_page()
    at.text_input(key="cifar_f_data_dir").input(str(tmp_path / "empty"))
    at.checkbox(key="cifar_f_download").uncheck()
    at.button(key="FormSubmitter:cifar_launch-Start run").click().run()
    message = at.error[0].value
    assert "Nothing was queued" in message and "data_dir" in message and "cifar-10-python.tar.gz" in message
    assert app_store.list_runs() == [] and not at.success
    at.checkbox(key="cifar_f_download").check()
    at.button(key="FormSubmitter:cifar_launch-Start run").click().run()
    assert "will be downloaded there" in at.success[0].value and len(app_store.list_runs()) == 1


def test_a_failed_run_shows_its_whole_reason_in_an_alert(app_store):
    run_id = app_store.submit(RunConfig(model="small_cnn", epochs=2), "ada")
    sentence = "CIFAR-10 is not in /some_where/data. Put cifar-10-python.tar.gz (from https://example.org/) there"
    reason = f"{sentence} {sentence}"
    app_store.finish(app_store.claim(1, this_host()).lease, "failed", reason)
    at = open_page()
    shown = [e.value.replace("\\", "") for e in at.error]
    assert f"Run #{run_id} failed: {reason}" in shown, "the whole reason, Markdown escaped"


def test_the_preset_button_queues_its_three_optimizers(app_store):
    at = open_page()
    at.button(key="cifar_queue_preset").click().run()
    assert [r.config.optimizer for r in app_store.list_runs()] == ["sgd", "sam", "asam"]


def test_repeat_with_n_seeds_queues_each_run_once_per_seed_and_lives_in_the_url(app_store):
    at = open_page({"cifar_seeds": "3"})
    assert at.number_input(key="cifar_seeds").value == 3
    at.button(key="cifar_queue_preset").click().run()
    assert [(r.config.optimizer, r.config.seed) for r in app_store.list_runs()] == [
        (o, s) for o in ("sgd", "sam", "asam") for s in (0, 1, 2)]
    assert at.query_params["cifar_seeds"] in ("3", ["3"])
    bad = open_page({"cifar_seeds": "²"})
    assert "cifar_seeds" in bad.warning[0].value and bad.number_input(key="cifar_seeds").value == 1


def test_choosing_a_preset_member_fills_the_form(app_store):
    at = open_page()
    at.radio(key="cifar_member").set_value(0).run()
    assert at.selectbox(key="cifar_f_optimizer").value == "sgd"
    assert at.number_input(key="cifar_f_rho").value is None


def test_finished_runs_in_the_url_show_table_curves_trajectories_and_csv(app_store):
    first, second = finished_run(app_store, optimizer="sgd"), finished_run(app_store, optimizer="asam")
    finished_run(app_store, optimizer="sam", seed=3)
    at = open_page({"cifar_runs": f"{first},{second}"})
    table = at.dataframe[0].value
    assert table["run"].tolist() == [3, 2, 1] and table["status"].tolist() == ["done"] * 3
    assert table["best test acc (%)"].tolist() == pytest.approx([63.0, 62.0, 61.0])
    assert at.multiselect(key="cifar_compare").value == [first, second]
    curves, plane, profiles, surface = figure_specs(at)
    test_acc = [t for t in curves["data"] if t["name"].endswith("(test)") and t["xaxis"] == "x"]
    assert [t["y"] for t in test_acc] == [pytest.approx([21, 41, 61]), pytest.approx([22, 42, 62])]
    paths = [t for t in plane["data"] if t.get("name", "").startswith("#")]
    assert [(p["x"][0], len(p["x"]), p["customdata"]) for p in paths] == [(0, 4, [0, 1, 2, 3]), (0, 4, [0, 1, 2, 3])]
    assert plane["layout"]["xaxis"]["title"]["text"].startswith("PC1 (")
    means = [t for t in profiles["data"] if t.get("name", "").startswith("#")]
    assert [t["y"] for t in means] == [[2.0, 1.0, 2.0 + first], [2.0, 1.0, 2.0 + second]]
    (flatness,) = [d.value for d in at.dataframe if "Hessian λ_max" in d.value.columns]
    contour, path = surface["data"][0], surface["data"][1]
    assert contour["type"] == "contour" and contour["z"] == [[3, 2], [3, 2]]
    assert path["x"] == pytest.approx([0, 1 / 3, 2 / 3, 1]) and path["y"] == pytest.approx([0, 0, 0, 0])
    assert flatness["epoch"].tolist() == [3, 3] and flatness["Hessian λ_max"].tolist() == pytest.approx([0.3, 0.3])
    assert at.get("download_button")
    assert at.query_params["cifar_runs"] == f"{first},{second}"


def test_runs_differing_only_in_seed_show_mean_and_interval_and_other_initializations_get_their_own_plane(app_store):
    ids = [finished_run(app_store, optimizer="sam", seed=seed) for seed in (0, 1, 2)]
    at = open_page({"cifar_runs": ",".join(map(str, ids))})
    (groups,) = [d.value for d in at.dataframe if "seeds" in d.value.columns]
    (group,) = groups.to_dict("records")
    # test accuracies 61, 62, 63: mean 62, half-width t_{0.975, 2} · 1 / √3 = 4.303 / 1.732
    assert group["seeds"] == "0, 1, 2" and group["test accuracy (%)"] == "62.00 ± 2.48"
    planes = [s for s in figure_specs(at) if "PC1" in json.dumps(s)]
    assert len(planes) == 3, "three seeds: three initializations, three planes"


def test_an_unknown_run_in_the_url_is_named_and_ignored(app_store):
    run_id = finished_run(app_store)
    at = open_page({"cifar_runs": f"{run_id},99"})
    assert "unknown runs 99: ignored" in at.warning[0].value
    assert at.multiselect(key="cifar_compare").value == [run_id]


@pytest.mark.parametrize("raw", ["²", "1,²", "[x](http://evil.example)", "9" * 40])
def test_odd_run_ids_in_the_url_are_named_escaped_and_ignored(app_store, raw):
    finished_run(app_store)
    at = open_page({"cifar_runs": raw})
    assert "http://" not in at.warning[0].value and "](" not in at.warning[0].value
    assert at.multiselect(key="cifar_compare").value == ([1] if raw.startswith("1,") else [])


def test_every_control_is_in_the_url_and_a_shared_url_restores_them(app_store):
    at = open_page()
    at.selectbox(key="cifar_preset").set_value("Paper Table 6: label noise 40%").run()
    at.radio(key="cifar_member").set_value(1).run()
    at.text_input(key="cifar_owner").input("grace").run()
    at.number_input(key="cifar_f_epochs").set_value(7)
    at.button(key="FormSubmitter:cifar_launch-Start run").click().run()
    query = {k: at.query_params[k] for k in at.query_params}
    query = {k: v if isinstance(v, str) else v[0] for k, v in query.items()}
    assert query["cifar_preset"] == "Paper Table 6: label noise 40%" and query["cifar_member"] == "sam"
    assert (query["cifar_owner"], query["cifar_f_epochs"]) == ("grace", "7")
    shared = open_page(query)
    assert shared.selectbox(key="cifar_preset").value == "Paper Table 6: label noise 40%"
    assert (shared.radio(key="cifar_member").value, shared.text_input(key="cifar_owner").value) == (1, "grace")
    assert (shared.number_input(key="cifar_f_epochs").value, shared.selectbox(key="cifar_f_model").value) == (7, "resnet32")


def test_a_teacher_can_hide_and_lock_form_fields_and_the_queued_run_keeps_their_url_values(app_store):
    at = open_page({"cifar_f_rho": "0.3", "cifar_f_epochs": "3", "hide": "cifar_f_rho",
                    "lock": "cifar_f_epochs,cifar_preset"})
    assert not [w for w in at.number_input if w.key == "cifar_f_rho"], "a hidden field is not drawn"
    assert at.number_input(key="cifar_f_epochs").disabled and at.selectbox(key="cifar_preset").disabled
    assert not at.number_input(key="cifar_f_lr").disabled
    at.radio(key="cifar_member").set_value(1).run()  # the member changes the open fields, not the pinned ones
    at.number_input(key="cifar_f_lr").set_value(0.02)
    at.button(key="FormSubmitter:cifar_launch-Start run").click().run()
    (run,) = app_store.list_runs()
    assert (run.config.rho, run.config.epochs, run.config.lr, run.config.optimizer) == (0.3, 3, 0.02, "sam")


def test_bad_form_values_in_the_url_are_named_and_the_preset_values_kept(app_store):
    at = open_page({"cifar_f_epochs": "0", "cifar_preset": "nope", "cifar_f_label": "[x](http://evil.example)"})
    warning = at.warning[0].value
    assert shown("epochs: must be >= 1 (got '0')", 80) in warning and "is not a preset" in warning
    assert "http://" not in warning
    assert at.number_input(key="cifar_f_epochs").value == next(iter(PRESETS.values()))[0].epochs, "the default preset's"
    assert at.text_input(key="cifar_f_label").value == "[x](http://evil.example)"  # a valid label: kept as text


def test_a_run_over_an_hour_needs_the_confirmation_box(app_store):
    at = open_page({"cifar_preset": "Paper Table 2: ResNet-20 CIFAR-10", "cifar_f_device": "cpu"})
    at.button(key="FormSubmitter:cifar_launch-Start run").click().run()
    assert "would take over an hour" in at.warning[0].value and app_store.list_runs() == []
    at.checkbox(key="cifar_confirm_long").check().run()
    at.button(key="FormSubmitter:cifar_launch-Start run").click().run()
    assert [r.config.model for r in app_store.list_runs()] == ["resnet20"]


def test_a_run_that_cannot_fit_in_memory_is_refused_naming_batch_size_and_model(app_store):
    at = open_page({"cifar_f_model": "wrn28_10", "cifar_f_batch_size": "8192", "cifar_f_subset_per_class": "",
                    "cifar_f_device": "cpu"})
    at.checkbox(key="cifar_confirm_long").check().run()
    at.button(key="FormSubmitter:cifar_launch-Start run").click().run()
    message = at.error[0].value
    assert "batch_size 8192 with model wrn28_10 needs about" in message and app_store.list_runs() == []


def test_retry_button_puts_a_failed_run_back_in_the_queue(app_store):
    run_id = app_store.submit(RunConfig(model="small_cnn"), "ada")
    app_store.finish(app_store.claim(1, this_host()).lease, "failed", "its process was killed by signal 9")
    at = open_page()
    at.checkbox(key="cifar_retry_fresh").check().run()
    at.button(key="cifar_retry").click().run()
    run = app_store.get(run_id)
    assert (run.status, run.error) == ("queued", "retried from scratch after: its process was killed by signal 9")


def test_a_quarantined_row_is_listed_as_failed_and_the_page_keeps_working(app_store):
    good, bad = finished_run(app_store), app_store.submit(RunConfig(), "ada")
    with sqlite3.connect(app_store.db_path) as con:
        con.execute("UPDATE runs SET config = '{\"epochs\": 0}' WHERE id = ?", (bad,))
    at = open_page()
    table = at.dataframe[0].value
    assert table["status"].tolist() == ["failed", "done"] and "quarantined" in table["error"].tolist()[0]
    assert at.multiselect(key="cifar_compare").value == [good]


def test_a_corrupt_store_is_one_line_on_the_page(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    root.mkdir()
    (root / "runs.sqlite3").write_bytes(b"not a database" * 100)
    monkeypatch.setenv("ASAM_LAB_RUNS_DIR", str(root))
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not at.exception
    assert at.error[0].value == (f"The run store cannot be used: {root.resolve()}/runs.sqlite3 is not a run store "
                                 "(corrupt?): move it away or choose another folder")


def test_cancel_button_cancels_a_queued_run(app_store):
    run_id = app_store.submit(RunConfig(), "ada")
    at = open_page()
    at.button(key=f"cifar_cancel_{run_id}").click().run()
    assert app_store.get(run_id).status == "cancelled"


def test_a_long_queue_lists_the_running_run_and_the_oldest_queued_ones_with_cancel_buttons(app_store):
    ids = [app_store.submit(RunConfig(epochs=1 + i), "ada") for i in range(12)]
    app_store.claim(1, this_host())  # the oldest is running
    at = open_page()
    listed = [b.key for b in at.button if b.key and b.key.startswith("cifar_cancel_")]
    assert listed == [f"cifar_cancel_{i}" for i in ids[:8]]
    assert any("12 runs are running or queued; the first 8" in c.value for c in at.caption)
