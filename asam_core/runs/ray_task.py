"""The Ray side of a run: a streaming generator task that trains one run and yields its store writes.

``train_events(run, run_dir, retry_delay)`` runs on any node of a Ray cluster; the driver
(asam_core.runs.ray_worker) submits it with the run's resource request.  A node cannot open the
driver's SQLite file, so the task trains the run in a thread exactly as a local run process does
(``child.train_and_record`` with a ``StoreSink``), but against ``EventStore``: a stand-in for the
run store that turns every write into an event ``(method, args)``

    ("set_run_pid", (pid, node))                   first, from the task itself
    ("record_steps", (steps, total_steps))          step losses, at most every second
    ("record_epoch", (metrics,))                    an epoch's metrics (a dict of METRIC_FIELDS)
    ("record_artifacts", (epoch, {kind: bytes}))    an epoch's artifacts
    ("finish", (status, error)) | ("release", (reason, delay))   the outcome, last

which the task yields in order and the driver replays on the run store under the run's lease
(``RunStore.<method>(lease, *args)``), so the lease rules are the store's.

Order with the checkpoint: the driver submits the task with backpressure 1 (a yield returns once
the driver has taken the event), and an epoch's metrics and artifacts wait for that before the
loop writes the epoch's checkpoint: a task killed at any moment (kill -9, OOM, its node lost)
never leaves a checkpoint of an epoch the driver has not received, and a resumed run re-runs at
most that epoch, whose repeat the store ignores.

Stopping: the driver cancels the task (``ray.cancel``).  The cancellation arrives in the
generator; ``EventStore`` then answers every write and cancel check as a lost lease, so the
training thread stops before its next step, and the generator waits for it up to JOIN_S seconds.
The driver records how the run ended (``child.record_outcome``).  A bug in the training thread
is raised from the generator, so the driver sees it as the task's error.
"""
from __future__ import annotations

import os
import queue
import socket
import threading
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from asam_core.runs.child import StoreSink, train_and_record
from asam_core.runs.store import RunRecord

Event = tuple[str, tuple[Any, ...]]
JOIN_S = 10.0
_ENDED = object()


class EventStore:
    """The run store as a Ray task sees it: each write becomes an event on ``events``.

    Items are ``(event, taken)``; ``taken`` (for an epoch's metrics and artifacts) is set once
    the driver has the event, and the write returns only then.  After ``stopped`` is set every
    write returns False and ``cancel_requested`` None (the lease is gone for this task).
    """

    def __init__(self) -> None:
        self.events: queue.Queue = queue.Queue()
        self.stopped = threading.Event()

    def _send(self, method: str, *args: Any, wait: bool = False) -> bool:
        if self.stopped.is_set():
            return False
        taken = threading.Event() if wait else None
        self.events.put(((method, args), taken))
        while taken is not None and not taken.wait(0.1):
            if self.stopped.is_set():
                return False
        return True

    def record_steps(self, lease: str, steps: Sequence[tuple[int, float]], total_steps: int) -> bool:
        return self._send("record_steps", list(steps), total_steps)

    def record_epoch(self, lease: str, metrics: Mapping[str, float]) -> bool:
        return self._send("record_epoch", dict(metrics), wait=True)

    def record_artifacts(self, lease: str, epoch: int, artifacts: Mapping[str, bytes]) -> bool:
        return self._send("record_artifacts", epoch, dict(artifacts), wait=True)

    def finish(self, lease: str, status: str, error: str | None = None) -> bool:
        return self._send("finish", status, error)

    def release(self, lease: str, reason: str | None = None, delay: float = 0.0) -> bool:
        return self._send("release", reason, delay)

    def cancel_requested(self, lease: str) -> bool | None:
        return None if self.stopped.is_set() else False


def node_name() -> str:
    """This Ray node, for the runs table's "ran on": host name, Ray node id (8 digits), its address."""
    import ray

    node_id = ray.get_runtime_context().get_node_id()
    address = next((node["NodeManagerAddress"] for node in ray.nodes() if node["NodeID"] == node_id), "?")
    return f"{socket.gethostname()} (Ray node {node_id[:8]} at {address})"


def _train(store: EventStore, run: RunRecord, run_dir: Path, retry_delay: float) -> None:
    """The training thread: train and record through ``store``; its last item ends the generator."""
    try:
        train_and_record(store, run, "", StoreSink(store, ""), run_dir, retry_delay)  # type: ignore[arg-type]
    except BaseException as err:  # a bug: raised again from the generator, so the driver sees it
        store.events.put((_ENDED, err))
    else:
        store.events.put((_ENDED, None))


def train_events(run: RunRecord, run_dir: str, retry_delay: float) -> Iterator[Event]:
    """Train ``run`` into ``run_dir`` (resuming from its checkpoint there) and yield its store
    writes as events (see the module docstring).  Runs as a Ray task."""
    yield ("set_run_pid", (os.getpid(), node_name()))
    store = EventStore()
    thread = threading.Thread(target=_train, args=(store, run, Path(run_dir), retry_delay), daemon=True,
                              name=f"run {run.id}")
    thread.start()
    try:
        while True:
            event, taken = store.events.get()
            if event is _ENDED:
                if taken is not None:
                    raise taken
                return
            yield event
            if taken is not None:
                taken.set()
    finally:
        store.stopped.set()
        thread.join(JOIN_S)
