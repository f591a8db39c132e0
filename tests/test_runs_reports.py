"""What the command line and the page say about runs: honest status, the runs table, CSV."""
from __future__ import annotations

import csv
import io
import math

import pytest
from run_records import make_run, metric_rows, with_fields

from asam_core.runs import reports
from asam_core.runs.store import METRIC_FIELDS


def test_run_rows_newest_first_with_percent_accuracy_and_no_rho_for_sgd():
    runs = [make_run(1, optimizer="sgd"), make_run(2, status="running", optimizer="asam", epochs=10)]
    rows = reports.run_rows(runs, {1: 0.8125})
    assert [r["run"] for r in rows] == [2, 1]
    assert rows[1]["best test acc (%)"] == pytest.approx(81.25) and rows[0]["best test acc (%)"] is None
    assert (rows[0]["rho"], rows[1]["rho"]) == (0.5, None)
    assert (rows[0]["optimizer"], rows[0]["status"], rows[0]["progress"], rows[1]["progress"]) == ("ASAM", "running", 0, 1)


def test_csv_holds_every_metric_row_with_its_runs_settings():
    runs = [make_run(1, optimizer="sam", label="mine"), make_run(2, optimizer="sgd")]
    metrics = metric_rows(1, 2, evaluated_every=2) + metric_rows(2, 1)
    table = list(csv.DictReader(io.StringIO(reports.metrics_csv(runs, metrics))))
    assert [(r["run_id"], r["epoch"]) for r in table] == [("1", "1"), ("1", "2"), ("2", "1")]
    assert table[0]["label"] == "mine" and table[0]["rho"] == "0.05" and table[0]["test_acc"] == ""
    for row, m in zip(table, metrics):
        for f in METRIC_FIELDS:
            assert (row[f] == "" and m[f] is None) or math.isclose(float(row[f]), m[f])


def test_status_says_when_the_worker_is_lost_and_why_a_run_is_queued_again():
    running = with_fields(make_run(1, status="running"), heartbeat=1000.0)
    assert reports.status_text(running, now=1005.0) == "running"
    assert reports.status_text(running, now=1040.0) == "running (worker lost 40 s ago)"
    assert reports.status_text(with_fields(running, cancel_requested=True), now=1001.0) == "running (cancel requested)"
    again = with_fields(make_run(2, status="queued"), error="its process was killed by signal 9 (SIGKILL) - out of memory?")
    assert reports.status_text(again) == "queued again: its process was killed by signal 9 (SIGKILL) - out of memory?"
    assert reports.status_text(again, brief=True) == "queued again"
    held = with_fields(again, not_before=2030.0)
    assert reports.status_text(held, now=2000.0, brief=True) == "queued again in 30 s"
    rows = reports.run_rows([running, again], {}, now=1040.0)
    assert [r["status"] for r in rows] == [reports.status_text(again, 1040.0), "running (worker lost 40 s ago)"]
    assert rows[0]["error"] == ""  # the why is in the status


def test_a_quarantined_run_is_listed_and_exported_without_its_settings():
    bad = with_fields(make_run(4, status="failed"), config=None, error="quarantined: ...")
    (row,) = reports.run_rows([bad], {})
    assert (row["optimizer"], row["model"], row["error"], reports.run_name(bad)) == (
        None, None, "quarantined: ...", "#4 (invalid config)")
    (line,) = list(csv.DictReader(io.StringIO(reports.metrics_csv([bad], metric_rows(4, 1)))))
    assert (line["run_id"], line["model"], line["epoch"]) == ("4", "", "1")
