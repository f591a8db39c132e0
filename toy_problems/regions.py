"""Maximization regions of SAM and ASAM in two dimensions (ASAM paper, Figure 1 and Theorem 1).

    sphere     ||e||_2 <= rho              SAM
    cuboid     ||T_w^-1 e||_inf <= rho     Keskar et al.
    ellipsoid  ||T_w^-1 e||_2 <= rho       ASAM (p = 2)
    adaptive   ||T_w^-1 e||_p <= rho       ASAM with any p > 1

with T_w = diag(|w| + eta) from asam_core.perturbation.normalization_operator.  Points of a
region are written e = T_w (r rho u_p(theta)) with 0 <= r <= 1 and u_p(theta) the unit
p-circle point in direction theta, so a region at w and at A w, A = diag(a, 1/a), share
the same (r, theta) parametrisation.  With eta = 0 the adaptive regions satisfy
T_{Aw} = A T_w, hence max L over the region at A w equals the one at w whenever
L(A w) = L(w) (Theorem 1); the sphere does not.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from asam_core.perturbation import check_hyperparameters, normalization_operator, perturbation
from toy_problems.losses import Loss2D
from toy_problems.threads import one_thread

GRID_THETA = 360
GRID_R = 21
REFINE_ROUNDS = 8
REFINE_POINTS = 21


@dataclass(frozen=True)
class Region:
    """A maximization region {e : ||T e||_p <= rho}, normalized (T = T_w^-1) or not (T = I)."""

    name: str
    p: float
    normalized: bool
    formula: str

    @property
    def kinds(self) -> str:
        """The normalization asam_core.perturbation uses for this region."""
        return "element" if self.normalized else "none"


REGIONS: dict[str, Region] = {
    "sphere": Region("sphere", 2.0, False, r"\|\epsilon\|_2 \le \rho"),
    "cuboid": Region("cuboid", math.inf, True, r"\|T_w^{-1}\epsilon\|_\infty \le \rho"),
    "ellipsoid": Region("ellipsoid", 2.0, True, r"\|T_w^{-1}\epsilon\|_2 \le \rho"),
}


def adaptive_region(p: float) -> Region:
    """The ASAM region ||T_w^-1 e||_p <= rho for any p > 1 (p = 2: ellipsoid, p = inf: cuboid)."""
    check_hyperparameters(0.0, p, 0.0)
    return Region(f"adaptive p={p:g}", p, True, rf"\|T_w^{{-1}}\epsilon\|_{{{p:g}}} \le \rho".replace("inf", r"\infty"))


def rescale(w: Tensor, a: float) -> Tensor:
    """A w with A = diag(a, 1/a): leaves w1 w2 unchanged."""
    if not a > 0:
        raise ValueError(f"a must be > 0, got {a!r}")
    return w * w.new_tensor([a, 1.0 / a])


def region_scale(w: Tensor, region: Region, eta: float) -> Tensor:
    """The diagonal of T_w for a normalized region (normalization_operator), ones otherwise."""
    if not region.normalized:
        return torch.ones_like(w)
    return normalization_operator([w], ["element"], eta)[0]


def unit_circle(theta: Tensor, p: float) -> Tensor:
    """u_p(theta) = (cos, sin) / ||(cos, sin)||_p, shape (..., 2): ||u_p||_p = 1."""
    direction = torch.stack((torch.cos(theta), torch.sin(theta)), dim=-1)
    return direction / torch.linalg.vector_norm(direction, ord=p, dim=-1, keepdim=True)


def _offsets(w: Tensor, region: Region, rho: float, eta: float, r: Tensor, theta: Tensor) -> Tensor:
    """e(r, theta) = T_w (r rho u_p(theta)) on the broadcast grid of r and theta, shape (..., 2)."""
    return region_scale(w, region, eta) * (rho * r.unsqueeze(-1) * unit_circle(theta, region.p))


def boundary(w: Tensor, region: Region, rho: float, eta: float = 0.0, n: int = 361) -> Tensor:
    """n points w + e on the region's boundary (closed curve: the last point repeats the first)."""
    check_hyperparameters(rho, region.p, eta)
    theta = torch.linspace(0.0, 2 * math.pi, n, dtype=w.dtype)
    return w + _offsets(w, region, rho, eta, torch.ones_like(theta), theta)


@dataclass(frozen=True)
class WorstCase:
    """The inner maximization at w over one region.

    e_star maximizes the true loss; e_first_order is asam_core.perturbation's linearized
    guess; sharpness = max_loss - loss_at_w.
    """

    region: Region
    w: Tensor
    e_star: Tensor
    max_loss: float
    e_first_order: Tensor
    first_order_loss: float
    loss_at_w: float

    @property
    def sharpness(self) -> float:
        return self.max_loss - self.loss_at_w


