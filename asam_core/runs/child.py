"""The process that trains one leased run: ``python -m asam_core.runs.child --root DIR --lease L``.

A worker (asam_core.runs.worker) starts one per run, so whatever kills a run (out of memory, a
segfault, kill -9) ends that run only.  The process trains the run's config into the run's
folder (``store.run_dir(key)``, resuming from its checkpoint) through ``StoreSink``, and records
the outcome itself before it exits 0:

- done / failed (with the loop's reason) -> ``store.finish``;
- stopped: cancel requested -> finished as cancelled; SIGTERM (its worker is stopping) or its
  worker process gone -> released back to the queue; lease lost -> nothing (another worker has it);
- a full disk or read-only folder while writing (checkpoint or database) -> released with the
  reason and held back ``--retry-delay`` seconds, not failed: exit code EXIT_TRANSIENT, and the
  worker releases the run itself if this process could not.

Its output (one line per problem; a traceback only for a bug) goes to the run's ``run.log``; the
worker keeps the last lines as the reason when the process dies.
"""
from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from asam_core.runs.store import RunRecord, RunStore, StoreError
from asam_core.train.metrics import METRIC_FIELDS

EXIT_RECORDED, EXIT_TRANSIENT, EXIT_STORE = 0, 3, 4
TRANSIENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EACCES})
CANCEL_CHECK_EVERY_S = 0.2


class StoreSink:
    """TrainSink writing one leased run to the store.

    Step losses are buffered and written at most every ``flush_every`` seconds (and before each
    epoch's metrics).  ``should_stop()``, called before every step, is True once a cancel was
    requested, the lease was lost, SIGTERM arrived (``stop_requested``) or the parent (the
    worker) is gone; the store is read at most every CANCEL_CHECK_EVERY_S seconds.
    """

    def __init__(self, store: RunStore, lease: str, flush_every: float = 1.0) -> None:
        self.store, self.lease, self.flush_every = store, lease, flush_every
        self.parent = os.getppid()
        self.pending: list[tuple[int, float]] = []
        self.total_steps = 0
        self.last_flush = self.last_check = time.monotonic()
        self.cancelled = self.lost = self.stop_requested = self.orphaned = False

    def on_step(self, step: int, total_steps: int, train_loss: float) -> None:
        self.pending.append((step, float(train_loss)))
        self.total_steps = total_steps
        if time.monotonic() - self.last_flush >= self.flush_every:
            self.flush()

    def on_epoch(self, metrics: Any) -> None:
        self.flush()
        if not self.store.record_epoch(self.lease, {f: getattr(metrics, f) for f in METRIC_FIELDS}):
            self.lost = True

    def on_artifacts(self, epoch: int, artifacts: dict[str, bytes]) -> None:
        if not self.store.record_artifacts(self.lease, epoch, artifacts):
            self.lost = True

    def should_stop(self) -> bool:
        if time.monotonic() - self.last_check >= CANCEL_CHECK_EVERY_S:
            self.last_check = time.monotonic()
            cancel = self.store.cancel_requested(self.lease)
            self.lost = self.lost or cancel is None
            self.cancelled = bool(cancel)
            self.orphaned = os.getppid() != self.parent
        return self.cancelled or self.lost or self.stop_requested or self.orphaned

    def flush(self) -> None:
        self.last_flush = time.monotonic()
        if self.pending and not self.store.record_steps(self.lease, self.pending, self.total_steps):
            self.lost = True
        self.pending = []


def _say(text: str) -> None:
    """One line to the run's log; a full disk loses the line, not the run."""
    try:
        print(text, file=sys.stderr, flush=True)
    except OSError:
        pass


def is_transient(err: OSError) -> bool:
    """A write fault that may go away (disk full, read-only for a moment), not a bug of the run."""
    return err.errno in TRANSIENT_ERRNOS


def transient_reason(err: OSError) -> str:
    """Why a run is released after the transient write fault ``err`` (one line)."""
    return f"could not write {err.filename or 'its checkpoint'}: {err.strerror}; will resume from its last checkpoint"


def record_outcome(store: RunStore, lease: str, status: str, reason: str, cancelled: bool, lost: bool,
                   stopped_because: str) -> str:
    """Record how the leased run's training ended; returns one line saying what happened.

    done / failed -> ``store.finish`` (failed with ``reason``).  Stopped early (status
    "cancelled"): its cancel was requested -> finished as cancelled; its lease was lost -> nothing
    (another worker has it); else -> released back to the queue with ``stopped_because``.  The
    local run process and the Ray driver (asam_core.runs.ray_worker) both record through this.
    """
    if status != "cancelled":
        store.finish(lease, status, reason if status == "failed" else None)  # type: ignore[arg-type]
    elif cancelled:
        store.finish(lease, "cancelled")
    elif lost:
        return "its lease was lost (another worker has it); nothing recorded"
    else:
        store.release(lease, stopped_because)
    return f"{status} ({reason})"


def train_and_record(store: RunStore, run: RunRecord, lease: str, sink: StoreSink, run_dir: Path,
                     retry_delay: float) -> int:
    """Train ``run`` into ``run_dir`` (resuming from its checkpoint) through ``sink`` and record
    the outcome in ``store``; returns the exit code.  ``store`` is the run store here, or a Ray
    task's stand-in that sends the writes to its driver (asam_core.runs.ray_task)."""
    from asam_core.train.loop import train  # torch: imported here, in the run's own process

    try:
        result = train(run.config, sink, run_dir, resume=True, run_key=run.key)
        sink.flush()
    except OSError as err:
        if not is_transient(err):
            raise
        reason = transient_reason(err)
        _say(reason)
        store.release(lease, reason, delay=retry_delay)
        return EXIT_TRANSIENT
    stopped_because = "its worker stopped" if sink.stop_requested else "its worker died"
    _say(f"run {run.id}: " + record_outcome(store, lease, result.status, result.reason, sink.cancelled, sink.lost,
                                            stopped_because))
    return EXIT_RECORDED


def train_leased_run(store: RunStore, lease: str, retry_delay: float) -> int:
    """Train the run held by ``lease`` and record its outcome; returns the exit code."""
    run = store.leased_run(lease)
    if run is None:
        _say("the run's lease was lost before it started; nothing to do")
        return EXIT_RECORDED
    sink = StoreSink(store, lease)
    signal.signal(signal.SIGTERM, lambda *_: setattr(sink, "stop_requested", True))
    return train_and_record(store, run, lease, sink, store.run_dir(run.key), retry_delay)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m asam_core.runs.child", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--lease", required=True)
    parser.add_argument("--retry-delay", type=float, default=30.0)
    args = parser.parse_args(argv)
    try:
        return train_leased_run(RunStore(args.root, create=False), args.lease, args.retry_delay)
    except StoreError as err:
        _say(str(err))
        return EXIT_TRANSIENT if "disk is full" in str(err) or "read-only" in str(err) else EXIT_STORE


if __name__ == "__main__":
    sys.exit(main())
