"""Runs that differ only in their seed, summarized as the papers' tables do: mean +- the half-width of
the 95% t-interval over seeds (asam_core.stats.mean_interval).  Pure functions, no torch.

A run's values are those of its last evaluated epoch: test accuracy (%), generalization gap
(training accuracy - test accuracy, in points; training accuracy on the labels it trained on: the
final model's in eval mode, train_eval_acc, where the run measured it, else the epoch's running
train_acc), and the flatness measures of its last measured epoch (metrics.FLATNESS_METRICS).
Runs whose config is invalid (quarantined) or that have no evaluated epoch are left out.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from asam_core.methods import METHODS
from asam_core.runs.store import RunRecord
from asam_core.stats import mean_interval
from asam_core.train.metrics import FLATNESS_METRICS

GROUP_MEASURES: dict[str, str] = {
    "test_acc": "test accuracy (%)",
    "gap": "generalization gap (points)",
    "sharpness": "sharpness",
    "adaptive_sharpness": "adaptive sharpness",
    "lambda_max": "λ_max",
}


@dataclass(frozen=True)
class SeedGroup:
    """Runs sharing every training setting but the seed; summary[measure] = (mean, half-width or None, n)."""

    name: str
    run_ids: tuple[int, ...]
    seeds: tuple[int, ...]
    summary: dict[str, tuple[float, float | None, int]]


def final_values(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """A run's values (see the module docstring) from its metric rows, in epoch order."""
    values: dict[str, float] = {}
    evaluated = [r for r in rows if r.get("test_acc") is not None]
    if evaluated:
        last = evaluated[-1]
        values["test_acc"] = 100.0 * last["test_acc"]
        train = last.get("train_eval_acc")
        values["gap"] = 100.0 * ((last["train_acc"] if train is None else train) - last["test_acc"])
    for measure in FLATNESS_METRICS:
        measured = [r[measure] for r in rows if r.get(measure) is not None]
        if measured:
            values[measure] = float(measured[-1])
    return values


def _setting(run: RunRecord) -> str:
    identity = run.config.training_identity()
    identity.pop("seed")
    return json.dumps(identity, sort_keys=True)


def seed_groups(runs: Sequence[RunRecord], metrics: Sequence[Mapping[str, Any]]) -> list[SeedGroup]:
    """Group ``runs`` by their training settings except the seed (in order of first appearance)."""
    by_run: dict[int, list[Mapping[str, Any]]] = {}
    for row in metrics:
        by_run.setdefault(int(row["run_id"]), []).append(row)
    grouped: dict[str, list[tuple[RunRecord, dict[str, float]]]] = {}
    for run in runs:
        values = final_values(sorted(by_run.get(run.id, []), key=lambda r: r["epoch"]))
        if run.config is not None and "test_acc" in values:
            grouped.setdefault(_setting(run), []).append((run, values))
    groups = []
    for members in grouped.values():
        first = members[0][0].config
        name = f"{METHODS[first.optimizer].title} {first.model}" + (f" · {first.label}" if first.label else "")
        summary = {}
        for measure in GROUP_MEASURES:
            sample = [values[measure] for _, values in members if measure in values]
            if sample:
                mean, half = mean_interval(sample)
                summary[measure] = (mean, half, len(sample))
        groups.append(SeedGroup(name, tuple(r.id for r, _ in members), tuple(r.config.seed for r, _ in members), summary))
    return groups


def format_interval(mean: float, half: float | None, digits: int = 2) -> str:
    """``52.40 ± 1.30`` (or the mean alone for one seed)."""
    return f"{mean:.{digits}f}" if half is None else f"{mean:.{digits}f} ± {half:.{digits}f}"


def group_rows(groups: Sequence[SeedGroup]) -> list[dict[str, Any]]:
    """The grouped table: one row per group, each measure as "mean ± 95% half-width"."""
    rows = []
    for group in groups:
        row: dict[str, Any] = {"setting": group.name, "seeds": ", ".join(map(str, group.seeds)),
                               "runs": ", ".join(f"#{i}" for i in group.run_ids)}
        for measure, title in GROUP_MEASURES.items():
            if measure in group.summary:
                mean, half, _ = group.summary[measure]
                row[title] = format_interval(mean, half, 2 if measure in ("test_acc", "gap") else 4)
            else:
                row[title] = ""
        rows.append(row)
    return rows


def groups_csv(groups: Sequence[SeedGroup]) -> str:
    """The grouped table as CSV with numbers: per measure its mean, 95% half-width and count."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["setting", "seeds", "run_ids"] + [f"{m}_{part}" for m in GROUP_MEASURES for part in ("mean", "ci95", "n")])
    for group in groups:
        cells = []
        for measure in GROUP_MEASURES:
            mean, half, n = group.summary.get(measure, (None, None, 0))
            cells += ["" if mean is None else repr(mean), "" if half is None else repr(half), n]
        writer.writerow([group.name, " ".join(map(str, group.seeds)), " ".join(map(str, group.run_ids))] + cells)
    return out.getvalue()
