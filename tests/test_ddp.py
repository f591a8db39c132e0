"""ASAM under DistributedDataParallel: two real gloo processes on the CPU train exactly like one process
on the whole batch (to float32 rounding: the all-reduce sums in another order).

Per-replica perturbations (the default) equal m-sharpness with m = the per-replica batch; the
synchronized option equals one perturbation from the global batch.  The optimizer moves the
parameters into its own buffer after DDP has registered its gradient hooks and buckets: the
averaged gradients must still arrive."""
import torch
import torch.multiprocessing as mp
from torch.nn import functional as F

import ddp_replica
from asam_core import sharpness_aware_step

WORLD = 2


def single_process(sync: bool, compact: bool) -> list[torch.Tensor]:
    model = ddp_replica.make_model()
    opt = ddp_replica.make_optimizer(model, compact)
    for step in range(ddp_replica.STEPS):
        x, y = ddp_replica.global_batch(step)
        sharpness_aware_step(opt, model, F.cross_entropy, x, y, m=None if sync else ddp_replica.BATCH // WORLD)
    return [w.detach() for w in model.parameters()]


def test_ddp_asam_trains_like_one_process_with_per_replica_or_synchronized_perturbations(tmp_path):
    out = tmp_path / "replica0.pt"
    mp.start_processes(ddp_replica.replica, args=(WORLD, str(tmp_path / "rendezvous"), str(out)), nprocs=WORLD,
                       start_method="spawn")
    results = torch.load(out)
    for sync, compact in ddp_replica.MODES:
        for got, want in zip(results[(sync, compact)], single_process(sync, compact)):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    per_replica, synchronized = results[(False, True)], results[(True, True)]
    assert any((a - b).abs().max() > 1e-4 for a, b in zip(per_replica, synchronized)), "the option must matter"
