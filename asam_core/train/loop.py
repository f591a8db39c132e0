"""The training loop: ``train(config, sink, checkpoint_dir, resume=True) -> RunResult``.

Per step (m-sharpness and frozen BatchNorm statistics on the second pass come from
``asam_core.sharpness_aware_step``; "sgd" is a plain base-optimizer step):

    sink.should_stop()?  -> RunResult("cancelled")        checked before every step
    update, lr scheduler step (cosine over all steps)
    every log_every_steps steps: loss not finite? -> RunResult("failed"), else sink.on_step(...)

Per epoch, in this order: metrics (with the path sketch of asam_core.train.path_sketch, and the
flatness of asam_core.train.flatness on the last epoch and every ``flatness_every_epochs``) ->
``sink.on_epoch(metrics)`` -> ``sink.on_artifacts`` (optional) -> checkpoint written atomically
(``checkpoint_dir/checkpoint.pt``: model, optimizer incl. the base optimizer's momentum, scheduler,
torch / CUDA / data-order RNG states, epoch).  With ``resume`` the last checkpoint is loaded and
training continues at the next epoch, bit-identically on CPU to an uninterrupted run; a crash
between on_epoch and the checkpoint makes that epoch run and be reported again.  A checkpoint
that is empty, truncated, foreign (another ``run_key``) or from other settings fails the run
with the reason; it is never half-used.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Literal, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from asam_core.methods import METHODS
from asam_core.optim import SAM
from asam_core.step import training_step
from asam_core.train.checkpoint import CHECKPOINT_NAME, CheckpointError, load_checkpoint, save_checkpoint
from asam_core.train.config import RunConfig
from asam_core.train.data import CifarData, DataUnavailable, eval_batches, load_cifar, steps_per_epoch, train_batches
from asam_core.train.flatness import PROFILE_T, Flatness, flatness_batch, loss_surface, measure_flatness
from asam_core.train.metrics import FLATNESS_METRICS, EpochMetrics
from asam_core.train.path_sketch import PathSketch
from asam_core.train.models import build_model
from asam_core.train.trajectory import TrajectoryPlane, plane_seed

EVAL_BATCH_SIZE = 1000
_DATA_SEED_OFFSET = 0x5EED  # the data-order generator is seeded with seed + this, apart from the init


@dataclass(frozen=True)
class RunResult:
    """How ``train`` ended: "done", "cancelled" (sink.should_stop) or "failed" (non-finite loss,
    data unavailable, unusable checkpoint), with a human-readable reason."""

    status: Literal["done", "cancelled", "failed"]
    reason: str
    epochs_completed: int
    last: EpochMetrics | None = None


class TrainSink(Protocol):
    """Where the loop reports.  All three are called from the training thread."""

    def on_step(self, step: int, total_steps: int, train_loss: float) -> None:
        """Every ``log_every_steps`` steps: global step (1-based) and mean training loss since the last call."""

    def on_epoch(self, metrics: EpochMetrics) -> None:
        """After every epoch, before its checkpoint is written."""

    def should_stop(self) -> bool:
        """Checked before every step; True cancels the run (the partial epoch is discarded)."""

    # Optional: a sink that keeps the run's artifacts also defines
    # on_artifacts(epoch: int, artifacts: dict[str, bytes]), called after on_epoch with
    # "path_sketch" (float32 bytes, asam_core.train.path_sketch) every epoch, "loss_profile"
    # (JSON: {"t": [...], "loss": [[...], ...]}) on epochs where flatness was measured, and
    # "loss_surface" (JSON, asam_core.train.flatness.loss_surface) on the last epoch.


def resolve_device(name: str) -> torch.device:
    """"auto" -> cuda when available, else cpu; "cuda" without CUDA raises RuntimeError."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device cuda was requested but CUDA is not available here; use device cpu or auto")
    return torch.device(name)


def build_optimizer(config: RunConfig, model: nn.Module) -> torch.optim.Optimizer:
    """The registry's optimizer for ``config.optimizer`` (asam_core.methods) around SGD."""
    return METHODS[config.optimizer].build(
        model, torch.optim.SGD, rho=config.rho, p=config.p, eta=config.eta, normalization=config.normalization,
        normalize_bias=config.normalize_bias, lr=config.lr, momentum=config.momentum,
        weight_decay=config.weight_decay, nesterov=config.nesterov)


