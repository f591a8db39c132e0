"""A run's process with fault-injection points, for tests/test_runs_faults.py.

The worker starts it instead of ``python -m asam_core.runs.child`` (``Worker(child_command=...)``).
It reads the JSON plan at $ASAM_LAB_FAULT_PLAN, ``{"<run id>": {"<attempt>" or "*": [moment, arg]}}``,
and for this run's attempt stops at that moment: it writes ``reached-<run id>-<attempt>`` (its
pid) next to the plan, then sleeps until the test kills it (kill -9), or, for "hold", until the
file ``go-<run id>-<attempt>`` appears and then goes on.  Moments:

    start                 before training starts
    die                   kills itself with SIGKILL at once (a run that dies every time)
    step k                before the k-th step of this attempt
    recorded e            after epoch e's metrics row is stored, before its checkpoint is written
    writing e             half-way through writing epoch e's checkpoint (half the bytes in the .tmp)
    checkpointed e        after epoch e's checkpoint is in place
    hold e                like checkpointed, then waits for the go file and goes on
    finishing             after training, before the outcome is recorded
"""
from __future__ import annotations

import io
import json
import os
import signal
import sys
import time
from pathlib import Path

import torch

import asam_core.train.loop as loop
from asam_core.runs import child
from asam_core.runs.store import RunStore

PLAN = Path(os.environ["ASAM_LAB_FAULT_PLAN"])


def reach(tag: str, hold: bool = False) -> None:
    (PLAN.parent / f"reached-{tag}").write_text(str(os.getpid()))
    go = PLAN.parent / f"go-{tag}"
    while not (hold and go.exists()):
        time.sleep(0.05)


def install(moment: str, arg: int | None, tag: str) -> None:
    if moment == "start":
        reach(tag)
    elif moment == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    elif moment == "step":
        should_stop, calls = child.StoreSink.should_stop, [0]

        def counting(self):
            calls[0] += 1
            if calls[0] == arg:
                reach(tag)
            return should_stop(self)

        child.StoreSink.should_stop = counting
    elif moment == "recorded":
        on_epoch = child.StoreSink.on_epoch

        def recording(self, metrics):
            on_epoch(self, metrics)
            if metrics.epoch == arg:
                reach(tag)

        child.StoreSink.on_epoch = recording
    elif moment in ("writing", "checkpointed", "hold"):
        save = loop.save_checkpoint

        def saving(path, state):
            if state["epoch"] == arg and moment == "writing":
                buffer = io.BytesIO()
                torch.save(state, buffer)
                with open(path.with_name(path.name + ".tmp"), "wb") as f:
                    f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
                    f.flush()
                    os.fsync(f.fileno())
                reach(tag)
            save(path, state)
            if state["epoch"] == arg:
                reach(tag, hold=moment == "hold")

        loop.save_checkpoint = saving
    elif moment == "finishing":
        finish = RunStore.finish

        def finishing(self, *args, **kwargs):
            reach(tag)
            return finish(self, *args, **kwargs)

        RunStore.finish = finishing
    else:
        raise ValueError(f"unknown moment {moment!r}")


def main(argv: list[str]) -> int:
    root, lease = Path(argv[argv.index("--root") + 1]), argv[argv.index("--lease") + 1]
    run = RunStore(root, create=False).leased_run(lease)
    if run is not None:
        plan = json.loads(PLAN.read_text()).get(str(run.id), {})
        step = plan.get(str(run.attempts), plan.get("*"))
        if step:
            install(step[0], step[1] if len(step) > 1 else None, f"{run.id}-{run.attempts}")
    return child.main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
