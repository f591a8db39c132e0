"""The run store: atomic claims, leases that fence out a worker that lost its run, idempotent
epochs, cancel, orphan requeue with capped attempts, retry, quarantine of invalid rows, run keys
and their folders, gc, schema migration, faults as one-line StoreErrors.  No training here."""
from __future__ import annotations

import gc
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from asam_core.runs.store import METRIC_FIELDS, RunStore, StoreError, StoreGone, UnknownRun, this_host
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


def _break_config(store: RunStore, run_id: int) -> None:
    with sqlite3.connect(store.db_path) as con:
        con.execute("UPDATE runs SET config = json_set(config, '$.epochs', 0) WHERE id = ?", (run_id,))


def test_a_row_whose_config_no_longer_validates_is_quarantined_when_first_read(store):
    bad, good = store.submit(RunConfig(), "ada"), store.submit(RunConfig(seed=1), "ada")
    _break_config(store, bad)
    runs = store.list_runs()
    assert [(r.id, r.status) for r in runs] == [(bad, "failed"), (good, "queued")]
    assert runs[0].config is None and runs[0].progress == 0.0
    assert runs[0].error.startswith("quarantined: the stored config is no longer a valid RunConfig: epochs: must be >= 1")
    assert store.counts()["failed"] == 1  # written back, not only shown
    assert store.get(bad).error == runs[0].error
    with pytest.raises(ValueError, match="cannot be retried.*submit a new run"):
        store.retry(bad)


def test_claim_quarantines_invalid_rows_before_it_commits_and_takes_the_next(store):
    bad, good = store.submit(RunConfig(), "ada"), store.submit(RunConfig(seed=1), "ada")
    _break_config(store, bad)
    claim = store.claim(1, HOST)
    assert claim.run.id == good
    with sqlite3.connect(store.db_path) as con:
        assert con.execute("SELECT status, lease FROM runs WHERE id = ?", (bad,)).fetchone() == ("failed", None)


def test_owner_is_checked(store):
    with pytest.raises(ValueError, match="owner: must have at most 100 characters"):
        store.submit(RunConfig(), "x" * 101)
    with pytest.raises(ValueError, match="owner: must not contain control characters"):
        store.submit(RunConfig(), "ada\x00")
    assert store.list_runs() == []


def test_unknown_run_is_a_clear_error(store):
    with pytest.raises(UnknownRun, match="no run with id 7"):
        store.get(7)
    with pytest.raises(UnknownRun, match="no run with id 7"):
        store.request_cancel(7)
    with pytest.raises(UnknownRun, match=r"ids are below 2\*\*63"):
        store.get(2**64)


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


def test_artifacts_are_kept_per_epoch_once_under_the_lease_and_dropped_by_a_fresh_retry(store):
    run_id = store.submit(RunConfig(epochs=4), "ada")
    other = store.submit(RunConfig(epochs=4), "ada")
    claim = store.claim(1, HOST)
    sketch = bytes(range(256)) * 64
    assert store.record_artifacts(claim.lease, 1, {"path_sketch": sketch})
    assert store.record_artifacts(claim.lease, 1, {"path_sketch": b"a repeat is ignored"})
    assert store.record_artifacts(claim.lease, 2, {"path_sketch": b"2", "loss_profile": b'{"t": [0]}'})
    assert store.artifacts([run_id, other], "path_sketch") == {run_id: [(1, sketch), (2, b"2")]}
    assert store.artifacts([run_id], "loss_profile") == {run_id: [(2, b'{"t": [0]}')]}
    assert store.finish(claim.lease, "failed", "boom")
    assert not store.record_artifacts(claim.lease, 3, {"path_sketch": b"3"}), "a finished run's lease is gone"
    store.retry(run_id, fresh=True)
    assert store.artifacts([run_id], "path_sketch") == {}


def test_step_losses_and_progress(store):
    run_id = store.submit(RunConfig(epochs=2), "ada")
    claim = store.claim(1, HOST)
    assert store.record_steps(claim.lease, [(5, 2.0), (10, 1.5)], total_steps=40)
    assert store.record_steps(claim.lease, [(10, 1.4), (15, 1.2)], total_steps=40)
    assert store.step_losses([run_id]) == [(run_id, 5, 2.0), (run_id, 10, 1.4), (run_id, 15, 1.2)]
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


