"""Packaging: pyproject's entry point and packages resolve, and the CLI's foreground run writes
under the runs folder ($ASAM_LAB_RUNS_DIR) wherever it is started."""
from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

from asam_core.runs.cli import default_out_dir
from asam_core.train.config import RunConfig

ROOT = Path(__file__).resolve().parents[1]


def test_the_asam_lab_entry_point_and_the_packages_resolve():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    module, _, name = project["project"]["scripts"]["asam_lab"].partition(":")
    assert callable(getattr(importlib.import_module(module), name))
    assert set(project["tool"]["setuptools"]["packages"]["find"]["include"]) >= {"asam_core*", "toy_problems*"}


def test_foreground_runs_go_under_the_runs_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("ASAM_LAB_RUNS_DIR", str(tmp_path / "class"))
    monkeypatch.chdir(tmp_path)
    out = default_out_dir(RunConfig(optimizer="sgd", label="Quick SGD"))
    assert out.parent == tmp_path / "class" and out.name.startswith("quick_sgd-")
