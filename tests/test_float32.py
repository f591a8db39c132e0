"""float32 perturbations stay within 1e-6 (relative) of the float64 formula, whatever the model size.

A global norm over one long float32 vector is inexact on the CPU (torch's vector_norm of 10M values
is off by ~3e-4); asam_core reduces in chunks and combines in float64.  Checked on parameter sets of
ResNet-20 size (0.27M entries) and WRN-28-10 size (>= 30M entries), through the pure function and
through the optimizer (whose parts are long flat slices of one buffer).
"""
import math

import pytest
import torch
from torch import nn

from asam_core import ASAM, SAM, perturbation

RTOL = 1e-6


def parameter_set(sizes: list[tuple[int, ...]], seed: int = 0) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    params = [torch.rand(s, generator=gen) * 0.2 - 0.1 for s in sizes]
    grads = [torch.rand(s, generator=gen) * 2e-3 - 1e-3 for s in sizes]
    return params, grads


RESNET20_LIKE = [(16, 3, 3, 3)] + [(16, 16, 3, 3)] * 6 + [(32, 32, 3, 3)] * 6 + [(64, 64, 3, 3)] * 6 + [(10, 64), (64,), (10,)]
WRN28_10_LIKE = [(640, 640, 3, 3)] * 8 + [(320, 320, 3, 3)] * 8 + [(100, 640), (640,)]


def assert_close_to_float64(eps32: list[torch.Tensor], eps64: list[torch.Tensor]) -> None:
    for a, b in zip(eps32, eps64):
        torch.testing.assert_close(a.double(), b, rtol=RTOL, atol=0)
    ratio = math.sqrt(sum((a.double() ** 2).sum().item() for a in eps32) / sum((b ** 2).sum().item() for b in eps64))
    assert abs(ratio - 1) < RTOL, f"uniform scale error {ratio - 1:.2e}"


@pytest.mark.parametrize("sizes", [RESNET20_LIKE, WRN28_10_LIKE], ids=["0.27M", "37M"])
@pytest.mark.parametrize("p, kind", [(2.0, "element"), (2.0, "none"), (2.0, "filter"), (math.inf, "element"), (3.0, "element")])
def test_float32_eps_matches_the_float64_formula(sizes, p, kind):
    params, grads = parameter_set(sizes)
    kwargs = dict(rho=0.5, p=p, kinds=kind, eta=0.01)
    eps32 = perturbation(grads, params, **kwargs)
    eps64 = perturbation([g.double() for g in grads], [w.double() for w in params], **kwargs)
    assert_close_to_float64(eps32, eps64)


class Stack(nn.Module):
    def __init__(self, sizes):
        super().__init__()
        self.ws = nn.ParameterList(nn.Parameter(torch.empty(s)) for s in sizes)


@pytest.mark.parametrize("cls", [SAM, ASAM])
@pytest.mark.parametrize("sizes", [RESNET20_LIKE, WRN28_10_LIKE], ids=["0.27M", "37M"])
def test_optimizer_first_step_in_float32_matches_the_float64_formula(cls, sizes):
    params, grads = parameter_set(sizes, seed=1)
    model = Stack(sizes)
    with torch.no_grad():
        for w, value, g in zip(model.ws, params, grads):
            w.copy_(value)
            w.grad = g.clone()
    opt = cls(model.parameters(), torch.optim.SGD, lr=0.1)
    group = opt.param_groups[0]
    eps64 = perturbation([g.double() for g in grads], [w.double() for w in params], rho=group["rho"], p=group["p"],
                         kinds=group["normalization"], eta=group["eta"])
    opt.first_step()
    eps32 = [w.detach().double() - w0.double() for w, w0 in zip(model.ws, params)]
    # w + eps is rounded to float32, so eps read back from w carries w's rounding (|w| * 2^-24) too.
    for a, b, w0 in zip(eps32, eps64, params):
        assert bool(((a - b).abs() <= RTOL * b.abs() + w0.double().abs() * 2.0**-23).all())
    opt.restore()
    assert all(torch.equal(w, w0) for w, w0 in zip(model.ws, params))