def test_a_run_whose_process_dies_is_requeued_until_max_attempts_then_failed(store):
    run_id = store.submit(RunConfig(), "ada")
    behind = store.submit(RunConfig(seed=1), "ada")
    assert store.settings() == {"max_attempts": 2, "keep_final_weights": False}
    first = store.claim(1, HOST)
    assert store.requeue_or_fail(first.lease, "killed by signal 9") == "queued"
    assert store.get(run_id).error == "killed by signal 9 (attempt 1 of 2)"
    second = store.claim(1, HOST)
    assert second.run.id == run_id
    assert store.requeue_or_fail(second.lease, "killed by signal 9") == "failed"
    run = store.get(run_id)
    assert (run.status, run.error) == ("failed", "killed by signal 9 (attempt 2 of 2: giving up)")
    assert store.claim(1, HOST).run.id == behind  # the queue moves on


def test_a_transient_release_uses_no_attempt_and_holds_the_run_back(store):
    run_id = store.submit(RunConfig(), "ada")
    claim = store.claim(1, HOST)
    assert store.release(claim.lease, "disk full", delay=60)
    run = store.get(run_id)
    assert (run.status, run.attempts, run.error) == ("queued", 0, "disk full")
    assert store.claim(1, HOST) is None  # not due yet
    with sqlite3.connect(store.db_path) as con:
        con.execute("UPDATE runs SET not_before = ?", (time.time() - 1,))
    assert store.claim(1, HOST).run.id == run_id


def test_settings_are_validated(store):
    store.set_setting("max_attempts", 5)
    store.set_setting("keep_final_weights", True)
    assert store.settings() == {"max_attempts": 5, "keep_final_weights": True}
    for name, value, message in [("max_attempts", 0, r"max_attempts: must be a whole number in \[1, 100\]"),
                                 ("keep_final_weights", 1, "must be true or false"), ("colour", 1, "unknown setting")]:
        with pytest.raises(ValueError, match=message):
            store.set_setting(name, value)


def test_retry_resumes_with_the_same_key_or_starts_fresh_with_a_new_one(store):
    run_id = store.submit(RunConfig(epochs=3), "ada")
    claim = store.claim(1, HOST)
    store.record_epoch(claim.lease, _metrics(1))
    store.finish(claim.lease, "failed", "boom")
    key = store.get(run_id).key
    store.run_dir(key).mkdir(parents=True)
    (store.run_dir(key) / "checkpoint.pt").write_bytes(b"x")
    with pytest.raises(ValueError, match="only failed or cancelled runs"):
        store.retry(store.submit(RunConfig(), "ada"))

    run = store.retry(run_id)
    assert (run.status, run.key, run.attempts, run.epoch, run.error) == ("queued", key, 0, 1, "retried after: boom")
    assert len(store.metrics([run_id])) == 1 and store.run_dir(key).exists()
    store.request_cancel(run_id)
    run = store.retry(run_id, fresh=True)
    assert (run.status, run.epoch, run.step) == ("queued", 0, 0) and run.key != key
    assert store.metrics([run_id]) == [] and not store.run_dir(key).exists()


def test_keys_are_unique_and_a_new_database_never_reuses_an_old_runs_folder(tmp_path):
    first = RunStore(tmp_path / "runs")
    old = first.get(first.submit(RunConfig(), "ada"))
    first.run_dir(old.key).mkdir(parents=True)
    first.db_path.unlink()
    second = RunStore(tmp_path / "runs")
    new = second.get(second.submit(RunConfig(), "ada"))
    assert new.id == old.id and new.key != old.key and not second.run_dir(new.key).exists()
    assert second.gc() == [second.run_dir(old.key)]  # the old database's folder is an orphan


