"""The resource guard: a run's peak memory and duration, estimated before it is queued.

Memory (bytes, float32 = 4 bytes per number) on the run's device:

    parameters x copies      weights, gradients, momentum (3); SAM / ASAM also keep the perturbation
                             and the weights' scratch copy (5)
    + activations            the numbers every layer outputs for one image (``profile``) x the
                             examples in one forward pass (batch_size, or m with m-sharpness) x 1.5
                             (outputs kept for the backward pass plus the gradients in flight)
    + data                   the training and test images held on the device as uint8 (CIFAR
                             keeps them there), twice on the CPU while they are loaded
    + runtime                the interpreter with torch (CPU) or the CUDA context (GPU)

and the machine's limit: the smaller of physical RAM and the cgroup's memory.max for the CPU,
the GPU's total memory for CUDA.  ``refusal`` turns an estimate over the limit into one line
that names batch_size, the model and the numbers.

Duration: multiply-accumulates per image (``profile``) x 3 (forward + backward) x passes (2 for
SAM / ASAM) x training images x epochs, plus evaluation, divided by the device's throughput:
a table per device (measured on the 2-core dev VM: small_cnn, benchmarks/README.md) refined by
the runs of this store that finished (``throughput`` takes the median of what they achieved).

``profile`` builds the model on torch's meta device (no memory, no compute), so torch is
imported on first use only.
"""
from __future__ import annotations

import functools
import math
import os
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from asam_core.methods import METHODS
from asam_core.train.config import RunConfig

if TYPE_CHECKING:
    from asam_core.runs.store import RunStore

CIFAR_TRAIN_PER_CLASS = {"cifar10": 5000, "cifar100": 500}
CIFAR_TEST_IMAGES = 10_000
CIFAR_CLASSES = {"cifar10": 10, "cifar100": 100}
IMAGE_BYTES = 3 * 32 * 32
ACTIVATION_FACTOR = 1.5
RUNTIME_BYTES = {"cpu": 400 * 2**20, "cuda": 600 * 2**20}
# multiply-accumulates per second per device: CPU per core (small_cnn SGD, 6.8 s per epoch of 5,000
# images on 2 cores), CUDA a conservative figure for small convolutional networks.
MACS_PER_S_PER_CPU_CORE = 1.6e10
MACS_PER_S_CUDA = 2e12
CONFIRM_ABOVE_S = 3600.0


@dataclass(frozen=True)
class ModelProfile:
    """What one image costs a network: parameters, numbers output by its layers, multiply-accumulates."""

    parameters: int
    activations_per_image: int
    macs_per_image: int


@functools.lru_cache(maxsize=None)
def profile(model: str, num_classes: int) -> ModelProfile:
    """The profile of ``model`` from one forward pass on torch's meta device."""
    import torch
    from torch import nn

    from asam_core.train.models import build_model

    with torch.device("meta"):
        net = build_model(model, num_classes)
    activations = macs = 0

    def count(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal activations, macs
        activations += output.numel()
        if isinstance(module, nn.Conv2d):
            macs += output.numel() * module.in_channels // module.groups * math.prod(module.kernel_size)
        elif isinstance(module, nn.Linear):
            macs += output.numel() * module.in_features

    hooks = [m.register_forward_hook(count) for m in net.modules() if not list(m.children())]
    with torch.no_grad():
        net(torch.empty(1, 3, 32, 32, device="meta"))
    for hook in hooks:
        hook.remove()
    return ModelProfile(sum(p.numel() for p in net.parameters()), activations, macs)


def run_device(config: RunConfig) -> str:
    """"cpu" or "cuda": where the run will train on this machine."""
    if config.device != "auto":
        return config.device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def train_images(config: RunConfig) -> int:
    per_class = CIFAR_TRAIN_PER_CLASS[config.dataset]
    return CIFAR_CLASSES[config.dataset] * min(config.subset_per_class or per_class, per_class)


def peak_bytes(config: RunConfig, device: str) -> int:
    """The run's estimated peak memory on ``device`` (see the module docstring)."""
    p = profile(config.model, CIFAR_CLASSES[config.dataset])
    copies = 5 if METHODS[config.optimizer].sharpness_aware else 3
    per_pass = min(config.batch_size, config.m or config.batch_size)
    activations = ACTIVATION_FACTOR * p.activations_per_image * per_pass * 4
    data = (train_images(config) + CIFAR_TEST_IMAGES) * IMAGE_BYTES * (2 if device == "cpu" else 1)
    return int(p.parameters * copies * 4 + activations + data + RUNTIME_BYTES[device])


def memory_limit(device: str) -> int | None:
    """Bytes the run may use on ``device`` here: RAM (or the cgroup's limit) / GPU memory; None if unknown."""
    if device == "cuda":
        import torch

        return torch.cuda.get_device_properties(0).total_memory if torch.cuda.is_available() else None
    limits = []
    try:
        limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError):
        pass
    try:
        cgroup = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if cgroup.isdigit():
            limits.append(int(cgroup))
    except OSError:
        pass
    return min(limits) if limits else None


