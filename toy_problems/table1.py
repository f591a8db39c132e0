"""ASAM Table 1 / Figure 2 in two dimensions: does a sharpness measure rank networks by their
generalization gap, and does the ranking survive rescalings that leave every network's function
unchanged?

Many small ReLU MLPs are trained with SGD on one noisy 2-D dataset over a grid of hyper-parameters
(learning rate x width x training steps; each grid point with ``members`` seeds, trained together in
one batched call).  For each network (float64 copies):

    gap                 training accuracy on the noisy labels - clean test accuracy
    sharpness           max_{||e||_2 <= rho} L(w + e) - L(w)                       (SAM Eq. 2)
    adaptive sharpness  max_{||T_w^-1 e||_2 <= rho_adaptive} L(w + e) - L(w),    T_w = diag(|w|),
                        biases normalized (eta = 0: exactly scale-invariant, ASAM Theorem 1)

and Kendall's tau of each measure against the gap, with Jiang et al.'s granulated Psi over the three
hyper-parameters (asam_core.stats).  ``rescale=True`` first multiplies every hidden unit of every
network by its own random factor a (incoming weights and bias times a, outgoing weights times 1/a;
log10 a uniform in [-1, 1]): the networks compute exactly what they computed before, so the gaps are
unchanged; adaptive sharpness keeps its values and its tau, plain sharpness does not.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from asam_core.sharpness import hidden_layers, rescale_nodes, sharpness
from asam_core.stats import granulated_tau, kendall_tau
from toy_problems.classification import DATASETS, ClassifierConfig, train_classifiers
from toy_problems.threads import torch_threads


class Table1Config(BaseModel):
    """The grid of networks and the two measures' radii."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dataset: str = Field("moons", pattern="|".join(DATASETS))
    n_train: int = Field(80, ge=10, le=2000)
    flip_rate: float = Field(0.2, ge=0.0, le=0.5)
    members: int = Field(2, ge=1, le=8, description="seeds per grid point")
    lrs: tuple[float, ...] = Field((0.03, 0.3), min_length=1)
    widths: tuple[int, ...] = Field((8, 64), min_length=1)
    steps: tuple[int, ...] = Field((100, 800), min_length=1)
    rho: float = Field(0.05, gt=0.0, le=5.0, description="radius of plain sharpness")
    rho_adaptive: float = Field(0.5, gt=0.0, le=5.0, description="radius of adaptive sharpness")
    ascent_steps: int = Field(5, ge=0, le=50)


@dataclass(frozen=True)
class Table1Result:
    """One row per network: settings[i] (lr, width, steps, seed), gap[i] (points), sharpness[i],
    adaptive[i]; tau and Psi of each measure against the gap."""

    settings: list[dict[str, float]]
    gap: np.ndarray
    sharpness: np.ndarray
    adaptive: np.ndarray
    tau: dict[str, float]
    psi: dict[str, float]
    psi_per_parameter: dict[str, dict[str, float]]


def _random_rescaling(model: torch.nn.Sequential, generator: torch.Generator) -> torch.nn.Sequential:
    factors = {i: 10.0 ** (torch.rand(model[i].weight.shape[0], generator=generator, dtype=torch.float64) * 2 - 1)
               for i in hidden_layers(model)}
    return rescale_nodes(model, factors)


def run_table1(config: Table1Config, rescale: bool = False, rescale_seed: int = 0) -> Table1Result:
    """Train the grid, measure every network (rescaled first when ``rescale``), and rank."""
    settings, gaps, plain, adaptive = [], [], [], []
    generator = torch.Generator().manual_seed(rescale_seed)
    with torch_threads():
        for lr, width, steps in itertools.product(config.lrs, config.widths, config.steps):
            run = train_classifiers(ClassifierConfig(
                dataset=config.dataset, n_train=config.n_train, n_test=500, flip_rate=config.flip_rate,
                members=config.members, width=width, depth=2, steps=steps, lr=lr, optimizers=("SGD",),
                evals=2, snapshots=1, resolution=8))
            train_acc, test_acc = run.metrics["train_acc"][0, :, -1], run.metrics["test_acc"][0, :, -1]
            for k in range(config.members):
                model = run.models["SGD"].member(k).double()
                if rescale:
                    model = _random_rescaling(model, generator)
                batches = [(run.data.x_train[k].double(), run.data.y_train[k])]
                options = dict(steps=config.ascent_steps, restarts=0, eta=0.0, normalize_bias=True)
                plain.append(sharpness(model, F.cross_entropy, batches, config.rho, **options).value)
                adaptive.append(sharpness(model, F.cross_entropy, batches, config.rho_adaptive,
                                          normalization="element", **options).value)
                settings.append(dict(lr=lr, width=width, steps=steps, seed=k))
                gaps.append(100.0 * float(train_acc[k] - test_acc[k]))
    grid = [{k: v for k, v in s.items() if k != "seed"} for s in settings]
    measures = {"sharpness": plain, "adaptive sharpness": adaptive}
    psi = {name: granulated_tau(grid, values, gaps) for name, values in measures.items()}
    return Table1Result(
        settings, np.asarray(gaps), np.asarray(plain), np.asarray(adaptive),
        tau={name: kendall_tau(values, gaps) for name, values in measures.items()},
        psi={name: value[0] for name, value in psi.items()},
        psi_per_parameter={name: value[1] for name, value in psi.items()},
    )
