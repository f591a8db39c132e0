"""Start a background worker process when runs are queued and no live worker exists.

The worker is ``python -m asam_core.runs worker --exit-when-idle`` in a new session (it
outlives the app's script run and is not killed by a Ctrl-C in the app's terminal), with its
output appended to ``<root>/worker.log``.  A file lock plus registering the new pid before
returning make concurrent callers (several browser tabs) start one worker, not several.  When
$RAY_ADDRESS is set in the app's environment the worker is a Ray driver (``worker --ray
$RAY_ADDRESS``, asam_core.runs.ray_worker): the runs train on that cluster, as many at once as it holds.
"""
from __future__ import annotations

import fcntl
import subprocess
import sys
import os
from pathlib import Path

from asam_core.runs.store import RunStore, this_host

_PROJECT_DIR = Path(__file__).resolve().parents[2]
RAY_ADDRESS_ENV = "RAY_ADDRESS"


def ray_address() -> str | None:
    """The Ray cluster the app's worker drives ($RAY_ADDRESS), or None for the local worker."""
    return os.environ.get(RAY_ADDRESS_ENV, "").strip() or None


def start_worker(store: RunStore, slots: int = 1, exit_when_idle: bool = True, poll: float = 0.5) -> subprocess.Popen:
    """Spawn a worker process over ``store`` (registered at once, so it counts as live while it starts);
    with $RAY_ADDRESS set, a Ray driver on that cluster (``slots`` then does not apply)."""
    address = ray_address()
    args = [sys.executable, "-m", "asam_core.runs", "worker", "--root", str(store.root.resolve()), "--poll", str(poll),
            *(["--ray", address] if address else ["--slots", str(slots)])]
    with open(store.root / "worker.log", "ab") as log:
        proc = subprocess.Popen(
            args + (["--exit-when-idle"] if exit_when_idle else []),
            cwd=_PROJECT_DIR, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    store.register_worker(proc.pid, this_host())
    return proc


def ensure_worker(store: RunStore, slots: int = 1) -> int | None:
    """Start a worker if runs are queued or running (orphaned: their worker died) and no worker is
    alive; returns the new pid, else None."""
    with open(store.root / "launch.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        counts = store.counts()
        if not (counts["queued"] or counts["running"]) or store.live_workers(this_host()):
            return None
        return start_worker(store, slots).pid
