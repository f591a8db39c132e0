"""The Ray backend against a real Ray: a local head on 127.0.0.1 (2 CPUs, one per module), the
worker as a Ray driver in its own process (``worker --ray ADDRESS``, started as the app does with
$RAY_ADDRESS set), tiny runs of test_runs_worker's data: a study of 4 runs end to end, a task's
process killed with SIGKILL mid-run (requeued, resumed from its checkpoint, every epoch stored
once), a lost lease and a cancel (each stops its task), and the one-line errors without a cluster or
without Ray.

Without Ray installed the module is skipped; with ASAM_REQUIRE_RAY=1 (CI) that is a failure.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
from conftest import ROOT, free_port, wait_for
from test_runs_worker import assert_same_metrics, data_dir, sam_run, tiny  # noqa: F401 (fixtures)

from asam_core.runs.launcher import start_worker
from asam_core.runs.store import RunStore, pid_alive, this_host
from asam_core.train.checkpoint import CHECKPOINT_NAME, load_checkpoint

RAY_MISSING = "the Ray extra is not installed (pip install -r requirements-ray.txt)"
try:
    import ray  # noqa: F401
except ImportError:
    if os.environ.get("ASAM_REQUIRE_RAY") == "1":
        pytest.fail(f"ASAM_REQUIRE_RAY=1 but {RAY_MISSING}", pytrace=False)
    pytest.skip(RAY_MISSING, allow_module_level=True)

pytestmark = pytest.mark.usefixtures("one_torch_thread")
HEAD_START_S = 60.0
HEAD_STOP_S = 3.0


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory) -> Iterator[str]:
    """A Ray head on 127.0.0.1 with 2 CPUs (``ray start --block`` in its own session); yields its
    address.  Stopped afterwards by ending that session only (no ``ray stop``, which would end
    every Ray process of this user): SIGTERM, and SIGKILL after HEAD_STOP_S (the head drains for
    up to 30 s otherwise)."""
    port = free_port()
    log = open(tmp_path_factory.mktemp("ray") / "head.log", "w")
    head = subprocess.Popen(
        ["ray", "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus", "2",
         "--include-dashboard=false", "--disable-usage-stats"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"127.0.0.1:{port}"
    try:
        wait_for(lambda: head.poll() is not None or "Ray runtime started" in Path(log.name).read_text(),
                 "the Ray head to start", HEAD_START_S)
        assert head.poll() is None, Path(log.name).read_text()
        yield address
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=HEAD_STOP_S)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        log.close()


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "runs")


@pytest.fixture
def ray_worker(store, ray_head, monkeypatch) -> Iterator[subprocess.Popen]:
    """The app's launcher with $RAY_ADDRESS set: a ``worker --ray`` process that exits when idle."""
    monkeypatch.setenv("RAY_ADDRESS", ray_head)
    proc = start_worker(store, exit_when_idle=True, poll=0.1)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=60)


def worker_log(store: RunStore) -> str:
    return (store.root / "worker.log").read_text(errors="replace")


def wait_until_idle(store: RunStore, proc: subprocess.Popen, timeout: float = 240.0) -> None:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the Ray worker did not finish; its log:\n{worker_log(store)[-3000:]}") from None
    assert proc.returncode == 0, worker_log(store)[-3000:]


def test_a_study_of_four_runs_trains_on_ray_as_the_engine_reports_it(store, ray_worker, data_dir, sam_run):
    config, reference = sam_run
    others = [tiny(data_dir, optimizer=name, label=f"study {name}") for name in ("sgd", "asam")]
    ids = [store.submit(c, "ada") for c in [config, *others, tiny(data_dir, optimizer="sam", seed=1)]]
    wait_until_idle(store, ray_worker)
    runs = [store.get(run_id) for run_id in ids]
    assert [(r.status, r.error, r.attempts) for r in runs] == [("done", None, 1)] * 4, worker_log(store)
    assert all("Ray node" in r.node for r in runs)
    assert_same_metrics(store.metrics([ids[0]]), reference)
    for run in runs:
        epochs = list(range(1, run.config.epochs + 1))
        assert [m["epoch"] for m in store.metrics([run.id])] == epochs
        assert [e for e, _ in store.artifacts([run.id], "path_sketch")[run.id]] == epochs
        assert [step for _, step, _ in store.step_losses([run.id])] == epochs  # one step per epoch
        assert not store.run_dir(run.key).exists()  # retention: a done run's checkpoint is gone
    assert "submitted as a Ray task" in worker_log(store)


def test_a_task_killed_with_sigkill_is_requeued_and_resumes_from_its_checkpoint(store, ray_worker, sam_run):
    config, reference = sam_run
    run_id = store.submit(config, "ada")
    checkpoint = store.run_dir(store.get(run_id).key) / CHECKPOINT_NAME

    def second_epoch_checkpointed() -> bool:
        return store.get(run_id).run_pid is not None and checkpoint.exists() and load_checkpoint(checkpoint)["epoch"] >= 2

    wait_for(second_epoch_checkpointed, "epoch 2's checkpoint", 120)
    run = store.get(run_id)
    assert run.epoch == 2  # the last epoch's flatness takes seconds: the kill lands before epoch 3 is reported
    os.kill(run.run_pid, signal.SIGKILL)
    wait_until_idle(store, ray_worker)
    run = store.get(run_id)
    assert (run.status, run.attempts) == ("done", 2), worker_log(store)
    assert "its Ray task died" in worker_log(store)
    assert_same_metrics(store.metrics([run_id]), reference)  # epochs 1..3, each once, as if never interrupted


def test_a_lost_lease_stops_the_task_and_a_cancel_stops_the_next(store, ray_worker, data_dir):
    run_id = store.submit(tiny(data_dir, optimizer="sgd", epochs=500), "ada")
    wait_for(lambda: store.get(run_id).epoch >= 1, "the run's first epoch", 120)
    first = store.get(run_id).run_pid
    assert store.requeue_orphans(this_host(), stale_after=-1.0) == [run_id]  # its lease is gone
    wait_for(lambda: not pid_alive(first), "the task of the lost lease to stop", 30)
    wait_for(lambda: store.get(run_id).run_pid not in (None, first), "the run's second task", 60)
    second = store.get(run_id).run_pid
    assert store.request_cancel(run_id) == "running"
    wait_for(lambda: store.get(run_id).status == "cancelled", "the cancel", 30)
    wait_for(lambda: not pid_alive(second), "the cancelled task's process to end", 30)
    wait_until_idle(store, ray_worker)
    run = store.get(run_id)
    assert (run.attempts, run.epoch < 500) == (2, True)
    assert [m["epoch"] for m in store.metrics([run_id])] == list(range(1, run.epoch + 1))


def test_worker_ray_without_a_cluster_says_so_in_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "asam_core.runs", "worker", "--root", str(tmp_path), "--ray",
                           f"127.0.0.1:{free_port()}"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.startswith("error: no Ray cluster answers at 127.0.0.1:") and done.stderr.count("\n") == 1


def test_worker_ray_without_ray_installed_says_so_in_one_line(tmp_path):
    code = ("import sys; sys.modules['ray'] = None; from asam_core.runs.cli import main; "
            f"sys.exit(main(['worker', '--root', {str(tmp_path)!r}, '--ray', '127.0.0.1:6379']))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stderr) == (1, f"error: {RAY_MISSING}\n")
