"""SGD, SAM and ASAM on a 2-D loss, batched over many starting points and all methods at once.

One step for every method (gradient descent with optional heavy-ball momentum mu):

    g   = grad L(w)
    eps = 0                                                     SGD
    eps = perturbation(g, rho, p=2, kinds="none")               SAM
    eps = perturbation(g, w, rho, p, kinds="element", eta)      ASAM
    b  <- mu b + grad L(w + eps);   w <- w - lr b

eps comes from asam_core.perturbation (batched: one norm per row), the same function the
optimizers call.  All methods and starts are the rows of one (M·B, 2) tensor.

``simulate_start`` is a fast path for one start (the Trajectories page): the same steps on
Python floats, about 20x faster than torch's per-op overhead allows for 2-element rows.  It
restates eps for p in {2, inf} and the element-wise T_w (the formula is the one documented in
asam_core.perturbation); tests/test_toy_fast_path.py holds it equal to ``simulate`` to 1e-9
over random losses, starts and settings.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import Tensor

from asam_core.methods import METHODS as REGISTRY
from asam_core.perturbation import perturbation_
from toy_problems.losses import Loss2D
from toy_problems.threads import one_thread

Method = Literal[tuple(REGISTRY)]  # the keys of asam_core.methods.METHODS
# Canonical row order: plain methods (no perturbation) first, then the sharpness-aware ones.
METHODS: tuple[Method, ...] = tuple(sorted(REGISTRY, key=lambda key: REGISTRY[key].sharpness_aware))


class SimulationConfig(BaseModel):
    """Hyper-parameters shared by every method of one simulation (rho is SAM's and ASAM's radius)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    methods: tuple[Method, ...] = Field(METHODS, min_length=1)
    lr: float = Field(0.005, gt=0, le=10)
    steps: int = Field(1000, ge=1, le=100_000)
    rho: float = Field(0.05, ge=0, le=10)
    p: float = Field(2.0, description="ASAM's region norm: 2 (ellipsoid) or inf (cuboid)")
    eta: float = Field(0.0, ge=0, le=1)
    momentum: float = Field(0.0, ge=0, lt=1)

    @field_validator("p")
    @classmethod
    def _two_or_inf(cls, p: float) -> float:
        if p not in (2.0, math.inf):
            raise ValueError("p must be 2 or inf")
        return p

    @field_validator("methods")
    @classmethod
    def _canonical_order(cls, methods: tuple[Method, ...]) -> tuple[Method, ...]:
        if len(set(methods)) != len(methods):
            raise ValueError(f"methods must not repeat, got {methods}")
        return tuple(sorted(methods, key=METHODS.index))


@dataclass(frozen=True)
class Trajectories:
    """points (M, T, B, 2) and losses (M, T, B) for methods[m], recorded step index steps[t], start b."""

    methods: tuple[Method, ...]
    steps: Tensor
    points: Tensor
    losses: Tensor

    def final(self) -> Tensor:
        """The last recorded points, (M, B, 2)."""
        return self.points[:, -1]

    def running_min_losses(self) -> Tensor:
        """(M, T, B): the lowest loss reached up to each recorded step, min over s <= t of L(w_s)."""
        return self.losses.cummin(dim=1).values

    def thinned(self, count: int) -> "Trajectories":
        """At most ``count`` (>= 2) recorded steps, evenly spread, always the first and the last."""
        if count < 2:
            raise ValueError(f"count must be >= 2, got {count!r}")
        keep = torch.linspace(0, len(self.steps) - 1, min(count, len(self.steps))).round().long().unique()
        return Trajectories(self.methods, self.steps[keep], self.points[:, keep], self.losses[:, keep])

    def summary(self, start: int = 0) -> dict[str, list[float]]:
        """Per method, for one start: final w1, w2, w1·w2, w1/w2, final loss, distance from the start."""
        end, begin = self.points[:, -1, start], self.points[:, 0, start]
        return {
            "w1": end[:, 0].tolist(), "w2": end[:, 1].tolist(), "w1*w2": (end[:, 0] * end[:, 1]).tolist(),
            "w1/w2": (end[:, 0] / end[:, 1]).tolist(), "loss": self.losses[:, -1, start].tolist(),
            "moved": torch.linalg.vector_norm(end - begin, dim=-1).tolist(),
        }


def _region_arguments(config: SimulationConfig) -> dict[Method, dict[str, Any]]:
    """perturbation() keyword arguments of each sharpness-aware method: the toy's p is the adaptive
    methods' p; SAM keeps the paper's Euclidean ball (p = 2, T = I)."""
    return {
        key: REGISTRY[key].perturbation_arguments(config.rho, config.p if REGISTRY[key].adaptive else 2.0, config.eta)
        for key in config.methods if REGISTRY[key].sharpness_aware
    }


