"""Fault injection, for real: real run processes killed with SIGKILL, real SQLite files corrupted or
deleted, a real full filesystem.  Tiny runs (small_cnn on 30 images) of the real worker and CLI.

- kill -9 of a run's process at 10 moments spread over the run (among them during the checkpoint
  write and between the metrics row and its checkpoint): every epoch stored once, final metrics
  bit-identical to an uninterrupted run;
- a run that dies every time fails after max_attempts, a row that fails validation is quarantined,
  and the healthy run behind them finishes;
- an empty, truncated or foreign checkpoint: a clear reason, and ``retry --fresh`` finishes the run;
- a corrupt database, a root that is a file, a read-only folder: one line from every command;
- a full disk (a size-limited tmpfs, mounted when the tests run as root): the worker survives, no
  partial checkpoint is left, the run resumes when space returns;
- the database deleted under a running worker: the worker stops with one line.

Counts (faults injected, runs lost or duplicated, tracebacks) go to tests/artifacts/fault_counts.json.
"""
from __future__ import annotations

import gc
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest
from cifar_fixtures import write_cifar
from conftest import artifact_path, wait_for

from asam_core.runs.cli import main as cli_main
from asam_core.runs.launcher import start_worker
from asam_core.runs.store import METRIC_FIELDS, RunStore, pid_alive
from asam_core.runs.worker import Worker
from asam_core.train.checkpoint import CHECKPOINT_NAME
from asam_core.train.config import RunConfig
from asam_core.train.loop import train

pytestmark = pytest.mark.faults

ROOT = Path(__file__).resolve().parents[1]
FAULT_CHILD = (sys.executable, str(ROOT / "tests" / "fault_child.py"))
COMPARED = [f for f in METRIC_FIELDS if f != "seconds"]
COUNTS: dict[str, int] = {"faults injected": 0, "runs lost": 0, "epochs duplicated": 0, "tracebacks": 0}


@pytest.fixture(scope="module", autouse=True)
def report_counts() -> Iterator[None]:
    yield
    Path(artifact_path("fault_counts.json")).write_text(json.dumps(COUNTS, indent=2) + "\n")
    print(f"\nfault injection: {COUNTS}")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cifar")
    write_cifar(root, "cifar10", per_class=3, test_per_class=1)
    return root


def tiny(data_dir: Path, **overrides) -> RunConfig:
    """small_cnn on 30 images, batch 10: 3 steps per epoch."""
    options = dict(model="small_cnn", optimizer="sam", data_dir=str(data_dir), download=False, device="cpu",
                   batch_size=10, log_every_steps=1, epochs=4)
    return RunConfig(**{**options, **overrides})


class Plan:
    """The fault plan fault_child.py follows, and the files it answers with."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / "plan.json"
        self.steps: dict[str, dict[str, list]] = {}
        self.path.write_text("{}")

    def set(self, run_id: int, attempt: int | str, moment: str, arg: int | None = None) -> None:
        self.steps.setdefault(str(run_id), {})[str(attempt)] = [moment] + ([arg] if arg is not None else [])
        self.path.write_text(json.dumps(self.steps))

    def reached(self, run_id: int, attempt: int, timeout: float = 120.0) -> int:
        """Wait until the run's process for ``attempt`` stands at its moment; returns its pid."""
        marker = self.folder / f"reached-{run_id}-{attempt}"
        wait_for(marker.exists, f"run {run_id} attempt {attempt} at its fault point", timeout)
        wait_for(lambda: marker.read_text() != "", "the marker's pid")
        return int(marker.read_text())

    def go(self, run_id: int, attempt: int) -> None:
        (self.folder / f"go-{run_id}-{attempt}").write_text("")


@pytest.fixture
def plan(tmp_path, monkeypatch) -> Plan:
    monkeypatch.setenv("ASAM_LAB_FAULT_PLAN", str(tmp_path / "plan" / "plan.json"))
    (tmp_path / "plan").mkdir()
    return Plan(tmp_path / "plan")


class WorkerThread:
    """A real supervisor in a thread of the test process, starting fault_child.py per run."""

    def __init__(self, store: RunStore, caplog, **options) -> None:
        self.caplog = caplog
        self.worker = Worker(store, poll=0.05, orphan_check_every=0.5, grace=2.0, child_command=FAULT_CHILD, **options)
        self.thread = threading.Thread(target=self.worker.run, daemon=True)
        self.thread.start()

    def log_text(self) -> str:
        return self.caplog.text

    def stop(self) -> None:
        self.worker.shutdown.set()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()


