"""Runs as people read them, for the command line and the CIFAR page: pure functions, no torch.

- ``status_text``: the honest status: "running (worker lost 40 s ago)" when the lease is stale,
  "queued again: <why>" for a run back in the queue.
- ``run_name``: a run's name in legends and pickers.  ``run_rows``: the runs table.
- ``metrics_csv``: every metric row with its run's settings.
- ``text_table``: rows as aligned text.
"""
from __future__ import annotations

import csv
import io
import time
from datetime import datetime
from typing import Any, Mapping, Sequence

from asam_core.methods import METHODS
from asam_core.runs.store import RunRecord
from asam_core.train.metrics import METRIC_FIELDS

LOST_AFTER_S = 15.0  # a running run's heartbeat older than this: its worker is lost (workers poll every <= 5 s)


def status_text(run: RunRecord, now: float | None = None, brief: bool = False) -> str:
    """``run.status``, with what a bare status hides: a lost worker, a pending cancel, why it is
    queued again (``brief``: without the why, for narrow tables)."""
    now = time.time() if now is None else now
    if run.status == "running":
        age = now - run.heartbeat if run.heartbeat is not None else 0.0
        if age > LOST_AFTER_S:
            return f"running (worker lost {age:.0f} s ago)"
        return "running (cancel requested)" if run.cancel_requested else "running"
    if run.status == "queued" and run.error:
        wait = (run.not_before or 0.0) - now
        again = f"queued again{f' in {wait:.0f} s' if wait > 0 else ''}"
        return again if brief else f"{again}: {run.error}"
    return run.status


def run_name(run: RunRecord) -> str:
    """``#3 ASAM rho=0.5 resnet20 · label``: the run in legends and pickers."""
    c = run.config
    if c is None:
        return f"#{run.id} (invalid config)"
    entry = METHODS[c.optimizer]
    sharpness = f" rho={c.rho:g}" if entry.sharpness_aware else ""
    return f"#{run.id} {entry.title}{sharpness} {c.model}" + (f" · {c.label}" if c.label else "")


def run_rows(runs: Sequence[RunRecord], best_test_acc: Mapping[int, float], now: float | None = None
             ) -> list[dict[str, Any]]:
    """The runs table, newest first: one dict per run (progress in [0, 1], accuracy in %)."""
    rows = []
    for run in sorted(runs, key=lambda r: -r.id):
        best, c = best_test_acc.get(run.id), run.config
        rows.append({
            "run": run.id,
            "label": c.label if c else "",
            "status": status_text(run, now),
            "progress": run.progress,
            "optimizer": METHODS[c.optimizer].title if c else None,
            "rho": c.rho if c and METHODS[c.optimizer].sharpness_aware else None,
            "model": c.model if c else None,
            "epochs": c.epochs if c else None,
            "best test acc (%)": None if best is None else 100.0 * best,
            "ran on": run.node,
            "owner": run.owner,
            "created": datetime.fromtimestamp(run.created).strftime("%Y-%m-%d %H:%M"),
            "error": run.error if run.status != "queued" and run.error else "",
        })
    return rows


CSV_RUN_FIELDS = ("run_id", "label", "owner", "status", "dataset", "model", "optimizer", "rho", "eta", "seed")


def metrics_csv(runs: Sequence[RunRecord], metrics: Sequence[Mapping[str, float]]) -> str:
    """CSV with one line per (run, epoch): CSV_RUN_FIELDS then METRIC_FIELDS (settings empty for a
    quarantined run)."""
    by_id = {run.id: run for run in runs}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_RUN_FIELDS + METRIC_FIELDS)
    for m in metrics:
        run = by_id[m["run_id"]]
        c = run.config
        settings = [c.label, run.owner, run.status, c.dataset, c.model, c.optimizer, c.rho, c.eta, c.seed] if c else \
            ["", run.owner, run.status] + [""] * 6
        writer.writerow([run.id, *settings] + [m[f] for f in METRIC_FIELDS])
    return out.getvalue()


def text_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """``rows`` as aligned plain-text columns (floats to 4 significant digits, None as "-")."""
    def cell(value: Any) -> str:
        if value is None:
            return "-"
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    cells = [list(columns)] + [[cell(row[c]) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in cells)
