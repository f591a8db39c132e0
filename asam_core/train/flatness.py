"""Flatness of a trained CIFAR model, measured on a fixed subset of its training data with
asam_core.sharpness (what SAM and ASAM are about):

    sharpness           max_{||e||_2 <= rho_SAM} L(w + e) - L(w)                  SAM Eq. 2
    adaptive_sharpness  max_{||T_w^-1 e||_p <= rho_ASAM} L(w + e) - L(w)          ASAM Eq. 4
                        (element-wise T_w = diag(|w| + eta), the run's p and eta)
    lambda_max          the Hessian's top eigenvalue                              SAM Section 4.2
    profile             L(w + t d_j), t in PROFILE_T, for PROFILE_DIRECTIONS filter-normalized
                        random directions d_j (Li et al. 2018), the same for every run of a model

rho_SAM and rho_ASAM are the registry's defaults for the dataset (the papers' CIFAR values) for
every run, so SGD, SAM and ASAM models are measured in the same regions.  L is plain cross-entropy
on FLATNESS_EXAMPLES training images (evenly spaced over the training set, with the labels the run
trained on, no augmentation).  BatchNorm runs in eval mode; the model's weights, buffers and mode are
left exactly as they were, and torch's global RNG is not touched (every draw has its own generator),
so measuring does not change a resumed run.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from asam_core.methods import METHODS
from asam_core.sharpness import filter_normalized_directions, hessian_top_eigenvalue, loss_profile, sharpness
from asam_core.train.data import CifarData, normalize

FLATNESS_EXAMPLES = 128
PROFILE_T: tuple[float, ...] = tuple(round(-1.0 + 0.2 * i, 1) for i in range(11))
PROFILE_DIRECTIONS = 2
ASCENT_STEPS = 3
HESSIAN_ITERS = 12
_SEED = 0xF1A7


@dataclass(frozen=True)
class Flatness:
    """The measures above; profile[j][i] = L(w + PROFILE_T[i] d_j); seconds = wall time of the measurement."""

    sharpness: float
    adaptive_sharpness: float
    lambda_max: float
    profile: tuple[tuple[float, ...], ...]
    seconds: float


def flatness_batch(data: CifarData, examples: int = FLATNESS_EXAMPLES) -> list[tuple[Tensor, Tensor]]:
    """The fixed measurement set: ``examples`` training images evenly spaced over the training set."""
    n = len(data.train_y)
    index = torch.linspace(0, n - 1, min(examples, n), device=data.train_y.device).round().long()
    return [(normalize(data.train_x[index], data), data.train_y[index])]


def measure_flatness(
    model: nn.Module, batches: list[tuple[Tensor, Tensor]], *, p: float = 2.0, eta: float = 0.01,
    dataset: str = "cifar10", model_seed: int = 0,
) -> Flatness:
    """All measures of the module docstring for ``model`` on ``batches``; the profile directions are
    drawn from ``model_seed`` (runs sharing an initialization share them)."""
    began = time.perf_counter()
    sam_rho, asam_rho = METHODS["sam"].default_rho(dataset), METHODS["asam"].default_rho(dataset)
    plain = sharpness(model, F.cross_entropy, batches, sam_rho, 2.0, None, steps=ASCENT_STEPS, restarts=0)
    adaptive = sharpness(model, F.cross_entropy, batches, asam_rho, p, "element", eta=eta, steps=ASCENT_STEPS,
                         restarts=0)
    lam = hessian_top_eigenvalue(model, F.cross_entropy, batches, iters=HESSIAN_ITERS, tol=1e-3)
    params = [w for w in model.parameters() if w.requires_grad]
    directions = filter_normalized_directions(params, PROFILE_DIRECTIONS, torch.Generator().manual_seed(_SEED + model_seed))
    profile = loss_profile(model, F.cross_entropy, batches, directions, PROFILE_T)
    return Flatness(plain.value, adaptive.value, lam, tuple(tuple(row) for row in profile), time.perf_counter() - began)