@pytest.fixture
def workers(caplog) -> Iterator[Callable[..., WorkerThread]]:
    started: list[WorkerThread] = []
    caplog.set_level("INFO", logger="asam_core.runs.worker")

    def start(store: RunStore, **options) -> WorkerThread:
        started.append(WorkerThread(store, caplog, **options))
        return started[-1]

    yield start
    for worker in started:
        worker.stop()
    tracebacks = caplog.text.count("Traceback")
    COUNTS["tracebacks"] += tracebacks
    assert tracebacks == 0, caplog.text


def run_logs(store: RunStore) -> str:
    return "".join(p.read_text(errors="replace") for p in (store.root / "checkpoints").glob("*/run.log"))


def stored_metrics(store: RunStore, run_id: int) -> list[dict]:
    return [{f: m[f] for f in COMPARED} for m in store.metrics([run_id])]


def count_outcome(store: RunStore, run_id: int, epochs: int) -> None:
    rows = store.metrics([run_id])
    COUNTS["epochs duplicated"] += len(rows) - len({m["epoch"] for m in rows})
    COUNTS["runs lost"] += store.get(run_id).status != "done" or len(rows) != epochs


@pytest.fixture(scope="module")
def reference(data_dir, tmp_path_factory) -> list[dict]:
    """The metrics of the 4-epoch run trained without faults by a worker (same code path)."""
    store = RunStore(tmp_path_factory.mktemp("reference") / "runs")
    run_id = store.submit(tiny(data_dir), "ada")
    Worker(store, poll=0.05, exit_when_idle=True).run()
    assert store.get(run_id).status == "done"
    return stored_metrics(store, run_id)


KILL_POINTS = [  # (moment, arg): the 10 kills of one run, in order; progress survives in checkpoints
    ("start", None), ("step", 2), ("recorded", 1), ("writing", 1), ("checkpointed", 1),
    ("step", 2), ("writing", 2), ("recorded", 2), ("checkpointed", 3), ("finishing", None),
]


def test_kill_9_at_ten_moments_stores_every_epoch_once_and_ends_bit_identical(tmp_path, data_dir, plan, workers,
                                                                                 reference):
    store = RunStore(tmp_path / "runs")
    store.set_setting("max_attempts", len(KILL_POINTS) + 1)
    run_id = store.submit(tiny(data_dir), "ada")
    for attempt, (moment, arg) in enumerate(KILL_POINTS, start=1):
        plan.set(run_id, attempt, moment, arg)
    workers(store)
    for attempt, (moment, arg) in enumerate(KILL_POINTS, start=1):
        pid = plan.reached(run_id, attempt)
        if moment == "writing":
            folder = store.run_dir(store.get(run_id).key)
            assert (folder / (CHECKPOINT_NAME + ".tmp")).stat().st_size > 0  # killed with half a file written
        os.kill(pid, signal.SIGKILL)
        COUNTS["faults injected"] += 1
        wait_for(lambda: store.get(run_id).attempts > attempt or store.get(run_id).status != "running",
                 f"run {run_id} to be requeued after kill {attempt}")
    wait_for(lambda: store.get(run_id).status == "done", "the run to finish after 10 kills")
    wait_for(lambda: not store.run_dir(store.get(run_id).key).exists(), "retention: a done run keeps no checkpoint")
    run = store.get(run_id)
    assert (run.attempts, run.error) == (len(KILL_POINTS) + 1, None)
    assert [m["epoch"] for m in store.metrics([run_id])] == [1, 2, 3, 4]
    assert stored_metrics(store, run_id) == reference  # bit-identical: every resume is the same code path
    assert [step for _, step, _ in store.step_losses([run_id])] == list(range(1, 13))
    count_outcome(store, run_id, 4)


def test_a_run_that_dies_every_time_fails_after_max_attempts_a_bad_row_is_quarantined_the_rest_train(
        tmp_path, data_dir, plan, workers):
    store = RunStore(tmp_path / "runs")
    doomed, bad, healthy = (store.submit(tiny(data_dir, epochs=1, seed=i), "ada") for i in range(3))
    plan.set(doomed, "*", "die")
    with sqlite3.connect(store.db_path) as con:
        con.execute("UPDATE runs SET config = json_set(config, '$.lr', -1) WHERE id = ?", (bad,))
    workers(store)
    wait_for(lambda: store.get(healthy).status == "done", "the healthy run behind the doomed and the bad one")
    run = store.get(doomed)
    COUNTS["faults injected"] += run.attempts + 1
    assert (run.status, run.attempts) == ("failed", 2)
    assert run.error == "its process was killed by signal 9 (SIGKILL) - out of memory? (attempt 2 of 2: giving up)"
    quarantined = store.get(bad)
    assert quarantined.status == "failed" and quarantined.error.startswith("quarantined: ")
    assert "lr: must be > 0 (got -1)" in quarantined.error and quarantined.attempts == 0
    count_outcome(store, healthy, 1)
    assert cli_main(["list", "--root", str(store.root)]) == 0


