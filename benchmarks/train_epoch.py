"""Training-epoch time of SGD, SAM and ASAM through the real training loop, interleaved in one process.

Each round trains one epoch of each optimizer in turn (same data, model, batch order seed and
recipe as the "Classroom quick" preset unless overridden), so load from other processes hits
all three alike.  Prints seconds per epoch (median over rounds), the ratios SAM/SGD and
ASAM/SGD of the medians, the range of the per-round ratios, and the load average around the
measurement.  Evaluation is not timed.

Usage: python -m benchmarks.train_epoch --data-dir /tmp/cifar [--rounds 3] [--model small_cnn]
       [--subset-per-class 500 | 0 for all] [--device cpu|cuda] [--threads N]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from asam_core.train.config import CLASSROOM_QUICK, PRESETS
from asam_core.train.data import load_cifar, train_batches
from asam_core.train.loop import Trainer, resolve_device


def time_epoch(trainer: Trainer, device: torch.device) -> float:
    """Seconds for one training epoch (every batch through ``Trainer.step``)."""
    correct = torch.zeros((), dtype=torch.long, device=device)

    def count(outputs: torch.Tensor, targets: torch.Tensor) -> None:
        correct.add_((outputs.argmax(1) == targets).sum())

    start = time.perf_counter()
    total = torch.zeros((), device=device)
    for x, y in train_batches(trainer.data, trainer.config.batch_size, trainer.generator, trainer.config.augment):
        total += trainer.step(x, y, count)
    total.item()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", default=None, help="default: the preset's (small_cnn)")
    parser.add_argument("--subset-per-class", type=int, default=None, help="default: the preset's; 0 for all")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = {"data_dir": args.data_dir, "device": args.device}
    if args.model:
        overrides["model"] = args.model
    if args.subset_per_class is not None:
        overrides["subset_per_class"] = args.subset_per_class or None
    configs = [c.model_copy(update=overrides) for c in PRESETS[CLASSROOM_QUICK]]
    device = resolve_device(args.device)
    first = configs[0]
    data = load_cifar(first.dataset, first.data_dir, subset_per_class=first.subset_per_class, device=device)
    trainers = {c.optimizer: Trainer(c, data, device) for c in configs}
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"{first.model}, {len(data.train_y)} training images, batch {first.batch_size}, {name}")
    load_before = os.getloadavg()
    times: dict[str, list[float]] = {k: [] for k in trainers}
    for r in range(args.rounds + 1):  # round 0 warms up
        for opt, trainer in trainers.items():
            seconds = time_epoch(trainer, device)
            if r:
                times[opt].append(seconds)
        if r:
            print(f"  round {r}: " + "  ".join(f"{k} {v[-1]:.1f}s" for k, v in times.items()), flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    for opt in ("sam", "asam"):
        per_round = [a / b for a, b in zip(times[opt], times["sgd"])]
        print(f"{opt.upper()}/SGD epoch-time ratio: {med[opt] / med['sgd']:.2f} "
              f"(per round {min(per_round):.2f}-{max(per_round):.2f})")
    print("seconds per epoch (median): " + ", ".join(f"{k.upper()} {v:.1f}" for k, v in med.items()))
    print(f"load average (1/5/15 min) before {load_before[0]:.1f}/{load_before[1]:.1f}/{load_before[2]:.1f}, "
          f"after {'/'.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
