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


def seconds(config: ClassifierConfig, repeat: int, threads: int = 1) -> tuple[float, float]:
    """Best wall time and best process CPU time of ``repeat`` train_classifiers calls (seconds)."""
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        train_classifiers(config, threads=threads)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus)


def show(wall_cpu: tuple[float, float]) -> str:
    return f"{wall_cpu[0]:.1f} s wall ({wall_cpu[1]:.1f} s CPU)"


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
              f"SGD + SAM + ASAM: {show(seconds(config, args.repeat))}")
    short = PRESETS[PAPER_EFFECT].model_copy(update=dict(steps=args.ratio_steps))
    batched = seconds(short, args.repeat)
    singles = [
        seconds(short.model_copy(update=dict(members=1, seed=short.seed + k, flip_seed=short.flip_seed + k)), args.repeat)
        for k in range(short.members)
    ]
    one_by_one = (sum(w for w, _ in singles), sum(c for _, c in singles))
    two_threads = seconds(short, args.repeat, threads=2)
    print(f"{args.ratio_steps} steps of the paper-effect preset, 3 seeds:")
    print(f"  batched, 1 thread     {show(batched)}")
    print(f"  one run per seed      {show(one_by_one)}  x{one_by_one[0] / batched[0]:.2f} wall, "
          f"x{one_by_one[1] / batched[1]:.2f} CPU")
    print(f"  batched, 2 threads    {show(two_threads)}  x{two_threads[0] / batched[0]:.2f} wall")
    print(load())


if __name__ == "__main__":
    main()
