"""The run-store commands of ``python -m asam_core.runs``: submit (JSON file, flags, preset), list,
show, cancel, retry, export, gc, settings; every bad input is one line and exit code 2 and queues
nothing; the commands that only read the store import no torch."""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from asam_core.runs.cli import main
from asam_core.runs.store import METRIC_FIELDS, RunStore, this_host
from asam_core.train.config import PRESETS, RunConfig


ROOT = Path(__file__).resolve().parents[1]


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


def test_seeds_repeat_every_run_once_per_seed(store, capsys):
    code, out, _ = cli(capsys, "submit", "--preset", "classroom-quick", "--only", "sgd,asam", "--seeds", "0,1,2")
    assert code == 0 and "seed 2" in out
    runs = store.list_runs()
    assert [(r.config.optimizer, r.config.seed) for r in runs] == [
        ("sgd", 0), ("sgd", 1), ("sgd", 2), ("asam", 0), ("asam", 1), ("asam", 2)]
    base = PRESETS["Classroom quick"][2]
    assert runs[4].config == base.model_copy(update={"seed": 1})
    for bad, reason in (("0,x", "give whole numbers"), ("1,1", "different seeds"), ("-1", "seed: must be >= 0")):
        code, _, err = cli(capsys, "submit", "--preset", "classroom-quick", "--seeds", bad)
        assert code == 2 and err.count("\n") == 1 and reason in err and "--seeds" in err
    assert len(store.list_runs()) == 6


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


def test_retry_gc_and_settings(store, capsys):
    run_id = store.submit(RunConfig(), "ada")
    store.finish(store.claim(1, this_host()).lease, "failed", "boom")
    orphan = store.root / "checkpoints" / "1"
    orphan.mkdir(parents=True)
    code, out, _ = cli(capsys, "retry", str(run_id), "--fresh")
    assert code == 0 and out.startswith(f"run {run_id}: queued again, from scratch")
    assert store.get(run_id).status == "queued"
    code, _, err = cli(capsys, "retry", str(run_id))
    assert code == 2 and err == f"error: run {run_id} is queued: only failed or cancelled runs can be retried\n"
    code, out, _ = cli(capsys, "gc")
    assert code == 0 and f"deleted {orphan}" in out and not orphan.exists()
    assert cli(capsys, "settings", "--max-attempts", "3", "--keep-final-weights", "true")[1] == (
        "max_attempts = 3\nkeep_final_weights = true\n")
    code, out, _ = cli(capsys, "show", str(run_id))
    assert "attempts 0 of max_attempts 3" in out and f"folder: {store.run_dir(store.get(run_id).key)}" in out
    code, _, err = cli(capsys, "settings", "--max-attempts", "0")
    assert code == 2 and "max_attempts: must be a whole number in [1, 100] (got 0)" in err


def _bad_inputs(tmp_path):
    latin1 = tmp_path / "latin1.json"
    latin1.write_bytes('{"label": "café"}'.encode("latin-1"))
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    return [
        (["submit", "--config", str(latin1)], "is not UTF-8 text"),
        (["submit", "--config", str(empty)], "holds an empty list"),
        (["submit", "--config", str(tmp_path / "missing.json")], "cannot read"),
        (["submit", "--preset", ""], "unknown preset ''"),
        (["submit", "--owner", "x" * 200], "owner: must have at most 100 characters"),
        (["submit", "--lr", "1e9"], "lr: must be <= 10"),
        (["submit", "--data-dir", "a\x01b\x00"], "data_dir"),
        (["show", str(2**64)], "a run id is a whole number from 1 to"),
        (["cancel", "-3"], "a run id is a whole number from 1 to"),
        (["show", "7"], "no run with id 7"),
        (["export", "--out", str(tmp_path / "no" / "such" / "m.csv")], "does not exist"),
        (["worker", "--poll", "0"], "--poll must be"),
        (["worker", "--poll", "nan"], "--poll must be"),
        (["worker", "--poll", "1e9"], "--poll must be"),
        (["worker", "--slots", "100000"], "--slots must be from 1 to the"),
        (["list", "--status", "lost"], "invalid choice"),
        (["frobnicate"], "invalid choice"),
    ]


def exit_code(argv: list[str]) -> int:
    """main's return value, or the code argparse exits with."""
    try:
        return main(argv)
    except SystemExit as exit:
        return exit.code


def test_every_bad_input_is_one_line_and_exit_code_2(store, tmp_path, capsys):
    for argv, text in _bad_inputs(tmp_path):
        code = exit_code(argv)
        out, err = capsys.readouterr()
        assert code == 2, argv
        assert err.count("\n") == 1 and text in err and "Traceback" not in err, (argv, err)
    assert store.list_runs() == []


def test_commands_that_only_read_the_store_import_no_torch(store, tmp_path):
    store.submit(RunConfig(), "ada")
    probe = ("import sys; from asam_core.runs.cli import main; "
             "codes = [main(a) for a in (['list'], ['show', '1'], ['cancel', '1'], ['retry', '1'], ['export'], "
             "['gc'], ['settings'])]; print(codes, 'torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                            env={**os.environ, "ASAM_LAB_RUNS_DIR": str(store.root)}, cwd=ROOT)
    assert result.stdout.strip().splitlines()[-1] == "[0, 0, 0, 0, 0, 0, 0] False"
