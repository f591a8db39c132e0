"""Speed of the noisy-labels training (toy_problems.classification), measured side by side.

Prints, with the machine's load average before and after (the cores may be shared):
  * the default preset: SGD, SAM and ASAM from one initialization (target: under 10 s);
  * the paper-effect preset: the same for 3 seeds, batched;
  * ratios on a shortened paper-effect run: 3 seeds batched vs 3 one-seed runs, and
    1 torch thread (what train_classifiers uses) vs 2;
  * the perturbation of a step of the quick preset's model (SGD, SAM, ASAM rows), medians of
    alternating blocks (benchmarks.optimizer_step): one asam_core.perturbation_ call per method on its rows (the code before
    RowRegions) vs all rows in one batched computation (asam_core.step.RowRegions).

Usage: python -m benchmarks.noisy_labels [--repeat 1] [--ratio-steps 300]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from asam_core.perturbation import perturbation_, scaled_dual_
from asam_core.step import RowRegions
from benchmarks.optimizer_step import alternating_blocks
from toy_problems.classification import MLP, ClassifierConfig, ensemble_loss, make_data, member_method, train_classifiers
from toy_problems.noisy_labels import PAPER_EFFECT, PRESETS, QUICK
from toy_problems.threads import torch_threads


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


def perturbation_ratio(config: ClassifierConfig) -> dict[str, float]:
    """The perturbation of one step of ``config``'s model, every method's rows: one call per method vs RowRegions."""
    data = make_data(config)
    k, names = config.members, config.optimizers
    model = MLP([config.seed] * k * len(names), config.width, config.depth)
    params = list(model.parameters())
    ensemble_loss(model(data.x_train.repeat(len(names), 1, 1)), data.y_train.repeat(len(names), 1)).backward()
    grads = [w.grad for w in params]
    members = [member_method(name, model, slice(o * k, (o + 1) * k), config) for o, name in enumerate(names)]
    (region,) = RowRegions.of(params, members)  # one p for every method

    @torch.no_grad()
    def per_method() -> None:
        eps = [torch.zeros_like(w) for w in params]
        for member in members:
            if member.region is not None:
                part = [e[member.rows] for e in eps]
                torch._foreach_copy_(part, [g[member.rows] for g in grads])
                perturbation_(part, [w[member.rows] for w in params], kinds=[member.kinds[id(w)] for w in params],
                              batched=True, **member.region)

    @torch.no_grad()
    def batched() -> None:
        eps = [g.clone() for g in grads]
        scaled_dual_(eps, region.scales(params), region.rho, region.p, batched=True)

    blocks = alternating_blocks({"one call per method": per_method, "all rows at once (RowRegions)": batched},
                                sync=lambda: None, rounds=30, block=200)
    return {name: 1e6 * statistics.median(times) for name, times in blocks.items()}


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
    with torch_threads(1):
        medians = perturbation_ratio(PRESETS[QUICK])
    print("perturbation of one step of the quick preset (SGD, SAM, ASAM rows), median us:")
    base = medians["one call per method"]
    for name, us in medians.items():
        print(f"  {name:30s} {us:7.1f} us  x{base / us:.2f}")
    print(load())


if __name__ == "__main__":
    main()
