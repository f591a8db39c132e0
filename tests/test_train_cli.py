"""`python -m asam_core.runs run`: flags, files, presets, resume and readable errors."""
from __future__ import annotations

import json

import pytest
from cifar_fixtures import write_cifar

from asam_core.runs.cli import EXIT_OK, EXIT_USAGE, main
from asam_core.train.config import RunConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    write_cifar(root, per_class=2, test_per_class=1)
    return root


def tiny_flags(data_dir) -> list[str]:
    return ["--data-dir", str(data_dir), "--model", "small_cnn", "--batch-size", "8", "--device", "cpu",
            "--log-every-steps", "1"]


def read_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_flags_run_writes_config_metrics_steps_and_result(data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["run", *tiny_flags(data_dir), "--optimizer", "asam", "--epochs", "2", "--out", str(out)]
    assert main(argv) == EXIT_OK
    printed = capsys.readouterr().out
    assert "epoch   1/2" in printed and "epoch   2/2" in printed and "== done" in printed
    config = RunConfig.model_validate_json((out / "config.json").read_text())
    assert (config.optimizer, config.rho, config.epochs, config.batch_size) == ("asam", 0.5, 2, 8)
    assert [row["epoch"] for row in read_lines(out / "metrics.jsonl")] == [1, 2]
    assert [row["step"] for row in read_lines(out / "steps.jsonl")] == [1, 2, 3, 4]
    assert json.loads((out / "result.json").read_text())["status"] == "done"

    assert main(argv) == EXIT_USAGE  # would overwrite the checkpoint
    assert "--resume" in capsys.readouterr().err
    assert main([*argv, "--resume"]) == EXIT_OK  # already complete: nothing re-run
    assert [row["epoch"] for row in read_lines(out / "metrics.jsonl")] == [1, 2]


def test_preset_with_only_and_overrides_uses_a_stable_default_folder(data_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["run", "--preset", "classroom-quick", "--only", "sam", *tiny_flags(data_dir), "--epochs", "1"]
    assert main(argv) == EXIT_OK
    (folder,) = (tmp_path / "runs").iterdir()
    assert folder.name.startswith("sam-")
    config = RunConfig.model_validate_json((folder / "config.json").read_text())
    assert (config.model, config.subset_per_class, config.rho, config.label) == ("small_cnn", 500, 0.05, "SAM")
    assert main([*argv, "--resume"]) == EXIT_OK
    assert len(list((tmp_path / "runs").iterdir())) == 1


def test_config_file_list_is_filtered_by_only(data_dir, tmp_path, capsys):
    path = tmp_path / "runs.json"
    path.write_text(json.dumps([{"optimizer": "sgd", "label": "a"}, {"optimizer": "sam", "label": "b"}]))
    argv = ["run", "--config", str(path), "--only", "sgd", *tiny_flags(data_dir), "--epochs", "1",
            "--out", str(tmp_path / "out")]
    assert main(argv) == EXIT_OK
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a"]


@pytest.mark.parametrize("argv, message", [
    (["--rho", "-1", "--epochs", "0"], "rho: must be >= 0 (got '-1')\nepochs: must be >= 1 (got '0')"),
    (["--optimizer", "adam"], "optimizer: must be one of 'sgd', 'sam' or 'asam' (got 'adam')"),
    (["--preset", "imagenet"], "unknown preset 'imagenet'"),
])
def test_bad_input_exits_with_readable_lines(argv, message, capsys, tmp_path):
    assert main(["run", *argv, "--out", str(tmp_path)]) == EXIT_USAGE
    assert message in capsys.readouterr().err


def test_bad_config_file_is_reported(tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text('{"optimizer": "sam", "rho": -0.5, "colour": "red"}')
    assert main(["run", "--config", str(path)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "rho: must be >= 0 (got -0.5)" in err and "colour: is not an option" in err


def test_resume_from_a_truncated_checkpoint_is_one_line_not_a_traceback(data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["run", *tiny_flags(data_dir), "--optimizer", "sgd", "--epochs", "2", "--out", str(out)]
    assert main(argv) == EXIT_OK
    checkpoint = out / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])
    capsys.readouterr()
    assert main([*argv, "--resume"]) == 1
    printed = capsys.readouterr()
    (line,) = [line for line in printed.out.splitlines() if line.startswith("== failed")]
    assert line == f"== failed: cannot resume: {checkpoint} is truncated or not a checkpoint" + line.split(
        "not a checkpoint", 1)[1] and "Traceback" not in printed.out + printed.err
