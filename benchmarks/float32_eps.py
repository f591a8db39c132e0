"""float32 accuracy of the optimizer's eps against the float64 formula, on real model shapes.

For ResNet-20 (0.27M parameters) and WRN-28-10 (36.5M): random weights (the model's init) and
random gradients of a typical size; SAM and ASAM take one ``first_step`` in float32; the same eps is
computed by ``asam_core.perturbation`` in float64 on the same values.  Prints the uniform scale error
||eps32|| / ||eps64|| - 1 (eps32 read back as (w + eps) - w), plus the aten ops of the first
first_step (which builds the optimizer's buffer) and of a later one.

Usage: python -m benchmarks.float32_eps [--models resnet20,wrn28_10]
"""
from __future__ import annotations

import argparse

import torch

from asam_core import ASAM, SAM, perturbation
from asam_core.train.models import build_model
from benchmarks.optimizer_step import count_ops


def measure(model_name: str, cls: type[SAM]) -> None:
    torch.manual_seed(0)
    model = build_model(model_name, num_classes=10)
    gen = torch.Generator().manual_seed(1)
    for w in model.parameters():
        w.grad = torch.randn(w.shape, generator=gen) * 1e-3
    opt = cls.from_model(model, torch.optim.SGD, lr=0.1)
    groups = [(w, g["normalization"]) for g in opt.param_groups for w in g["params"]]
    start = [w.detach().double() for w, _ in groups]
    group = opt.param_groups[0]
    eps64 = perturbation([w.grad.double() for w, _ in groups], start, rho=group["rho"], p=group["p"],
                         kinds=[k for _, k in groups], eta=group["eta"])
    first_ops = count_ops(opt.first_step)
    eps32 = [w.detach().double() - w0 for (w, _), w0 in zip(groups, start)]
    opt.restore()
    later_ops = count_ops(opt.first_step)
    opt.restore()
    norm32 = sum(float((e ** 2).sum()) for e in eps32) ** 0.5
    norm64 = sum(float((e ** 2).sum()) for e in eps64) ** 0.5
    params = sum(w.numel() for w in model.parameters())
    print(f"{model_name:9s} {params / 1e6:6.2f}M  {cls.__name__:4s}  ||eps32||/||eps64|| - 1 = {norm32 / norm64 - 1:+.2e}  "
          f"first_step aten ops: first call {first_ops[0]} top-level "
          f"({first_ops[1]} in all), later {later_ops[0]} ({later_ops[1]})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="resnet20,wrn28_10")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for name in args.models.split(","):
        for cls in (SAM, ASAM):
            measure(name, cls)


if __name__ == "__main__":
    main()
