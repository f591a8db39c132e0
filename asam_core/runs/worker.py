"""The worker: a process that claims queued runs from the store and trains them.

Up to ``slots`` runs train at once, each in its own thread calling ``train()`` with a sink that
writes to the store.  Runs start one at a time: the next is claimed only once the previous one
has reached its first step, because a run's start (seeding torch's global generator, building
the model, restoring RNG states from a checkpoint) must not interleave with another's, or runs
of one seed would not start from the same initial weights.  The main thread polls every ``poll`` seconds: it refreshes the worker's
and its runs' heartbeats, turns a cancel request (or a lost lease) into the run's stop flag,
which ``should_stop()`` reads on every step, reaps finished runs, requeues runs of dead
workers, and claims new runs while slots are free.  On start it requeues orphans first, so a
run whose worker was killed resumes from its last checkpoint.  On SIGTERM/SIGINT the runs in
progress stop at their next step and go back to the queue.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any

from asam_core.runs.store import METRIC_FIELDS, STALE_AFTER_S, Claim, RunStore, this_host
from asam_core.train.loop import train

log = logging.getLogger("asam_core.runs.worker")


class StoreSink:
    """TrainSink writing one leased run to the store.

    Step losses are buffered and written at most every ``flush_every`` seconds (and before each
    epoch's metrics); a write that finds the lease gone sets the stop flag.  ``started`` is set
    at the first ``should_stop()``, i.e. when the run has finished starting.
    """

    def __init__(self, store: RunStore, lease: str, flush_every: float = 1.0) -> None:
        self.store, self.lease, self.flush_every = store, lease, flush_every
        self.stop, self.started = threading.Event(), threading.Event()
        self.pending: list[tuple[int, float]] = []
        self.total_steps = 0
        self.last_flush = time.monotonic()

    def on_step(self, step: int, total_steps: int, train_loss: float) -> None:
        self.pending.append((step, float(train_loss)))
        self.total_steps = total_steps
        if time.monotonic() - self.last_flush >= self.flush_every:
            self.flush()

    def on_epoch(self, metrics: Any) -> None:
        self.flush()
        if not self.store.record_epoch(self.lease, {f: getattr(metrics, f) for f in METRIC_FIELDS}):
            self.stop.set()

    def should_stop(self) -> bool:
        self.started.set()
        return self.stop.is_set()

    def flush(self) -> None:
        self.last_flush = time.monotonic()
        if self.pending and not self.store.record_steps(self.lease, self.pending, self.total_steps):
            self.stop.set()
        self.pending = []


@dataclass
class _Job:
    claim: Claim
    sink: StoreSink
    cancelled: bool = False
    lost: bool = False
    status: str = "failed"
    reason: str | None = None
    thread: threading.Thread | None = None


class Worker:
    """Claims and trains runs of ``store``; ``run()`` returns when told to stop (or idle, if asked)."""

    def __init__(self, store: RunStore, slots: int = 1, poll: float = 0.5, exit_when_idle: bool = False,
                 stale_after: float = STALE_AFTER_S, orphan_check_every: float = 5.0) -> None:
        if slots < 1:
            raise ValueError(f"slots must be >= 1, got {slots}")
        self.store, self.slots, self.poll = store, slots, poll
        self.exit_when_idle, self.stale_after, self.orphan_check_every = exit_when_idle, stale_after, orphan_check_every
        self.pid, self.host = os.getpid(), this_host()
        self.jobs: list[_Job] = []
        self.shutdown = threading.Event()

    def run(self) -> None:
        self.store.register_worker(self.pid, self.host)
        log.info("worker %d on %s: %d slot(s), runs in %s", self.pid, self.host, self.slots, self.store.root)
        last_orphan_check = -float("inf")
        try:
            while not self.shutdown.is_set():
                self._heartbeat()
                self._reap()
                if time.monotonic() - last_orphan_check >= self.orphan_check_every:
                    last_orphan_check = time.monotonic()
                    for run_id in self.store.requeue_orphans(self.host, self.stale_after):
                        log.info("run %d: its worker is gone, requeued", run_id)
                idle = self._fill_slots()
                if idle and self.exit_when_idle:
                    break
                self.shutdown.wait(self.poll)
        finally:
            for job in self.jobs:
                job.sink.stop.set()
            for job in self.jobs:
                job.thread.join()
            self._reap()
            self.store.unregister_worker(self.pid, self.host)
            log.info("worker %d: stopped", self.pid)

    def _heartbeat(self) -> None:
        self.store.register_worker(self.pid, self.host)
        held = self.store.heartbeat(job.claim.lease for job in self.jobs)
        for job in self.jobs:
            if job.claim.lease not in held:
                job.lost = True
                job.sink.stop.set()
            elif held[job.claim.lease]:
                job.cancelled = True
                job.sink.stop.set()

    def _fill_slots(self) -> bool:
        """Claim a run if a slot is free and no run is starting; True when nothing runs and nothing is queued."""
        starting = any(job.thread.is_alive() and not job.sink.started.is_set() for job in self.jobs)
        if len(self.jobs) < self.slots and not starting:
            claim = self.store.claim(self.pid, self.host)
            if claim is None:
                return not self.jobs
            job = _Job(claim, StoreSink(self.store, claim.lease))
            job.thread = threading.Thread(target=self._train, args=(job,), name=f"run-{claim.run.id}", daemon=True)
            self.jobs.append(job)
            log.info("run %d: claimed (attempt %d)", claim.run.id, claim.run.attempts)
            job.thread.start()
        return False

    def _train(self, job: _Job) -> None:
        run, sink = job.claim.run, job.sink
        try:
            result = train(run.config, sink, self.store.checkpoint_dir(run.id), resume=True)
            job.status, job.reason = result.status, result.reason
            sink.flush()
        except Exception as err:  # a failed run is recorded, the worker goes on
            log.error("run %d failed:\n%s", run.id, traceback.format_exc())
            job.status, job.reason = "failed", f"{type(err).__name__}: {err}"

    def _reap(self) -> None:
        """Record the outcome of runs whose thread has ended."""
        for job in [job for job in self.jobs if not job.thread.is_alive()]:
            self.jobs.remove(job)
            run_id, lease = job.claim.run.id, job.claim.lease
            if job.lost:
                log.warning("run %d: lease lost to another worker, nothing recorded", run_id)
            elif job.status == "cancelled" and not job.cancelled:
                self.store.release(lease)
                log.info("run %d: worker stopping, back in the queue", run_id)
            else:
                self.store.finish(lease, job.status, job.reason if job.status == "failed" else None)
                log.info("run %d: %s%s", run_id, job.status, f" ({job.reason})" if job.reason else "")


def run_worker(store: RunStore, slots: int = 1, exit_when_idle: bool = False, poll: float = 0.5) -> None:
    """Run a worker in this process until SIGTERM/SIGINT (or until idle with ``exit_when_idle``)."""
    worker = Worker(store, slots=slots, poll=poll, exit_when_idle=exit_when_idle)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: worker.shutdown.set())
    worker.run()
