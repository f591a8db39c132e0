"""Studies through the real run store, worker and command line: identical runs are reused (not
retrained), cancel and resume act on the study's own runs, and a tiny real study of 4 runs finishes
with an aggregate that matches its runs.  What a study shows is checked against hand computations."""
from __future__ import annotations

import csv
import io
import json
import math

import pytest

from cifar_fixtures import write_cifar
from run_records import make_run
from asam_core.runs import studies, study_results
from asam_core.runs.cli import main
from asam_core.runs.store import METRIC_FIELDS, RunStore
from asam_core.runs.sweep import Sweep
from asam_core.runs.worker import Worker
from asam_core.stats import kendall_tau


@pytest.fixture
def store(tmp_path, monkeypatch) -> RunStore:
    monkeypatch.setenv("ASAM_LAB_RUNS_DIR", str(tmp_path / "runs"))
    return RunStore(tmp_path / "runs")


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of the command line (argparse's own errors exit 2)."""
    try:
        code = main(list(argv))
    except SystemExit as stop:
        code = stop.code
    out, err = capsys.readouterr()
    return code, out, err


def sweep(**changes) -> Sweep:
    options = dict(name="lr study", base={"model": "small_cnn", "epochs": 2}, variants=[{"optimizer": "sgd"},
                   {"optimizer": "sam"}], grid={"lr": [0.05, 0.1]}, seeds=[0])
    return Sweep(**{**options, **changes})


def test_identical_runs_are_reused_and_cancel_leaves_reused_runs_alone(store):
    first = studies.submit(store, sweep(), "ada")
    assert len(first.run_ids) == 4 and not first.reused
    store.request_cancel(first.run_ids[3])
    relabelled = sweep(base={"model": "small_cnn", "epochs": 2, "label": "again", "data_dir": "elsewhere"},
                       seeds=[0, 1])
    second = studies.submit(store, relabelled, "bob")
    assert len(second.run_ids) == 8 and len(set(second.run_ids)) == 8
    # label and data_dir do not change what is trained: positions of seed 0 reuse the first study's runs,
    # except the cancelled one, which is queued anew
    reused = {second.run_ids[i] for i in (0, 2, 4)}
    assert second.reused == reused == set(first.run_ids[:3])
    assert second.run_ids[6] not in first.run_ids
    assert len(store.list_runs()) == 4 + 5
    assert studies.cancel(store, second) == sorted(set(second.run_ids) - reused)
    assert {store.get(i).status for i in first.run_ids[:3]} == {"queued"}
    assert studies.summary(studies.runs(store, second)) == "8 runs: 3 queued, 5 cancelled"
    assert sorted(studies.resume(store, second)) == sorted(set(second.run_ids) - reused)
    assert studies.state(studies.runs(store, second)) == "queued"


def test_a_study_within_itself_reuses_repeated_positions(store):
    repeated = Sweep(name="twice", base={"model": "small_cnn"}, variants=[{"label": "a"}, {"label": "b"}])
    study = studies.submit(store, repeated, "ada")
    assert study.run_ids[0] == study.run_ids[1] and not study.reused and len(store.list_runs()) == 1


def test_a_tiny_real_study_finishes_and_its_aggregate_matches_its_runs(store, tmp_path, capsys):
    data = tmp_path / "cifar"
    write_cifar(data, "cifar10", per_class=1, test_per_class=1)
    tiny = {"model": "small_cnn", "data_dir": str(data), "download": False, "device": "cpu", "batch_size": 10,
            "epochs": 2, "log_every_steps": 1}
    path = tmp_path / "study.json"
    path.write_text(json.dumps({"name": "tiny", "x": "lr", "base": tiny, "grid": {"lr": [0.05]},
                                "variants": [{"optimizer": "sgd", "label": "SGD"}, {"optimizer": "sam", "label": "SAM"}],
                                "seeds": [0, 1]}))
    code, out, _ = cli(capsys, "study", "submit", str(path), "--owner", "ada")
    assert code == 0 and "4 runs over optimizer" in out and "queued study 1: 4 new run(s)" in out
    Worker(store, exit_when_idle=True, poll=0.1).run()
    study = studies.get(store, 1)
    records = studies.runs(store, study)
    assert studies.state(records) == "done"
    metrics = store.metrics(list(study.run_ids))
    assert sorted({(m["run_id"], m["epoch"]) for m in metrics}) == [(i, e) for i in study.run_ids for e in (1, 2)]
    final = {m["run_id"]: m for m in metrics if m["epoch"] == 2}
    assert all(m["train_eval_acc"] is None for m in metrics if m["epoch"] == 1), "measured at the last epoch only"
    curves = study_results.curves(study.sweep, records, metrics)
    assert [c.series for c in curves] == ["SGD", "SAM"]
    for curve, ids in zip(curves, (study.run_ids[:2], study.run_ids[2:])):
        (point,) = curve.points
        accuracies = [100 * final[i]["test_acc"] for i in ids]
        assert point.x == 0.05 and point.run_ids == tuple(ids)
        assert point.mean == pytest.approx(sum(accuracies) / 2)
        spread = abs(accuracies[0] - accuracies[1]) / 2
        assert point.half == pytest.approx(12.7062047 * spread, abs=1e-6)
    code, out, _ = cli(capsys, "study", "export", "1")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [int(r["run"]) for r in rows] == list(study.run_ids)
    for row in rows:
        m = final[int(row["run"])]
        assert float(row["test_acc"]) == pytest.approx(100 * m["test_acc"])
        assert float(row["gap"]) == pytest.approx(100 * (m["train_eval_acc"] - m["test_acc"]))
        assert float(row["sharpness_inf"]) == pytest.approx(m["sharpness_inf"]) and row["status"] == "done"
    code, out, _ = cli(capsys, "study", "show", "1")
    assert code == 0 and "SGD: best lr = 0.05" in out and "(done; 4 runs: 4 done)" in out
    code, out, _ = cli(capsys, "study", "list")
    assert "tiny" in out and "4 runs: 4 done" in out


def test_resubmitting_a_finished_study_trains_nothing(store):
    first = studies.submit(store, sweep(), "ada")
    for run_id in first.run_ids:  # as if trained: done
        with store._connect() as con:
            con.execute("UPDATE runs SET status = 'done' WHERE id = ?", (run_id,))
    again = studies.submit(store, sweep(name="again"), "ada")
    assert again.run_ids == first.run_ids and again.reused == set(first.run_ids)
    assert studies.state(studies.runs(store, again)) == "done"


@pytest.mark.parametrize("argv, message", [
    (["study", "submit", "--preset", "nope"], "unknown study preset 'nope'"),
    (["study", "submit", "{missing}"], "cannot read"),
    (["study", "submit", "{bad}"], "grid.rho[1]: must be >= 0 (got -1)"),
    (["study", "submit", "{notjson}"], "is not valid JSON"),
    (["study", "submit", "--preset", "label-noise-rates-classroom", "--seeds", "0,x"], "give whole numbers"),
    (["study", "show", "7"], "no study with id 7"),
    (["study", "cancel", "0"], "a study id is a whole number"),
])
def test_bad_study_input_is_one_line_and_queues_nothing(store, tmp_path, capsys, argv, message):
    (tmp_path / "bad.json").write_text(json.dumps({"name": "b", "grid": {"rho": [0.1, -1]}}))
    (tmp_path / "notjson.json").write_text("{")
    files = {"{missing}": str(tmp_path / "missing.json"), "{bad}": str(tmp_path / "bad.json"),
             "{notjson}": str(tmp_path / "notjson.json")}
    code, _, err = cli(capsys, *[files.get(a, a) for a in argv])
    assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err
    assert store.list_runs() == [] and store.studies() == []


def _record(run_id: int, test_acc: float, train_acc: float, **measures) -> tuple:
    row = {f: None for f in METRIC_FIELDS}
    row.update(run_id=run_id, epoch=1, train_acc=train_acc, test_acc=test_acc, **measures)
    return row


def test_curves_average_seeds_with_the_t_interval_by_hand():
    s = Sweep(name="c", variants=[{"optimizer": "sam"}], grid={"rho": [0.05, 0.1]}, seeds=[0, 1])
    records = [make_run(1, optimizer="sam", rho=0.05), make_run(2, optimizer="sam", rho=0.05, seed=1),
               make_run(3, optimizer="sam", rho=0.1), make_run(4, optimizer="sam", rho=0.1, seed=1, label="other")]
    metrics = [_record(1, 0.50, 0.9), _record(2, 0.60, 0.9), _record(3, 0.70, 0.9), _record(4, 0.72, 0.9)]
    sam, other = study_results.curves(s, records, metrics)
    assert (sam.series, other.series) == ("SAM", "other")
    low, high = sam.points
    assert (low.x, low.mean, low.run_ids) == (0.05, pytest.approx(55.0), (1, 2))
    # t(0.975, 1) = 12.7062; s = 7.0711; half = t s / sqrt(2) = 12.7062 * 5
    assert low.half == pytest.approx(12.7062047 * 5.0, rel=1e-6)
    assert (high.x, high.mean, high.half) == (0.1, pytest.approx(70.0), None)
    assert sam.best(higher_is_better=True) is high and sam.best(higher_is_better=False) is low
    errors = study_results.curves(s.model_copy(update={"y": "test_error"}), records, metrics)
    assert errors[0].points[0].mean == pytest.approx(45.0)


def test_correlation_ranks_each_measure_against_the_gap_by_hand():
    s = Sweep(name="t", figure="correlation", base={"optimizer": "sgd"}, grid={"lr": [0.05, 0.1], "batch_size": [32, 64]})
    configs = s.configs()
    records = [make_run(i + 1, **c.model_dump()) for i, c in enumerate(configs)]
    gaps = [10.0, 20.0, 30.0, 40.0]
    sharp = [1.0, 3.0, 2.0, 4.0]         # one discordant pair: tau = (5 - 1) / 6
    adaptive = [0.1, 0.2, 0.3, 0.4]      # perfectly concordant: tau = 1
    metrics = [_record(i + 1, 0.5, 0.5 + gaps[i] / 100, sharpness=sharp[i], adaptive_sharpness=adaptive[i])
               for i in range(4)]
    result = study_results.correlation(s, records, metrics)
    assert result.tau["sharpness"] == pytest.approx(4 / 6) == pytest.approx(kendall_tau(sharp, gaps))
    assert result.tau["adaptive_sharpness"] == pytest.approx(1.0)
    assert [p[1] for p in result.points["sharpness"]] == pytest.approx(gaps)
    # Psi: for lr, groups {runs 1,3} (batch 32) and {2,4} (batch 64): both concordant -> 1; for batch_size,
    # groups {1,2} (lr 0.05): concordant, {3,4}: concordant -> 1
    assert result.psi_parts["sharpness"] == {"lr": 1.0, "batch_size": 1.0} and result.psi["sharpness"] == 1.0
    assert math.isnan(result.tau["sharpness_inf"]) and result.points["sharpness_inf"] == ()
