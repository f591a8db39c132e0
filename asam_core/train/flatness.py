"""Flatness of a trained CIFAR model, measured on a fixed subset of its training data with
asam_core.sharpness (what SAM and ASAM are about):

    sharpness           max_{||e||_2 <= rho_SAM} L(w + e) - L(w)                  SAM Eq. 2
    adaptive_sharpness  max_{||T_w^-1 e||_p <= rho_ASAM} L(w + e) - L(w)          ASAM Eq. 4
                        (element-wise T_w = diag(|w| + eta), the run's p and eta)
    sharpness_inf,      the same two with p = inf (ASAM Table 1's second column), radius
    adaptive_sharpness_inf   rho / sqrt(n) (n perturbed weights): the largest inf-ball inside the
                        2-ball of radius rho, so a p = inf region is never wider than the p = 2 one
    lambda_max          the Hessian's top eigenvalue                              SAM Section 4.2
    profile             L(w + t d_j), t in PROFILE_T, for PROFILE_DIRECTIONS filter-normalized
                        random directions d_j (Li et al. 2018), the same for every run of a model
    loss_surface        L(w0 + a e1 + b e2) on the plane through the initial weights w0 spanned by
                        e1 = (w - w0) / |w - w0| and e2, a filter-normalized random direction made
                        orthogonal to e1 and of unit length; a, b in units of |w - w0| (the run's
                        path from a = 0 to a = 1), with the sketches S e1, S e2 that place every
                        epoch of the path on it (asam_core.runs.analysis.surface_path)

rho_SAM and rho_ASAM are the registry's defaults for the dataset (the papers' CIFAR values) for
every run, so SGD, SAM and ASAM models are measured in the same regions.  L is plain cross-entropy
on FLATNESS_EXAMPLES training images (evenly spaced over the training set, with the labels the run
trained on, no augmentation).  BatchNorm runs in eval mode; the model's weights, buffers and mode are
left exactly as they were, and torch's global RNG is not touched (every draw has its own generator),
so measuring does not change a resumed run.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from asam_core.methods import METHODS
from asam_core.sharpness import filter_normalized_directions, hessian_top_eigenvalue, loss_grid, loss_profile, sharpness
from asam_core.train.data import CifarData, normalize
from asam_core.train.path_sketch import PathSketch, flat

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
    sharpness_inf: float
    adaptive_sharpness_inf: float
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
    params = [w for w in model.parameters() if w.requires_grad]
    inf_scale = 1.0 / math.sqrt(sum(w.numel() for w in params))

    def measure(rho: float, norm_p: float, normalization: str | None) -> float:
        return sharpness(model, F.cross_entropy, batches, rho, norm_p, normalization, eta=eta, steps=ASCENT_STEPS,
                         restarts=0).value

    values = (measure(sam_rho, 2.0, None), measure(asam_rho, p, "element"),
              measure(sam_rho * inf_scale, math.inf, None), measure(asam_rho * inf_scale, math.inf, "element"))
    lam = hessian_top_eigenvalue(model, F.cross_entropy, batches, iters=HESSIAN_ITERS, tol=1e-3)
    generator = torch.Generator().manual_seed(_SEED + model_seed)
    directions = filter_normalized_directions(params, PROFILE_DIRECTIONS, generator)
    profile = loss_profile(model, F.cross_entropy, batches, directions, PROFILE_T)
    return Flatness(*values, lam, tuple(tuple(row) for row in profile), time.perf_counter() - began)


SURFACE_ALPHAS: tuple[float, ...] = tuple(round(-0.25 + 0.125 * i, 3) for i in range(13))  # 0 and 1: w0 and w
SURFACE_BETAS: tuple[float, ...] = tuple(round(-0.5 + 0.125 * i, 3) for i in range(9))


def _unflatten(flat: Tensor, like: list[Tensor]) -> list[Tensor]:
    parts, start = [], 0
    for w in like:
        parts.append(flat[start:start + w.numel()].view_as(w))
        start += w.numel()
    return parts


def loss_surface(
    model: nn.Module, batches: list[tuple[Tensor, Tensor]], sketch: PathSketch, model_seed: int = 0
) -> dict:
    """The loss_surface of the module docstring as a JSON-ready dict: alpha, beta (grid axes),
    loss[j][i] = L(w0 + alpha[i] e1 + beta[j] e2) (plain cross-entropy, eval mode, weights restored
    exactly); length = |w - w0|; axis1, axis2 = S e1, S e2 (``sketch``: the run's PathSketch, whose
    origin is w0).  Every parameter of the model must be trainable (as in the CIFAR models)."""
    params = list(model.parameters())
    w = flat(params).cpu()
    u = (w - sketch.origin).double()
    length = float(u.norm())
    e1 = u / length if length > 0 else torch.zeros_like(u)
    generator = torch.Generator().manual_seed(_SEED + 7919 + model_seed)
    v = torch.cat([d.reshape(-1) for d in filter_normalized_directions(params, 1, generator)[0]]).double()
    v -= (v @ e1) * e1
    e2 = v / v.norm().clamp_min(1e-300)
    scale = max(length, 1e-12)
    directions = (_unflatten((e1 * scale).float(), params), _unflatten((e2 * scale).float(), params))
    grid = loss_grid(model, F.cross_entropy, batches, directions, SURFACE_ALPHAS, SURFACE_BETAS,
                     center=_unflatten(sketch.origin, params))
    return {"alpha": list(SURFACE_ALPHAS), "beta": list(SURFACE_BETAS), "loss": grid, "length": length,
            "axis1": sketch.sketch(e1.float()).tolist(), "axis2": sketch.sketch(e2.float()).tolist()}
