"""Convergence maps: every start of an n x n grid run by every method in one batched call."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from toy_problems.losses import Box, Loss2D
from toy_problems.simulate import Method, SimulationConfig, simulate
from toy_problems.threads import one_thread

OUTCOMES = ("stuck", "converged", "not converged")
STUCK_DISTANCE = 1e-9


@dataclass(frozen=True)
class ConvergenceMap:
    """Where each method ends from each grid start; arrays are indexed [method, w2 row, w1 column].

    outcome: 1 = converged (final loss < tol), else 0 = stuck (never left its start) or 2 = neither.
    balance: log10(|w1| / |w2|) at the end (0 on the diagonal |w1| = |w2|), NaN where stuck.
    """

    methods: tuple[Method, ...]
    w1: Tensor
    w2: Tensor
    final: Tensor
    final_loss: Tensor
    outcome: Tensor

    def outcome_counts(self) -> Tensor:
        """(M, 3): how many starts of each method ended in each of OUTCOMES."""
        return torch.stack([(self.outcome == k).sum(dim=(1, 2)) for k in range(len(OUTCOMES))], dim=1)

    @property
    def balance(self) -> Tensor:
        tiny = torch.finfo(self.final.dtype).tiny
        magnitude = self.final.abs().clamp_min(tiny).log10()
        balance = magnitude[..., 0] - magnitude[..., 1]
        return balance.masked_fill(self.outcome == OUTCOMES.index("stuck"), math.nan)


@one_thread
def convergence_map(
    loss: Loss2D, box: Box, n: int, config: SimulationConfig, tol: float = 5e-3, dtype: torch.dtype = torch.float32
) -> ConvergenceMap:
    """Simulate config.methods from the n x n grid over ``box`` (n*n*M rows in one simulate call)."""
    if n < 2:
        raise ValueError(f"n must be >= 2 grid points per axis, got {n!r}")
    (x0, x1), (y0, y1) = box
    w1 = torch.linspace(x0, x1, n, dtype=dtype)
    w2 = torch.linspace(y0, y1, n, dtype=dtype)
    starts = torch.stack(torch.meshgrid(w1, w2, indexing="xy"), dim=-1).reshape(-1, 2)
    run = simulate(loss, starts, config, record_every=None)
    final = run.final()
    moved = torch.linalg.vector_norm(final - starts, dim=-1) > STUCK_DISTANCE
    converged = run.losses[:, -1] < tol
    outcome = torch.where(converged, 1, torch.where(moved, 2, 0))
    shape = (len(run.methods), n, n)
    return ConvergenceMap(
        run.methods, w1, w2, final.reshape(*shape, 2), run.losses[:, -1].reshape(shape), outcome.reshape(shape)
    )
