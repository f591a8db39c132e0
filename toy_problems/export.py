"""Trajectories as CSV text (one row per method, start, recorded step)."""
from __future__ import annotations

import csv
import io

from toy_problems.simulate import Trajectories

CSV_COLUMNS = ("method", "start", "step", "w1", "w2", "loss")


def trajectories_csv(run: Trajectories) -> str:
    """CSV with columns CSV_COLUMNS; ``start`` is the row index of the starting point."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    points, losses, steps = run.points.tolist(), run.losses.tolist(), run.steps.tolist()
    for m, method in enumerate(run.methods):
        for b in range(run.points.shape[2]):
            for t, step in enumerate(steps):
                w1, w2 = points[m][t][b]
                writer.writerow((method, b, step, repr(w1), repr(w2), repr(losses[m][t][b])))
    return out.getvalue()
