"""The run-store commands of ``python -m asam_core.runs``: submit (JSON file, flags, preset), list,
show, cancel, export; bad input is rejected with one readable line per field and queues nothing."""
from __future__ import annotations

import csv
import io
import json

import pytest

from asam_core.runs.cli import main
from asam_core.runs.store import METRIC_FIELDS, RunStore, this_host
from asam_core.train.config import PRESETS, RunConfig


@pytest.fixture
def store(tmp_path, monkeypatch) -> RunStore:
    monkeypatch.setenv("ASAM_LAB_RUNS_DIR", str(tmp_path / "runs"))
    return RunStore(tmp_path / "runs")


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_submit_from_a_json_file_with_flag_overrides(store, tmp_path, capsys):
    path = tmp_path / "runs.json"
    path.write_text(json.dumps([{"optimizer": "sam", "model": "small_cnn"}, {"optimizer": "asam", "rho": 1.0}]))
    code, out, _ = cli(capsys, "submit", "--config", str(path), "--epochs", "3", "--owner", "ada")
    assert code == 0 and "queued run 1" in out and "queued run 2" in out and "no worker is running" in out
    first, second = store.list_runs()
    assert first.config == RunConfig(optimizer="sam", model="small_cnn", epochs=3)
    assert (second.config.rho, second.config.epochs, second.owner, second.status) == (1.0, 3, "ada", "queued")


def test_submit_from_flags_and_a_preset_into_another_root(tmp_path, capsys):
    root = tmp_path / "elsewhere"
    assert cli(capsys, "submit", "--root", str(root), "--optimizer", "sgd", "--lr", "0.05")[0] == 0
    assert cli(capsys, "submit", "--root", str(root), "--preset", "classroom-quick", "--only", "sam,asam")[0] == 0
    runs = RunStore(root).list_runs()
    assert runs[0].config == RunConfig(optimizer="sgd", lr=0.05)
    assert [r.config for r in runs[1:]] == PRESETS["Classroom quick"][1:]


@pytest.mark.parametrize("argv, lines", [
    (["--rho", "-1", "--epochs", "0"], ["rho: must be >= 0 (got '-1')", "epochs: must be >= 1 (got '0')"]),
    (["--optimizer", "adam"], ["optimizer: must be one of 'sgd', 'sam' or 'asam' (got 'adam')"]),
    (["--preset", "nope"], ["unknown preset 'nope'"]),
])
def test_invalid_submissions_are_rejected_with_readable_lines_and_queue_nothing(store, capsys, argv, lines):
    code, _, err = cli(capsys, "submit", *argv)
    assert code == 2
    for line in lines:
        assert line in err
    assert store.list_runs() == []


def test_an_unknown_key_in_a_json_file_is_named(store, tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"optimizer": "sam", "learning_rate": 0.1}))
    code, _, err = cli(capsys, "submit", "--config", str(path))
    assert code == 2 and "learning_rate: is not an option" in err
    assert store.list_runs() == []


def _finished(store: RunStore, epochs: int) -> int:
    run_id = store.submit(RunConfig(optimizer="sam", model="small_cnn", epochs=epochs, label="demo"), "ada")
    claim = store.claim(1, this_host())
    for e in range(1, epochs + 1):
        store.record_epoch(claim.lease, {f: 0.25 * e for f in METRIC_FIELDS} | {"epoch": e})
    store.finish(claim.lease, "done")
    return run_id


def test_list_show_cancel_and_export(store, tmp_path, capsys):
    done = _finished(store, epochs=2)
    queued = store.submit(RunConfig(), "grace")

    code, out, _ = cli(capsys, "list")
    header, newest, oldest = out.splitlines()
    assert code == 0 and header.split()[:4] == ["run", "status", "progress", "optimizer"]
    assert newest.split()[:4] == [str(queued), "queued", "0%", "ASAM"]
    assert oldest.split()[:5] == [str(done), "done", "100%", "SAM", "0.05"] and "50" in oldest.split()
    assert cli(capsys, "list", "--status", "queued")[1].count("\n") == 2

    code, out, _ = cli(capsys, "show", str(done))
    assert code == 0 and out.startswith(f"run {done}: done, 100%, owner ada")
    assert '"label": "demo"' in out and out.splitlines()[-1].split()[:2] == ["2", "0.5"]

    code, out, _ = cli(capsys, "cancel", str(queued), str(done))
    assert out.splitlines() == [f"run {queued}: cancelled", f"run {done}: already done"]
    assert store.get(queued).status == "cancelled"
    code, _, err = cli(capsys, "cancel", "99")
    assert code == 2 and "no run with id 99" in err

    code, out, _ = cli(capsys, "export")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["run_id"], r["epoch"], r["test_acc"]) for r in rows] == [(str(done), "1", "0.25"), (str(done), "2", "0.5")]
    cli(capsys, "export", str(done), "--out", str(tmp_path / "m.csv"))
    assert (tmp_path / "m.csv").read_text() == out
