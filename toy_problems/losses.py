"""Two-dimensional losses with analytic gradients, batched over rows of a (B, 2) tensor.

    relu_product   L(w) = |w1 ReLU(w2) - 0.04|          ASAM paper, Figure 3; valley w1 w2 = 0.04, w2 > 0
    product        L(w) = (w1 w2 - 1/2)^2 / 2            Figure 1: depends on w1 w2 only, so
                                                         A = diag(a, 1/a) leaves it unchanged
    quadratic      L(w) = (w1^2 + 10 w2^2) / 2           anisotropic bowl (no rescaling symmetry)
    rosenbrock     L(w) = ((1 - w1)^2 + 100 (w2 - w1^2)^2) / 100   curved valley, minimum (1, 1)

At kinks the gradient is the one torch.autograd returns (ReLU'(0) = 0, |.|'(0) = 0).
``scalar_grad(w1, w2)`` is the same gradient on two Python floats, for the one-start fast path
(toy_problems.simulate.simulate_start); tests/test_toy_fast_path.py holds the two equal.
Gradients are written column by column into one output tensor: on CPU, flips and (N, 1) x (N, 2)
broadcasts of interleaved (N, 2) tensors cost several times more than strided column ops.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

RELU_PRODUCT_TARGET = 0.04
PRODUCT_TARGET = 0.5
QUADRATIC_CURVATURE = 10.0

Box = tuple[tuple[float, float], tuple[float, float]]


@dataclass(frozen=True)
class Loss2D:
    """A loss on R^2: ``value(w)`` maps (..., 2) to (...), ``grad(w)`` maps (..., 2) to (..., 2).

    ``valley(w1)`` gives w2 on the set of minimizers (None when it is not a curve w2 = f(w1));
    ``scale_invariant`` says whether L(A w) = L(w) for A = diag(a, 1/a), a > 0;
    ``scalar_grad(w1, w2)`` is ``grad`` on Python floats, with the same operations in the same order.
    """

    name: str
    title: str
    latex: str
    value: Callable[[Tensor], Tensor]
    grad: Callable[[Tensor], Tensor]
    box: Box
    valley: Callable[[Tensor], Tensor] | None
    scale_invariant: bool
    scalar_grad: Callable[[float, float], tuple[float, float]]


def _relu_product_value(w: Tensor) -> Tensor:
    return (w[..., 0] * torch.relu(w[..., 1]) - RELU_PRODUCT_TARGET).abs()


def _relu_product_grad(w: Tensor) -> Tensor:
    """sign(w1 ReLU(w2) - 0.04) · 1[w2 > 0] · (w2, w1); 1[w2 > 0] = sign(ReLU(w2))."""
    w1, relu_w2 = w[..., 0], torch.relu(w[..., 1])
    scale = torch.sign(w1 * relu_w2 - RELU_PRODUCT_TARGET) * torch.sign(relu_w2)
    grad = torch.empty_like(w)
    torch.mul(scale, relu_w2, out=grad[..., 0])
    torch.mul(scale, w1, out=grad[..., 1])
    return grad


def _sign(x: float) -> float:
    return float((x > 0) - (x < 0))


def _relu_product_scalar_grad(w1: float, w2: float) -> tuple[float, float]:
    relu_w2 = w2 if w2 > 0 else 0.0
    scale = _sign(w1 * relu_w2 - RELU_PRODUCT_TARGET) * _sign(relu_w2)
    return scale * relu_w2, scale * w1


def _product_value(w: Tensor) -> Tensor:
    return 0.5 * (w[..., 0] * w[..., 1] - PRODUCT_TARGET) ** 2


def _product_grad(w: Tensor) -> Tensor:
    """(w1 w2 - 1/2) · (w2, w1)."""
    w1, w2 = w[..., 0], w[..., 1]
    residual = w1 * w2 - PRODUCT_TARGET
    grad = torch.empty_like(w)
    torch.mul(residual, w2, out=grad[..., 0])
    torch.mul(residual, w1, out=grad[..., 1])
    return grad


def _product_scalar_grad(w1: float, w2: float) -> tuple[float, float]:
    residual = w1 * w2 - PRODUCT_TARGET
    return residual * w2, residual * w1


def _quadratic_value(w: Tensor) -> Tensor:
    return 0.5 * (w[..., 0] ** 2 + QUADRATIC_CURVATURE * w[..., 1] ** 2)


def _quadratic_grad(w: Tensor) -> Tensor:
    """(w1, 10 w2)."""
    grad = w.clone()
    grad[..., 1] *= QUADRATIC_CURVATURE
    return grad


def _quadratic_scalar_grad(w1: float, w2: float) -> tuple[float, float]:
    return w1, w2 * QUADRATIC_CURVATURE


def _rosenbrock_value(w: Tensor) -> Tensor:
    w1, w2 = w[..., 0], w[..., 1]
    return ((1 - w1) ** 2 + 100 * (w2 - w1**2) ** 2) / 100


def _rosenbrock_grad(w: Tensor) -> Tensor:
    """(-2 (1 - w1) - 400 w1 (w2 - w1^2), 200 (w2 - w1^2)) / 100."""
    w1, w2 = w[..., 0], w[..., 1]
    bend = w2 - w1**2
    grad = torch.empty_like(w)
    torch.mul(bend, 2.0, out=grad[..., 1])
    grad[..., 0] = (-2 * (1 - w1) - 400 * w1 * bend) / 100
    return grad


def _rosenbrock_scalar_grad(w1: float, w2: float) -> tuple[float, float]:
    bend = w2 - w1**2
    return (-2 * (1 - w1) - 400 * w1 * bend) / 100, bend * 2.0


LOSSES: dict[str, Loss2D] = {
    loss.name: loss
    for loss in (
        Loss2D(
            "relu_product", "|w₁·ReLU(w₂) − 0.04| (ASAM Fig. 3)", r"L(w) = \left|w_1 \,\mathrm{ReLU}(w_2) - 0.04\right|",
            _relu_product_value, _relu_product_grad, ((0.0, 0.4), (-0.1, 0.3)),
            lambda w1: RELU_PRODUCT_TARGET / w1, True, _relu_product_scalar_grad,
        ),
        Loss2D(
            "product", "(w₁w₂ − ½)²/2 (scale-invariant)", r"L(w) = \tfrac12\,(w_1 w_2 - \tfrac12)^2",
            _product_value, _product_grad, ((0.0, 4.0), (0.0, 2.0)),
            lambda w1: PRODUCT_TARGET / w1, True, _product_scalar_grad,
        ),
        Loss2D(
            "quadratic", "(w₁² + 10 w₂²)/2 (anisotropic bowl)", r"L(w) = \tfrac12\,(w_1^2 + 10\, w_2^2)",
            _quadratic_value, _quadratic_grad, ((-2.0, 2.0), (-1.0, 1.0)), None, False, _quadratic_scalar_grad,
        ),
        Loss2D(
            "rosenbrock", "Rosenbrock / 100 (curved valley)", r"L(w) = \big((1-w_1)^2 + 100\,(w_2 - w_1^2)^2\big)/100",
            _rosenbrock_value, _rosenbrock_grad, ((-1.5, 1.5), (-0.5, 1.5)), None, False, _rosenbrock_scalar_grad,
        ),
    )
}


def get_loss(name: str) -> Loss2D:
    """The loss called ``name``; ValueError listing the known names otherwise."""
    if name not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {name!r}")
    return LOSSES[name]


def loss_grid(loss: Loss2D, box: Box, n: int = 200) -> tuple[Tensor, Tensor, Tensor]:
    """Loss values on an n x n grid over ``box``: (w1 axis (n,), w2 axis (n,), values (n, n) indexed [w2, w1])."""
    (x0, x1), (y0, y1) = box
    xs = torch.linspace(x0, x1, n, dtype=torch.float64)
    ys = torch.linspace(y0, y1, n, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)
    return xs, ys, loss.value(grid)


def bounding_box(points: list[Tensor], margin: float = 0.15) -> Box:
    """The box around all (..., 2) point sets, widened by ``margin`` of its larger side on every edge."""
    flat = torch.cat([p.reshape(-1, 2).to(torch.float64) for p in points])
    low, high = flat.amin(dim=0), flat.amax(dim=0)
    pad = margin * float((high - low).max())
    return (float(low[0]) - pad, float(high[0]) + pad), (float(low[1]) - pad, float(high[1]) + pad)
