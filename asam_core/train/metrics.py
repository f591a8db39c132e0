"""The one schema of a run's per-epoch metrics: ``EpochMetrics``; the run store's metrics table,
the CSV export and the foreground run's metrics.jsonl all take their columns from it
(``METRIC_FIELDS``).  No torch here, so readers of the store stay light."""
from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class EpochMetrics:
    """What one epoch reports.  Accuracies are fractions in [0, 1].

    train_loss / train_acc: mean over the epoch's steps of the training objective (cross-entropy
    with label smoothing) and accuracy, both at w (the first pass), on augmented batches.
    test_loss / test_acc: plain cross-entropy and accuracy on the test set; None on epochs
    without evaluation (eval_every_epochs > 1).  lr: the learning rate of the epoch's last step.
    seconds: wall time of the epoch (training and evaluation).  traj_x, traj_y: the weights'
    coordinates in the run's trajectory plane (``asam_core.train.trajectory``); the initial
    weights, "epoch 0", are (0, 0) by construction and are not reported.
    sharpness, adaptive_sharpness, lambda_max, sharpness_inf, adaptive_sharpness_inf: the model's
    flatness (asam_core.train.flatness; the last two with p = inf) on
    epochs where it was measured (the last, and every ``flatness_every_epochs``), else None.
    train_eval_acc: accuracy of the final model on the whole training set with the labels it trained
    on, in eval mode (no dropout, BatchNorm's running statistics, no augmentation); last epoch only.
    It, not the running train_acc, gives the generalization gap.
    """

    epoch: int
    train_loss: float
    train_acc: float
    test_loss: float | None
    test_acc: float | None
    lr: float
    seconds: float
    traj_x: float
    traj_y: float
    sharpness: float | None = None
    adaptive_sharpness: float | None = None
    lambda_max: float | None = None
    sharpness_inf: float | None = None
    adaptive_sharpness_inf: float | None = None
    train_eval_acc: float | None = None


METRIC_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(EpochMetrics))
NULLABLE_METRICS: tuple[str, ...] = tuple(f.name for f in fields(EpochMetrics) if "None" in str(f.type))
FLATNESS_METRICS: tuple[str, ...] = ("sharpness", "adaptive_sharpness", "lambda_max", "sharpness_inf",
                                     "adaptive_sharpness_inf")
