"""Theorem 1 on a real network: sharpness measures of a small ReLU classifier w and of its
node-wise rescalings Aw (same function, same loss, same decision boundary).

    sharpness                  max_{||e||_2 <= rho} L(w + e) - L(w)              changes with A
    adaptive sharpness         max_{||T_w^-1 e||_p <= rho} L(w + e) - L(w)      invariant (eta = 0,
                               (element-wise and filter-wise = per weight row)   biases normalized)
    Hessian lambda_max         top eigenvalue of the Hessian of L                changes with A

Exact invariance needs T_{Aw} = A T_w, i.e. eta = 0 and normalized biases.  ASAM's defaults
(eta = 0.01 for stability, biases unnormalized for translation invariance of the bias) make it
hold only nearly: eta matters where |w| is comparable to eta, biases where they are large.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn
from torch.nn import functional as F

from asam_core.sharpness import hessian_top_eigenvalue, hidden_layers, member_sharpness, rescale_nodes
from toy_problems.classification import MLP, ClassifierConfig, member_losses, train_classifiers
from toy_problems.threads import torch_threads

MEASURES = (
    "loss",
    "sharpness",
    "adaptive, element-wise",
    "adaptive, filter-wise",
    "adaptive, element-wise (ASAM defaults)",
    "adaptive, filter-wise (ASAM defaults)",
    "Hessian λ_max",
)
INVARIANT = ("loss", "adaptive, element-wise", "adaptive, filter-wise")
HESSIAN = "Hessian λ_max"
REGION_MEASURES = tuple(name for name in MEASURES if name != HESSIAN)  # those that depend on rho and p


class MeasureConfig(BaseModel):
    """Region and estimator settings shared by every measure."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rho: float = Field(0.05, gt=0.0, le=2.0)
    p: float = Field(2.0, gt=1.0)
    eta: float = Field(0.01, ge=0.0, le=1.0, description="T_w offset of the 'ASAM defaults' measures")
    steps: int = Field(10, ge=0, le=200, description="projected ascent steps")
    restarts: int = Field(1, ge=0, le=10, description="random starts besides the first-order one")
    seed: int = Field(0, ge=0)


def reference_config(dataset: str = "moons", seed: int = 0) -> ClassifierConfig:
    """A small ReLU MLP (2-16-16-2) trained with SGD on clean labels; about a second on one core."""
    return ClassifierConfig(
        dataset=dataset, n_train=200, n_test=200, flip_rate=0.0, seed=seed, width=16, depth=2, steps=600,
        lr=0.1, optimizers=("SGD",), evals=2, snapshots=1, resolution=8,
    )


@dataclass(frozen=True)
class Reference:
    """A trained classifier (member 0 of an SGD run) and its training data, in float64."""

    model: nn.Sequential
    x: Tensor
    y: Tensor


def train_reference(config: ClassifierConfig) -> Reference:
    """Train ``config`` and keep member 0's network and training data (float64, so rescaled
    measures agree to rounding)."""
    run = train_classifiers(config)
    return Reference(run.models["SGD"].member(0).double(), run.data.x_train[0].double(), run.data.y_train[0])


def rescale_layer(model: nn.Sequential, layer: int, a: float) -> nn.Sequential:
    """Aw: every unit of hidden layer ``layer`` (0-based) times a, the next layer times 1/a."""
    layers = hidden_layers(model)
    if not 0 <= layer < len(layers):
        raise ValueError(f"layer must be in [0, {len(layers) - 1}] (the hidden layers), got {layer!r}")
    return rescale_nodes(model, {layers[layer]: a})


def measures(model: nn.Sequential, x: Tensor, y: Tensor, config: MeasureConfig,
             names: Sequence[str] = MEASURES) -> dict[str, float]:
    """The entries ``names`` of MEASURES for ``model`` (a ReLU MLP as ``MLP.member`` builds it) on (x, y)
    with cross-entropy loss (HESSIAN does not depend on config's region, so callers may compute and
    cache it on its own)."""
    return {name: float(values[0]) for name, values in measures_of([model], x, y, config, names).items()}


def measures_of(networks: Sequence[nn.Sequential], x: Tensor, y: Tensor, config: MeasureConfig,
                names: Sequence[str] = MEASURES) -> dict[str, np.ndarray]:
    """``names`` of MEASURES for each of ``networks`` (one architecture): name -> (len(networks),).
    The region measures of all networks come from one batched ascent (``member_sharpness`` on
    ``MLP.stack``: every network once per region measure, each member in its own region), the
    Hessian's from one power iteration per network."""
    exact, default = dict(eta=0.0, normalize_bias=True), dict(eta=config.eta, normalize_bias=False)
    regions = {
        "sharpness": (None, exact),
        "adaptive, element-wise": ("element", exact),
        "adaptive, filter-wise": ("filter", exact),
        "adaptive, element-wise (ASAM defaults)": ("element", default),
        "adaptive, filter-wise (ASAM defaults)": ("filter", default),
    }
    wanted = [name for name in regions if name in names or (name == "sharpness" and "loss" in names)]
    found: dict[str, np.ndarray] = {}
    with torch_threads():
        if wanted:
            n = len(networks)
            members = [regions[name] for name in wanted for _ in networks]  # member i * n + k: network k, measure i
            estimates = member_sharpness(
                MLP.stack(list(networks) * len(wanted)), member_losses, [(x, y.expand(len(members), -1))], config.rho,
                config.p, [normalization for normalization, _ in members],
                eta=[options["eta"] for _, options in members],
                normalize_bias=[options["normalize_bias"] for _, options in members],
                steps=config.steps, restarts=config.restarts, seed=config.seed)
            for i, name in enumerate(wanted):
                found[name] = np.array([e.value for e in estimates[i * n:(i + 1) * n]])
            found["loss"] = np.array([e.loss for e in estimates[:n]])
        if HESSIAN in names:
            found[HESSIAN] = np.array([
                hessian_top_eigenvalue(net, F.cross_entropy, [(x, y)], iters=50, tol=1e-4, seed=config.seed)
                for net in networks])
    return {name: found[name] for name in names}


def measures_over_scales(
    model: nn.Sequential, x: Tensor, y: Tensor, layer: int, scales: Sequence[float], config: MeasureConfig,
    names: Sequence[str] = MEASURES,
) -> dict[str, np.ndarray]:
    """``names`` of MEASURES for rescale_layer(model, layer, a), each a in ``scales``: name -> (len(scales),)."""
    return measures_of([rescale_layer(model, layer, a) for a in scales], x, y, config, names)


def ratio_curves(curves: dict[str, np.ndarray], scales: Sequence[float]) -> dict[str, np.ndarray]:
    """Each measure over ``scales`` divided by its value at a = 1 (which ``scales`` must contain)."""
    one = int(np.argmin(np.abs(np.log(np.asarray(scales)))))
    if not np.isclose(scales[one], 1.0):
        raise ValueError(f"scales must contain a = 1, got {list(scales)}")
    return {name: values / values[one] for name, values in curves.items()}
