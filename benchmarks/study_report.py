"""What a finished study measured, per series, with paired differences against a baseline series.

For every series (a run's label, else its method) of study ID in the store at --root: clean test
accuracy, generalization gap, λ_max, sharpness, adaptive sharpness and the 1-D profile's rise
(mean over its random directions of (L(w - d) + L(w + d)) / 2 - L(w), from the loss_profile
artifact) as mean ± 95% t-interval over seeds; then, for every other series, the per-seed
difference from --baseline (same seed) as mean ± 95% interval; and the study's wall time (first
start to last finish).

Usage: python -m benchmarks.study_report --root DIR --study ID [--baseline SGD]
"""
from __future__ import annotations

import argparse
import json
from typing import Mapping, Sequence

from asam_core.runs import studies
from asam_core.runs.store import RunStore
from asam_core.runs.study_results import run_values, series_name
from asam_core.stats import mean_interval

MEASURES = ("test_acc", "gap", "lambda_max", "sharpness", "adaptive_sharpness", "profile_rise")


def profile_rise(data: bytes) -> float:
    """(L(w - d) + L(w + d)) / 2 - L(w), averaged over the profile's directions (t = -1, 0, 1)."""
    profile = json.loads(data)
    t = profile["t"]
    low, zero, high = t.index(-1.0), t.index(0.0), t.index(1.0)
    rises = [(row[low] + row[high]) / 2 - row[zero] for row in profile["loss"]]
    return sum(rises) / len(rises)


def interval(values: Sequence[float]) -> str:
    if not values:
        return "-"
    mean, half = mean_interval(values)
    return f"{mean:.3g}" if half is None else f"{mean:.3g} ± {half:.2g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True)
    parser.add_argument("--study", type=int, required=True)
    parser.add_argument("--baseline", default="SGD")
    args = parser.parse_args()
    store = RunStore(args.root, create=False)
    study = studies.get(store, args.study)
    records = studies.runs(store, study)
    values = run_values(records, store.metrics([r.id for r in records]))
    for run_id, found in store.artifacts([r.id for r in records], "loss_profile").items():
        if run_id in values:
            values[run_id]["profile_rise"] = profile_rise(found[-1][1])
    x = study.sweep.x
    by_series: dict[tuple[str, float], dict[int, Mapping[str, float]]] = {}
    for run in records:
        if run.id in values:
            key = (series_name(run.config), float(getattr(run.config, x)))
            by_series.setdefault(key, {})[run.config.seed] = values[run.id]
    print(f"study {study.id}: {study.name}; {studies.summary(records)}")
    print(f"series  {x}  seeds  " + "  ".join(MEASURES))
    for (series, at), seeds in by_series.items():
        cells = [interval([v[m] for v in seeds.values() if m in v]) for m in MEASURES]
        print(f"{series}  {at:g}  {sorted(seeds)}  " + "  ".join(cells))
    for (series, at), seeds in by_series.items():
        base = by_series.get((args.baseline, at), {})
        shared = sorted(set(seeds) & set(base))
        if series != args.baseline and shared:
            cells = [f"{m} {interval([seeds[s][m] - base[s][m] for s in shared])}" for m in MEASURES
                     if all(m in seeds[s] and m in base[s] for s in shared)]
            print(f"{series} − {args.baseline} at {x} = {at:g} (seeds {shared}): " + "; ".join(cells))
    times = [(r.started, r.finished) for r in records if r.started and r.finished]
    if times:
        wall = max(f for _, f in times) - min(s for s, _ in times)
        print(f"wall time, first start to last finish: {wall / 60:.1f} min for {len(times)} runs")


if __name__ == "__main__":
    main()