def test_cancelling_a_hung_run_ends_its_process_after_the_grace_period(tmp_path, data_dir, plan, workers):
    store = RunStore(tmp_path / "runs")
    run_id = store.submit(tiny(data_dir), "ada")
    plan.set(run_id, 1, "step", 2)  # hangs before its second step, deaf to the cancel flag and to SIGTERM
    worker = workers(store)
    pid = plan.reached(run_id, 1)
    COUNTS["faults injected"] += 1
    assert store.request_cancel(run_id) == "running"
    wait_for(lambda: store.get(run_id).status == "cancelled", "the hung run to be ended and cancelled")
    assert not pid_alive(pid) and worker.thread.is_alive()
    assert "sending SIGKILL" in worker.log_text()


def test_a_hung_run_is_ended_by_the_watchdog_and_resumes_on_its_next_attempt(tmp_path, data_dir, plan, workers,
                                                                           reference):
    store = RunStore(tmp_path / "runs")
    run_id = store.submit(tiny(data_dir), "ada")
    plan.set(run_id, 1, "step", 2)  # attempt 1 hangs before its second step; nobody cancels it
    worker = workers(store, hang_after=20.0)  # well above any step, evaluation or flatness measurement here
    pid = plan.reached(run_id, 1)
    COUNTS["faults injected"] += 1
    wait_for(lambda: "made no progress for" in worker.log_text(), "the watchdog to end the hung attempt")
    worker.worker.hang_after = 1800.0  # a loaded machine must not make the healthy second attempt look hung
    wait_for(lambda: store.get(run_id).status == "done", "the second attempt to finish")
    assert not pid_alive(pid) and worker.thread.is_alive()
    assert "made no progress for" in worker.log_text() and store.get(run_id).attempts == 2
    assert stored_metrics(store, run_id) == reference
    count_outcome(store, run_id, 4)


@pytest.fixture(scope="module")
def real_checkpoint(data_dir, tmp_path_factory) -> bytes:
    """A real checkpoint after epoch 1 of the 2-epoch tiny run, written under another run's key."""
    folder = tmp_path_factory.mktemp("foreign")

    class StopAfterEpoch1:
        steps = 0

        def on_step(self, *args) -> None:
            pass

        def on_epoch(self, metrics) -> None:
            pass

        def should_stop(self) -> bool:
            self.steps += 1
            return self.steps > 3

    train(tiny(data_dir, epochs=2), StopAfterEpoch1(), folder, run_key="f" * 32)
    return (folder / CHECKPOINT_NAME).read_bytes()


def test_damaged_checkpoints_fail_with_a_clear_reason_and_retry_fresh_finishes_them(tmp_path, data_dir,
                                                                                     real_checkpoint, plan, workers):
    store = RunStore(tmp_path / "runs")
    damages = {  # what the run's folder holds -> the reason its resume gives
        b"": "is empty (0 bytes)",
        real_checkpoint[: len(real_checkpoint) // 2]: "is truncated or not a checkpoint",
        real_checkpoint: "it was written by another run (key ffffffffffffffffffffffffffffffff)",
    }
    run_ids = {}
    for content, reason in damages.items():
        run_id = store.submit(tiny(data_dir, epochs=2), "ada")
        folder = store.run_dir(store.get(run_id).key)
        folder.mkdir(parents=True)
        (folder / CHECKPOINT_NAME).write_bytes(content)
        run_ids[run_id] = reason
        COUNTS["faults injected"] += 1
    workers(store)
    wait_for(lambda: store.counts()["failed"] == 3, "the runs to fail on their checkpoints")
    for run_id, reason in run_ids.items():
        error = store.get(run_id).error
        assert error.startswith("cannot resume") and reason in error and "\n" not in error, error
    assert cli_main(["retry", "--root", str(store.root), "--fresh", *map(str, run_ids)]) == 0
    wait_for(lambda: store.counts()["done"] == 3, "the fresh retries to finish")
    for run_id in run_ids:
        count_outcome(store, run_id, 2)


COMMANDS = [["list"], ["show", "1"], ["cancel", "1"], ["retry", "1"], ["export"], ["gc"], ["settings"],
            ["submit", "--preset", "classroom-quick"], ["worker", "--exit-when-idle"]]


def run_command(argv: list[str], root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "asam_core.runs", *argv, "--root", str(root)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "ASAM_LAB_RUNS_DIR": str(root)})


