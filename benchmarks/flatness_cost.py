"""What the flatness measurement and the path sketch cost, per model, on this machine.

For each model: seconds of one flatness measurement (asam_core.train.flatness on FLATNESS_EXAMPLES
examples: sharpness, adaptive sharpness, lambda_max, two loss profiles), seconds of one path sketch
(asam_core.train.path_sketch), and the sketch's share of a CIFAR-10 epoch of SGD at batch 128
(390 steps, the step timed here), the median of ``--rounds`` repetitions.

Usage: python -m benchmarks.flatness_cost [--models small_cnn,resnet20] [--rounds 3] [--threads 2]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from asam_core.train.flatness import FLATNESS_EXAMPLES, measure_flatness
from asam_core.train.models import build_model
from asam_core.train.path_sketch import PathSketch

STEPS_PER_EPOCH = 390


def median_seconds(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="small_cnn,resnet20")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(FLATNESS_EXAMPLES, 3, 32, 32, generator=gen), torch.randint(0, 10, (FLATNESS_EXAMPLES,), generator=gen)
    xb, yb = x[:128], y[:128]
    for name in args.models.split(","):
        torch.manual_seed(0)
        model = build_model(name, 10)
        sketch = PathSketch(model.parameters())
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

        def step() -> None:
            opt.zero_grad()
            F.cross_entropy(model(xb), yb).backward()
            opt.step()

        flat = median_seconds(lambda: measure_flatness(model, [(x, y)]), args.rounds)
        sketch_s = median_seconds(lambda: sketch(model.parameters()), args.rounds)
        step_s = median_seconds(step, args.rounds)
        print(f"{name:10s} flatness measurement {flat:7.2f} s   path sketch {sketch_s * 1e3:7.1f} ms   "
              f"SGD step {step_s * 1e3:7.1f} ms   sketch / CIFAR-10 epoch {sketch_s / (STEPS_PER_EPOCH * step_s):.2%}",
              flush=True)


if __name__ == "__main__":
    main()
