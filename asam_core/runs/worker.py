"""The worker: a supervisor process that claims queued runs and trains each in its own process.

Every ``poll`` seconds the supervisor (which never imports torch):

- checks that its database is still the file it opened; deleted or replaced -> it ends its runs'
  processes and stops with one line (``StoreGone``);
- refreshes its own and its runs' heartbeats; a cancel request (or a lost lease) is passed on by
  the store, which the run's process reads before every step; a process that has not stopped
  ``grace`` seconds later gets SIGTERM, then SIGKILL after another ``grace``;
- watches every run's progress: a run whose step and epoch have not moved in the store for
  ``hang_after`` seconds (default 30 min; before its first step, at least STARTUP_S) is hung; its
  process is killed and the run requeued, or failed after max_attempts, with "made no progress for
  N s (hung?)";
- reaps processes that ended: one that recorded its outcome needs nothing; one that died (kill -9,
  out of memory, segfault, an exception) is requeued with the reason ("its process was killed by
  signal 9 (SIGKILL) - out of memory?", exit code, last lines of its log) or failed after max_attempts
  (``RunStore.requeue_or_fail``); one that hit a transient fault is released without using up an
  attempt and held back ``retry_delay`` seconds;
- requeues runs of dead workers (also on start), and claims runs while slots are free, starting
  ``python -m asam_core.runs.child`` for each (``child_command``) with its output in the run's
  ``run.log``.

A store fault (disk full, locked database) is logged as one line and retried at the next poll.
On SIGTERM/SIGINT the runs' processes get SIGTERM and put their runs back in the queue.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Sequence

from asam_core.runs import reports
from asam_core.runs.child import EXIT_RECORDED, EXIT_TRANSIENT
from asam_core.runs.store import RUN_LOG_NAME, STALE_AFTER_S, Claim, RunStore, StoreError, StoreGone, this_host

log = logging.getLogger("asam_core.runs.worker")
HANG_AFTER_S = 1800.0  # no new step or epoch for this long: the run is hung (a download or a flatness
                       # measurement of a large model on a CPU takes minutes, not half an hour)
STARTUP_S = 600.0  # before its first step a run may take this long (torch import, data download, resume)
PROJECT_DIR = Path(__file__).resolve().parents[2]
CHILD_COMMAND = (sys.executable, "-m", "asam_core.runs.child")
LOG_TAIL_LINES = 2
REASON_CHARS = 300


def exit_reason(returncode: int) -> str:
    """How a process ended, in words: "was killed by signal 9 (SIGKILL) - out of memory?", "exited with code 1"."""
    if returncode >= 0:
        return f"exited with code {returncode}"
    try:
        name = f" ({signal.Signals(-returncode).name})"
    except ValueError:
        name = ""
    hint = " - out of memory?" if -returncode == signal.SIGKILL else ""
    return f"was killed by signal {-returncode}{name}{hint}"


def log_tail(path: Path, offset: int, lines: int = LOG_TAIL_LINES) -> str:
    """The last non-empty ``lines`` lines written to ``path`` after byte ``offset``, joined by " | "."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            text = f.read()[-8192:].decode(errors="replace")
    except OSError:
        return ""
    return " | ".join([line.strip() for line in text.splitlines() if line.strip()][-lines:])


class RunProcess(Protocol):
    """What the supervisor needs of a run's process: a subprocess.Popen, or a Ray task seen as one
    (asam_core.runs.ray_worker.RayRun)."""

    pid: int | None
    returncode: int | None

    def poll(self) -> int | None: ...

    def send_signal(self, sig: int) -> None: ...

    def kill(self) -> None: ...

    def wait(self, timeout: float | None = None) -> int: ...


@dataclass
class _Job:
    """One run's process, as the supervisor sees it."""

    claim: Claim
    process: RunProcess
    log_path: Path
    log_offset: int
    stop_asked: float | None = None  # monotonic time the run was asked to stop (cancel, lost lease, shutdown)
    lost: bool = False
    outcome_pending: bool = False
    signals: list[int] = field(default_factory=list)
    progress: tuple[int, int] | None = None  # the run's (step, epoch) as last seen in the store
    progress_at: float = field(default_factory=time.monotonic)  # when it last changed
    moved: bool = False  # whether it changed since this process started (its start-up is over)
    hung: str | None = None  # why the watchdog ended the process

    @property
    def run_id(self) -> int:
        return self.claim.run.id


