"""One replica of the DDP test (tests/test_ddp.py), started by torch.multiprocessing.spawn: trains an
ASAM model wrapped in DistributedDataParallel (gloo, CPU) on its half of every batch and, on rank 0,
saves the final weights of each mode."""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel

from asam_core import ASAM, sharpness_aware_step

STEPS, BATCH = 3, 16
# (sync_perturbation, compact): the per-replica default, the synchronized option, storage kept.
MODES = [(False, True), (True, True), (False, False)]


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 3))


def global_batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(100 + step)
    return torch.randn(BATCH, 3, 6, 6, generator=gen), torch.randint(0, 3, (BATCH,), generator=gen)


def make_optimizer(model: nn.Module, compact: bool) -> ASAM:
    return ASAM.from_model(model, torch.optim.SGD, lr=0.1, momentum=0.9, weight_decay=5e-4, compact=compact)


def replica(rank: int, world: int, init_file: str, out_path: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    results = {}
    for sync, compact in MODES:
        model = DistributedDataParallel(make_model())
        opt = make_optimizer(model, compact)
        share = BATCH // world
        for step in range(STEPS):
            x, y = global_batch(step)
            sharpness_aware_step(opt, model, F.cross_entropy, x[rank * share:(rank + 1) * share],
                                 y[rank * share:(rank + 1) * share], sync_perturbation=sync)
        results[(sync, compact)] = [w.detach().clone() for w in model.module.parameters()]
    if rank == 0:
        torch.save(results, out_path)
    dist.destroy_process_group()