class _Autocast(nn.Module):
    """Runs ``model``'s forward under bf16 autocast (backward then follows the forward's dtypes)."""

    def __init__(self, model: nn.Module, device_type: str) -> None:
        super().__init__()
        self.model = model
        self.device_type = device_type

    def forward(self, x: Tensor) -> Tensor:
        with torch.autocast(self.device_type, dtype=torch.bfloat16):
            return self.model(x)


class Trainer:
    """One run's data, model, optimizer, scheduler and data-order generator: ``step`` one batch,
    ``evaluate``, ``state`` / ``restore`` for checkpoints.  ``train`` drives it; benchmarks time it."""

    def __init__(self, config: RunConfig, data: CifarData, device: torch.device) -> None:
        self.config, self.data, self.device = config, data, device
        torch.manual_seed(config.seed)
        self.model = build_model(config.model, data.num_classes, config.dropout)
        self.plane = TrajectoryPlane(self.model.parameters(), plane_seed(config.model, config.seed), device)
        self.sketch = PathSketch(self.model.parameters())
        cuda = device.type == "cuda"
        self.model.to(device, memory_format=torch.channels_last if cuda else torch.preserve_format)
        self.forward = _Autocast(self.model, device.type) if cuda and config.bf16 else self.model
        self.optimizer = build_optimizer(config, self.model)
        self.base = self.optimizer.base_optimizer if isinstance(self.optimizer, SAM) else self.optimizer
        self.steps_per_epoch = steps_per_epoch(len(data.train_y), config.batch_size)
        self.total_steps = self.steps_per_epoch * config.epochs
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.base, T_max=self.total_steps)
        self.generator = torch.Generator(device).manual_seed(config.seed + _DATA_SEED_OFFSET)
        self.last_lr = config.lr

    def layout(self, x: Tensor) -> Tensor:
        """Inputs in the model's memory format (channels_last on CUDA)."""
        return x.contiguous(memory_format=torch.channels_last) if self.device.type == "cuda" else x

    def loss_fn(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return F.cross_entropy(outputs.float(), targets, label_smoothing=self.config.label_smoothing)

    def step(self, x: Tensor, y: Tensor, count: Callable[[Tensor, Tensor], None]) -> Tensor:
        """One update; returns the training loss at w (detached)."""
        self.last_lr = self.base.param_groups[0]["lr"]
        loss = training_step(self.optimizer, self.forward, self.loss_fn, self.layout(x), y, self.config.m, count)
        self.scheduler.step()
        return loss.detach()

    def flatness(self) -> Flatness:
        """The model's flatness now (asam_core.train.flatness), on the fixed training subset."""
        return measure_flatness(self.model, flatness_batch(self.data), p=self.config.p, eta=self.config.eta,
                                dataset=self.config.dataset, model_seed=self.config.seed)

    @torch.no_grad()
    def evaluate(self, split: str = "test") -> tuple[float, float]:
        """Plain cross-entropy and accuracy on the test set (or the training set with the labels it
        trains on), in eval mode."""
        self.model.eval()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        n = 0
        for x, y in eval_batches(self.data, EVAL_BATCH_SIZE, split):
            outputs = self.forward(self.layout(x)).float()
            loss_sum += F.cross_entropy(outputs, y, reduction="sum")
            correct += (outputs.argmax(1) == y).sum()
            n += len(y)
        self.model.train()
        return loss_sum.item() / n, correct.item() / n

    def state(self, epoch: int, metrics: EpochMetrics, run_key: str | None) -> dict:
        return {
            "epoch": epoch,
            "run_key": run_key,
            "config": self.config.training_identity(),
            "device_type": self.device.type,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng_torch": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
            "rng_data": self.generator.get_state(),
            "metrics": asdict(metrics),
        }

    def restore(self, state: dict, run_key: str | None) -> str | None:
        """Load a checkpoint written for ``run_key`` (None: any); returns why it cannot be used, or None."""
        if run_key is not None and state.get("run_key") != run_key:
            return f"it was written by another run (key {state.get('run_key')}), not by this one (key {run_key})"
        if state["config"] != self.config.training_identity():
            changed = sorted(k for k, v in self.config.training_identity().items() if state["config"].get(k) != v)
            return f"the checkpoint was written by a run with different settings ({', '.join(changed)})"
        if state["device_type"] != self.device.type:
            return f"the checkpoint was written on {state['device_type']}, this run is on {self.device.type}"
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng_torch"])
        if state["rng_cuda"]:
            torch.cuda.set_rng_state_all(state["rng_cuda"])
        self.generator.set_state(state["rng_data"])
        return None


def _non_finite(loss_sum: Tensor, steps: int, step: int, epoch: int) -> tuple[float, str | None]:
    """Mean loss over ``steps`` steps and, when it is NaN or infinite, the reason to stop."""
    mean = loss_sum.item() / steps
    if math.isfinite(mean):
        return mean, None
    return mean, f"training loss became {mean} (not finite) by step {step} (epoch {epoch}); training stopped"


def train(config: RunConfig, sink: TrainSink, checkpoint_dir: Path, resume: bool = True,
          run_key: str | None = None) -> RunResult:
    """Train ``config`` reporting to ``sink``; see the module docstring for the contract.

    ``run_key`` is written into every checkpoint; with a key, a checkpoint written under another
    key (or none) is refused rather than resumed.  Problems of the run itself (no data, non-finite
    loss, unusable checkpoint, CUDA missing) return status "failed" with the reason; anything else
    propagates (an OSError from a checkpoint write on a full disk, for one).
    """
    path = Path(checkpoint_dir) / CHECKPOINT_NAME
    try:
        device = resolve_device(config.device)
        data = load_cifar(config.dataset, config.data_dir, subset_per_class=config.subset_per_class,
                          label_noise=config.label_noise, noise_seed=config.noise_seed, device=device,
                          download_missing=config.download)
    except (DataUnavailable, RuntimeError) as err:
        return RunResult("failed", str(err), 0)
    run = Trainer(config, data, device)
    start, last = 0, None
    try:
        state = load_checkpoint(path) if resume else None
    except CheckpointError as err:
        return RunResult("failed", f"cannot resume: {err}", 0)
    if state is not None:
        problem = run.restore(state, run_key)
        if problem:
            return RunResult("failed", f"cannot resume from {path}: {problem}", 0)
        start, last = state["epoch"], EpochMetrics(**state["metrics"])
    window_loss = torch.zeros((), device=device)
    for epoch in range(start + 1, config.epochs + 1):
        began = time.perf_counter()
        epoch_loss = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        seen = 0

        def count(outputs: Tensor, targets: Tensor) -> None:
            nonlocal correct
            correct += (outputs.argmax(1) == targets).sum()

        for i, (x, y) in enumerate(train_batches(data, config.batch_size, run.generator, config.augment)):
            step = (epoch - 1) * run.steps_per_epoch + i + 1
            if sink.should_stop():
                return RunResult("cancelled", f"stopped on request before step {step} (epoch {epoch})", epoch - 1, last)
            loss = run.step(x, y, count)
            epoch_loss += loss
            window_loss += loss
            seen += len(y)
            if step % config.log_every_steps == 0:
                mean, failure = _non_finite(window_loss, config.log_every_steps, step, epoch)
                if failure:
                    return RunResult("failed", failure, epoch - 1, last)
                sink.on_step(step, run.total_steps, mean)
                window_loss.zero_()
        train_loss, failure = _non_finite(epoch_loss, run.steps_per_epoch, epoch * run.steps_per_epoch, epoch)
        if failure:
            return RunResult("failed", failure, epoch - 1, last)
        evaluate = epoch % config.eval_every_epochs == 0 or epoch == config.epochs
        test_loss, test_acc = run.evaluate() if evaluate else (None, None)
        traj_x, traj_y = run.plane.coordinates(run.model.parameters())
        artifacts = {"path_sketch": run.sketch(run.model.parameters()).numpy().tobytes()}
        every = config.flatness_every_epochs
        measured: dict[str, float] = {}
        if epoch == config.epochs or (every and epoch % every == 0):
            flat = run.flatness()
            measured = {name: getattr(flat, name) for name in FLATNESS_METRICS}
            artifacts["loss_profile"] = json.dumps({"t": PROFILE_T, "loss": flat.profile,
                                                    "seconds": flat.seconds}).encode()
        if epoch == config.epochs:
            surface = loss_surface(run.model, flatness_batch(data), run.sketch, config.seed)
            artifacts["loss_surface"] = json.dumps(surface).encode()
            measured["train_eval_acc"] = run.evaluate("train")[1]
        last = EpochMetrics(epoch=epoch, train_loss=train_loss, train_acc=correct.item() / seen, test_loss=test_loss,
                            test_acc=test_acc, lr=run.last_lr, seconds=time.perf_counter() - began,
                            traj_x=traj_x, traj_y=traj_y, **measured)
        sink.on_epoch(last)
        if hasattr(sink, "on_artifacts"):
            sink.on_artifacts(epoch, artifacts)
        save_checkpoint(path, run.state(epoch, last, run_key))
    return RunResult("done", f"trained {config.epochs} epochs", config.epochs, last)