def work(config: RunConfig) -> float:
    """Multiply-accumulates of the whole run (training and evaluation)."""
    p = profile(config.model, CIFAR_CLASSES[config.dataset])
    passes = 2 if METHODS[config.optimizer].sharpness_aware else 1
    per_epoch = 3 * passes * p.macs_per_image * train_images(config)
    evaluations = math.ceil(config.epochs / config.eval_every_epochs)
    return per_epoch * config.epochs + evaluations * p.macs_per_image * CIFAR_TEST_IMAGES


def table_throughput(device: str) -> float:
    """The table's multiply-accumulates per second on ``device`` (CPU: scaled by this machine's cores)."""
    return MACS_PER_S_CUDA if device == "cuda" else MACS_PER_S_PER_CPU_CORE * min(os.cpu_count() or 1, 16)


def throughput(device: str, finished: Sequence[tuple[RunConfig, float]]) -> float:
    """Multiply-accumulates per second on ``device``: the median achieved by ``finished`` runs
    (config, seconds its epochs took; runs of this device only), else the table's."""
    seen = [work(config) / seconds for config, seconds in finished if seconds > 0 and run_device(config) == device]
    return statistics.median(seen[-5:]) if seen else table_throughput(device)


@dataclass(frozen=True)
class Estimate:
    """A run's estimated needs on its device, and the device's limit (None: unknown)."""

    device: str
    peak_bytes: int
    limit_bytes: int | None
    seconds: float

    @property
    def fits(self) -> bool:
        return self.limit_bytes is None or self.peak_bytes <= self.limit_bytes

    @property
    def needs_confirmation(self) -> bool:
        """Longer than an hour: the page asks before queuing."""
        return self.seconds > CONFIRM_ABOVE_S


def estimate(config: RunConfig, finished: Sequence[tuple[RunConfig, float]] = (),
             limit_bytes: int | None = None) -> Estimate:
    """The estimate of ``config`` here (``limit_bytes`` overrides the machine's limit)."""
    device = run_device(config)
    limit = memory_limit(device) if limit_bytes is None else limit_bytes
    return Estimate(device, peak_bytes(config, device), limit, work(config) / throughput(device, finished))


def gigabytes(n: float) -> str:
    return f"{n / 2**30:.1f} GB"


def duration(seconds: float) -> str:
    """``seconds`` in words: "40 s", "12 min", "3.5 h", "2.1 days"."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def refusal(config: RunConfig, est: Estimate) -> str | None:
    """Why the run cannot be queued (one line naming batch_size and the model), or None."""
    if est.fits:
        return None
    memory = "GPU memory" if est.device == "cuda" else "memory (RAM or the cgroup's limit)"
    return (f"batch_size {config.batch_size} with model {config.model} needs about {gigabytes(est.peak_bytes)} on "
            f"{est.device}, more than the {gigabytes(est.limit_bytes)} of {memory} here: lower batch_size "
            f"(or set m), or choose a smaller model")


def summary(est: Estimate) -> str:
    """"about 12 min on cpu, peak memory about 1.1 GB (of 23.4 GB)"."""
    limit = f" (of {gigabytes(est.limit_bytes)})" if est.limit_bytes else ""
    return f"about {duration(est.seconds)} on {est.device}, peak memory about {gigabytes(est.peak_bytes)}{limit}"


def finished_runs(store: "RunStore") -> list[tuple[RunConfig, float]]:
    """(config, seconds its epochs took) of the store's done runs, oldest first: what ``throughput`` learns from."""
    runs = [run for run in store.list_runs(["done"]) if run.config is not None]
    seconds: dict[int, float] = {}
    for row in store.metrics([run.id for run in runs]):
        seconds[row["run_id"]] = seconds.get(row["run_id"], 0.0) + row["seconds"]
    return [(run.config, seconds[run.id]) for run in runs if run.id in seconds]
