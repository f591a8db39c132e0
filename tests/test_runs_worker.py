"""The worker (a supervisor, one process per run) on CPU with a tiny synthetic CIFAR-10: submit -> done
with the engine's metrics and the retention rule, cancel, shutdown, kill -9 of the worker then resume,
a crash between an epoch's report and its checkpoint, two worker processes sharing a queue.  Faults
injected into the runs' own processes are in test_runs_faults.py."""
from __future__ import annotations

import dataclasses
import os
import signal
import threading
from pathlib import Path

import pytest
from cifar_fixtures import write_cifar
from conftest import wait_for

from asam_core.runs.launcher import start_worker
from asam_core.runs.store import FINAL_WEIGHTS_NAME, METRIC_FIELDS, RunStore, pid_alive, this_host
from asam_core.runs.worker import Worker
from asam_core.train.checkpoint import load_checkpoint
from asam_core.train.config import RunConfig
from asam_core.train.loop import train

COMPARED = [f for f in METRIC_FIELDS if f != "seconds"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cifar")
    write_cifar(root, "cifar10", per_class=1, test_per_class=1)
    return root


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "runs")


def tiny(data_dir: Path, **overrides) -> RunConfig:
    """small_cnn on 10 images, one step per epoch."""
    options = dict(model="small_cnn", optimizer="asam", data_dir=str(data_dir), download=False, device="cpu",
                   batch_size=10, log_every_steps=1, epochs=2)
    return RunConfig(**{**options, **overrides})


class Recorder:
    """A TrainSink that keeps what the loop reports (the reference for the store)."""

    def __init__(self) -> None:
        self.epochs: list[dict] = []

    def on_step(self, step, total_steps, train_loss) -> None:
        pass

    def on_epoch(self, metrics) -> None:
        self.epochs.append(dataclasses.asdict(metrics))

    def should_stop(self) -> bool:
        return False


@pytest.fixture(scope="module")
def sam_run(data_dir, tmp_path_factory) -> tuple[RunConfig, list[dict]]:
    """A 3-epoch SAM config and the metrics the loop reports for it, run directly."""
    config, sink = tiny(data_dir, optimizer="sam", epochs=3), Recorder()
    assert train(config, sink, tmp_path_factory.mktemp("reference")).status == "done"
    return config, sink.epochs


def assert_same_metrics(stored: list[dict], reference: list[dict]) -> None:
    assert [m["epoch"] for m in stored] == [m["epoch"] for m in reference]
    for got, want in zip(stored, reference):
        assert {f for f in COMPARED if got[f] is None} == {f for f in COMPARED if want[f] is None}
        numbers = [f for f in COMPARED if want[f] is not None]
        assert {f: got[f] for f in numbers} == pytest.approx({f: want[f] for f in numbers}, rel=1e-5, abs=1e-7)


def in_thread(worker: Worker) -> threading.Thread:
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("keep_final_weights", [False, True])
def test_submitted_run_is_trained_and_stored_as_the_engine_reports_it(store, sam_run, keep_final_weights):
    config, reference = sam_run
    store.set_setting("keep_final_weights", keep_final_weights)
    run_id = store.submit(config, "ada")
    Worker(store, poll=0.05, exit_when_idle=True).run()
    run = store.get(run_id)
    assert (run.status, run.error, run.attempts, run.progress, run.epoch) == ("done", None, 1, 1.0, 3)
    assert run.started <= run.finished
    assert_same_metrics(store.metrics([run_id]), reference)
    assert [step for _, step, _ in store.step_losses([run_id])] == [1, 2, 3]
    assert [epoch for epoch, _ in store.artifacts([run_id], "path_sketch")[run_id]] == [1, 2, 3]
    assert [epoch for epoch, _ in store.artifacts([run_id], "loss_profile")[run_id]] == [3]
    folder = store.run_dir(run.key)
    if keep_final_weights:  # retention: the last checkpoint is kept as the final weights, nothing else
        assert [p.name for p in folder.iterdir()] == [FINAL_WEIGHTS_NAME]
        assert load_checkpoint(folder / FINAL_WEIGHTS_NAME)["epoch"] == 3
    else:
        assert not folder.exists()
    assert store.live_workers(this_host()) == []