def _grid_argmax(values: Tensor, r: Tensor, theta: Tensor) -> tuple[float, float, float]:
    flat = int(values.argmax())
    i, j = divmod(flat, values.shape[1])
    return float(r[i]), float(theta[j]), float(values[i, j])


def worst_case(loss: Loss2D, w: Tensor, region: Region, rho: float, eta: float = 0.0) -> WorstCase:
    """max over the region of L(w + e), by a dense (r, theta) grid then zooming refinement.

    The grid covers the whole region (r = 0..1), so interior maxima are found too; each
    refinement round re-grids +-2 cells around the best point, shrinking cells ~10x.
    """
    check_hyperparameters(rho, region.p, eta)
    w = w.to(torch.float64)
    r = torch.linspace(0.0, 1.0, GRID_R, dtype=w.dtype)
    theta = torch.linspace(0.0, 2 * math.pi, GRID_THETA + 1, dtype=w.dtype)[:-1]
    values = loss.value(w + _offsets(w, region, rho, eta, r[:, None], theta[None, :]))
    best_r, best_theta, best = _grid_argmax(values, r, theta)
    dr, dtheta = 1.0 / (GRID_R - 1), 2 * math.pi / GRID_THETA
    for _ in range(REFINE_ROUNDS):
        r = torch.linspace(max(0.0, best_r - 2 * dr), min(1.0, best_r + 2 * dr), REFINE_POINTS, dtype=w.dtype)
        theta = torch.linspace(best_theta - 2 * dtheta, best_theta + 2 * dtheta, REFINE_POINTS, dtype=w.dtype)
        values = loss.value(w + _offsets(w, region, rho, eta, r[:, None], theta[None, :]))
        cand_r, cand_theta, cand = _grid_argmax(values, r, theta)
        if cand >= best:
            best_r, best_theta, best = cand_r, cand_theta, cand
        dr, dtheta = dr * 4 / (REFINE_POINTS - 1), dtheta * 4 / (REFINE_POINTS - 1)
    e_star = _offsets(w, region, rho, eta, w.new_tensor(best_r), w.new_tensor(best_theta))
    e_first = perturbation([loss.grad(w)], [w], rho=rho, p=region.p, kinds=region.kinds, eta=eta)[0]
    return WorstCase(
        region, w, e_star, best, e_first, float(loss.value(w + e_first)), float(loss.value(w)),
    )


EQUAL_TOLERANCE = 1e-6  # relative difference under which two sharpness values count as equal


@dataclass(frozen=True)
class SharpnessRow:
    """Sharpness of one region at w and at w' = A w, their relative difference, and whether they are equal
    (relative difference < EQUAL_TOLERANCE)."""

    region: str
    at_w: float
    at_w_prime: float

    @property
    def relative_difference(self) -> float:
        scale = max(abs(self.at_w), abs(self.at_w_prime), 1e-300)
        return abs(self.at_w - self.at_w_prime) / scale

    @property
    def equal(self) -> bool:
        return self.relative_difference < EQUAL_TOLERANCE


def theorem1_visible(rows: Sequence[SharpnessRow]) -> bool:
    """Theorem 1 computed: the sphere row (first) changes under A while every adaptive row is equal."""
    return not rows[0].equal and all(row.equal for row in rows[1:])


@dataclass(frozen=True)
class RegionPair:
    """One region drawn at w and at w' = A w: boundaries (n, 2) and worst cases."""

    region: Region
    boundary: Tensor
    boundary_prime: Tensor
    at_w: WorstCase
    at_w_prime: WorstCase

    @property
    def row(self) -> SharpnessRow:
        return SharpnessRow(self.region.name, self.at_w.sharpness, self.at_w_prime.sharpness)


@one_thread
def region_pair(loss: Loss2D, w: Tensor, a: float, region: Region, rho: float, eta: float) -> RegionPair:
    """Everything Figure 1 shows for one region type."""
    w = w.to(torch.float64)
    w_prime = rescale(w, a)
    return RegionPair(
        region,
        boundary(w, region, rho, eta),
        boundary(w_prime, region, rho, eta),
        worst_case(loss, w, region, rho, eta),
        worst_case(loss, w_prime, region, rho, eta),
    )


def sharpness_table(
    loss: Loss2D, w: Tensor, a: float, rho: float, eta: float, regions: list[Region]
) -> list[SharpnessRow]:
    """Theorem 1 in numbers: one row per region, sharpness at w and at A w."""
    return [region_pair(loss, w, a, region, rho, eta).row for region in regions]
