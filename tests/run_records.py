"""Run records and metric rows made up for tests of what the page and the command line show."""
from __future__ import annotations

from dataclasses import replace

from asam_core.runs.store import METRIC_FIELDS, RunRecord
from asam_core.train.config import RunConfig


def make_run(run_id: int, status: str = "done", **config) -> RunRecord:
    """A run record with ``config``'s options (nothing else set)."""
    return RunRecord(
        id=run_id, key=f"{run_id:032x}", status=status, config=RunConfig(**config), owner="ada", created=1.7e9,
        started=None, finished=None, heartbeat=None, worker_pid=None, worker_host=None, run_pid=None, attempts=1,
        cancel_requested=False, step=0, total_steps=None, epoch=0, error=None,
    )


def with_fields(run: RunRecord, **fields) -> RunRecord:
    return replace(run, **fields)


def metric_rows(run_id: int, epochs: int, evaluated_every: int = 1) -> list[dict]:
    """Store-shaped metric rows of one run: test values None on epochs without evaluation."""
    rows = []
    for e in range(1, epochs + 1):
        row = {f: 0.1 * e + run_id for f in METRIC_FIELDS if f != "epoch"}
        row.update(run_id=run_id, epoch=e, train_acc=e / 10, test_acc=e / 20)
        if e % evaluated_every:
            row.update(test_acc=None, test_loss=None)
        rows.append(row)
    return rows
