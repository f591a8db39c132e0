"""AppTest of the CIFAR runs page over a temporary run store (no worker is started)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from asam_core.runs.store import METRIC_FIELDS, RunStore, this_host
from asam_core.train.config import RunConfig

PAGE = str(Path(__file__).resolve().parents[1] / "views" / "cifar_runs.py")


@pytest.fixture
def store(tmp_path, monkeypatch) -> RunStore:
    monkeypatch.setenv("ASAM_LAB_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("ASAM_LAB_WORKER_AUTOSTART", "0")
    return RunStore(tmp_path / "runs")


def open_page(query: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, at.exception
    return at


def finished_run(store: RunStore, epochs: int = 3, **config) -> int:
    """A run that went through claim -> epochs -> done, with made-up metrics."""
    run_id = store.submit(RunConfig(model="small_cnn", epochs=epochs, **config), "ada")
    claim = store.claim(1, this_host())
    for e in range(1, epochs + 1):
        metrics = {f: 0.1 * e for f in METRIC_FIELDS} | {"epoch": e, "test_acc": 0.2 * e + 0.01 * run_id}
        store.record_epoch(claim.lease, metrics)
    store.finish(claim.lease, "done")
    return run_id


def test_bad_form_input_is_reported_inline_by_field_and_range_and_queues_nothing(store):
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
    assert store.list_runs() == []


def test_a_valid_form_queues_the_run_with_its_owner_and_selects_it(store):
    at = open_page()
    at.selectbox(key="cifar_f_optimizer").set_value("sam")
    at.number_input(key="cifar_f_epochs").set_value(3)
    at.text_input(key="cifar_owner").input("grace")
    at.button(key="FormSubmitter:cifar_launch-Start run").click().run()
    assert not at.exception and not at.error
    (run,) = store.list_runs()
    assert (run.status, run.owner, run.config.optimizer, run.config.rho, run.config.epochs) == (
        "queued", "grace", "sam", 0.05, 3)
    assert run.config.model == "small_cnn"  # the rest comes from the default preset
    assert at.query_params["cifar_runs"] == str(run.id)
    assert at.dataframe[0].value["status"].tolist() == ["queued"]


def test_the_preset_button_queues_its_three_optimizers(store):
    at = open_page()
    at.button(key="cifar_queue_preset").click().run()
    assert [r.config.optimizer for r in store.list_runs()] == ["sgd", "sam", "asam"]


def test_choosing_a_preset_member_fills_the_form(store):
    at = open_page()
    at.radio(key="cifar_member").set_value(0).run()
    assert at.selectbox(key="cifar_f_optimizer").value == "sgd"
    assert at.number_input(key="cifar_f_rho").value is None


def test_finished_runs_in_the_url_show_table_curves_trajectories_and_csv(store):
    first, second = finished_run(store, optimizer="sgd"), finished_run(store, optimizer="asam")
    finished_run(store, optimizer="sam", seed=3)
    at = open_page({"cifar_runs": f"{first},{second}"})
    table = at.dataframe[0].value
    assert table["run"].tolist() == [3, 2, 1] and table["status"].tolist() == ["done"] * 3
    assert table["best test acc (%)"].tolist() == pytest.approx([63.0, 62.0, 61.0])
    assert at.multiselect(key="cifar_compare").value == [first, second]
    curves, trajectory = (json.loads(chart.proto.spec) for chart in at.get("plotly_chart"))
    test_acc = [t for t in curves["data"] if t["name"].endswith("(test)") and t["xaxis"] == "x"]
    assert [t["y"] for t in test_acc] == [pytest.approx([21, 41, 61]), pytest.approx([22, 42, 62])]
    paths = [t for t in trajectory["data"] if t["name"].startswith("#")]
    assert [(p["x"][0], len(p["x"])) for p in paths] == [(0, 4), (0, 4)]
    assert at.get("download_button")
    assert at.query_params["cifar_runs"] == f"{first},{second}"


def test_an_unknown_run_in_the_url_is_named_and_ignored(store):
    run_id = finished_run(store)
    at = open_page({"cifar_runs": f"{run_id},99"})
    assert "unknown runs ['99']" in at.warning[0].value
    assert at.multiselect(key="cifar_compare").value == [run_id]


def test_cancel_button_cancels_a_queued_run(store):
    run_id = store.submit(RunConfig(), "ada")
    at = open_page()
    at.button(key=f"cifar_cancel_{run_id}").click().run()
    assert store.get(run_id).status == "cancelled"
