"""Atomic checkpoint files: written to ``<name>.tmp``, flushed to disk, then ``os.replace``d, so
a crash leaves either the previous checkpoint or the new one, never a torn file; a write that
fails (disk full, read-only folder) removes its ``.tmp`` and raises the OSError.

``load_checkpoint`` raises ``CheckpointError`` with one readable line for a file that is empty,
truncated or not a checkpoint at all.  torch is imported on first use, so ``CHECKPOINT_NAME``
is cheap to import.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

CHECKPOINT_NAME = "checkpoint.pt"
REQUIRED_KEYS = frozenset({"epoch", "config", "model", "optimizer", "scheduler", "metrics"})


class CheckpointError(Exception):
    """A checkpoint file that cannot be used; the message names the file and why."""


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` (tensors, numbers, strings, dicts, lists) to ``path`` atomically."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        cause = err.__context__
        if not isinstance(err, OSError) and isinstance(cause, OSError):
            raise cause from None  # torch.save reports a full disk as a RuntimeError raised while closing
        raise


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """The state saved at ``path`` (tensors on the CPU), or None when there is none."""
    import torch

    if not path.is_file():
        return None
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes): its write was cut short")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load of a damaged file raises many types; all mean the same here
        detail = str(err).strip().splitlines()[0][:120] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path} is truncated or not a checkpoint ({detail})") from None
    missing = REQUIRED_KEYS - set(state) if isinstance(state, dict) else REQUIRED_KEYS
    if missing:
        raise CheckpointError(f"{path} is not an ASAM Lab checkpoint (it lacks {', '.join(sorted(missing))})")
    return state
