"""Speed of the noisy-labels training (toy_problems.classification), measured side by side.

Prints, with the machine's load average before and after (the cores may be shared):
  * the default preset: SGD, SAM and ASAM from one initialization (target: under 10 s);
  * the paper-effect preset: the same for 3 seeds, batched;
  * ratios on a shortened paper-effect run: 3 seeds batched vs 3 one-seed runs, and
    1 torch thread (what train_classifiers uses) vs 2.

Usage: python -m benchmarks.noisy_labels [--repeat 1] [--ratio-steps 300]
"""
from __future__ import annotations

import argparse
import os
import time

import torch

from toy_problems.classification import ClassifierConfig, train_classifiers
from toy_problems.noisy_labels import PAPER_EFFECT, PRESETS, QUICK


def seconds(config: ClassifierConfig, repeat: int, threads: int = 1) -> float:
    """Best wall time of ``repeat`` full train_classifiers calls."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        train_classifiers(config, threads=threads)
        times.append(time.perf_counter() - start)
    return min(times)


def load() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg()) + f" on {os.cpu_count()} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--ratio-steps", type=int, default=300)
    args = parser.parse_args()
    print(f"torch {torch.__version__}; {load()}")
    train_classifiers(PRESETS[QUICK].model_copy(update=dict(steps=5)))  # imports and allocator warm-up
    for name in (QUICK, PAPER_EFFECT):
        config = PRESETS[name]
        print(f"{name}: {config.members} seed(s), width {config.width}, {config.n_train} points, {config.steps} steps, "
              f"SGD + SAM + ASAM: {seconds(config, args.repeat):.1f} s")
    short = PRESETS[PAPER_EFFECT].model_copy(update=dict(steps=args.ratio_steps))
    batched = seconds(short, args.repeat)
    one_by_one = sum(
        seconds(short.model_copy(update=dict(members=1, seed=short.seed + k, flip_seed=short.flip_seed + k)), args.repeat)
        for k in range(short.members)
    )
    two_threads = seconds(short, args.repeat, threads=2)
    print(f"{args.ratio_steps} steps, 3 seeds: batched {batched:.1f} s, one run per seed {one_by_one:.1f} s "
          f"(x{one_by_one / batched:.2f}); 2 threads {two_threads:.1f} s (x{two_threads / batched:.2f} of 1 thread)")
    print(load())


if __name__ == "__main__":
    main()