class Worker:
    """Claims runs of ``store`` and supervises one process per run; ``run()`` returns when told to
    stop (``shutdown``), when the database is gone, or when idle with ``exit_when_idle``."""

    def __init__(self, store: RunStore, slots: int = 1, poll: float = 0.5, exit_when_idle: bool = False,
                 stale_after: float = STALE_AFTER_S, orphan_check_every: float = 5.0, grace: float = 10.0,
                 retry_delay: float = 30.0, child_command: Sequence[str] = CHILD_COMMAND,
                 hang_after: float = HANG_AFTER_S) -> None:
        if slots < 1:
            raise ValueError(f"slots must be >= 1, got {slots}")
        self.store, self.slots, self.poll = store, slots, poll
        self.exit_when_idle, self.stale_after, self.orphan_check_every = exit_when_idle, stale_after, orphan_check_every
        self.grace, self.retry_delay, self.child_command = grace, retry_delay, tuple(child_command)
        self.hang_after = hang_after
        self.pid, self.host = os.getpid(), this_host()
        self.jobs: list[_Job] = []
        self.shutdown = threading.Event()
        self.stopped_because: str | None = None

    def run(self) -> None:
        log.info("worker %d on %s: %d slot(s), runs in %s", self.pid, self.host, self.slots, self.store.root)
        last_orphan_check, last_error = -float("inf"), None
        try:
            while not self.shutdown.is_set():
                try:
                    self.store.check_same_file()
                    self.store.register_worker(self.pid, self.host)
                    self._heartbeat()
                    self._watch()
                    self._reap()
                    if time.monotonic() - last_orphan_check >= self.orphan_check_every:
                        last_orphan_check = time.monotonic()
                        for run_id in self.store.requeue_orphans(self.host, self.stale_after):
                            log.info("run %d: its worker is gone; requeued (or failed after max attempts)", run_id)
                    if self._fill_slots() and self.exit_when_idle:
                        break
                except StoreGone as err:
                    self.stopped_because = f"{err}: stopping"
                    log.error("worker %d: %s", self.pid, self.stopped_because)
                    break
                except StoreError as err:
                    if str(err) != last_error:  # once per fault, not once per poll
                        log.error("worker %d: %s (retrying)", self.pid, err)
                    last_error = str(err)
                else:
                    if last_error is not None:
                        log.info("worker %d: the run store works again", self.pid)
                    last_error = None
                self._idle(self.poll)
        finally:
            self._stop_all()
            if self.stopped_because is None:
                try:
                    self.store.unregister_worker(self.pid, self.host)
                except StoreError as err:
                    log.error("worker %d: %s", self.pid, err)
            log.info("worker %d: stopped", self.pid)

    def _idle(self, seconds: float) -> None:
        """Wait between polls (returns early on shutdown)."""
        self.shutdown.wait(seconds)

    def _exit_text(self, job: _Job) -> str:
        """How a run's process ended, for the reason stored with a requeued run."""
        return f"its process {exit_reason(job.process.returncode)}"

    def _heartbeat(self) -> None:
        live = [job for job in self.jobs if not job.outcome_pending and job.process.poll() is None]
        held = self.store.heartbeat(job.claim.lease for job in live)
        for job in live:
            if job.claim.lease not in held:
                job.lost = True
                self._ask_to_stop(job)
            elif held[job.claim.lease]:
                self._ask_to_stop(job)
            self._escalate(job)

    def _watch(self) -> None:
        """The watchdog: a run whose step and epoch have not moved in the store for ``hang_after``
        seconds is hung (deadlocked, stuck in a system call): its process is killed, and the run
        requeued, or failed after max_attempts, with that reason."""
        now = time.monotonic()
        for job in self.jobs:
            if job.stop_asked is not None or job.hung or job.outcome_pending or job.process.poll() is not None:
                continue
            run = self.store.get(job.run_id)
            if (run.step, run.epoch) != job.progress:
                job.moved = job.progress is not None
                job.progress, job.progress_at = (run.step, run.epoch), now
            elif now - job.progress_at >= (self.hang_after if job.moved else max(self.hang_after, STARTUP_S)):
                job.hung = f"made no progress for {now - job.progress_at:.0f} s (hung?); its process was killed"
                log.warning("run %d: %s", job.run_id, job.hung)
                try:
                    job.process.kill()
                except ProcessLookupError:
                    pass

    def _ask_to_stop(self, job: _Job) -> None:
        if job.stop_asked is None:
            job.stop_asked = time.monotonic()

    def _escalate(self, job: _Job) -> None:
        """SIGTERM a run's process ``grace`` s after it was asked to stop, SIGKILL ``grace`` s later."""
        if job.stop_asked is None or job.process.poll() is not None:
            return
        waited = time.monotonic() - job.stop_asked
        if waited >= 2 * self.grace and signal.SIGKILL not in job.signals:
            self._signal(job, signal.SIGKILL)
        elif waited >= self.grace and not job.signals:
            self._signal(job, signal.SIGTERM)

    def _signal(self, job: _Job, sig: int) -> None:
        job.signals.append(sig)
        log.info("run %d: its process did not stop; sending %s", job.run_id, signal.Signals(sig).name)
        try:
            job.process.send_signal(sig)
        except ProcessLookupError:
            pass

    def _fill_slots(self) -> bool:
        """Claim runs while a slot is free; True when nothing runs here and nothing is queued."""
        while len(self.jobs) < self.slots:
            claim = self.store.claim(self.pid, self.host)
            if claim is None:
                break
            self._start(claim)
        return not self.jobs and self.store.counts()["queued"] == 0

    def _start(self, claim: Claim) -> None:
        run = claim.run
        folder = self.store.run_dir(run.key)
        log_path = folder / RUN_LOG_NAME
        try:
            folder.mkdir(parents=True, exist_ok=True)
            offset = log_path.stat().st_size if log_path.exists() else 0
            with open(log_path, "ab") as out:
                process = subprocess.Popen(
                    [*self.child_command, "--root", str(self.store.root.resolve()), "--lease", claim.lease,
                     "--retry-delay", str(self.retry_delay)],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=_child_env(),
                    start_new_session=True)  # a Ctrl-C meant for the worker reaches it only through the worker
        except OSError as err:
            reason = f"could not start its process ({err.strerror}: {err.filename or folder})"
            self.store.release(claim.lease, reason, delay=self.retry_delay)
            log.error("run %d: %s; back in the queue", run.id, reason)
            return
        self.jobs.append(_Job(claim, process, log_path, offset))
        self.store.set_run_pid(claim.lease, process.pid)
        log.info("run %d: started in process %d (attempt %d)", run.id, process.pid, run.attempts)

    def _reap(self) -> None:
        """Record the outcome of runs whose process has ended (retried next poll if the store fails)."""
        for job in [job for job in self.jobs if job.process.poll() is not None]:
            job.outcome_pending = True
            code, lease = job.process.returncode, job.claim.lease
            if code == EXIT_RECORDED and self.store.leased_run(lease) is None:
                run = self.store.get(job.run_id)
                log.info("run %d: %s", job.run_id, reports.status_text(run) + (
                    f" ({run.error})" if run.error and run.status != "queued" else ""))
            elif job.lost:
                log.warning("run %d: lease lost to another worker, nothing recorded", job.run_id)
            elif code == EXIT_TRANSIENT:
                reason = log_tail(job.log_path, job.log_offset, 1) or "a transient fault"
                if self.store.release(lease, reason, delay=self.retry_delay):
                    log.warning("run %d: %s; back in the queue", job.run_id, reason)
            else:
                tail = log_tail(job.log_path, job.log_offset)
                reason = (job.hung or self._exit_text(job)) + (f"; last output: {tail}" if tail else "")
                status = self.store.requeue_or_fail(lease, reason[:REASON_CHARS])
                log.warning("run %d: %s -> %s", job.run_id, reason[:REASON_CHARS], status)
            self.jobs.remove(job)

    def _stop_all(self) -> None:
        """SIGTERM every run's process (each puts its run back), SIGKILL after ``grace``, then reap."""
        for job in self.jobs:
            if job.process.poll() is None:
                job.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        for job in self.jobs:
            try:
                job.process.wait(timeout=max(deadline - time.monotonic(), 0.0))
            except subprocess.TimeoutExpired:
                job.process.kill()
                job.process.wait()
        if self.stopped_because is not None:
            return  # the database is gone: nothing to record
        for job in self.jobs:
            if job.process.returncode != EXIT_RECORDED:
                try:
                    self.store.release(job.claim.lease, "its worker stopped")
                except StoreError as err:
                    log.error("run %d: %s", job.run_id, err)
        self.jobs.clear()


def _child_env() -> dict[str, str]:
    """The environment of a run's process: this one, with the project importable from any cwd."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": str(PROJECT_DIR) + (os.pathsep + path if path else "")}


def run_worker(store: RunStore, slots: int = 1, exit_when_idle: bool = False, poll: float = 0.5,
               hang_after: float = HANG_AFTER_S) -> str | None:
    """Run a worker in this process until SIGTERM/SIGINT (or until idle with ``exit_when_idle``);
    returns why it stopped on its own (its database is gone), else None."""
    worker = Worker(store, slots=slots, poll=poll, exit_when_idle=exit_when_idle, hang_after=hang_after)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: worker.shutdown.set())
    worker.run()
    return worker.stopped_because
