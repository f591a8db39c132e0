"""AppTest of the CIFAR page's live part: step losses drawn from the store, a database deleted under the page."""
from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from asam_core.runs.store import RunStore, this_host
from asam_core.train.config import RunConfig
from conftest import figure_specs

PAGE = str(Path(__file__).resolve().parents[1] / "views" / "cifar_runs.py")


def test_step_losses_of_a_running_run_are_drawn(tmp_path, monkeypatch):
    monkeypatch.setenv("ASAM_LAB_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("ASAM_LAB_WORKER_AUTOSTART", "0")
    store = RunStore(tmp_path / "runs")
    run_id = store.submit(RunConfig(model="small_cnn", epochs=3), "ada")
    claim = store.claim(1, this_host())
    store.record_steps(claim.lease, [(5, 2.3), (10, 2.1), (15, 1.9)], total_steps=60)
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params["cifar_runs"] = str(run_id)
    at.run()
    assert not at.exception
    (steps,) = figure_specs(at)
    (trace,) = steps["data"]
    assert (trace["x"], trace["y"]) == ([5, 10, 15], [2.3, 2.1, 1.9])
    assert "curves appear when the first epoch" in at.info[0].value


def test_a_database_deleted_under_the_page_is_one_line_and_a_reload_opens_a_new_store(tmp_path, monkeypatch):
    monkeypatch.setenv("ASAM_LAB_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("ASAM_LAB_WORKER_AUTOSTART", "0")
    RunStore(tmp_path / "runs").submit(RunConfig(model="small_cnn", epochs=3), "ada")
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert at.dataframe[0].value["run"].tolist() == [1]
    for name in ("runs.sqlite3", "runs.sqlite3-wal", "runs.sqlite3-shm"):
        (tmp_path / "runs" / name).unlink(missing_ok=True)
    at.run()
    assert not at.exception
    assert at.error[0].value == f"{(tmp_path / 'runs').resolve()}/runs.sqlite3 was deleted while in use: " \
                               "reload the page to open the run store again."
    at.run()
    assert not at.error and "No runs yet" in at.info[0].value
