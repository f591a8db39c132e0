"""The run store: atomic claims, leases that fence out a worker that lost its run, idempotent
epochs, cancel, orphan requeue, configs validated on the way in and out.  No training here."""
from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from asam_core.runs.store import METRIC_FIELDS, RunStore, UnknownRun, this_host
from asam_core.train.config import RunConfig

HOST = this_host()


def _metrics(epoch: int, value: float = 0.5) -> dict[str, float]:
    return {f: (epoch if f == "epoch" else value) for f in METRIC_FIELDS}


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "runs")


@pytest.fixture(scope="module")
def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_submit_round_trips_the_config_and_starts_queued(store):
    config = RunConfig(optimizer="sam", model="small_cnn", p=float("inf"), epochs=3, label="a")
    run_id = store.submit(config, "  ada ")
    run = store.get(run_id)
    assert (run.status, run.owner, run.config, run.progress, run.attempts) == ("queued", "ada", config, 0.0, 0)
    assert store.submit(config, "") != run_id
    assert store.get(run_id + 1).owner == "anonymous"
    assert [r.id for r in store.list_runs(["queued"])] == [run_id, run_id + 1]


def test_a_stored_config_that_no_longer_validates_is_reported_by_run_and_field(store):
    run_id = store.submit(RunConfig(), "ada")
    with sqlite3.connect(store.db_path) as con:
        con.execute("UPDATE runs SET config = json_set(config, '$.epochs', 0) WHERE id = ?", (run_id,))
    with pytest.raises(ValueError, match=rf"run {run_id}: the stored config .*: epochs: must be >= 1 \(got 0\)"):
        store.get(run_id)


def test_unknown_run_is_a_clear_error(store):
    with pytest.raises(UnknownRun, match="no run with id 7"):
        store.get(7)
    with pytest.raises(UnknownRun, match="no run with id 7"):
        store.request_cancel(7)


def test_claim_takes_the_oldest_queued_run_once(store):
    ids = [store.submit(RunConfig(seed=i), "ada") for i in range(3)]
    first, second = store.claim(1, HOST), store.claim(2, HOST)
    assert (first.run.id, second.run.id) == (ids[0], ids[1])
    assert first.lease != second.lease
    assert (first.run.status, first.run.worker_pid, first.run.attempts) == ("running", 1, 1)
    store.claim(3, HOST)
    assert store.claim(4, HOST) is None


