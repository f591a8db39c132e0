"""Search for a CPU setting where SAM and ASAM visibly beat SGD (CIFAR-10 with label noise, SAM
Section 3.3 / ASAM Table 6, scaled down): trains SGD, SAM and ASAM of a candidate setting for each
seed with ``asam_core.train.train`` and prints, per run, the final clean test accuracy, the training
accuracy on the noisy labels, the flatness measured at the end (sharpness, adaptive sharpness,
lambda_max) and the wall time; appends every result to benchmarks/out/search.jsonl.

Usage: python -m benchmarks.label_noise_search --data-dir DIR --setting NAME [--seeds 0,1,2] [--threads 1]
       python -m benchmarks.label_noise_search --list
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import torch

from asam_core.train.config import RunConfig
from asam_core.train.loop import train
from asam_core.train.metrics import EpochMetrics

COMMON = dict(model="small_cnn", batch_size=128, eval_every_epochs=5, log_every_steps=50, download=False, device="cpu")
SETTINGS: dict[str, dict] = {
    "n200-noise40-e40-noaug": dict(subset_per_class=200, label_noise=0.4, epochs=40, lr=0.05, augment=False),
    "n200-noise60-e40-noaug": dict(subset_per_class=200, label_noise=0.6, epochs=40, lr=0.05, augment=False),
    "n200-noise40-e40-noaug-rho2x": dict(subset_per_class=200, label_noise=0.4, epochs=40, lr=0.05, augment=False,
                                         rho_scale=2.0),
    "n250-noise40-e50-aug": dict(subset_per_class=250, label_noise=0.4, epochs=50, lr=0.05, augment=True),
}
OUT = Path(__file__).resolve().parent / "out" / "search.jsonl"
REPORTED = ("test_acc", "train_acc", "sharpness", "adaptive_sharpness", "lambda_max")


class Recorder:
    """TrainSink keeping the last epoch's metrics."""

    def __init__(self) -> None:
        self.last: EpochMetrics | None = None

    def on_step(self, step: int, total_steps: int, train_loss: float) -> None:
        pass

    def on_epoch(self, metrics: EpochMetrics) -> None:
        self.last = metrics

    def should_stop(self) -> bool:
        return False


def configs(name: str, seed: int, data_dir: str) -> list[RunConfig]:
    options = dict(SETTINGS[name])
    rho_scale = options.pop("rho_scale", 1.0)
    result = []
    for optimizer in ("sgd", "sam", "asam"):
        base = RunConfig(optimizer=optimizer, data_dir=data_dir, seed=seed, **COMMON, **options)
        result.append(base.model_copy(update=dict(rho=base.rho * rho_scale)) if rho_scale != 1.0 else base)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--setting", choices=list(SETTINGS))
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args()
    if args.list or not args.setting:
        print("\n".join(f"{k}: {v}" for k, v in SETTINGS.items()))
        return
    torch.set_num_threads(args.threads)
    OUT.parent.mkdir(exist_ok=True)
    for seed in map(int, args.seeds.split(",")):
        for config in configs(args.setting, seed, args.data_dir):
            sink, began = Recorder(), time.perf_counter()
            with TemporaryDirectory() as folder:
                result = train(config, sink, Path(folder), resume=False)
            last = sink.last
            row = dict(setting=args.setting, optimizer=config.optimizer, seed=seed, rho=config.rho,
                       status=result.status, **{f: getattr(last, f) if last else None for f in REPORTED},
                       seconds=round(time.perf_counter() - began, 1), threads=args.threads)
            print(json.dumps(row), flush=True)
            with open(OUT, "a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