@one_thread
@torch.no_grad()
def simulate(loss: Loss2D, starts: Tensor, config: SimulationConfig, record_every: int | None = 1) -> Trajectories:
    """Run every method in ``config.methods`` from every row of ``starts`` (B, 2).

    Records w at steps 0, record_every, 2·record_every, ... and the last step;
    ``record_every=None`` records only the start and the end (for convergence maps).
    The dtype of ``starts`` is kept.
    """
    if starts.dim() != 2 or starts.shape[-1] != 2:
        raise ValueError(f"starts must have shape (B, 2), got {tuple(starts.shape)}")
    if record_every is not None and record_every < 1:
        raise ValueError(f"record_every must be >= 1 or None, got {record_every!r}")
    n_methods, n_starts = len(config.methods), len(starts)
    # Rows: one block of n_starts per method, plain methods first; the sharpness-aware rows follow.
    arguments = _region_arguments(config)
    first = (n_methods - len(arguments)) * n_starts
    blocks = [
        (slice(first + i * n_starts, first + (i + 1) * n_starts), kwargs) for i, kwargs in enumerate(arguments.values())
    ]
    every = config.steps if record_every is None else record_every
    recorded = sorted(set(range(0, config.steps + 1, every)) | {config.steps})
    # (N, 2) stored column by column: w[:, 0] (every w1) and w[:, 1] (every w2) are contiguous,
    # like two parameter tensors of N independent problems; the losses keep these strides.
    w = starts.T.repeat(1, n_methods).T
    buffer = torch.zeros_like(w) if config.momentum else None
    points = torch.empty(len(recorded), *w.shape, dtype=w.dtype)
    points[0] = w
    slot = 1
    for step in range(1, config.steps + 1):
        grad = loss.grad(w)
        if blocks:
            for rows, kwargs in blocks:
                perturbation_(grad[rows].unbind(1), w[rows].unbind(1), batched=True, **kwargs)
            grad[first:] = loss.grad(w[first:] + grad[first:])
        # w - lr·b as a product, then a difference: add_(alpha=) may fuse them (FMA), which the
        # one-start fast path cannot reproduce, and rounding differences grow on chaotic settings
        if buffer is None:
            w.sub_(grad.mul_(config.lr))
        else:
            buffer.mul_(config.momentum).add_(grad)
            w.sub_(buffer * config.lr)
        if slot < len(recorded) and recorded[slot] == step:
            points[slot] = w
            slot += 1
    points = points.reshape(len(recorded), n_methods, n_starts, 2).transpose(0, 1)
    return Trajectories(config.methods, torch.tensor(recorded), points, loss.value(points))


def _scalar_perturbation(
    g: tuple[float, float], w: tuple[float, float], rho: float, p: float, kinds: str, eta: float
) -> tuple[float, float]:
    """asam_core.perturbation for one 2-D row in floats: T_w = 1 ("none") or |w| + eta ("element"),
    eps = T_w · dual(T_w g) with p = 2 or inf, in the same operation order."""
    if kinds == "element":
        t1, t2 = abs(w[0]) + eta, abs(w[1]) + eta
    elif kinds == "none":
        t1 = t2 = 1.0
    else:
        raise ValueError(f"the fast path handles kinds 'none' and 'element', got {kinds!r}")
    z1, z2 = g[0] * t1, g[1] * t2
    if p == math.inf:
        z1, z2 = math.copysign(rho, z1) if z1 else 0.0, math.copysign(rho, z2) if z2 else 0.0
    else:
        scale = 1.0 / max(math.sqrt(z1 * z1 + z2 * z2), sys.float_info.min) * rho  # torch: rho / t is t⁻¹ · rho
        z1, z2 = z1 * scale, z2 * scale
    return z1 * t1, z2 * t2


def simulate_start(loss: Loss2D, start: tuple[float, float], config: SimulationConfig) -> Trajectories:
    """``simulate(loss, torch.tensor([start], dtype=torch.float64), config)`` for one start, every
    step recorded, computed on Python floats with ``loss.scalar_grad`` (see the module docstring)."""
    arguments = _region_arguments(config)
    lr, mu = config.lr, config.momentum
    paths = []
    for key in config.methods:
        kwargs = arguments.get(key)
        w1, w2 = float(start[0]), float(start[1])
        b1 = b2 = 0.0
        path = [(w1, w2)]
        for _ in range(config.steps):
            g1, g2 = loss.scalar_grad(w1, w2)
            if kwargs is not None:
                e1, e2 = _scalar_perturbation((g1, g2), (w1, w2), kwargs["rho"], kwargs["p"], kwargs["kinds"],
                                              kwargs["eta"])
                g1, g2 = loss.scalar_grad(w1 + e1, w2 + e2)
            if mu:
                b1, b2 = b1 * mu + g1, b2 * mu + g2
                g1, g2 = b1, b2
            w1, w2 = w1 - g1 * lr, w2 - g2 * lr
            path.append((w1, w2))
        paths.append(path)
    points = torch.tensor(paths, dtype=torch.float64).unsqueeze(2)
    with torch.no_grad():
        return Trajectories(config.methods, torch.arange(config.steps + 1), points, loss.value(points))
