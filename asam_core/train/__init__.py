"""CIFAR training engine: data, models, the ASAM paper's recipe, checkpoints, trajectories.

Contract for callers (the foreground CLI, the background worker, tests):

``RunConfig`` (``asam_core.train.config``)
    pydantic model with every option; ``extra="forbid"``; bounds via ``Field`` so errors name
    the field and its range; ``format_validation_error(err)`` gives one line per bad field
    ("rho: must be >= 0 (got -1)"); JSON round-trip with ``model_dump_json`` /
    ``model_validate_json`` (p = inf is written as "Infinity").  ``PRESETS[title]`` is an
    SGD / SAM / ASAM triple, ``PRESET_DESCRIPTIONS[title]`` what it can and cannot show.

``train(config, sink, checkpoint_dir, resume=True) -> RunResult`` (``asam_core.train.loop``)
    ``sink`` is any object with the ``TrainSink`` methods:
    ``on_step(step, total_steps, train_loss)`` every ``config.log_every_steps`` global steps;
    ``on_epoch(metrics: EpochMetrics)`` after every epoch (epoch, train_loss, train_acc,
    test_loss, test_acc, lr, seconds, traj_x, traj_y; accuracies are fractions; test values
    are None on epochs without evaluation); ``should_stop()`` before every step.
    Per epoch: metrics -> sink.on_epoch -> checkpoint (tmp file + os.replace).  On resume the
    last checkpoint is loaded and the next epoch follows, bit-identical on CPU to an
    uninterrupted run; an epoch reported but not checkpointed (crash in between) is run and
    reported again, so stores should upsert by (run, epoch).
    The trajectory's epoch 0 (initial weights) is (0, 0) by construction and not reported.
    ``RunResult.status`` is "done", "cancelled" (should_stop) or "failed" (non-finite loss,
    missing or corrupt data, unusable checkpoint, CUDA missing), with ``reason``.

The names load on first use (PEP 562): ``RunConfig`` does not import torch, ``train`` does.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "PRESETS": "asam_core.train.config",
    "PRESET_DESCRIPTIONS": "asam_core.train.config",
    "RunConfig": "asam_core.train.config",
    "format_validation_error": "asam_core.train.config",
    "EpochMetrics": "asam_core.train.metrics",
    "RunResult": "asam_core.train.loop",
    "TrainSink": "asam_core.train.loop",
    "train": "asam_core.train.loop",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'asam_core.train' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
