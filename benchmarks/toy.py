"""Speed of the toy simulator (toy_problems.simulate), measured side by side in one process.

Prints:
  * 3 optimizers (SGD, SAM, ASAM) x 10,000 steps from one start, trajectory recorded
    (target: under 100 ms), next to the floor set by the two asam_core.perturbation() calls
    that every step makes (SAM and ASAM rows), timed alone;
  * a 200 x 200 convergence map of 1,000 steps, 3 optimizers in one batch (target: under 3 s);
  * ratios: one batched call for all starts vs one call per start (extrapolated), and the
    analytic gradient vs torch.autograd for the same loss.

Usage: python -m benchmarks.toy [--threads 2] [--repeat 3] [--grid 200] [--steps 10000] [--map-steps 1000]
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch

from asam_core import perturbation
from toy_problems.convergence import convergence_map
from toy_problems.losses import Loss2D, get_loss
from toy_problems.presets import FIGURE3_CONFIG, FIGURE3_LOSS
from toy_problems.simulate import simulate


def best_of(fn: Callable[[], object], repeat: int) -> float:
    """Minimum wall time of ``repeat`` calls (seconds), after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def autograd_grad(loss: Loss2D, w: torch.Tensor) -> torch.Tensor:
    w = w.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss.value(w).sum(), w)
    return grad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--grid", type=int, default=200)
    parser.add_argument("--map-steps", type=int, default=1_000)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    loss = get_loss(FIGURE3_LOSS)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), loss {loss.name}")

    one_start = torch.tensor([[0.2, 0.05]], dtype=torch.float64)
    config = FIGURE3_CONFIG.model_copy(update=dict(steps=args.steps))
    single = best_of(lambda: simulate(loss, one_start, config), args.repeat)
    g, w = loss.grad(one_start), one_start

    def perturbations_only() -> None:
        for _ in range(args.steps):
            perturbation([g], rho=config.rho, batched=True)
            perturbation([g], [w], rho=config.rho, p=config.p, kinds="element", eta=config.eta, batched=True)

    floor = best_of(perturbations_only, args.repeat)
    print(f"\n3 optimizers x {args.steps} steps, one start:  {single * 1e3:8.1f} ms   (target < 100 ms)")
    print(f"  of which the {2 * args.steps} perturbation() calls alone: {floor * 1e3:8.1f} ms "
          f"({floor / single:.0%}); {single / (3 * args.steps) * 1e6:.1f} us per optimizer-step")

    map_config = FIGURE3_CONFIG.model_copy(update=dict(steps=args.map_steps))
    box = loss.box
    grid = best_of(lambda: convergence_map(loss, box, args.grid, map_config), max(1, args.repeat - 2))
    rows = 3 * args.grid**2
    print(f"\n{args.grid} x {args.grid} map, {args.map_steps} steps, 3 optimizers ({rows} rows, float32): "
          f"{grid:6.2f} s   (target < 3 s)")

    few = 20
    per_start = best_of(
        lambda: [simulate(loss, one_start.float(), map_config, record_every=None) for _ in range(few)], 1
    ) / few
    print(f"  one simulate() call per start instead: {per_start * 1e3:.1f} ms per start "
          f"-> {per_start * args.grid**2:.0f} s for the map, {per_start * args.grid**2 / grid:.0f}x slower")

    for n in (1, rows):
        pts = torch.rand(n, 2, dtype=torch.float32 if n > 1 else torch.float64)
        analytic = best_of(lambda: loss.grad(pts), 20 if n == 1 else 5)
        auto = best_of(lambda: autograd_grad(loss, pts), 20 if n == 1 else 5)
        print(f"gradient on {n:>6} rows: analytic {analytic * 1e6:8.1f} us, autograd {auto * 1e6:8.1f} us "
              f"(autograd / analytic = {auto / analytic:.1f}x)")


if __name__ == "__main__":
    main()
