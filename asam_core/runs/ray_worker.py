"""The Ray backend: the worker as a Ray driver (``python -m asam_core.runs worker --ray ADDRESS``).

``RayWorker`` is the local worker (asam_core.runs.worker: the same loop over the same run store,
leases, heartbeats, hang watchdog, stop escalation and requeue rules) except that a claimed run
becomes a Ray task (asam_core.runs.ray_task.train_events) instead of a child process:

- resources: each task asks for ``cpus_per_run`` CPUs and, unless its config says device cpu,
  ``gpus_per_run`` GPUs (fractional: 0.25 lets four small runs share a GPU; default 0.25 on a
  cluster with GPUs, else 0).  Runs are claimed while the cluster's total CPUs and GPUs hold one
  more, re-read every poll (nodes may join or leave), not up to ``--slots``;
- events: ``RayRun`` makes the task look like a process to the Worker; its ``poll()`` takes the
  task's events and replays them on the store under the run's lease (the pid and node for the
  "ran on" column, step losses, metrics, artifacts, the outcome).  Between polls the driver waits
  on the tasks (``ray.wait``), so an event is taken within milliseconds;
- stopping: a cancel request or a lost lease cancels the task at once (``ray.cancel``, which stops
  the training thread before its next step), ``grace`` s later again, after ``2 * grace`` s with
  ``force=True`` (its process is killed); the driver then records the outcome as the local run
  process would (``child.record_outcome``: cancelled, nothing when the lease was lost, or back in
  the queue when the worker is stopping);
- faults: tasks run with ``max_retries=0`` and ``max_calls=1`` (a fresh process per run, like the
  local child).  A task that dies (kill -9, out of memory, its node lost) ends with a Ray error;
  the run is requeued or failed by the store's rules (``requeue_or_fail``, max_attempts) with that
  error as the reason, and resumes from its last checkpoint on whichever node takes it next;
- storage: checkpoints go to ``<storage>/<run key>/``, a folder every node can reach at the same
  path (default: the store's own checkpoints folder, which serves a single machine).  With
  another folder the driver applies the store's retention rule there when a run is done.

The project must be importable on every node (the same checkout path, or installed); the driver
puts its own checkout on the tasks' PYTHONPATH.  A task's output (one line per outcome or
problem) reaches the driver's output through Ray's log forwarding (the app's ``worker.log``),
not a run.log in the run's folder.  ``connect`` joins the cluster, with one line when
Ray is missing or nothing answers at the address.
"""
from __future__ import annotations

import logging
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import RayError, RayTaskError, TaskCancelledError

from asam_core.runs.child import EXIT_RECORDED, record_outcome
from asam_core.runs.ray_task import Event, train_events
from asam_core.runs.store import RUN_LOG_NAME, Claim, RunStore, StoreError
from asam_core.runs.worker import HANG_AFTER_S, PROJECT_DIR, Worker, _Job

log = logging.getLogger("asam_core.runs.worker")
CONNECT_TIMEOUT_S = 5.0
DEFAULT_SHARED_GPU = 0.25
EXIT_DIED = 1
REPLAYED = frozenset({"set_run_pid", "record_steps", "record_epoch", "record_artifacts", "finish", "release"})


class RayUnavailable(Exception):
    """No Ray cluster to drive; the message is one line saying what to do."""


