"""The run store: one SQLite database (WAL) plus one folder per run, under one root.

    <root>/runs.sqlite3              runs, metrics, steps, artifacts, workers, settings
    <root>/checkpoints/<run key>/    checkpoint.pt (resumed from), run.log (the run process's
                                     output), final.pt (kept weights, see retention)

Lifecycle of a run: queued -> running -> done | failed | cancelled (queued -> cancelled too);
``retry`` puts a failed or cancelled run back in the queue.  A worker claims a queued run with
one atomic ``UPDATE ... RETURNING`` inside ``BEGIN IMMEDIATE`` and receives a fresh *lease*
token; every write about a run (progress, metrics, heartbeat, final status) names that lease
and is dropped once the lease is gone, so a worker that lost its run can never write over the
one that took it next.  Metric rows are append-only with primary key (run_id, epoch) and
``INSERT OR IGNORE``: an epoch re-run after a crash is not written twice.

Every run has a unique ``key`` (a UUID) that names its folder, and the training loop records the
key in each checkpoint and refuses another's, so a run never resumes from a folder it did not
write (ids are reused by a new database; keys are not).  ``retry --fresh`` gives the run a new
key and drops its metrics.

Attempts: ``attempts`` counts the times a run's process started and did not come back with an
outcome.  A run whose process dies (killed, out of memory, segfault) or whose worker vanished is
requeued while ``attempts < max_attempts`` (a store setting, default 2), then failed with the
reason, so the queue moves on.  A worker that stops, or a transient fault (disk full while
writing a checkpoint), puts the run back without using up an attempt; ``error`` then says why
it is queued again, and ``not_before`` holds it back for a while.

Quarantine: a row whose stored config no longer validates as a RunConfig is marked failed with
the validation message the first time it is read; ``claim()`` does the same before it commits,
so one bad row never blocks the queue or breaks a reader.

Retention: when a run is done its checkpoint and log are deleted; with the setting
``keep_final_weights`` its last checkpoint is kept as ``final.pt`` (``torch.load(path)["model"]``
is the state dict).  Failed and cancelled runs keep their checkpoint for ``retry``.  ``gc()``
deletes folders no run owns (a deleted database's, the integer-named folders of old stores) and
checkpoints of done runs left behind by a crash.

Faults never come out as sqlite3 tracebacks: every database or folder problem is a ``StoreError``
with one line that names the file and what to do (corrupt database, read-only folder, disk full,
missing or wrong-type root).  ``StoreGone`` says the database was deleted or replaced while this
process had it open.  Stores written by older versions gain the new columns on open (runs'
key, run_pid and not_before; metric fields added since).
"""
from __future__ import annotations

import os
import shutil
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

from asam_core.train.checkpoint import CHECKPOINT_NAME
from asam_core.train.config import RunConfig, format_validation_error
from asam_core.train.metrics import METRIC_FIELDS, NULLABLE_METRICS

