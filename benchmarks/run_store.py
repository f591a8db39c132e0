"""What the run store costs next to training, measured side by side in one process.

1. Store operations, milliseconds each (median of ``--repeats``): claim, heartbeat,
   record_steps (a batch of 20 step losses: the worker writes at most one per second),
   record_epoch, and the page's 2-second poll (list_runs + best_test_acc + metrics of 10 runs
   with 50 epochs each).
2. The same short training run through ``train()`` with a do-nothing sink and with the run process's
   StoreSink, interleaved round by round so load from other processes hits both alike; the ratio
   of the medians is the store's overhead on training.

Usage: python -m benchmarks.run_store --data-dir /tmp/cifar [--rounds 3] [--subset-per-class 100] [--epochs 2]
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

from asam_core.runs.store import METRIC_FIELDS, RunStore, this_host
from asam_core.runs.child import StoreSink
from asam_core.train.config import CLASSROOM_QUICK, PRESETS
from asam_core.train.loop import train


class NullSink:
    def on_step(self, step, total_steps, train_loss) -> None:
        pass

    def on_epoch(self, metrics) -> None:
        pass

    def should_stop(self) -> bool:
        return False


def median_ms(op: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        op()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def store_operations(root: Path, repeats: int) -> dict[str, float]:
    store = RunStore(root)
    config = PRESETS[CLASSROOM_QUICK][2]
    ids = [store.submit(config, "bench") for _ in range(10 + repeats)]
    claims = [store.claim(os.getpid(), this_host()) for _ in range(10)]
    for claim in claims:
        for epoch in range(1, 51):
            store.record_epoch(claim.lease, {f: 0.5 for f in METRIC_FIELDS} | {"epoch": epoch})
    lease = claims[0].lease
    steps = iter(range(10**9))
    epochs = iter(range(51, 10**9))
    return {
        "claim": median_ms(lambda: store.claim(os.getpid(), this_host()), repeats),
        "heartbeat": median_ms(lambda: store.heartbeat([lease]), repeats),
        "record_steps (20 steps)": median_ms(
            lambda: store.record_steps(lease, [(next(steps), 1.0) for _ in range(20)], 10**6), repeats),
        "record_epoch": median_ms(
            lambda: store.record_epoch(lease, {f: 0.5 for f in METRIC_FIELDS} | {"epoch": next(epochs)}), repeats),
        "page poll (10 runs x 50 epochs)": median_ms(
            lambda: (store.list_runs(), store.best_test_acc(), store.metrics(ids[:10])), repeats),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--subset-per-class", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        for name, ms in store_operations(Path(tmp) / "ops", args.repeats).items():
            print(f"{name:34s} {ms:8.2f} ms")
        config = PRESETS[CLASSROOM_QUICK][2].model_copy(update=dict(
            data_dir=args.data_dir, download=False, device="cpu", subset_per_class=args.subset_per_class,
            epochs=args.epochs))
        store = RunStore(Path(tmp) / "train")
        seconds: dict[str, list[float]] = {"null sink": [], "store sink": []}
        for r in range(args.rounds):
            for name in seconds:
                sink = NullSink()
                if name == "store sink":
                    store.submit(config, "bench")
                    sink = StoreSink(store, store.claim(os.getpid(), this_host()).lease)
                start = time.perf_counter()
                assert train(config, sink, Path(tmp) / f"{name}-{r}").status == "done"
                seconds[name].append(time.perf_counter() - start)
    null, stored = (statistics.median(v) for v in seconds.values())
    ratios = [s / n for n, s in zip(seconds["null sink"], seconds["store sink"])]
    print(f"ASAM small_cnn, {args.subset_per_class}/class, {args.epochs} epochs, {args.rounds} rounds: "
          f"null sink {null:.2f} s, store sink {stored:.2f} s, ratio {stored / null:.3f} "
          f"(per round {min(ratios):.3f}-{max(ratios):.3f}); load average {load:.1f} -> {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