def test_concurrent_claims_from_many_threads_take_each_run_exactly_once(store):
    ids = {store.submit(RunConfig(seed=i), "ada") for i in range(24)}
    taken: list[int] = []
    barrier = threading.Barrier(6)

    def worker(pid: int) -> None:
        barrier.wait()
        while (claim := store.claim(pid, HOST)) is not None:
            taken.append(claim.run.id)

    threads = [threading.Thread(target=worker, args=(pid,)) for pid in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(taken) == sorted(ids)


def test_an_epoch_reported_twice_is_stored_once_with_its_first_values(store):
    run_id = store.submit(RunConfig(epochs=4), "ada")
    claim = store.claim(1, HOST)
    assert store.record_epoch(claim.lease, _metrics(1, 0.25))
    assert store.record_epoch(claim.lease, _metrics(1, 0.75))
    assert store.record_epoch(claim.lease, {**_metrics(2), "test_loss": None, "test_acc": None})
    rows = store.metrics([run_id])
    assert [(r["epoch"], r["train_loss"], r["test_acc"]) for r in rows] == [(1, 0.25, 0.25), (2, 0.5, None)]
    assert store.best_test_acc() == {run_id: 0.25}
    assert store.get(run_id).progress == pytest.approx(2 / 4)


def test_step_losses_and_progress(store):
    run_id = store.submit(RunConfig(epochs=2), "ada")
    claim = store.claim(1, HOST)
    assert store.record_steps(claim.lease, [(5, 2.0), (10, 1.5)], total_steps=40)
    assert store.record_steps(claim.lease, [(10, 1.4), (15, 1.2)], total_steps=40)
    assert store.step_losses(run_id) == [(5, 2.0), (10, 1.4), (15, 1.2)]
    assert store.get(run_id).progress == pytest.approx(15 / 40)
    assert store.finish(claim.lease, "done")
    assert store.get(run_id).progress == 1.0


def test_cancel_a_queued_run_at_once_a_running_one_through_its_worker(store):
    running = store.submit(RunConfig(), "ada")
    claim = store.claim(1, HOST)
    done = store.submit(RunConfig(), "ada")
    store.finish(store.claim(1, HOST).lease, "done")
    queued = store.submit(RunConfig(), "ada")
    assert store.request_cancel(queued) == "cancelled"
    assert store.get(queued).finished is not None
    assert store.claim(1, HOST) is None
    assert store.heartbeat([claim.lease]) == {claim.lease: False}
    assert store.request_cancel(running) == "running"
    assert store.heartbeat([claim.lease]) == {claim.lease: True}
    assert store.request_cancel(done) == "done"
    assert not store.get(done).cancel_requested


def test_a_requeued_run_fences_out_its_old_worker(store, dead_pid):
    run_id = store.submit(RunConfig(epochs=3), "ada")
    old = store.claim(dead_pid, HOST)
    assert store.record_epoch(old.lease, _metrics(1))
    assert store.requeue_orphans(HOST) == [run_id]
    run = store.get(run_id)
    assert (run.status, run.worker_pid, run.epoch) == ("queued", None, 1)
    new = store.claim(1, HOST)
    assert new.run.attempts == 2 and new.run.started == run.started
    assert not store.record_epoch(old.lease, _metrics(2, 9.0))
    assert not store.record_steps(old.lease, [(1, 9.0)], 10)
    assert not store.finish(old.lease, "failed", "stale")
    assert store.heartbeat([old.lease, new.lease]) == {new.lease: False}
    assert store.record_epoch(new.lease, _metrics(2))
    assert store.finish(new.lease, "done")
    assert [r["train_loss"] for r in store.metrics([run_id])] == [0.5, 0.5]


def test_requeue_orphans_spares_live_workers_and_honours_cancel(store, dead_pid):
    live, dead, stale, dead_cancelled = (store.submit(RunConfig(seed=i), "ada") for i in range(4))
    store.claim(1, HOST)  # pid 1 (init) is alive: not an orphan
    store.claim(dead_pid, HOST)
    stale_claim = store.claim(1, "another-host")
    store.claim(dead_pid, HOST)
    store.request_cancel(dead_cancelled)
    with sqlite3.connect(store.db_path) as con:
        con.execute("UPDATE runs SET heartbeat = ? WHERE id = ?", (time.time() - 120, stale))
    assert sorted(store.requeue_orphans(HOST, stale_after=60)) == [dead, stale, dead_cancelled]
    assert [store.get(i).status for i in (live, dead, stale, dead_cancelled)] == [
        "running", "queued", "queued", "cancelled"]
    assert store.heartbeat([stale_claim.lease]) == {}


def test_requeue_orphans_unregisters_dead_workers(store, dead_pid):
    store.register_worker(dead_pid, HOST)
    store.register_worker(1, HOST)
    store.requeue_orphans(HOST)
    assert [(w["pid"], w["host"]) for w in store.workers()] == [(1, HOST)]


def test_live_workers_are_registered_alive_and_fresh(store, dead_pid):
    store.register_worker(dead_pid, HOST)
    store.register_worker(1, HOST)
    store.register_worker(12345, "another-host")
    assert sorted(store.live_workers(HOST)) == [(1, HOST), (12345, "another-host")]
    store.unregister_worker(1, HOST)
    assert store.live_workers(HOST, stale_after=-1) == []


class ClaimMachine(RuleBasedStateMachine):
    """Random interleavings of submit / claim / cancel / finish / worker death keep the store consistent:
    a running run has exactly one live lease, no lease writes after it is gone, statuses only move forward."""

    def __init__(self) -> None:
        super().__init__()
        import tempfile
        self.dir = tempfile.TemporaryDirectory()
        self.store = RunStore(self.dir.name)
        self.leases: dict[str, int] = {}  # every lease ever handed out -> run id
        self.final: dict[int, str] = {}

    def teardown(self) -> None:
        self.dir.cleanup()

    @rule()
    def submit(self) -> None:
        self.store.submit(RunConfig(), "ada")

    @rule(pid=st.sampled_from([1, 999_999_999]))
    def claim(self, pid: int) -> None:
        claim = self.store.claim(pid, HOST)
        if claim is not None:
            assert claim.lease not in self.leases
            self.leases[claim.lease] = claim.run.id

    @precondition(lambda self: self.leases)
    @rule(data=st.data(), status=st.sampled_from(["done", "failed", "cancelled"]))
    def finish(self, data, status: str) -> None:
        lease = data.draw(st.sampled_from(sorted(self.leases)))
        held = lease in self.store.heartbeat([lease])
        assert self.store.finish(lease, status) == held

    @precondition(lambda self: self.leases)
    @rule(data=st.data())
    def cancel(self, data) -> None:
        self.store.request_cancel(data.draw(st.sampled_from(sorted(set(self.leases.values())))))

    @rule()
    def requeue(self) -> None:
        self.store.requeue_orphans(HOST)

    @invariant()
    def consistent(self) -> None:
        runs = self.store.list_runs()
        held = self.store.heartbeat(self.leases)
        running = {self.leases[lease] for lease in held}
        assert running == {r.id for r in runs if r.status == "running"}
        assert len(running) == len(held)
        for r in runs:
            if r.id in self.final:
                assert r.status == self.final[r.id], "a finished run changed status"
            elif r.status in ("done", "failed", "cancelled"):
                self.final[r.id] = r.status
            if r.status == "queued":
                assert r.worker_pid is None


TestClaimMachine = ClaimMachine.TestCase
TestClaimMachine.settings = settings(max_examples=10, stateful_step_count=12, deadline=None)
