"""What the CIFAR runs page shows: form fields from RunConfig, curves, trajectories, CSV, URL ids."""
from __future__ import annotations

import csv
import io
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from asam_core.runs import views
from asam_core.runs.store import METRIC_FIELDS, RunRecord
from asam_core.train.config import PRESETS, RunConfig, format_validation_error


def _run(run_id: int, status: str = "done", **config) -> RunRecord:
    return RunRecord(
        id=run_id, key=f"{run_id:032x}", status=status, config=RunConfig(**config), owner="ada", created=1.7e9,
        started=None, finished=None, heartbeat=None, worker_pid=None, worker_host=None, run_pid=None, attempts=1,
        cancel_requested=False,
        step=0, total_steps=None, epoch=0, error=None,
    )


def _rows(run_id: int, epochs: int, evaluated_every: int = 1) -> list[dict]:
    rows = []
    for e in range(1, epochs + 1):
        row = {f: 0.1 * e + run_id for f in METRIC_FIELDS if f != "epoch"}
        row.update(run_id=run_id, epoch=e, train_acc=e / 10, test_acc=e / 20)
        if e % evaluated_every:
            row.update(test_acc=None, test_loss=None)
        rows.append(row)
    return rows


def test_the_form_asks_for_every_field_with_its_allowed_range():
    specs = {s.name: s for s in views.form_fields()}
    assert list(specs) == list(RunConfig.model_fields)
    assert (specs["epochs"].kind, specs["epochs"].allowed) == ("int", "a whole number, >= 1, <= 10000")
    assert (specs["rho"].kind, specs["rho"].optional) == ("float", True)
    assert specs["rho"].allowed == ">= 0, empty for the default"
    assert (specs["p"].kind, specs["p"].allowed) == ("text", "> 1, or inf")
    assert specs["optimizer"].options == ("sgd", "sam", "asam")
    assert specs["normalization"].options == (None, "none", "element", "filter")
    assert specs["augment"].kind == "checkbox"
    assert "learning rate" in specs["lr"].help and "> 0" in specs["lr"].help


configs = st.builds(
    RunConfig,
    optimizer=st.sampled_from(["sgd", "sam", "asam"]),
    dataset=st.sampled_from(["cifar10", "cifar100"]),
    rho=st.none() | st.floats(0, 5),
    p=st.sampled_from([2.0, 3.5, float("inf")]),
    normalization=st.sampled_from([None, "none", "element", "filter"]),
    label_noise=st.floats(0, 0.9),
    m=st.none() | st.integers(1, 128),
)


@given(configs)
def test_form_values_give_back_the_same_config(config):
    assert RunConfig.model_validate(views.form_values(config)) == config


def test_form_values_leave_paper_defaults_open_so_a_new_optimizer_gets_its_own():
    values = views.form_values(PRESETS[next(iter(PRESETS))][1])  # SAM
    assert (values["rho"], values["normalization"]) == (None, None)
    switched = RunConfig.model_validate({**values, "optimizer": "asam"})
    assert (switched.rho, switched.normalization) == (0.5, "element")
    assert views.form_values(RunConfig(optimizer="sam", rho=0.2))["rho"] == 0.2


def test_bad_form_values_name_each_field_and_its_range():
    values = {**views.form_values(RunConfig()), "epochs": 0, "rho": -1.0, "p": "one", "lr": None}
    with pytest.raises(ValidationError) as err:
        RunConfig.model_validate(values)
    lines = format_validation_error(err.value).splitlines()
    assert lines == ["rho: must be >= 0 (got -1.0)", "p: must be a number (got 'one')",
                     "epochs: must be >= 1 (got 0)", "lr: must be a number (got None)"]


def test_run_rows_newest_first_with_percent_accuracy_and_no_rho_for_sgd():
    runs = [_run(1, optimizer="sgd"), _run(2, status="running", optimizer="asam", epochs=10)]
    rows = views.run_rows(runs, {1: 0.8125})
    assert [r["run"] for r in rows] == [2, 1]
    assert rows[1]["best test acc (%)"] == pytest.approx(81.25) and rows[0]["best test acc (%)"] is None
    assert (rows[0]["rho"], rows[1]["rho"]) == (0.5, None)
    assert (rows[0]["optimizer"], rows[0]["status"], rows[0]["progress"], rows[1]["progress"]) == ("ASAM", "running", 0, 1)


def test_curves_hold_each_runs_metrics_in_percent_and_skip_epochs_without_evaluation():
    runs = [_run(3, optimizer="sam"), _run(5, optimizer="asam")]
    metrics = _rows(3, 4, evaluated_every=2) + _rows(5, 3)
    traces = {(t.run_id, t.panel, t.split): t for t in views.curve_traces(runs, metrics)}
    assert len(traces) == 8
    test_acc = traces[3, "accuracy", "test"]
    assert (test_acc.epochs, test_acc.values, test_acc.dash, test_acc.color_index) == ([2, 4], [10.0, 20.0], "solid", 0)
    train_loss = traces[5, "loss", "train"]
    assert train_loss.epochs == [1, 2, 3] and train_loss.values == pytest.approx([5.1, 5.2, 5.3])
    assert (train_loss.dash, train_loss.color_index) == ("dot", 1)
    assert traces[5, "accuracy", "train"].name == "#5 ASAM rho=0.5 resnet20 (train)"


def test_trajectories_start_at_w0_and_share_a_plane_only_with_the_same_dataset_model_and_seed():
    runs = [_run(1, optimizer="sgd"), _run(2, optimizer="asam"), _run(3, seed=1), _run(4, dataset="cifar100")]
    metrics = [m for i in (1, 2, 3, 4) for m in _rows(i, 2)]
    groups = views.trajectory_groups(runs, metrics)
    assert [[p.run_id for p in g.paths] for g in groups] == [[1, 2], [3], [4]]
    assert groups[0].title == "resnet20 on cifar10, seed 0"
    path = groups[0].paths[1]
    assert (path.epochs, path.x[0], path.y[0], path.color_index) == ([0, 1, 2], 0.0, 0.0, 1)
    assert path.x[1:] == [m["traj_x"] for m in _rows(2, 2)]


def test_csv_holds_every_metric_row_with_its_runs_settings():
    runs = [_run(1, optimizer="sam", label="mine"), _run(2, optimizer="sgd")]
    metrics = _rows(1, 2, evaluated_every=2) + _rows(2, 1)
    table = list(csv.DictReader(io.StringIO(views.metrics_csv(runs, metrics))))
    assert [(r["run_id"], r["epoch"]) for r in table] == [("1", "1"), ("1", "2"), ("2", "1")]
    assert table[0]["label"] == "mine" and table[0]["rho"] == "0.05" and table[0]["test_acc"] == ""
    for row, m in zip(table, metrics):
        for f in METRIC_FIELDS:
            assert (row[f] == "" and m[f] is None) or math.isclose(float(row[f]), m[f])


@given(st.lists(st.integers(0, 30)), st.lists(st.text(alphabet="ab-, ", max_size=4)))
def test_parse_run_ids_keeps_known_ids_in_order_once_and_reports_the_rest(ids, junk):
    ids_out, rejected = views.parse_run_ids(",".join([str(i) for i in ids] + junk), list(range(10)))
    assert ids_out == list(dict.fromkeys(i for i in ids if i < 10))
    assert rejected == [str(i) for i in ids if i >= 10] + [t.strip() for j in junk for t in j.split(",") if t.strip()]
