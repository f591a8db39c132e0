"""What the Ray backend costs next to the local worker, measured side by side in one process.

Tiny runs (small_cnn, SGD, ``--images-per-class`` synthetic CIFAR-10 images per class, one torch
thread everywhere: OMP_NUM_THREADS=1 for the local worker's run processes, and Ray gives a
1-CPU task one thread), each trained by a long-running worker process, so the worker's own
start-up (``ray.init``) is not counted:

1. Overhead per run and per epoch: one run at a time, from submit to done as the store shows it,
   for 1 and ``--epochs`` epochs, local worker (``--slots 1``) and Ray driver (a local head with 2
   CPUs) interleaved round by round so load from other processes hits both alike.  Per epoch =
   (T(epochs) - T(1)) / (epochs - 1); per run = T(1) - per epoch.  Medians over ``--rounds``.
   "in loop" is the median of the epochs' own ``seconds`` (training and evaluation as the loop
   timed them, the reporting and checkpoint excluded): the rest of "per epoch" is what reporting
   an epoch costs (a SQLite write here, events acknowledged by the driver on Ray).
2. Throughput of a 12-run study (``--study-runs`` runs submitted together): local worker with 1 and
   2 slots, and the Ray driver on 1 node and on 2 nodes (``ray start --head`` + ``ray start
   --address``, ``--num-cpus 1`` each, separate local processes).  On a 2-core machine the
   speed-up of 2 slots or 2 nodes is bounded by the cores.

Usage: python -m benchmarks.ray_backend [--rounds 3] [--epochs 6] [--study-runs 12] [--only overhead|study]
"""
from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