def test_a_run_that_cannot_train_fails_with_the_reason(store, tmp_path):
    run_id = store.submit(RunConfig(data_dir=str(tmp_path / "nothing"), download=False, device="cpu"), "ada")
    Worker(store, poll=0.05, exit_when_idle=True).run()
    run = store.get(run_id)
    assert run.status == "failed" and "cifar-10-python.tar.gz" in run.error


def test_cancel_stops_a_running_run_within_a_few_seconds(store, data_dir):
    run_id = store.submit(tiny(data_dir, epochs=500), "ada")
    thread = in_thread(Worker(store, poll=0.05, exit_when_idle=True))
    wait_for(lambda: store.get(run_id).step > 0, "the first step")
    assert store.request_cancel(run_id) == "running"
    thread.join(timeout=10)
    assert not thread.is_alive()
    run = store.get(run_id)
    assert (run.status, run.error) == ("cancelled", None) and run.epoch < 500


def test_a_worker_told_to_stop_puts_its_run_back_in_the_queue(store, data_dir):
    run_id = store.submit(tiny(data_dir, epochs=500), "ada")
    worker = Worker(store, poll=0.05)
    thread = in_thread(worker)
    wait_for(lambda: store.get(run_id).epoch >= 1, "the first epoch")
    worker.shutdown.set()
    thread.join(timeout=10)
    run = store.get(run_id)
    assert (run.status, run.worker_pid, run.run_pid, run.attempts, run.error) == (
        "queued", None, None, 0, "its worker stopped")
    assert store.live_workers(this_host()) == []


def test_kill_9_of_the_worker_then_a_new_worker_resumes_with_every_epoch_once(store, data_dir, tmp_path):
    config, straight = tiny(data_dir, optimizer="sam", epochs=30), Recorder()
    assert train(config, straight, tmp_path / "reference").status == "done"
    reference = straight.epochs
    run_id = store.submit(config, "ada")
    proc = start_worker(store, exit_when_idle=False, poll=0.05)
    try:
        wait_for(lambda: store.get(run_id).epoch >= 1, "the first epoch in the worker's run process")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    # the run's process notices that its worker is gone and puts the run back, without using an attempt
    wait_for(lambda: store.get(run_id).status == "queued", "the orphaned run process to release its run")
    killed = store.get(run_id)
    assert (killed.attempts, killed.error) == (0, "its worker died") and killed.epoch < 30

    Worker(store, poll=0.05, exit_when_idle=True).run()
    run = store.get(run_id)
    assert (run.status, run.attempts) == ("done", 1)
    assert_same_metrics(store.metrics([run_id]), reference)


def test_an_epoch_reported_but_not_checkpointed_is_rerun_and_not_written_twice(store, data_dir):
    run_id = store.submit(tiny(data_dir), "ada")
    crashed = store.claim(pid=2**22 + 1, host=this_host())  # beyond pid_max: a dead worker
    sentinel = {f: 9.0 for f in METRIC_FIELDS} | {"epoch": 1}
    assert store.record_epoch(crashed.lease, sentinel)
    Worker(store, poll=0.05, exit_when_idle=True).run()
    stored = store.metrics([run_id])
    assert [m["epoch"] for m in stored] == [1, 2] and stored[0]["train_loss"] == 9.0
    run = store.get(run_id)
    assert (run.status, run.attempts) == ("done", 2)


def test_two_worker_processes_share_a_queue_and_train_each_run_exactly_once(store, data_dir):
    procs = [start_worker(store, exit_when_idle=False, poll=0.05) for _ in range(2)]
    try:
        wait_for(lambda: sum(w["heartbeat"] > w["started"] for w in store.workers()) == 2, "both workers polling")
        ids = [store.submit(tiny(data_dir, epochs=1, seed=i), "ada") for i in range(4)]
        wait_for(lambda: all(store.get(i).status == "done" for i in ids), "all runs done")
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(timeout=30) for proc in procs]
    assert codes == [0, 0]
    runs = [store.get(i) for i in ids]
    assert [r.attempts for r in runs] == [1] * 4
    assert {r.worker_pid for r in runs} <= {p.pid for p in procs}
    assert [(m["run_id"], m["epoch"]) for m in store.metrics(ids)] == [(i, 1) for i in ids]
    assert not any(pid_alive(p.pid) for p in procs)