Status = Literal["queued", "running", "done", "failed", "cancelled"]
STATUSES: tuple[str, ...] = get_args(Status)
FINAL_STATUSES = ("done", "failed", "cancelled")
ROOT_ENV = "ASAM_LAB_RUNS_DIR"
STALE_AFTER_S = 60.0
FINAL_WEIGHTS_NAME = "final.pt"
RUN_LOG_NAME = "run.log"
MAX_OWNER_LENGTH = 100
DEFAULT_SETTINGS: dict[str, int | bool] = {"max_attempts": 2, "keep_final_weights": False}
_SETTING_RANGES = {"max_attempts": (1, 100)}

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
    error TEXT,
    key TEXT,
    run_pid INTEGER,
    not_before REAL,
    identity TEXT,
    node TEXT
);
CREATE INDEX IF NOT EXISTS runs_status ON runs (status, id);
CREATE TABLE IF NOT EXISTS studies (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    sweep TEXT NOT NULL,
    owner TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS study_runs (
    study_id INTEGER NOT NULL REFERENCES studies (id),
    position INTEGER NOT NULL,
    run_id INTEGER NOT NULL REFERENCES runs (id),
    reused INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (study_id, position)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS metrics (
    run_id INTEGER NOT NULL REFERENCES runs (id),
    {", ".join(f"{f} {'INTEGER' if f == 'epoch' else 'REAL'}{'' if f in NULLABLE_METRICS else ' NOT NULL'}"
               for f in METRIC_FIELDS)},
    PRIMARY KEY (run_id, epoch)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS steps (
    run_id INTEGER NOT NULL REFERENCES runs (id),
    step INTEGER NOT NULL,
    train_loss REAL NOT NULL,
    PRIMARY KEY (run_id, step)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS artifacts (
    run_id INTEGER NOT NULL REFERENCES runs (id),
    epoch INTEGER NOT NULL,
    kind TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (run_id, epoch, kind)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS workers (
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    started REAL NOT NULL,
    heartbeat REAL NOT NULL,
    PRIMARY KEY (pid, host)
);
CREATE TABLE IF NOT EXISTS settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""
# Columns added after the first release: (name, SQL type); old databases gain them on open.
_ADDED_COLUMNS = (("key", "TEXT"), ("run_pid", "INTEGER"), ("not_before", "REAL"), ("identity", "TEXT"),
                  ("node", "TEXT"))


class StoreError(Exception):
    """The run store cannot be used; the message is one line naming the file and what to do."""


class StoreGone(StoreError):
    """The database file was deleted or replaced while this process had it open."""


class UnknownRun(LookupError):
    """No run with this id."""


def default_root() -> Path:
    """The data folder: $ASAM_LAB_RUNS_DIR, else ./runs."""
    return Path(os.environ.get(ROOT_ENV, "runs"))


def this_host() -> str:
    return socket.gethostname()


def new_key() -> str:
    """A fresh run key (32 hex digits)."""
    return uuid.uuid4().hex


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OverflowError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def validate_owner(owner: str) -> str:
    """``owner`` stripped ("anonymous" when blank); ValueError for one too long or with control characters."""
    owner = owner.strip() or "anonymous"
    if len(owner) > MAX_OWNER_LENGTH:
        raise ValueError(f"owner: must have at most {MAX_OWNER_LENGTH} characters (got {len(owner)})")
    if any(ord(c) < 32 or ord(c) == 127 for c in owner):
        raise ValueError("owner: must not contain control characters")
    return owner


@dataclass(frozen=True)
class RunRecord:
    """One row of the runs table.  ``config`` is None for a quarantined row (its stored config no
    longer validates; ``error`` says why)."""

    id: int
    key: str
    status: Status
    config: RunConfig | None
    owner: str
    created: float
    started: float | None
    finished: float | None
    heartbeat: float | None
    worker_pid: int | None
    worker_host: str | None
    run_pid: int | None
    attempts: int
    cancel_requested: bool
    step: int
    total_steps: int | None
    epoch: int
    error: str | None
    not_before: float | None = None
    node: str | None = None  # where the run's process ran (this host, or a Ray node)

    @property
    def progress(self) -> float:
        """Fraction of training done, in [0, 1]: the larger of steps and epochs reported (1 once done)."""
        if self.status == "done":
            return 1.0
        steps = self.step / self.total_steps if self.total_steps else 0.0
        epochs = self.epoch / self.config.epochs if self.config is not None else 0.0
        return min(max(steps, epochs), 1.0)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "RunRecord":
        """The record of ``row``; an invalid config gives ``config=None`` and status failed with the reason."""
        fields = {k: row[k] for k in row.keys() if k not in ("config", "lease", "identity")}
        fields["cancel_requested"] = bool(row["cancel_requested"])
        config, problem = parse_config(row)
        if problem is None:
            return cls(**fields, config=config)
        return cls(**{**fields, "status": "failed", "error": problem}, config=None)


def parse_config(row: sqlite3.Row) -> tuple[RunConfig | None, str | None]:
    """The row's stored config, or None and why it is not a valid RunConfig (one line)."""
    try:
        return RunConfig.model_validate_json(row["config"]), None
    except ValidationError as err:
        problems = format_validation_error(err).replace("\n", "; ")
        return None, f"quarantined: the stored config is no longer a valid RunConfig: {problems}"


@dataclass(frozen=True)
class Claim:
    """A run taken by a worker; ``lease`` authorizes the worker's writes about it."""

    run: RunRecord
    lease: str


def _describe(err: sqlite3.Error, db_path: Path) -> str:
    """One line for a database error: what is wrong and what to do."""
    text = str(err)
    root = db_path.parent
    if isinstance(err, sqlite3.DatabaseError) and ("not a database" in text or "malformed" in text):
        return f"{db_path} is not a run store (corrupt?): move it away or choose another folder"
    if "readonly" in text or "read-only" in text:
        return f"{root} is read-only: the run store needs to write there; choose another folder (--root or ${ROOT_ENV})"
    if "disk is full" in text or "disk I/O error" in text:
        return f"cannot write to {db_path}: the disk is full (or failing); free some space and try again"
    if "unable to open" in text and root.is_dir() and not os.access(root, os.W_OK):
        return f"{root} is read-only: the run store needs to write there; choose another folder (--root or ${ROOT_ENV})"
    if "unable to open" in text:
        return f"cannot open {db_path}: check that {root} is a writable folder (--root or ${ROOT_ENV})"
    if "locked" in text or "busy" in text:
        return f"{db_path} stayed locked by another process for 30 s; try again"
    return f"run store {db_path}: {text}"


class RunStore:
    """Runs, metrics and run folders under ``root``.

    ``create=False`` opens an existing store only (read-only commands: no folder or database is
    made where none was).  Raises StoreError when the root or its database cannot be used.
    """

    def __init__(self, root: Path | str | None = None, create: bool = True) -> None:
        self.root = Path(root) if root is not None else default_root()
        self.db_path = self.root / "runs.sqlite3"
        self._local = threading.local()
        self._check_root(create)
        with self._connect() as con:
            con.execute("PRAGMA journal_mode=WAL")
            con.executescript(_SCHEMA)
            self._migrate(con)
        stat = self.db_path.stat()
        self._identity = (stat.st_dev, stat.st_ino)

    def _check_root(self, create: bool) -> None:
        where = f"(--root or ${ROOT_ENV})"
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"{self.root} is not a folder: choose a folder for the run store {where}")
        if self.db_path.exists() and not self.db_path.is_file():
            raise StoreError(f"{self.db_path} is not a file: move it away or choose another folder {where}")
        if not create and not self.db_path.is_file():
            raise StoreError(f"no run store in {self.root} (nothing submitted there yet?): check the folder {where}")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreError(f"cannot create the run store folder {self.root}: {err.strerror} {where}") from None

    def _migrate(self, con: sqlite3.Connection) -> None:
        """Add the columns newer versions need: runs' _ADDED_COLUMNS and metric fields added to
        EpochMetrics (nullable: older rows have no value).  One write transaction, so two openers
        do it once."""
        def missing() -> list[tuple[str, str, str]]:
            runs, metrics = self._columns(con, "runs"), self._columns(con, "metrics")
            return ([("runs", name, kind) for name, kind in _ADDED_COLUMNS if name not in runs]
                    + [("metrics", name, "REAL") for name in METRIC_FIELDS if name not in metrics])

        if missing():
            con.execute("BEGIN IMMEDIATE")
            try:
                for table, name, kind in missing():
                    con.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
                con.execute("UPDATE runs SET key = lower(hex(randomblob(16))) WHERE key IS NULL")
                for row in con.execute("SELECT id, config FROM runs WHERE identity IS NULL").fetchall():
                    config, _ = parse_config(row)
                    if config is not None:
                        con.execute("UPDATE runs SET identity = ? WHERE id = ?", (config.identity_digest(), row["id"]))
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        con.execute("CREATE INDEX IF NOT EXISTS runs_identity ON runs (identity, status)")

    @staticmethod
    def _columns(con: sqlite3.Connection, table: str) -> set[str]:
        return {row["name"] for row in con.execute(f"PRAGMA table_info({table})")}

    def run_dir(self, key: str) -> Path:
        """The folder of the run with ``key``: its checkpoint, log and kept weights."""
        return self.root / "checkpoints" / key

    def check_same_file(self) -> None:
        """Raise StoreGone when the database file was deleted or replaced since this store opened it."""
        try:
            stat = self.db_path.stat()
        except FileNotFoundError:
            raise StoreGone(f"{self.db_path} was deleted while in use") from None
        if (stat.st_dev, stat.st_ino) != self._identity:
            raise StoreGone(f"{self.db_path} was replaced by another file while in use")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection (autocommit), opened on first use and kept: closing the last
        connection to a WAL database checkpoints and deletes the WAL, tens of ms per operation.
        Any sqlite3 error inside the block becomes a one-line StoreError."""
        try:
            con = getattr(self._local, "con", None)
            if con is None:
                if hasattr(self, "_identity"):
                    self.check_same_file()  # never create an empty database where this store's was deleted
                con = sqlite3.connect(self.db_path, timeout=30.0, isolation_level=None)
                con.row_factory = sqlite3.Row
                con.execute("PRAGMA synchronous=NORMAL")
                self._local.con = con
            yield con
        except sqlite3.Error as err:
            raise StoreError(_describe(err, self.db_path)) from None

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT: takes the write lock up front, so read-then-write is atomic."""
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    # --- settings -------------------------------------------------------------------------

    def settings(self) -> dict[str, int | bool]:
        """The store's settings: max_attempts (int), keep_final_weights (bool)."""
        with self._connect() as con:
            stored = {row["name"]: row["value"] for row in con.execute("SELECT name, value FROM settings")}
        values: dict[str, int | bool] = {}
        for name, default in DEFAULT_SETTINGS.items():
            raw = stored.get(name)
            values[name] = default if raw is None else (raw == "true" if isinstance(default, bool) else int(raw))
        return values

    def set_setting(self, name: str, value: int | bool) -> None:
        """Change one setting; ValueError naming it when the name or value is not allowed."""
        if name not in DEFAULT_SETTINGS:
            raise ValueError(f"unknown setting {name!r}; the settings are {', '.join(DEFAULT_SETTINGS)}")
        if isinstance(DEFAULT_SETTINGS[name], bool):
            if not isinstance(value, bool):
                raise ValueError(f"{name}: must be true or false (got {value!r})")
            text = "true" if value else "false"
        else:
            low, high = _SETTING_RANGES[name]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"{name}: must be a whole number in [{low}, {high}] (got {value!r})")
            text = str(value)
        with self._connect() as con:
            con.execute("INSERT INTO settings (name, value) VALUES (?, ?) "
                        "ON CONFLICT (name) DO UPDATE SET value = excluded.value", (name, text))

    # --- submitting, reading, cancelling, retrying ----------------------------------------

    def submit(self, config: RunConfig, owner: str) -> int:
        """Queue a run; returns its id.  ``config`` is re-validated and ``owner`` checked
        (``validate_owner``), so bad input queues nothing."""
        config = RunConfig.model_validate(config.model_dump())
        owner = validate_owner(owner)
        with self._connect() as con:
            cur = con.execute(
                "INSERT INTO runs (status, config, owner, created, key, identity) VALUES ('queued', ?, ?, ?, ?, ?)",
                (config.model_dump_json(), owner, time.time(), new_key(), config.identity_digest()),
            )
            return int(cur.lastrowid)

    def submit_study(self, name: str, sweep_json: str, configs: Sequence[RunConfig], owner: str) -> int:
        """Record a study and its runs in one transaction; returns the study id.  Position i of the
        study is ``configs[i]``: an existing run with the same training identity that is done, running
        or queued is reused (``reused`` = 1; the latest done one first), else a new run is queued
        (a run this study queued earlier is reused by its later positions too)."""
        configs = [RunConfig.model_validate(c.model_dump()) for c in configs]
        owner = validate_owner(owner)
        now = time.time()
        with self._transaction() as con:
            study_id = int(con.execute("INSERT INTO studies (name, sweep, owner, created) VALUES (?, ?, ?, ?)",
                                       (name, sweep_json, owner, now)).lastrowid)
            for position, config in enumerate(configs):
                identity = config.identity_digest()
                row = con.execute(
                    "SELECT id FROM runs WHERE identity = ? AND status IN ('done', 'running', 'queued') "
                    "ORDER BY status = 'done' DESC, id DESC LIMIT 1", (identity,)).fetchone()
                reused = row is not None and not con.execute(
                    "SELECT 1 FROM study_runs WHERE study_id = ? AND run_id = ? AND reused = 0",
                    (study_id, row["id"])).fetchone()
                if row is None:
                    run_id = int(con.execute(
                        "INSERT INTO runs (status, config, owner, created, key, identity) VALUES ('queued', ?, ?, ?, ?, ?)",
                        (config.model_dump_json(), owner, now, new_key(), identity)).lastrowid)
                else:
                    run_id = int(row["id"])
                con.execute("INSERT INTO study_runs (study_id, position, run_id, reused) VALUES (?, ?, ?, ?)",
                            (study_id, position, run_id, int(reused)))
        return study_id

    def studies(self) -> list[dict[str, Any]]:
        """Every study, oldest first: id, name, sweep (JSON), owner, created, run_ids (by position) and
        reused (the run ids it took from earlier runs)."""
        with self._connect() as con:
            rows = [dict(r) for r in con.execute("SELECT * FROM studies ORDER BY id")]
            members = con.execute("SELECT study_id, run_id, reused FROM study_runs ORDER BY study_id, position").fetchall()
        for row in rows:
            row["run_ids"], row["reused"] = [], set()
        by_id = {row["id"]: row for row in rows}
        for member in members:
            by_id[member["study_id"]]["run_ids"].append(member["run_id"])
            if member["reused"]:
                by_id[member["study_id"]]["reused"].add(member["run_id"])
        return rows

    def study(self, study_id: int) -> dict[str, Any]:
        """One study (as in ``studies``); UnknownRun when there is none with this id."""
        for row in self.studies():
            if row["id"] == study_id:
                return row
        raise UnknownRun(f"no study with id {study_id} in {self.db_path}")

    def _record(self, row: sqlite3.Row) -> RunRecord:
        """The row's record, quarantining it (status failed, with the reason) if its config is invalid."""
        record = RunRecord.from_row(row)
        if record.config is None and (row["status"], row["error"]) != ("failed", record.error):
            try:
                with self._connect() as con:
                    self._quarantine(con, row["id"], record.error)
            except StoreError:
                pass  # a read-only store still shows the row as failed; the next writer marks it
        return record

    @staticmethod
    def _quarantine(con: sqlite3.Connection, run_id: int, reason: str) -> None:
        con.execute("UPDATE runs SET status = 'failed', error = ?, lease = NULL, finished = COALESCE(finished, ?) "
                    "WHERE id = ?", (reason, time.time(), run_id))

    def get(self, run_id: int) -> RunRecord:
        with self._connect() as con:
            row = con.execute("SELECT * FROM runs WHERE id = ?", (_db_int(run_id),)).fetchone()
        if row is None:
            raise UnknownRun(f"no run with id {run_id} in {self.db_path}")
        return self._record(row)

    def list_runs(self, statuses: Iterable[str] | None = None) -> list[RunRecord]:
        """All runs (or those with one of ``statuses``), oldest first; quarantined rows count as failed."""
        wanted = set(statuses) if statuses is not None else set(STATUSES)
        with self._connect() as con:
            rows = con.execute("SELECT * FROM runs ORDER BY id").fetchall()
        return [record for record in map(self._record, rows) if record.status in wanted]

    def counts(self) -> dict[str, int]:
        """status -> number of runs with it (every status present)."""
        with self._connect() as con:
            rows = con.execute("SELECT status, COUNT(*) AS n FROM runs GROUP BY status")
            return {**dict.fromkeys(STATUSES, 0), **{row["status"]: row["n"] for row in rows}}

    def request_cancel(self, run_id: int) -> Status:
        """Cancel a run: a queued one at once, a running one at its next step (its process is
        ended after a grace period if it does not stop).  Returns the status after the request
        (finished runs are left as they are)."""
        with self._transaction() as con:
            row = con.execute("SELECT status FROM runs WHERE id = ?", (_db_int(run_id),)).fetchone()
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

    def retry(self, run_id: int, fresh: bool = False) -> RunRecord:
        """Put a failed or cancelled run back in the queue with its attempts reset.

        It resumes from its last good checkpoint; with ``fresh`` it starts over: a new key (so a
        new, empty folder; the old one is deleted) and its metrics and step losses dropped.
        ValueError (one line) for a run that is not failed or cancelled, or whose config is invalid.
        """
        run = self.get(run_id)
        if run.config is None:
            raise ValueError(f"run {run_id} cannot be retried: {run.error}; submit a new run instead")
        if run.status not in ("failed", "cancelled"):
            raise ValueError(f"run {run_id} is {run.status}: only failed or cancelled runs can be retried")
        key = new_key() if fresh else run.key
        reason = f"retried{' from scratch' if fresh else ''} after: {run.error or run.status}"
        with self._transaction() as con:
            cur = con.execute(
                "UPDATE runs SET status = 'queued', key = ?, attempts = 0, cancel_requested = 0, finished = NULL, "
                "lease = NULL, worker_pid = NULL, worker_host = NULL, run_pid = NULL, not_before = NULL, error = ? "
                "WHERE id = ? AND status IN ('failed', 'cancelled')", (key, reason, run_id))
            if cur.rowcount != 1:
                raise ValueError(f"run {run_id} changed status meanwhile: try again")
            if fresh:
                con.execute("DELETE FROM metrics WHERE run_id = ?", (run_id,))
                con.execute("DELETE FROM steps WHERE run_id = ?", (run_id,))
                con.execute("DELETE FROM artifacts WHERE run_id = ?", (run_id,))
                con.execute("UPDATE runs SET step = 0, epoch = 0, total_steps = NULL WHERE id = ?", (run_id,))
        if fresh:
            shutil.rmtree(self.run_dir(run.key), ignore_errors=True)
        return self.get(run_id)

    def metrics(self, run_ids: Sequence[int]) -> list[dict[str, float]]:
        """Metric rows (run_id plus METRIC_FIELDS) of ``run_ids``, by run then epoch."""
        if not run_ids:
            return []
        with self._connect() as con:
            rows = con.execute(
                f"SELECT run_id, {', '.join(METRIC_FIELDS)} FROM metrics "
                f"WHERE run_id IN ({','.join('?' * len(run_ids))}) ORDER BY run_id, epoch",
                tuple(_db_int(i) for i in run_ids),
            ).fetchall()
        return [dict(row) for row in rows]

    def artifacts(self, run_ids: Sequence[int], kind: str) -> dict[int, list[tuple[int, bytes]]]:
        """run id -> [(epoch, data)] of the ``kind`` artifacts of ``run_ids`` ("path_sketch",
        "loss_profile"; see asam_core.train.loop), by epoch; runs without any are left out."""
        if not run_ids:
            return {}
        with self._connect() as con:
            rows = con.execute(
                f"SELECT run_id, epoch, data FROM artifacts WHERE kind = ? AND run_id IN ({','.join('?' * len(run_ids))}) "
                "ORDER BY run_id, epoch", (kind, *(_db_int(i) for i in run_ids))).fetchall()
        found: dict[int, list[tuple[int, bytes]]] = {}
        for row in rows:
            found.setdefault(row["run_id"], []).append((row["epoch"], bytes(row["data"])))
        return found

    def step_losses(self, run_ids: Sequence[int]) -> list[tuple[int, int, float]]:
        """(run id, step, train loss) of ``run_ids``, by run then step."""
        if not run_ids:
            return []
        with self._connect() as con:
            rows = con.execute(
                f"SELECT run_id, step, train_loss FROM steps WHERE run_id IN ({','.join('?' * len(run_ids))}) "
                "ORDER BY run_id, step", tuple(_db_int(i) for i in run_ids))
            return [(row["run_id"], row["step"], row["train_loss"]) for row in rows]

    def best_test_acc(self) -> dict[int, float]:
        """run id -> highest test accuracy over its epochs (runs with metrics only)."""
        with self._connect() as con:
            rows = con.execute("SELECT run_id, MAX(test_acc) AS best FROM metrics GROUP BY run_id")
            return {row["run_id"]: row["best"] for row in rows}

    # --- the worker side ------------------------------------------------------------------

    def claim(self, pid: int, host: str) -> Claim | None:
        """Atomically take the oldest queued run that is due for worker (pid, host); None when
        there is none.  Queued rows with an invalid config met on the way are quarantined."""
        lease = new_key()
        now = time.time()
        with self._transaction() as con:
            while True:
                row = con.execute("SELECT * FROM runs WHERE status = 'queued' AND COALESCE(not_before, 0) <= ? "
                                  "ORDER BY id LIMIT 1", (now,)).fetchone()
                if row is None:
                    return None
                _, problem = parse_config(row)
                if problem is None:
                    break
                self._quarantine(con, row["id"], problem)
            row = con.execute(
                "UPDATE runs SET status = 'running', lease = ?, worker_pid = ?, worker_host = ?, heartbeat = ?, "
                "started = COALESCE(started, ?), attempts = attempts + 1, not_before = NULL, run_pid = NULL "
                "WHERE id = ? RETURNING *",
                (lease, pid, host, now, now, row["id"]),
            ).fetchone()
        return Claim(RunRecord.from_row(row), lease)

    def leased_run(self, lease: str) -> RunRecord | None:
        """The running run held by ``lease``, or None once the lease is gone."""
        with self._connect() as con:
            row = con.execute("SELECT * FROM runs WHERE lease = ? AND status = 'running'", (lease,)).fetchone()
        return None if row is None else RunRecord.from_row(row)

    def set_run_pid(self, lease: str, pid: int, node: str | None = None) -> bool:
        """Record the pid of the process training the leased run and the node it runs on (default:
        the worker's host); False if the lease is lost."""
        with self._connect() as con:
            cur = con.execute("UPDATE runs SET run_pid = ?, node = COALESCE(?, worker_host) "
                              "WHERE lease = ? AND status = 'running'", (pid, node, lease))
            return cur.rowcount == 1

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

    def cancel_requested(self, lease: str) -> bool | None:
        """Whether the leased run's cancel was requested; None once the lease is gone."""
        with self._connect() as con:
            row = con.execute("SELECT cancel_requested FROM runs WHERE lease = ? AND status = 'running'",
                              (lease,)).fetchone()
        return None if row is None else bool(row["cancel_requested"])

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

    def record_artifacts(self, lease: str, epoch: int, artifacts: Mapping[str, bytes]) -> bool:
        """Store one epoch's artifacts (kind -> bytes; a repeat of a stored one is ignored); False if the lease is lost."""
        with self._transaction() as con:
            run_id = self._leased_run(con, lease)
            if run_id is None:
                return False
            con.executemany("INSERT OR IGNORE INTO artifacts (run_id, epoch, kind, data) VALUES (?, ?, ?, ?)",
                            [(run_id, epoch, kind, sqlite3.Binary(data)) for kind, data in artifacts.items()])
            return True

    def finish(self, lease: str, status: Literal["done", "failed", "cancelled"], error: str | None = None) -> bool:
        """End a leased run with a final status; False if the lease is lost.  A run that is done
        loses its checkpoint and log (see retention in the module docstring)."""
        if status not in FINAL_STATUSES:
            raise ValueError(f"status must be one of {FINAL_STATUSES}, got {status!r}")
        with self._connect() as con:
            row = con.execute(
                "UPDATE runs SET status = ?, error = ?, finished = ?, lease = NULL, run_pid = NULL "
                "WHERE lease = ? AND status = 'running' RETURNING key",
                (status, error, time.time(), lease),
            ).fetchone()
        if row is not None and status == "done":
            self._retain(row["key"], self.settings()["keep_final_weights"])
        return row is not None

    def retain(self, folder: Path) -> list[Path]:
        """Apply the retention rule to a done run's folder kept outside the store (a Ray cluster's
        checkpoint storage, asam_core.runs.ray_worker); returns what was deleted."""
        return self._retain_folder(Path(folder), self.settings()["keep_final_weights"])

    def _retain(self, key: str, keep_final_weights: bool) -> list[Path]:
        """Apply the retention rule to a done run's folder; returns what was deleted."""
        return self._retain_folder(self.run_dir(key), keep_final_weights)

    @staticmethod
    def _retain_folder(folder: Path, keep_final_weights: bool) -> list[Path]:
        removed = []
        try:
            if keep_final_weights and (folder / CHECKPOINT_NAME).is_file():
                os.replace(folder / CHECKPOINT_NAME, folder / FINAL_WEIGHTS_NAME)
            for path in list(folder.iterdir()) if folder.is_dir() else []:
                if path.name != FINAL_WEIGHTS_NAME or not keep_final_weights:
                    _remove(path)
                    removed.append(path)
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        except OSError:
            pass  # gc() finishes the job later
        return removed

    def release(self, lease: str, reason: str | None = None, delay: float = 0.0) -> bool:
        """Give a leased run back to the queue without using up an attempt (its worker is stopping,
        or a transient fault such as a full disk); ``reason`` is shown as why it is queued again,
        ``delay`` seconds pass before it can be claimed.  It resumes from its checkpoint.  A run
        whose cancel was requested is cancelled instead."""
        now = time.time()
        with self._connect() as con:
            cur = con.execute(
                "UPDATE runs SET lease = NULL, worker_pid = NULL, worker_host = NULL, run_pid = NULL, "
                "status = CASE cancel_requested WHEN 1 THEN 'cancelled' ELSE 'queued' END, "
                "finished = CASE cancel_requested WHEN 1 THEN ? ELSE NULL END, "
                "attempts = MAX(attempts - 1, 0), error = COALESCE(?, error), not_before = ? "
                "WHERE lease = ? AND status = 'running'",
                (now, reason, now + delay if delay > 0 else None, lease),
            )
            return cur.rowcount == 1

    def requeue_or_fail(self, lease: str, reason: str) -> Status | None:
        """A leased run's process died: requeue it with ``reason``, or fail it once it has used
        max_attempts.  Returns the new status; None if the lease is lost."""
        max_attempts = self.settings()["max_attempts"]
        with self._transaction() as con:
            row = con.execute("SELECT id FROM runs WHERE lease = ? AND status = 'running'", (lease,)).fetchone()
            if row is None:
                return None
            return self._requeue_or_fail(con, row["id"], reason, max_attempts)

    @staticmethod
    def _requeue_or_fail(con: sqlite3.Connection, run_id: int, reason: str, max_attempts: int) -> Status:
        row = con.execute("SELECT attempts, cancel_requested FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row["cancel_requested"]:
            status, error = "cancelled", None
        elif row["attempts"] >= max_attempts:
            status, error = "failed", f"{reason} (attempt {row['attempts']} of {max_attempts}: giving up)"
        else:
            status, error = "queued", f"{reason} (attempt {row['attempts']} of {max_attempts})"
        con.execute(
            "UPDATE runs SET status = ?, error = ?, lease = NULL, worker_pid = NULL, worker_host = NULL, "
            "run_pid = NULL, finished = CASE WHEN ? = 'queued' THEN NULL ELSE ? END WHERE id = ?",
            (status, error, status, time.time(), run_id),
        )
        return status

    def requeue_orphans(self, host: str, stale_after: float = STALE_AFTER_S) -> list[int]:
        """Requeue (or fail, after max_attempts) running runs whose worker died: pid gone on
        ``host``, or heartbeat older than ``stale_after`` s.

        An orphan whose cancel was requested is marked cancelled instead; dead workers are
        unregistered.  Returns the ids of the runs touched.
        """
        now = time.time()
        max_attempts = self.settings()["max_attempts"]
        with self._transaction() as con:
            for row in con.execute("SELECT pid, host, heartbeat FROM workers").fetchall():
                if (row["host"] == host and not pid_alive(row["pid"])) or row["heartbeat"] < now - stale_after:
                    con.execute("DELETE FROM workers WHERE pid = ? AND host = ?", (row["pid"], row["host"]))
            orphans = []
            for row in con.execute("SELECT id, worker_pid, worker_host, heartbeat FROM runs "
                                   "WHERE status = 'running'").fetchall():
                if row["worker_host"] == host and not pid_alive(row["worker_pid"]):
                    reason = f"its worker (pid {row['worker_pid']}) died"
                elif (row["heartbeat"] or 0.0) < now - stale_after:
                    reason = f"its worker on {row['worker_host']} stopped answering {now - (row['heartbeat'] or 0):.0f} s ago"
                else:
                    continue
                self._requeue_or_fail(con, row["id"], reason, max_attempts)
                orphans.append(row["id"])
        return orphans

    @staticmethod
    def _leased_run(con: sqlite3.Connection, lease: str) -> int | None:
        row = con.execute("SELECT id FROM runs WHERE lease = ? AND status = 'running'", (lease,)).fetchone()
        return None if row is None else int(row["id"])

    # --- folders --------------------------------------------------------------------------

    def gc(self) -> list[Path]:
        """Delete what no run needs: folders under checkpoints/ that no run's key names, leftover
        ``*.tmp`` files of runs not running, and checkpoints of done runs (retention).  Returns
        the paths deleted."""
        base = self.root / "checkpoints"
        folders = sorted(p for p in base.iterdir()) if base.is_dir() else []
        with self._connect() as con:  # read after listing: a run submitted meanwhile is in here
            owners = {row["key"]: row["status"] for row in con.execute("SELECT key, status FROM runs")}
        keep_weights = self.settings()["keep_final_weights"]
        removed: list[Path] = []
        for folder in folders:
            status = owners.get(folder.name)
            try:
                if status is None:
                    _remove(folder)
                    removed.append(folder)
                elif status == "done":
                    removed += self._retain(folder.name, keep_weights or (folder / FINAL_WEIGHTS_NAME).exists())
                elif status != "running":
                    for tmp in folder.glob("*.tmp"):
                        _remove(tmp)
                        removed.append(tmp)
            except OSError as err:
                raise StoreError(f"cannot delete {folder}: {err.strerror}") from None
        return removed

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


def _db_int(value: int) -> int:
    """``value`` as an id SQLite can hold; UnknownRun for one beyond 64 bits (no such run)."""
    if not -(2**63) <= value < 2**63:
        raise UnknownRun(f"no run with id {value}: ids are below 2**63")
    return value


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)

