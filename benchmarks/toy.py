"""Speed of the toy simulator (toy_problems.simulate), measured side by side in one process.

Prints:
  * 3 optimizers (SGD, SAM, ASAM) x 10,000 steps from one start, trajectory recorded
    with simulate() (target: under 100 ms), next to the floor set by the two
    asam_core.perturbation() calls that every step makes (SAM and ASAM rows), timed alone, and
    the one-start fast path the Trajectories page uses (simulate_start, Python floats);
  * a 200 x 200 convergence map of 1,000 steps, 3 optimizers in one batch (target: under 3 s);
  * ratios: one batched call for all starts vs one call per start (extrapolated), and the
    analytic gradient vs torch.autograd for the same loss.

Usage: python -m benchmarks.toy [--threads 1] [--repeat 3] [--grid 200] [--steps 10000] [--map-steps 1000]
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Callable

import torch

from asam_core import perturbation
from toy_problems.convergence import convergence_map
from toy_problems.losses import Loss2D, get_loss
from toy_problems.presets import FIGURE3_CONFIG, FIGURE3_LOSS
from toy_problems.simulate import simulate, simulate_start


@dataclass(frozen=True)
class Timing:
    """Best wall time and best process CPU time of several calls (seconds). On a shared machine
    the CPU time is what the code costs; the wall time adds the time other processes took."""

    wall: float
    cpu: float

    def __str__(self) -> str:
        return f"{self.wall * 1e3:8.1f} ms wall, {self.cpu * 1e3:8.1f} ms CPU"


def best_of(fn: Callable[[], object], repeat: int) -> Timing:
    """Minimum wall and CPU time of ``repeat`` calls, after one warm-up call."""
    fn()
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return Timing(min(walls), min(cpus))


def autograd_grad(loss: Loss2D, w: torch.Tensor) -> torch.Tensor:
    w = w.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss.value(w).sum(), w)
    return grad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads outside simulate() and convergence_map(), which always use one")
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
    g, w = list(loss.grad(one_start).T), list(one_start.T)  # w1 and w2 as two batched tensors, as simulate() does

    def perturbations_only() -> None:
        for _ in range(args.steps):
            perturbation(g, w, rho=config.rho, p=2.0, kinds="none", batched=True)
            perturbation(g, w, rho=config.rho, p=config.p, kinds="element", eta=config.eta, batched=True)

    floor = best_of(perturbations_only, args.repeat)
    print(f"\n3 optimizers x {args.steps} steps, one start:      {single}   (target < 100 ms)")
    print(f"  its {2 * args.steps} perturbation() calls alone:      {floor}   "
          f"({floor.cpu / single.cpu:.0%} of the CPU time)")
    start = tuple(one_start[0].tolist())
    fast = best_of(lambda: simulate_start(loss, start, config), args.repeat)
    difference = (simulate(loss, one_start, config).points - simulate_start(loss, start, config).points).abs().max()
    print(f"  the fast path for one start (simulate_start): {fast}   (Python floats, held equal to simulate() "
          f"by tests/test_toy_fast_path.py; here max |w - w_simulate| = {difference:.1e})")
    print(f"  {single.cpu / args.steps * 1e6:.0f} us CPU per step of all three; one perturbation() call: "
          f"{floor.cpu / (2 * args.steps) * 1e6:.0f} us")

    map_config = FIGURE3_CONFIG.model_copy(update=dict(steps=args.map_steps))
    grid = best_of(lambda: convergence_map(loss, loss.box, args.grid, map_config), max(1, args.repeat - 2))
    rows = 3 * args.grid**2
    print(f"\n{args.grid} x {args.grid} map, {args.map_steps} steps, 3 optimizers ({rows} rows, float32):\n"
          f"  {grid}   (target < 3 s)")
    few = 20
    per_start = best_of(
        lambda: [simulate(loss, one_start.float(), map_config, record_every=None) for _ in range(few)], 1
    )
    print(f"  one simulate() call per start instead: {per_start.cpu / few * 1e3:.1f} ms CPU per start -> "
          f"{per_start.cpu / few * args.grid**2:.0f} s, {per_start.cpu / few * args.grid**2 / grid.cpu:.0f}x the batched map")

    print()
    for n in (1, rows):
        pts = torch.rand(n, 2, dtype=torch.float32 if n > 1 else torch.float64)
        analytic = best_of(lambda: loss.grad(pts), 200 if n == 1 else 10)
        auto = best_of(lambda: autograd_grad(loss, pts), 200 if n == 1 else 10)
        print(f"gradient on {n:>6} rows: analytic {analytic.wall * 1e6:8.1f} us, autograd {auto.wall * 1e6:8.1f} us "
              f"wall (autograd / analytic = {auto.wall / analytic.wall:.1f}x)")


if __name__ == "__main__":
    main()
