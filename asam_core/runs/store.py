"""The run store: one SQLite database (WAL) plus a checkpoint folder per run, under one root.

    <root>/runs.sqlite3            runs, metrics, steps, workers
    <root>/checkpoints/<run_id>/   what train() writes and resumes from

Lifecycle of a run: queued -> running -> done | failed | cancelled (queued -> cancelled too).
A worker claims a queued run with one atomic ``UPDATE ... RETURNING`` inside ``BEGIN
IMMEDIATE`` and receives a fresh *lease* token; every write a worker makes about a run
(progress, metrics, heartbeat, final status) names that lease and is dropped once the lease is
gone, so a worker that lost its run (requeued after its heartbeat went stale) can never write
over the worker that took it next.  Metric rows are append-only with primary key
(run_id, epoch) and ``INSERT OR IGNORE``: an epoch re-run after a crash is not written twice.
Configs pass through RunConfig on the way in and on the way out.
"""
from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal, Mapping, Sequence, get_args

from pydantic import ValidationError

from asam_core.train.config import RunConfig, format_validation_error

Status = Literal["queued", "running", "done", "failed", "cancelled"]
STATUSES: tuple[str, ...] = get_args(Status)
FINAL_STATUSES = ("done", "failed", "cancelled")
METRIC_FIELDS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "seconds", "traj_x", "traj_y")
_NULLABLE_METRICS = ("test_loss", "test_acc")  # None on epochs without evaluation
ROOT_ENV = "ASAM_LAB_RUNS_DIR"
STALE_AFTER_S = 60.0

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    status TEXT NOT NULL CHECK (status IN ({", ".join(repr(s) for s in STATUSES)})),
    config TEXT NOT NULL,
    owner TEXT NOT NULL,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    heartbeat REAL,
    worker_pid INTEGER,
    worker_host TEXT,
    lease TEXT UNIQUE,
    attempts INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    step INTEGER NOT NULL DEFAULT 0,
    total_steps INTEGER,
    epoch INTEGER NOT NULL DEFAULT 0,
    error TEXT
);
CREATE INDEX IF NOT EXISTS runs_status ON runs (status, id);
CREATE TABLE IF NOT EXISTS metrics (
    run_id INTEGER NOT NULL REFERENCES runs (id),
    {", ".join(f"{f} {'INTEGER' if f == 'epoch' else 'REAL'}{'' if f in _NULLABLE_METRICS else ' NOT NULL'}"
               for f in METRIC_FIELDS)},
    PRIMARY KEY (run_id, epoch)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS steps (
    run_id INTEGER NOT NULL REFERENCES runs (id),
    step INTEGER NOT NULL,
    train_loss REAL NOT NULL,
    PRIMARY KEY (run_id, step)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS workers (
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    started REAL NOT NULL,
    heartbeat REAL NOT NULL,
    PRIMARY KEY (pid, host)
);
"""


class UnknownRun(LookupError):
    """No run with this id."""


def default_root() -> Path:
    """The data folder: $ASAM_LAB_RUNS_DIR, else ./runs."""
    return Path(os.environ.get(ROOT_ENV, "runs"))


def this_host() -> str:
    return socket.gethostname()


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


@dataclass(frozen=True)
class RunRecord:
    """One row of the runs table, with its config validated."""

    id: int
    status: Status
    config: RunConfig
    owner: str
    created: float
    started: float | None
    finished: float | None
    heartbeat: float | None
    worker_pid: int | None
    worker_host: str | None
    attempts: int
    cancel_requested: bool
    step: int
    total_steps: int | None
    epoch: int
    error: str | None

    @property
    def progress(self) -> float:
        """Fraction of training done, in [0, 1]: the larger of steps and epochs reported (1 once done)."""
        if self.status == "done":
            return 1.0
        steps = self.step / self.total_steps if self.total_steps else 0.0
        return min(max(steps, self.epoch / self.config.epochs), 1.0)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "RunRecord":
        try:
            config = RunConfig.model_validate_json(row["config"])
        except ValidationError as err:
            problems = format_validation_error(err).replace("\n", "; ")
            raise ValueError(f"run {row['id']}: the stored config is no longer a valid RunConfig: {problems}") from err
        fields = {k: row[k] for k in row.keys() if k not in ("config", "lease")}
        return cls(**{**fields, "config": config, "cancel_requested": bool(row["cancel_requested"])})


@dataclass(frozen=True)
class Claim:
    """A run taken by a worker; ``lease`` authorizes the worker's writes about it."""

    run: RunRecord
    lease: str


class RunStore:
    """Runs, metrics and checkpoints under ``root`` (created on first use)."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()
        self.root.mkdir(parents=True, exist_ok=True)
        self.db_path = self.root / "runs.sqlite3"
        self._local = threading.local()
        with self._connect() as con:
            con.execute("PRAGMA journal_mode=WAL")
            con.executescript(_SCHEMA)

    def checkpoint_dir(self, run_id: int) -> Path:
        return self.root / "checkpoints" / str(run_id)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection (autocommit), opened on first use and kept: closing the last
        connection to a WAL database checkpoints and deletes the WAL, tens of ms per operation."""
        con = getattr(self._local, "con", None)
        if con is None:
            con = self._local.con = sqlite3.connect(self.db_path, timeout=30.0, isolation_level=None)
            con.row_factory = sqlite3.Row
            con.execute("PRAGMA synchronous=NORMAL")
        yield con

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT: takes the write lock up front, so read-then-write is atomic."""
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    # --- submitting, reading, cancelling -------------------------------------------------

    def submit(self, config: RunConfig, owner: str) -> int:
        """Queue a run; returns its id.  ``config`` is re-validated, so a bad one queues nothing."""
        config = RunConfig.model_validate(config.model_dump())
        owner = owner.strip() or "anonymous"
        with self._connect() as con:
            cur = con.execute(
                "INSERT INTO runs (status, config, owner, created) VALUES ('queued', ?, ?, ?)",
                (config.model_dump_json(), owner, time.time()),
            )
            return int(cur.lastrowid)

    def get(self, run_id: int) -> RunRecord:
        with self._connect() as con:
            row = con.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise UnknownRun(f"no run with id {run_id} in {self.db_path}")
        return RunRecord.from_row(row)

    def list_runs(self, statuses: Iterable[str] | None = None) -> list[RunRecord]:
        """All runs (or those with one of ``statuses``), oldest first."""
        wanted = tuple(statuses) if statuses is not None else STATUSES
        with self._connect() as con:
            rows = con.execute(
                f"SELECT * FROM runs WHERE status IN ({','.join('?' * len(wanted))}) ORDER BY id", wanted
            ).fetchall()
        return [RunRecord.from_row(row) for row in rows]

    def counts(self) -> dict[str, int]:
        """status -> number of runs with it (every status present)."""
        with self._connect() as con:
            rows = con.execute("SELECT status, COUNT(*) AS n FROM runs GROUP BY status")
            return {**dict.fromkeys(STATUSES, 0), **{row["status"]: row["n"] for row in rows}}

    def request_cancel(self, run_id: int) -> Status:
        """Cancel a run: a queued one at once, a running one at its worker's next poll.

        Returns the status after the request (finished runs are left as they are).
        """
        with self._transaction() as con:
            row = con.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise UnknownRun(f"no run with id {run_id} in {self.db_path}")
            if row["status"] == "queued":
                con.execute(
                    "UPDATE runs SET status = 'cancelled', cancel_requested = 1, finished = ? WHERE id = ?",
                    (time.time(), run_id),
                )
                return "cancelled"
            if row["status"] == "running":
                con.execute("UPDATE runs SET cancel_requested = 1 WHERE id = ?", (run_id,))
            return row["status"]

    def metrics(self, run_ids: Sequence[int]) -> list[dict[str, float]]:
        """Metric rows (run_id plus METRIC_FIELDS) of ``run_ids``, by run then epoch."""
        if not run_ids:
            return []
        with self._connect() as con:
            rows = con.execute(
                f"SELECT run_id, {', '.join(METRIC_FIELDS)} FROM metrics "
                f"WHERE run_id IN ({','.join('?' * len(run_ids))}) ORDER BY run_id, epoch",
                tuple(run_ids),
            ).fetchall()
        return [dict(row) for row in rows]

    def step_losses(self, run_id: int) -> list[tuple[int, float]]:
        """(step, train loss) pairs of one run, by step."""
        with self._connect() as con:
            rows = con.execute("SELECT step, train_loss FROM steps WHERE run_id = ? ORDER BY step", (run_id,))
            return [(row["step"], row["train_loss"]) for row in rows]

    def best_test_acc(self) -> dict[int, float]:
        """run id -> highest test accuracy over its epochs (runs with metrics only)."""
        with self._connect() as con:
            rows = con.execute("SELECT run_id, MAX(test_acc) AS best FROM metrics GROUP BY run_id")
            return {row["run_id"]: row["best"] for row in rows}

    # --- the worker side ------------------------------------------------------------------

    def claim(self, pid: int, host: str) -> Claim | None:
        """Atomically take the oldest queued run for worker (pid, host); None when the queue is empty."""
        lease = uuid.uuid4().hex
        now = time.time()
        with self._transaction() as con:
            row = con.execute(
                "UPDATE runs SET status = 'running', lease = ?, worker_pid = ?, worker_host = ?, heartbeat = ?, "
                "started = COALESCE(started, ?), attempts = attempts + 1 "
                "WHERE id = (SELECT id FROM runs WHERE status = 'queued' ORDER BY id LIMIT 1) RETURNING *",
                (lease, pid, host, now, now),
            ).fetchone()
        return None if row is None else Claim(RunRecord.from_row(row), lease)

    def heartbeat(self, leases: Iterable[str]) -> dict[str, bool]:
        """Refresh the heartbeat of the runs held by ``leases``.

        Returns lease -> cancel requested, for the leases still held; a lease missing from the
        answer was lost (its run was requeued or finished elsewhere) and must stop.
        """
        leases = tuple(leases)
        if not leases:
            return {}
        with self._connect() as con:
            rows = con.execute(
                f"UPDATE runs SET heartbeat = ? WHERE status = 'running' AND lease IN ({','.join('?' * len(leases))}) "
                "RETURNING lease, cancel_requested",
                (time.time(), *leases),
            ).fetchall()
        return {row["lease"]: bool(row["cancel_requested"]) for row in rows}

    def record_steps(self, lease: str, steps: Sequence[tuple[int, float]], total_steps: int) -> bool:
        """Store step losses and progress (last step / ``total_steps``); False if the lease is lost."""
        with self._transaction() as con:
            run_id = self._leased_run(con, lease)
            if run_id is None:
                return False
            con.executemany(
                "INSERT OR REPLACE INTO steps (run_id, step, train_loss) VALUES (?, ?, ?)",
                [(run_id, step, loss) for step, loss in steps],
            )
            if steps:
                con.execute(
                    "UPDATE runs SET step = ?, total_steps = ? WHERE id = ?", (steps[-1][0], total_steps, run_id)
                )
            return True

    def record_epoch(self, lease: str, metrics: Mapping[str, float]) -> bool:
        """Append one epoch's metrics (a repeat of a stored epoch is ignored); False if the lease is lost."""
        with self._transaction() as con:
            run_id = self._leased_run(con, lease)
            if run_id is None:
                return False
            con.execute(
                f"INSERT OR IGNORE INTO metrics (run_id, {', '.join(METRIC_FIELDS)}) "
                f"VALUES (?, {', '.join('?' * len(METRIC_FIELDS))})",
                (run_id, *(metrics[f] for f in METRIC_FIELDS)),
            )
            con.execute("UPDATE runs SET epoch = MAX(epoch, ?) WHERE id = ?", (metrics["epoch"], run_id))
            return True

    def finish(self, lease: str, status: Literal["done", "failed", "cancelled"], error: str | None = None) -> bool:
        """End a leased run with a final status; False if the lease is lost."""
        if status not in FINAL_STATUSES:
            raise ValueError(f"status must be one of {FINAL_STATUSES}, got {status!r}")
        with self._connect() as con:
            cur = con.execute(
                "UPDATE runs SET status = ?, error = ?, finished = ?, lease = NULL "
                "WHERE lease = ? AND status = 'running'",
                (status, error, time.time(), lease),
            )
            return cur.rowcount == 1

    def release(self, lease: str) -> bool:
        """Give a leased run back to the queue (worker shutting down); it resumes from its checkpoint."""
        with self._connect() as con:
            cur = con.execute(
                "UPDATE runs SET status = 'queued', lease = NULL, worker_pid = NULL, worker_host = NULL "
                "WHERE lease = ? AND status = 'running'",
                (lease,),
            )
            return cur.rowcount == 1

    def requeue_orphans(self, host: str, stale_after: float = STALE_AFTER_S) -> list[int]:
        """Requeue running runs whose worker died: pid gone on ``host``, or heartbeat older than ``stale_after`` s.

        An orphan whose cancel was requested is marked cancelled instead; dead workers are
        unregistered.  Returns the ids of the runs touched.
        """
        now = time.time()
        with self._transaction() as con:
            for row in con.execute("SELECT pid, host, heartbeat FROM workers").fetchall():
                if (row["host"] == host and not pid_alive(row["pid"])) or row["heartbeat"] < now - stale_after:
                    con.execute("DELETE FROM workers WHERE pid = ? AND host = ?", (row["pid"], row["host"]))
            running = con.execute("SELECT id, worker_pid, worker_host, heartbeat FROM runs WHERE status = 'running'")
            orphans = [
                row["id"] for row in running.fetchall()
                if (row["worker_host"] == host and not pid_alive(row["worker_pid"]))
                or (row["heartbeat"] or 0.0) < now - stale_after
            ]
            for run_id in orphans:
                con.execute(
                    "UPDATE runs SET lease = NULL, worker_pid = NULL, worker_host = NULL, "
                    "status = CASE cancel_requested WHEN 1 THEN 'cancelled' ELSE 'queued' END, "
                    "finished = CASE cancel_requested WHEN 1 THEN ? ELSE finished END WHERE id = ?",
                    (now, run_id),
                )
        return orphans

    @staticmethod
    def _leased_run(con: sqlite3.Connection, lease: str) -> int | None:
        row = con.execute("SELECT id FROM runs WHERE lease = ? AND status = 'running'", (lease,)).fetchone()
        return None if row is None else int(row["id"])

    # --- worker registry (so the app knows whether to start one) -----------------------

    def register_worker(self, pid: int, host: str) -> None:
        """Announce (or refresh) a live worker process."""
        now = time.time()
        with self._connect() as con:
            con.execute(
                "INSERT INTO workers (pid, host, started, heartbeat) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (pid, host) DO UPDATE SET heartbeat = excluded.heartbeat",
                (pid, host, now, now),
            )

    def unregister_worker(self, pid: int, host: str) -> None:
        with self._connect() as con:
            con.execute("DELETE FROM workers WHERE pid = ? AND host = ?", (pid, host))

    def workers(self) -> list[dict[str, Any]]:
        """Registered workers: pid, host, started and last heartbeat (time.time() seconds)."""
        with self._connect() as con:
            return [dict(row) for row in con.execute("SELECT pid, host, started, heartbeat FROM workers ORDER BY started")]

    def live_workers(self, host: str, stale_after: float = STALE_AFTER_S) -> list[tuple[int, str]]:
        """(pid, host) of workers with a fresh heartbeat whose process, when on ``host``, is alive."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT pid, host FROM workers WHERE heartbeat >= ?", (time.time() - stale_after,)
            ).fetchall()
        return [(r["pid"], r["host"]) for r in rows if r["host"] != host or pid_alive(r["pid"])]