def assert_one_line_from_every_command(root: Path, expected: str) -> None:
    for argv in COMMANDS:
        result = run_command(argv, root)
        COUNTS["faults injected"] += 1
        COUNTS["tracebacks"] += "Traceback" in result.stderr
        assert (result.returncode, result.stdout) == (1, ""), (argv, result)
        assert result.stderr == f"error: {expected}\n", (argv, result.stderr)


def test_a_corrupt_database_is_one_line_from_every_command(tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    (root / "runs.sqlite3").write_bytes(os.urandom(8192))
    assert_one_line_from_every_command(
        root, f"{root}/runs.sqlite3 is not a run store (corrupt?): move it away or choose another folder")


def test_a_root_that_is_a_file_is_one_line_from_every_command(tmp_path):
    (tmp_path / "runs").write_text("not a folder")
    assert_one_line_from_every_command(
        tmp_path / "runs", f"{tmp_path}/runs is not a folder: choose a folder for the run store "
                           "(--root or $ASAM_LAB_RUNS_DIR)")


@pytest.fixture
def tmpfs(tmp_path) -> Callable[..., Path]:
    """Mount a size-limited tmpfs (root only); unmounted afterwards."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root (the test runs as an ordinary user)")
        point = tmp_path / f"fs{len(mounted)}"
        point.mkdir()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"mount -t tmpfs failed here: {result.stderr.strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)


def test_a_read_only_folder_is_one_line_from_every_command(tmpfs):
    root = tmpfs("4m")
    store = RunStore(root)
    store.submit(RunConfig(), "ada")
    del store
    gc.collect()  # the store's connection closes: no -wal / -shm file is left
    subprocess.run(["mount", "-o", "remount,ro", str(root)], check=True)
    assert_one_line_from_every_command(
        root, f"{root} is read-only: the run store needs to write there; choose another folder "
              "(--root or $ASAM_LAB_RUNS_DIR)")


def test_a_full_disk_leaves_no_partial_checkpoint_and_the_run_resumes_when_space_returns(tmpfs, data_dir, plan,
                                                                                           workers, reference):
    store = RunStore(tmpfs("24m") / "runs")
    run_id = store.submit(tiny(data_dir), "ada")
    plan.set(run_id, 1, "hold", 1)
    worker = workers(store, retry_delay=0.5)
    plan.reached(run_id, 1)  # epoch 1 is checkpointed; now the disk fills up
    ballast = store.root.parent / "ballast"
    with open(ballast, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    # room for the database (its WAL grows with every heartbeat while a loaded machine slows the run down),
    # not for a checkpoint (small_cnn's weights and momentum alone are 3.1 MB)
    os.truncate(ballast, ballast.stat().st_size - 1536 * 1024)
    COUNTS["faults injected"] += 1
    plan.go(run_id, 1)
    wait_for(lambda: "No space left on device" in (store.get(run_id).error or ""), "the full disk to be reported")
    time.sleep(2)  # a few more claims meet the full disk
    run = store.get(run_id)
    assert run.status in ("queued", "running") and run.attempts <= 1 and worker.thread.is_alive()
    assert not (store.run_dir(run.key) / (CHECKPOINT_NAME + ".tmp")).exists()
    ballast.unlink()
    wait_for(lambda: store.get(run_id).status == "done", "the run to resume once space returned")
    assert stored_metrics(store, run_id) == reference
    count_outcome(store, run_id, 4)


def test_a_database_deleted_under_a_running_worker_stops_it_with_one_line(tmp_path, data_dir):
    store = RunStore(tmp_path / "runs")
    run_id = store.submit(tiny(data_dir, epochs=500), "ada")
    proc = start_worker(store, exit_when_idle=False, poll=0.05)
    wait_for(lambda: store.get(run_id).step > 0, "the run to train")
    run_pid = store.get(run_id).run_pid
    for name in ("runs.sqlite3", "runs.sqlite3-wal", "runs.sqlite3-shm"):
        (store.root / name).unlink(missing_ok=True)
    COUNTS["faults injected"] += 1
    assert proc.wait(timeout=60) == 1
    wait_for(lambda: not pid_alive(run_pid), "the run's process to end with its worker")
    log = (store.root / "worker.log").read_text()
    COUNTS["tracebacks"] += log.count("Traceback")
    assert f"{store.db_path} was deleted while in use: stopping" in log and "Traceback" not in log
