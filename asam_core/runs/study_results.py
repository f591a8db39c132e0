"""What a study shows, computed from its runs (pure functions, no torch; the Studies page draws these).

A run's values are those of asam_core.runs.seed_groups.final_values: test accuracy and the
generalization gap (points) at its last evaluated epoch, the flatness measures of its last measured
epoch.  Runs without an evaluated epoch yet are left out, so results grow while a study runs.

- ``curves``: for a "curves" study, one curve per series (a run's label, else its method's title):
  at every value of the option ``x``, the mean over seeds of test accuracy (or test error = 100 -
  accuracy) with the half-width of its 95% t-interval (asam_core.stats.mean_interval).
- ``correlation``: for a "correlation" study (ASAM Table 1 / Figure 2), every run's generalization
  gap against each flatness measure, Kendall's tau-b of the two, and the granulated coefficient Psi
  over the grid's options (asam_core.stats.granulated_tau).
- ``study_rows`` / ``study_csv``: one row per position of the study: its run, the swept options,
  the seed, the status and the values.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from asam_core.methods import METHODS
from asam_core.runs.seed_groups import final_values
from asam_core.runs.store import RunRecord
from asam_core.runs.sweep import Sweep
from asam_core.stats import granulated_tau, kendall_tau, mean_interval
from asam_core.train.config import RunConfig

# ASAM Table 1's four measures: (metric field, title); p = 2 uses the run's p (2 for the studies' SGD runs).
CORRELATION_MEASURES: dict[str, str] = {
    "sharpness": "sharpness, p = 2",
    "adaptive_sharpness": "adaptive sharpness, p = 2",
    "sharpness_inf": "sharpness, p = ∞",
    "adaptive_sharpness_inf": "adaptive sharpness, p = ∞",
}
VALUE_COLUMNS = ("test_acc", "gap", "sharpness", "adaptive_sharpness", "sharpness_inf", "adaptive_sharpness_inf",
                 "lambda_max")


# Options one tunes (a curve's best x is worth naming), unlike conditions such as the label-noise rate.
TUNED_OPTIONS = frozenset({"rho", "eta", "lr", "weight_decay", "momentum", "batch_size", "m", "dropout",
                           "label_smoothing", "p"})


def names_best(sweep: Sweep) -> bool:
    """Whether the best x of each curve answers a question ("which rho?"): x is an option one tunes."""
    return sweep.x in TUNED_OPTIONS


def series_name(config: RunConfig) -> str:
    """The curve a run belongs to: its label, else its method's title."""
    return config.label or METHODS[config.optimizer].title


def run_values(records: Sequence[RunRecord], metrics: Sequence[Mapping[str, Any]]) -> dict[int, dict[str, float]]:
    """run id -> its values (module docstring); runs without an evaluated epoch are left out."""
    by_run: dict[int, list[Mapping[str, Any]]] = {}
    for row in metrics:
        by_run.setdefault(int(row["run_id"]), []).append(row)
    values = {}
    for run in records:
        found = final_values(sorted(by_run.get(run.id, []), key=lambda r: r["epoch"]))
        if run.config is not None and "test_acc" in found:
            values[run.id] = found
    return values


@dataclass(frozen=True)
class CurvePoint:
    """One x of a curve: mean of y over seeds, half-width of its 95% interval (None for one seed)."""

    x: float
    mean: float
    half: float | None
    run_ids: tuple[int, ...]


@dataclass(frozen=True)
class Curve:
    series: str
    points: tuple[CurvePoint, ...]

    def best(self, higher_is_better: bool) -> CurvePoint:
        """The point with the best mean."""
        return (max if higher_is_better else min)(self.points, key=lambda p: p.mean)


def curves(sweep: Sweep, records: Sequence[RunRecord], metrics: Sequence[Mapping[str, Any]]) -> list[Curve]:
    """The curves of a "curves" study, in the order their series first appear; points sorted by x."""
    values = run_values(records, metrics)
    grouped: dict[str, dict[float, list[tuple[int, float]]]] = {}
    for run in records:
        if run.id not in values:
            continue
        accuracy = values[run.id]["test_acc"]
        y = accuracy if sweep.y == "test_acc" else 100.0 - accuracy
        x = float(getattr(run.config, sweep.x))
        grouped.setdefault(series_name(run.config), {}).setdefault(x, []).append((run.id, y))
    result = []
    for series, by_x in grouped.items():
        points = []
        for x in sorted(by_x):
            mean, half = mean_interval([y for _, y in by_x[x]])
            points.append(CurvePoint(x, mean, half, tuple(i for i, _ in by_x[x])))
        result.append(Curve(series, tuple(points)))
    return result


@dataclass(frozen=True)
class Correlation:
    """ASAM Table 1 / Figure 2 from a study: per measure the (gap, value) of every run that has it, tau and Psi."""

    points: dict[str, tuple[tuple[int, float, float], ...]]  # measure -> (run id, gap, value)
    tau: dict[str, float]
    psi: dict[str, float]
    psi_parts: dict[str, dict[str, float]]


def correlation(sweep: Sweep, records: Sequence[RunRecord], metrics: Sequence[Mapping[str, Any]]) -> Correlation:
    """Kendall tau and granulated Psi of each CORRELATION_MEASURES with the gap, over the study's runs."""
    values = run_values(records, metrics)
    hyper = list(sweep.grid) or sweep.swept_options()
    points, tau, psi, parts = {}, {}, {}, {}
    for measure in CORRELATION_MEASURES:
        runs = [run for run in records if run.id in values and measure in values[run.id]]
        gap = [values[run.id]["gap"] for run in runs]
        value = [values[run.id][measure] for run in runs]
        points[measure] = tuple((run.id, g, v) for run, g, v in zip(runs, gap, value))
        tau[measure] = kendall_tau(value, gap) if len(runs) >= 2 else math.nan
        settings = [{name: getattr(run.config, name) for name in hyper} for run in runs]
        psi[measure], parts[measure] = granulated_tau(settings, value, gap) if runs else (math.nan, {})
    return Correlation(points, tau, psi, parts)


def study_rows(sweep: Sweep, run_ids: Sequence[int], records: Sequence[RunRecord],
               metrics: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per position: position, run, status, the swept options, seed, VALUE_COLUMNS (None if unknown)."""
    by_id = {run.id: run for run in records}
    values = run_values(records, metrics)
    options = sweep.swept_options()
    rows = []
    for position, run_id in enumerate(run_ids):
        run = by_id[run_id]
        config = run.config.model_dump(mode="json") if run.config is not None else {}
        row: dict[str, Any] = {"position": position, "run": run_id, "status": run.status}
        row.update({name: config.get(name) for name in options})
        row["seed"] = config.get("seed")
        row.update({column: values.get(run_id, {}).get(column) for column in VALUE_COLUMNS})
        rows.append(row)
    return rows


def study_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """``study_rows`` as CSV (empty cells for unknown values)."""
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    return out.getvalue()