from asam_core.runs.store import RunStore
from asam_core.train.config import RunConfig

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from cifar_fixtures import write_cifar  # noqa: E402

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(process: subprocess.Popen, sig: int = signal.SIGTERM, grace: float = 3.0) -> None:
    """End ``process``'s session (its own: started with start_new_session), SIGKILL after ``grace`` s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextlib.contextmanager
def ray_cluster(cpus_per_node: list[int], log_dir: Path) -> Iterator[str]:
    """A local Ray cluster: a head and further nodes, each ``ray start --block`` in its own session."""
    port = free_port()
    nodes = []
    try:
        for i, cpus in enumerate(cpus_per_node):
            where = ["--head", "--port", str(port), "--include-dashboard=false"] if i == 0 else \
                ["--address", f"127.0.0.1:{port}"]
            log = open(log_dir / f"node{i}.log", "w")
            nodes.append(subprocess.Popen(
                ["ray", "start", "--block", "--node-ip-address", "127.0.0.1", "--num-cpus", str(cpus),
                 "--disable-usage-stats", *where], stdout=log, stderr=subprocess.STDOUT, env=ENV,
                start_new_session=True))
            _wait(lambda: "Ray runtime started" in Path(log.name).read_text(), f"Ray node {i}", 90)
        address = f"127.0.0.1:{port}"
        _wait(lambda: _cluster_cpus(address) >= sum(cpus_per_node), "the Ray nodes to join", 90)
        yield address
    finally:
        for node in reversed(nodes):
            _stop(node)


def _cluster_cpus(address: str) -> float:
    out = subprocess.run(["ray", "status", "--address", address], capture_output=True, text=True, env=ENV).stdout
    for line in out.splitlines():
        if "CPU" in line and "/" in line:
            return float(line.split("/")[1].split()[0])
    return 0.0


def _wait(condition, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"gave up waiting for {what}")
        time.sleep(0.2)


@contextlib.contextmanager
def worker(root: Path, args: list[str]) -> Iterator[RunStore]:
    """A worker process over a fresh store at ``root`` (``args``: --slots N or --ray ADDRESS)."""
    store = RunStore(root)
    log = open(root / "worker.log", "ab")
    process = subprocess.Popen([sys.executable, "-m", "asam_core.runs", "worker", "--root", str(root), "--poll", "0.1",
                                *args], stdout=log, stderr=subprocess.STDOUT, env=ENV, cwd=ROOT,
                               start_new_session=True)
    try:
        _wait(lambda: bool(store.workers()), "the worker to register", 90)
        yield store
    finally:
        _stop(process, grace=30.0)
        log.close()


def run_all(store: RunStore, configs: list[RunConfig]) -> tuple[float, list[float]]:
    """Submit ``configs`` together; seconds until all are done (store polled every 20 ms), and the
    seconds of every epoch as the loop timed them."""
    start = time.perf_counter()
    ids = [store.submit(config, "bench") for config in configs]
    while True:
        runs = [store.get(run_id) for run_id in ids]
        if all(run.status not in ("queued", "running") for run in runs):
            break
        time.sleep(0.02)
    elapsed = time.perf_counter() - start
    bad = [(run.id, run.status, run.error) for run in runs if run.status != "done"]
    if bad:
        raise RuntimeError(f"runs did not finish: {bad}")
    return elapsed, [row["seconds"] for row in store.metrics(ids)]


def overhead(data_dir: Path, work: Path, rounds: int, epochs: int) -> None:
    def tiny(n_epochs: int) -> RunConfig:
        return RunConfig(model="small_cnn", optimizer="sgd", data_dir=str(data_dir), download=False, device="cpu",
                         batch_size=10, log_every_steps=1, epochs=n_epochs)

    times: dict[tuple[str, int], list[float]] = {}
    in_loop: dict[str, list[float]] = {"local": [], "ray": []}
    with ray_cluster([2], work) as address, worker(work / "local", ["--slots", "1"]) as local, \
            worker(work / "ray", ["--ray", address]) as on_ray:
        run_all(local, [tiny(1)])  # warm-up: page cache, Ray's worker pool
        run_all(on_ray, [tiny(1)])
        for _ in range(rounds):
            for n in (1, epochs):
                for name, store in (("local", local), ("ray", on_ray)):
                    seconds, epoch_seconds = run_all(store, [tiny(n)])
                    times.setdefault((name, n), []).append(seconds)
                    in_loop[name] += epoch_seconds[:-1]  # the last epoch also measures flatness
    print(f"1. one run at a time, small_cnn SGD, median of {rounds} rounds (s)")
    print(f"{'backend':>8} {'1 epoch':>8} {f'{epochs} epochs':>9} {'per epoch':>10} {'in loop':>8} {'per run':>8}")
    cost = {}
    for name in ("local", "ray"):
        one, many = statistics.median(times[(name, 1)]), statistics.median(times[(name, epochs)])
        per_epoch = (many - one) / (epochs - 1)
        cost[name] = (per_epoch, one - per_epoch)
        print(f"{name:>8} {one:8.2f} {many:9.2f} {per_epoch:10.3f} {statistics.median(in_loop[name]):8.3f} "
              f"{one - per_epoch:8.2f}")
    print(f"   ray - local: {cost['ray'][0] - cost['local'][0]:+.3f} s per epoch "
          f"({cost['ray'][0] / cost['local'][0]:.2f}x), {cost['ray'][1] - cost['local'][1]:+.2f} s per run "
          f"({cost['ray'][1] / cost['local'][1]:.2f}x)")


def study(data_dir: Path, work: Path, runs: int) -> None:
    configs = [RunConfig(model="small_cnn", optimizer=("sgd", "sam", "asam")[i % 3], seed=i // 3,
                         data_dir=str(data_dir), download=False, device="cpu", batch_size=10, log_every_steps=1,
                         epochs=2) for i in range(runs)]
    results = {}
    for name, nodes, args in (("local, 1 slot", None, ["--slots", "1"]), ("local, 2 slots", None, ["--slots", "2"]),
                              ("ray, 1 node", [1], None), ("ray, 2 nodes", [1, 1], None)):
        folder = Path(tempfile.mkdtemp(dir=work))
        with contextlib.ExitStack() as stack:
            if nodes is not None:
                args = ["--ray", stack.enter_context(ray_cluster(nodes, folder))]
            store = stack.enter_context(worker(folder / "runs", args))
            results[name], _ = run_all(store, configs)
    print(f"2. a study of {runs} runs submitted together (small_cnn, 2 epochs, SGD/SAM/ASAM)")
    for name, seconds in results.items():
        print(f"{name:>15}: {seconds:6.1f} s, {60 * runs / seconds:5.1f} runs/min")
    print(f"   speed-up: local 2 slots / 1 slot {results['local, 1 slot'] / results['local, 2 slots']:.2f}x, "
          f"ray 2 nodes / 1 node {results['ray, 1 node'] / results['ray, 2 nodes']:.2f}x, "
          f"ray 1 node / local 1 slot {results['local, 1 slot'] / results['ray, 1 node']:.2f}x "
          f"({os.cpu_count()} CPU cores)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--study-runs", type=int, default=12)
    parser.add_argument("--images-per-class", type=int, default=3)
    parser.add_argument("--only", choices=("overhead", "study"), help="measure one part only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ray-bench-") as tmp:
        work = Path(tmp)
        write_cifar(work / "data", "cifar10", per_class=args.images_per_class, test_per_class=1)
        if args.only != "study":
            overhead(work / "data", work, args.rounds, args.epochs)
        if args.only != "overhead":
            study(work / "data", work, args.study_runs)


if __name__ == "__main__":
    main()