def _gcs_answers(address: str) -> bool:
    """Whether something accepts connections at ``address`` ("host:port"); True for other forms
    ("auto", "ray://...") that ray.init resolves itself."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or "://" in address:
        return True
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S):
            return True
    except OSError:
        return False


def connect(address: str) -> None:
    """Join the Ray cluster at ``address`` as a driver; RayUnavailable (one line) when nothing answers."""
    if not _gcs_answers(address):
        raise RayUnavailable(f"no Ray cluster answers at {address}: start one with `ray start --head`, or check the "
                             "address (worker --ray ADDRESS, or $RAY_ADDRESS for the app)")
    try:
        ray.init(address=address, logging_level=logging.WARNING, configure_logging=False,
                 runtime_env={"env_vars": {"PYTHONPATH": str(PROJECT_DIR)}})
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RayUnavailable(f"cannot join the Ray cluster at {address}: {first}") from None


def _cancel(generator: Any, force: bool) -> None:
    try:
        ray.cancel(generator, force=force)
    except (RayError, ValueError) as err:  # the task ended meanwhile
        log.debug("cancel: %s", err)


class RayRun:
    """One run's Ray task, as the Worker sees a run process (``poll``, ``send_signal``, ``kill``,
    ``wait``, ``pid``, ``returncode``); see the module docstring."""

    def __init__(self, store: RunStore, claim: Claim, generator: Any, storage: Path) -> None:
        self.store, self.claim, self.generator, self.storage = store, claim, generator, storage
        self.pid: int | None = None
        self.returncode: int | None = None
        self.failure: str | None = None  # how the task died, for the requeue reason
        self.killed = False
        self.pending: Event | None = None  # taken from the task, not yet written (the store failed)

    @property
    def lease(self) -> str:
        return self.claim.lease

    def poll(self) -> int | None:
        """Replay the events the task has sent; the exit code once it ended and its outcome is recorded.
        A store fault propagates (the event is kept and written at the next poll)."""
        while self.returncode is None:
            if self.pending is None:
                ready, _ = ray.wait([self.generator], timeout=0)
                if not ready:
                    break
                self.pending = self._take()
            if self.pending is not None:
                self._replay(*self.pending)
                self.pending = None
        return self.returncode

    def _take(self) -> Event | None:
        """The task's next event; None when it ended (``returncode`` then set, the outcome recorded)."""
        try:
            ref = next(self.generator)
            return ray.get(ref)
        except StopIteration:
            self._stopped()
        except (TaskCancelledError, RayTaskError) as err:
            if self.killed:
                self.returncode, self.failure = -signal.SIGKILL, "its Ray task was killed (ray.cancel force=True)"
            elif isinstance(err, TaskCancelledError) or isinstance(err.cause, TaskCancelledError):
                self._stopped()
            else:
                self._died(f"its Ray task failed: {type(err.cause).__name__}: {err.cause}")
        except RayError as err:  # the task's process or node died
            self._died(f"its Ray task died ({type(err).__name__}): {str(err).strip().splitlines()[0]}")
        return None

    def _died(self, failure: str) -> None:
        self.returncode, self.failure = EXIT_DIED, failure

    def _stopped(self) -> None:
        """The task stopped on the driver's request: record it as the local run process would."""
        cancel = self.store.cancel_requested(self.lease)
        record_outcome(self.store, self.lease, "cancelled", "stopped on request", bool(cancel), cancel is None,
                       "its worker stopped")
        self.returncode = EXIT_RECORDED

    def _replay(self, method: str, args: tuple[Any, ...]) -> None:
        if method not in REPLAYED:
            raise ValueError(f"a Ray task sent an unknown store write {method!r}")
        if method == "set_run_pid":
            self.pid = args[0]
        getattr(self.store, method)(self.lease, *args)
        if method in ("finish", "release"):
            self.returncode = EXIT_RECORDED
            folder = self.storage / self.claim.run.key
            if method == "finish" and args[0] == "done" and folder != self.store.run_dir(self.claim.run.key).resolve():
                self.store.retain(folder)

    def terminate(self) -> None:
        """Cancel the task: its training stops before the next step."""
        _cancel(self.generator, force=False)

    def send_signal(self, sig: int) -> None:
        self.kill() if sig == signal.SIGKILL else self.terminate()

    def kill(self) -> None:
        """Cancel the task by killing its process."""
        self.killed = True
        _cancel(self.generator, force=True)

    def wait(self, timeout: float | None = None) -> int:
        """Replay events until the task ended (subprocess.TimeoutExpired after ``timeout`` s).  When
        the store fails meanwhile the task is killed and nothing more is written."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                if self.poll() is not None:
                    return self.returncode
            except StoreError as err:
                self.failure = str(err)
                self.kill()
                self.returncode = EXIT_DIED
                return self.returncode
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"Ray task of run {self.claim.run.id}", timeout)
            ray.wait([self.generator], timeout=0.1)


class RayWorker(Worker):
    """A Worker whose runs are Ray tasks on the cluster ``connect`` joined (see the module docstring).
    ``storage`` is the checkpoints folder every node reaches (default: the store's)."""

    def __init__(self, store: RunStore, storage: Path | None = None, cpus_per_run: float = 1.0,
                 gpus_per_run: float | None = None, **kwargs: Any) -> None:
        super().__init__(store, **kwargs)
        self.storage = (Path(storage) if storage is not None else store.root / "checkpoints").resolve()
        self.cpus_per_run = cpus_per_run
        if gpus_per_run is None:
            gpus_per_run = DEFAULT_SHARED_GPU if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
        self.gpus_per_run = gpus_per_run
        self.remote = ray.remote(max_calls=1, max_retries=0)(train_events)
        self.no_room_said = False

    def capacity(self) -> int:
        """Runs the cluster holds at once: its CPUs / cpus_per_run (and GPUs / gpus_per_run)."""
        total = ray.cluster_resources()
        fits = [total.get("CPU", 0.0) / self.cpus_per_run]
        if self.gpus_per_run:
            fits.append(total.get("GPU", 0.0) / self.gpus_per_run)
        return int(min(fits) + 1e-9)

    def run(self) -> None:
        log.info("worker %d on %s: a Ray driver (%g CPU, %g GPU per run), checkpoints in %s", self.pid, self.host,
                 self.cpus_per_run, self.gpus_per_run, self.storage)
        super().run()

    def _fill_slots(self) -> bool:
        self.slots = self.capacity()
        if self.slots == 0 and not self.no_room_said:
            log.warning("the Ray cluster has no room for a run (%g CPU, %g GPU each; it has %s): waiting",
                        self.cpus_per_run, self.gpus_per_run, ray.cluster_resources())
        self.no_room_said = self.slots == 0
        return super()._fill_slots()

    def _start(self, claim: Claim) -> None:
        run = claim.run
        gpus = 0.0 if run.config.device == "cpu" else self.gpus_per_run
        generator = self.remote.options(
            num_cpus=self.cpus_per_run, num_gpus=gpus,
            _generator_backpressure_num_objects=1, name=f"run {run.id}",
        ).remote(run, str(self.storage / run.key), self.retry_delay)
        log_path = self.store.run_dir(run.key) / RUN_LOG_NAME
        offset = log_path.stat().st_size if log_path.exists() else 0
        self.jobs.append(_Job(claim, RayRun(self.store, claim, generator, self.storage), log_path, offset))
        log.info("run %d: submitted as a Ray task (attempt %d, %g CPU, %g GPU)", run.id, run.attempts,
                 self.cpus_per_run, gpus)

    def _ask_to_stop(self, job: _Job) -> None:
        if job.stop_asked is None:
            job.process.terminate()
        super()._ask_to_stop(job)

    def _exit_text(self, job: _Job) -> str:
        return job.process.failure or super()._exit_text(job)

    def _idle(self, seconds: float) -> None:
        """Wait on the tasks until the next poll, replaying each event as it arrives."""
        deadline = time.monotonic() + seconds
        while not self.shutdown.is_set() and (remaining := deadline - time.monotonic()) > 0:
            running = [job for job in self.jobs if job.process.returncode is None]
            if not running:
                self.shutdown.wait(remaining)
                return
            ready, _ = ray.wait([job.process.generator for job in running], num_returns=1,
                                timeout=min(remaining, self.poll))
            try:
                for job in running:
                    if any(job.process.generator is generator for generator in ready):
                        job.process.poll()
            except StoreError:
                return  # the next poll reports it and tries again


def run_ray_worker(store: RunStore, address: str, storage: Path | None = None, cpus_per_run: float = 1.0,
                   gpus_per_run: float | None = None, exit_when_idle: bool = False, poll: float = 0.5,
                   hang_after: float = HANG_AFTER_S) -> str | None:
    """Join the cluster at ``address`` and run a RayWorker until SIGTERM/SIGINT (or until idle with
    ``exit_when_idle``); returns why it stopped on its own (its database is gone), else None.
    RayUnavailable when no cluster answers."""
    connect(address)
    try:
        worker = RayWorker(store, storage, cpus_per_run, gpus_per_run, poll=poll, exit_when_idle=exit_when_idle,
                           hang_after=hang_after)
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: worker.shutdown.set())
        worker.run()
        return worker.stopped_because
    finally:
        ray.shutdown()