def test_gc_keeps_what_runs_need_and_deletes_the_rest(store):
    done, failed, queued = (store.submit(RunConfig(seed=i), "ada") for i in range(3))
    claim = store.claim(1, HOST)
    store.finish(store.claim(1, HOST).lease, "failed", "x")
    folders = {i: store.run_dir(store.get(i).key) for i in (queued, done, failed)}
    for folder in [*folders.values(), store.root / "checkpoints" / "1"]:
        folder.mkdir(parents=True)
        (folder / "checkpoint.pt").write_bytes(b"x")
        (folder / "checkpoint.pt.tmp").write_bytes(b"x")
    with sqlite3.connect(store.db_path) as con:  # a done run whose retention did not happen (crash)
        con.execute("UPDATE runs SET status = 'done', lease = NULL WHERE id = ?", (claim.run.id,))
    removed = set(store.gc())
    assert store.root / "checkpoints" / "1" in removed
    assert not folders[done].exists()
    assert sorted(p.name for p in folders[failed].iterdir()) == ["checkpoint.pt"]
    assert sorted(p.name for p in folders[queued].iterdir()) == ["checkpoint.pt"]


def test_an_old_database_gains_the_new_columns_and_keeps_its_runs(tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    with sqlite3.connect(root / "runs.sqlite3") as con:  # the first release's runs table
        con.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, status TEXT NOT NULL, config TEXT "
                    "NOT NULL, owner TEXT NOT NULL, created REAL NOT NULL, started REAL, finished REAL, heartbeat "
                    "REAL, worker_pid INTEGER, worker_host TEXT, lease TEXT UNIQUE, attempts INTEGER NOT NULL "
                    "DEFAULT 0, cancel_requested INTEGER NOT NULL DEFAULT 0, step INTEGER NOT NULL DEFAULT 0, "
                    "total_steps INTEGER, epoch INTEGER NOT NULL DEFAULT 0, error TEXT)")
        for _ in range(2):
            con.execute("INSERT INTO runs (status, config, owner, created) VALUES ('queued', ?, 'ada', 1.0)",
                        (RunConfig().model_dump_json(),))
        con.execute("CREATE TABLE metrics (run_id INTEGER NOT NULL, epoch INTEGER, train_loss REAL NOT NULL, "
                    "PRIMARY KEY (run_id, epoch)) WITHOUT ROWID")  # a metrics table of fewer fields
        con.execute("INSERT INTO metrics VALUES (1, 1, 0.5)")
    store = RunStore(root)
    runs = store.list_runs()
    assert [r.status for r in runs] == ["queued", "queued"] and len({r.key for r in runs}) == 2
    assert all(len(r.key) == 32 for r in runs)
    assert store.metrics([1]) == [{"run_id": 1, "epoch": 1, "train_loss": 0.5} | {
        f: None for f in METRIC_FIELDS if f not in ("epoch", "train_loss")}]
    assert store.claim(1, HOST).run.id == 1
    assert RunStore(root).get(1).key == runs[0].key  # a second open changes nothing


@pytest.mark.parametrize("damage", ["garbage", "zeroed header"])
def test_a_corrupt_database_is_one_clear_line(tmp_path, damage):
    store = RunStore(tmp_path / "runs")
    store.submit(RunConfig(), "ada")
    del store
    gc.collect()  # closes the store's connection: the WAL is merged into the database file
    path = tmp_path / "runs" / "runs.sqlite3"
    for extra in ("-wal", "-shm"):
        (tmp_path / "runs" / f"runs.sqlite3{extra}").unlink(missing_ok=True)
    data = path.read_bytes()
    path.write_bytes(b"this is not sqlite" * 300 if damage == "garbage" else b"\0" * 100 + data[100:])
    with pytest.raises(StoreError) as err:
        RunStore(tmp_path / "runs").list_runs()
    assert str(err.value) == f"{path} is not a run store (corrupt?): move it away or choose another folder"


def test_a_root_that_is_a_file_or_missing_is_one_clear_line(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="is not a folder"):
        RunStore(tmp_path / "file")
    with pytest.raises(StoreError, match="cannot create the run store folder"):
        RunStore(tmp_path / "file" / "runs")
    with pytest.raises(StoreError, match="no run store in .*nothing submitted there yet"):
        RunStore(tmp_path / "nowhere", create=False)
    assert not (tmp_path / "nowhere").exists()


def test_a_deleted_or_replaced_database_is_noticed(tmp_path):
    store = RunStore(tmp_path / "runs")
    store.check_same_file()
    store.db_path.unlink()
    with pytest.raises(StoreGone, match="was deleted while in use"):
        store.check_same_file()
    RunStore(tmp_path / "runs")
    with pytest.raises(StoreGone, match="was replaced"):
        store.check_same_file()


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
