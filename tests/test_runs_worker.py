"""The worker on CPU with a tiny synthetic CIFAR-10: submit -> done with the engine's metrics, cancel,
shutdown, kill -9 then resume with every epoch once, a crash between an epoch's report and its
checkpoint, two worker processes sharing a queue."""
from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
from pathlib import Path
from typing import Callable

import pytest
from cifar_fixtures import write_cifar

from asam_core.runs import worker as worker_module
from asam_core.runs.launcher import start_worker
from asam_core.runs.store import METRIC_FIELDS, RunStore, pid_alive, this_host
from asam_core.runs.worker import Worker
from asam_core.train.checkpoint import load_checkpoint
from asam_core.train.config import RunConfig
from asam_core.train.loop import CHECKPOINT_NAME, train

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


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


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
        assert {f: got[f] for f in COMPARED} == pytest.approx({f: want[f] for f in COMPARED}, rel=1e-5, abs=1e-7)


@pytest.fixture
def reported_epochs(monkeypatch) -> list[int]:
    """Epochs the loop reports to the in-process worker's sink, in order."""
    epochs: list[int] = []
    real_train = worker_module.train

    def spying_train(config, sink, checkpoint_dir, resume=True):
        on_epoch = sink.on_epoch
        sink.on_epoch = lambda m: (epochs.append(m.epoch), on_epoch(m))
        return real_train(config, sink, checkpoint_dir, resume)

    monkeypatch.setattr(worker_module, "train", spying_train)
    return epochs


def in_thread(worker: Worker) -> threading.Thread:
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    return thread


def test_submitted_run_is_trained_and_stored_as_the_engine_reports_it(store, sam_run):
    config, reference = sam_run
    run_id = store.submit(config, "ada")
    Worker(store, poll=0.05, exit_when_idle=True).run()
    run = store.get(run_id)
    assert (run.status, run.error, run.attempts, run.progress, run.epoch) == ("done", None, 1, 1.0, 3)
    assert run.started <= run.finished
    assert_same_metrics(store.metrics([run_id]), reference)
    assert [step for step, _ in store.step_losses(run_id)] == [1, 2, 3]
    assert load_checkpoint(store.checkpoint_dir(run_id) / CHECKPOINT_NAME)["epoch"] == 3
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


def test_a_worker_told_to_stop_puts_its_run_back_in_the_queue(store, data_dir, reported_epochs):
    run_id = store.submit(tiny(data_dir, epochs=500), "ada")
    worker = Worker(store, poll=0.05)
    thread = in_thread(worker)
    wait_for(lambda: store.get(run_id).epoch >= 1, "the first epoch")
    worker.shutdown.set()
    thread.join(timeout=10)
    run = store.get(run_id)
    assert (run.status, run.worker_pid, run.attempts) == ("queued", None, 1)
    assert store.live_workers(this_host()) == []


def test_kill_9_mid_run_then_a_new_worker_resumes_with_every_epoch_once(store, sam_run, reported_epochs):
    config, reference = sam_run
    run_id = store.submit(config, "ada")
    proc = start_worker(store, exit_when_idle=False, poll=0.05)
    try:
        wait_for(lambda: store.get(run_id).epoch >= 1, "the first epoch in the worker process")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    killed = store.get(run_id)
    assert (killed.status, killed.worker_pid) == ("running", proc.pid) and killed.epoch < 3
    state = load_checkpoint(store.checkpoint_dir(run_id) / CHECKPOINT_NAME)
    checkpointed = 0 if state is None else state["epoch"]  # the kill may land before epoch 1's checkpoint

    Worker(store, poll=0.05, exit_when_idle=True).run()
    run = store.get(run_id)
    assert (run.status, run.attempts) == ("done", 2)
    assert reported_epochs == list(range(checkpointed + 1, 4))
    assert_same_metrics(store.metrics([run_id]), reference)


def test_an_epoch_reported_but_not_checkpointed_is_rerun_and_not_written_twice(store, data_dir, reported_epochs):
    run_id = store.submit(tiny(data_dir), "ada")
    crashed = store.claim(pid=2**22 + 1, host=this_host())  # beyond pid_max: a dead worker
    sentinel = {f: 9.0 for f in METRIC_FIELDS} | {"epoch": 1}
    assert store.record_epoch(crashed.lease, sentinel)
    Worker(store, poll=0.05, exit_when_idle=True).run()
    assert reported_epochs == [1, 2]
    stored = store.metrics([run_id])
    assert [m["epoch"] for m in stored] == [1, 2] and stored[0]["train_loss"] == 9.0
    assert store.get(run_id).status == "done"


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
