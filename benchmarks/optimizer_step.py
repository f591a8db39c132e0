"""SAM / ASAM optimizer cost on ResNet-20, batch 128, measured side by side in one process.

Prints, per device (CPU, and CUDA when present):
  * per-iteration time ratios SAM/SGD and ASAM/SGD (full training iterations, interleaved);
  * the time of perturbation + restore (first_step + restore) for asam_core and for a plain
    per-parameter-loop reference written below, and their ratio: alone (blocks of back-to-back
    calls, the two taking turns) and inside real training iterations (after each backward);
  * aten ops per first_step from the torch profiler: top-level ops (what Python dispatches)
    and all ops (on CPU, foreach kernels run a per-tensor fallback that shows as children).

Usage: python -m benchmarks.optimizer_step [--rounds 20] [--threads 2]
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from asam_core import ASAM, SAM, frozen_batchnorm_stats, sharpness_aware_step
from asam_core.train.models import build_model


class LoopASAM:
    """Reference: the per-parameter Python loop of the public implementations (same formula)."""

    def __init__(self, model: nn.Module, rho: float = 0.5, eta: float = 0.01) -> None:
        self.named = list(model.named_parameters())
        self.rho, self.eta = rho, eta
        self.state: dict[Tensor, dict[str, Tensor]] = {}

    @torch.no_grad()
    def first_step(self) -> None:
        grad_norms = []
        for name, p in self.named:
            if p.grad is None:
                continue
            t_w = p.abs() + self.eta if "weight" in name else torch.ones_like(p)
            self.state[p] = {"t_w": t_w, "old_p": p.clone()}
            grad_norms.append((t_w * p.grad).norm(2))
        scale = self.rho / (torch.stack(grad_norms).norm(2) + 1e-12)
        for _, p in self.named:
            if p.grad is None:
                continue
            t_w = self.state[p]["t_w"]
            p.add_(t_w * t_w * p.grad * scale)

    @torch.no_grad()
    def restore(self) -> None:
        for _, p in self.named:
            if p in self.state:
                p.copy_(self.state[p]["old_p"])


def timed(fn: Callable[[], object], sync: Callable[[], None]) -> float:
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def alternating_blocks(fns: dict[str, Callable[[], object]], sync: Callable[[], None], rounds: int, block: int) -> dict[str, list[float]]:
    """Per function, the median call time of each of ``rounds`` blocks of ``block`` back-to-back calls;
    the functions take turns block by block, so each runs in its own warm state and both see the same noise."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()
    for _ in range(rounds):
        for name, fn in fns.items():
            times[name].append(statistics.median(timed(fn, sync) for _ in range(block)))
    return times


def report(title: str, times: dict[str, list[float]]) -> None:
    """Median and best time per implementation, and the loop reference / asam_core ratios."""
    med = {k: statistics.median(v) for k, v in times.items()}
    best = {k: min(v) for k, v in times.items()}
    print(f"  {title}")
    for name in times:
        print(f"    {name:15s} {med[name] * 1e3:7.2f} ms / {best[name] * 1e3:7.2f} ms")
    print(f"    speed-up vs loop reference: {med['loop reference'] / med['asam_core']:.2f}x (median), "
          f"{best['loop reference'] / best['asam_core']:.2f}x (best)")


def count_ops(fn: Callable[[], object]) -> tuple[int, int]:
    """(top-level aten ops, all aten ops) issued by one call of fn."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    aten = [e for e in prof.events() if e.name.startswith("aten::")]
    top = [e for e in aten if e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::")]
    return len(top), len(aten)


def bench(device: torch.device, rounds: int) -> None:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(128, 3, 32, 32, generator=gen).to(device)
    y = torch.randint(0, 10, (128,), generator=gen).to(device)
    models = {name: build_model("resnet20", num_classes=10).to(device) for name in ("sgd", "sam", "asam")}
    for m in models.values():
        m.load_state_dict(models["sgd"].state_dict())
    sgd = torch.optim.SGD(models["sgd"].parameters(), lr=0.01, momentum=0.9)
    sam = SAM.from_model(models["sam"], torch.optim.SGD, rho=0.05, lr=0.01, momentum=0.9)
    asam = ASAM.from_model(models["asam"], torch.optim.SGD, rho=0.5, eta=0.01, lr=0.01, momentum=0.9)

    def sgd_step() -> None:
        sgd.zero_grad()
        F.cross_entropy(models["sgd"](x), y).backward()
        sgd.step()

    iterations = {
        "SGD": sgd_step,
        "SAM": lambda: sharpness_aware_step(sam, models["sam"], F.cross_entropy, x, y),
        "ASAM": lambda: sharpness_aware_step(asam, models["asam"], F.cross_entropy, x, y),
    }
    times: dict[str, list[float]] = {k: [] for k in iterations}
    for fn in iterations.values():
        fn()
    for _ in range(rounds):
        for name, fn in iterations.items():
            times[name].append(timed(fn, sync))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"[{device}] ResNet-20, batch 128, median of {rounds} interleaved iterations")
    for name in iterations:
        print(f"  {name:5s} {med[name] * 1e3:8.1f} ms/iter   ratio to SGD {med[name] / med['SGD']:.3f}")

    model = models["asam"]
    asam.zero_grad()
    F.cross_entropy(model(x), y).backward()
    loop = LoopASAM(model)

    def ours() -> None:
        asam.first_step()
        asam.restore()

    def reference() -> None:
        loop.first_step()
        loop.restore()

    alone = alternating_blocks({"asam_core": ours, "loop reference": reference}, sync, rounds, block=20)
    report(f"perturbation + restore alone ({sum(1 for _ in model.parameters())} tensors), "
           f"alternating blocks of 20 calls, median / best of {rounds} blocks:", alone)

    reference_model = build_model("resnet20", num_classes=10).to(device)
    reference_model.load_state_dict(model.state_dict())
    reference_loop = LoopASAM(reference_model)
    reference_sgd = torch.optim.SGD(reference_model.parameters(), lr=0.01, momentum=0.9)
    in_training = {"asam_core": [], "loop reference": []}
    for _ in range(rounds):
        for name, net, perturb, restore, optimizer in (
            ("asam_core", model, asam.first_step, asam.restore, asam),
            ("loop reference", reference_model, reference_loop.first_step, reference_loop.restore, reference_sgd),
        ):
            optimizer.zero_grad()
            F.cross_entropy(net(x), y).backward()
            spent = timed(perturb, sync)
            optimizer.zero_grad()
            with frozen_batchnorm_stats(net):
                F.cross_entropy(net(x), y).backward()
            spent += timed(restore, sync)
            (asam.base_step if optimizer is asam else optimizer.step)()
            in_training[name].append(spent)
    report(f"the same inside ASAM training iterations (caches cold after each backward), median / best of {rounds}:",
           in_training)

    for name, fn in [("asam_core first_step", asam.first_step), ("loop reference first_step", loop.first_step)]:
        top, total = count_ops(fn)
        print(f"  {name:27s} aten ops: {top:4d} top-level, {total:4d} in all")
        asam.restore() if name.startswith("asam") else loop.restore()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    torch.set_flush_denormal(True)  # denormal weights or gradients would slow every variant 100x
    bench(torch.device("cpu"), args.rounds)
    if torch.cuda.is_available():
        bench(torch.device("cuda"), args.rounds * 5)


if __name__ == "__main__":
    main()
