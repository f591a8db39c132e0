"""Sharpness measures of a trained network and the rescalings that test them.

    sharpness          max_{||T_w^-1 e||_p <= rho} L(w + e) - L(w)
                       T_w = I: the SAM paper's sharpness (Eq. 2 without the regularizer);
                       T_w = diag(|w| + eta) or per-filter norms: the ASAM paper's adaptive
                       sharpness (Eq. 4), invariant under scaling operators A (Theorem 1).
    member_sharpness   the same estimate for every member of a batched model in one ascent.
    rescale_nodes      w -> Aw: a hidden unit's incoming weights and bias times a > 0, its
                       outgoing weights times 1/a; a ReLU network computes the same function.
    hessian_top_eigenvalue   power iteration with Hessian-vector products (SAM paper, 4.2).
    filter_normalized_directions, loss_profile
                       L(w + t d) along random directions d whose every filter has the norm of
                       the same filter of w (Li et al. 2018, Section 4), zero on biases and
                       other 1-D tensors: a 1-D picture of flatness comparable across networks.

"Filter" on a fully connected layer means one row of its weight matrix (the incoming weights
of one output unit), the analogue of a convolution's output filter: the one rule of
``asam_core.perturbation.normalization_kind``, which the optimizers use too.  Per-row norms scale with
a unit's incoming weights, so filter-wise adaptive sharpness is invariant to any rescaling
that multiplies every weight row by one factor: node-wise rescaling with one factor per layer
(the page's slider).  Element-wise adaptive sharpness is invariant to any node-wise rescaling.
Both need eta = 0 and normalized biases for exact invariance.

All measures run with BatchNorm (and dropout) in eval mode and leave the model's weights and
mode exactly as they found them.
"""
from __future__ import annotations

import contextlib
import copy
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import torch
from torch import Tensor, nn

from asam_core.optim import param_groups_for
from asam_core.perturbation import (
    check_hyperparameters,
    normalization_operator,
    region_norm,
    scaled_dual_,
)

LossFn = Callable[[Tensor, Tensor], Tensor]
Batches = Iterable[tuple[Tensor, Tensor]]

WEIGHT_LAYERS = (nn.Linear, nn.modules.conv._ConvNd)
HOMOGENEOUS = (
    nn.ReLU, nn.LeakyReLU, nn.Identity, nn.Dropout, nn.Flatten,
    nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd, nn.modules.pooling._AdaptiveAvgPoolNd,
)


@dataclass(frozen=True)
class SharpnessEstimate:
    """value = best L(w + e) - L(w) found; first_order = the value at the linearized maximizer
    e_1 = perturbation(grad L(w)); eps = the best e (||T_w^-1 eps||_p <= rho); loss = L(w)."""

    value: float
    first_order: float
    loss: float
    eps: list[Tensor]


@contextlib.contextmanager
def _measuring(model: nn.Module) -> Iterator[list[Tensor]]:
    """Eval mode inside; afterwards the weights are copied back bit-exactly and the mode restored."""
    was_training = model.training
    params = list(model.parameters())
    backup = [w.detach().clone() for w in params]
    model.eval()
    try:
        yield backup
    finally:
        with torch.no_grad():
            torch._foreach_copy_(params, backup)
        model.train(was_training)


def region_parameters(model: nn.Module, normalization: str | None, normalize_bias: bool) -> tuple[list[Tensor], list[str]]:
    """Trainable parameters in the model's order and their normalization, by the optimizer's rule
    (``param_groups_for``): the same order whatever the region, so random starts match across regions."""
    kinds = {id(w): group["normalization"]
             for group in param_groups_for(model, normalization or "none", normalize_bias) for w in group["params"]}
    params = [w for w in dict.fromkeys(model.parameters()) if w.requires_grad]
    return params, [kinds[id(w)] for w in params]


def _mean_loss(model: nn.Module, loss_fn: LossFn, batches: Sequence[tuple[Tensor, Tensor]], batched: bool = False) -> Tensor:
    """L(w): the size-weighted mean of loss_fn over the batches (batched: targets (members, N), one
    loss per member)."""
    sizes = [y.shape[1] if batched else len(x) for x, y in batches]
    total = sum(sizes)
    return sum(loss_fn(model(x), y) * (n / total) for (x, y), n in zip(batches, sizes))


def _loss_and_grad(
    model: nn.Module, loss_fn: LossFn, batches: Sequence[tuple[Tensor, Tensor]], params: list[Tensor], batched: bool
) -> tuple[Tensor, list[Tensor]]:
    """L(w) in float64 (one per member when batched) and its gradient (of the members' sum)."""
    with torch.enable_grad():
        loss = _mean_loss(model, loss_fn, batches, batched)
        grads = torch.autograd.grad(loss.sum(), params, allow_unused=True)
    return loss.detach().double(), [torch.zeros_like(w) if g is None else g for w, g in zip(params, grads)]


def _per_member(factor: Tensor, like: Tensor, batched: bool) -> Tensor:
    """A factor (scalar, or one per member when batched) shaped to multiply ``like``, in its dtype."""
    factor = factor.to(like.dtype)
    return factor.view(-1, *[1] * (like.dim() - 1)) if batched else factor


def _project(eps: list[Tensor], scales: list[Tensor | None], rho: float, p: float, batched: bool) -> list[Tensor]:
    """Project e onto {||T^-1 e||_p <= rho} (per member when batched): u = T^-1 e onto the p-ball
    (exact for p = 2 and inf, radial for other p), then e = T u.  Entries with T = 0 (eta = 0,
    w = 0) get e = 0."""
    u = [e if t is None else torch.where(t > 0, e / t, 0.0) for e, t in zip(eps, scales)]
    if p == math.inf:
        u = [x.clamp(-rho, rho) for x in u]
    else:
        norm = region_norm(u, p=p, batched=batched)
        factor = torch.where(norm > rho, rho / norm, 1.0)
        u = [x * _per_member(factor, x, batched) for x in u]
    return [x if t is None else x * t for x, t in zip(u, scales)]


def _random_start(
    params: list[Tensor], scales: list[Tensor | None], rho: float, p: float, generator: torch.Generator, batched: bool
) -> list[Tensor]:
    """A random point on the region's boundary: e = T u with u a Gaussian direction, ||u||_p = rho
    (batched: the same draw of u for every member, so member k starts where it would alone)."""
    u = [torch.randn(w.shape[1:] if batched else w.shape, generator=generator, dtype=w.dtype).to(w.device).expand_as(w)
         for w in params]
    factor = rho / region_norm(u, p=p, batched=batched)
    u = [x * _per_member(factor, x, batched) for x in u]
    return [x if t is None else x * t for x, t in zip(u, scales)]


def _where(better: Tensor, new: list[Tensor], old: list[Tensor], batched: bool) -> list[Tensor]:
    """Per tensor: ``new`` where ``better`` (a scalar, or one flag per member when batched), else ``old``."""
    return [torch.where(better.view(-1, *[1] * (a.dim() - 1)) if batched else better, a, b) for a, b in zip(new, old)]


def _region(
    model: nn.Module, normalization: str | None | Sequence[str | None], eta: float | Sequence[float],
    normalize_bias: bool | Sequence[bool], rho: float, p: float, batched: bool,
) -> tuple[list[Tensor], list[Tensor | None]]:
    """The trainable parameters and T_w per tensor (None = identity) of the region: one region for the
    whole model, or, batched, one per member when normalization, eta or normalize_bias is a sequence
    (one entry per member; T = 1 then stands for the identity of a member's unnormalized tensors)."""
    options = (normalization, eta, normalize_bias)
    if not any(isinstance(x, (list, tuple)) for x in options):
        check_hyperparameters(rho, p, eta)
        params, kinds = region_parameters(model, normalization, normalize_bias)
        return params, normalization_operator([w.detach() for w in params], kinds, eta, batched)
    params = region_parameters(model, None, False)[0]  # the model's order, as for every region
    members = params[0].shape[0] if batched and params else 0
    per_member = [list(x) if isinstance(x, (list, tuple)) else [x] * members for x in options]
    if not batched or any(len(x) != members for x in per_member):
        raise ValueError(f"per-member normalization, eta and normalize_bias need a batched model and one entry per "
                         f"member ({members}), got {[len(x) for x in per_member]}")
    rows = []
    for k, (normalization_k, eta_k, bias_k) in enumerate(zip(*per_member)):
        check_hyperparameters(rho, p, eta_k)
        kinds = {id(w): kind for w, kind in zip(*region_parameters(model, normalization_k, bias_k))}
        member = [w.detach()[k] for w in params]
        scales = normalization_operator(member, [kinds[id(w)] for w in params], eta_k)
        rows.append([torch.ones_like(x) if t is None else t for x, t in zip(member, scales)])
    return params, [torch.stack(column) for column in zip(*rows)]


def _ascent(
    model: nn.Module, loss_fn: LossFn, batches: Batches, rho: float, p: float, normalization: str | None, batched: bool,
    *, eta: float = 0.01, normalize_bias: bool = False, steps: int = 10, step_size: float | None = None,
    restarts: int = 1, seed: int = 0,
) -> tuple[Tensor, Tensor, Tensor, list[Tensor]]:
    """The projected ascent of ``sharpness`` (whose options and defaults these are): (best value,
    first-order value, L(w), best eps), each value a float64 scalar or, batched, one per member."""
    if steps < 0 or restarts < 0:
        raise ValueError(f"steps and restarts must be >= 0, got steps={steps!r}, restarts={restarts!r}")
    batches = list(batches)
    step_size = rho / 2 if step_size is None else step_size
    params, scales = _region(model, normalization, eta, normalize_bias, rho, p, batched)

    def steepest(grads: list[Tensor], radius: float) -> list[Tensor]:
        """T_w · dual(T_w g) of p-norm ``radius`` (asam_core.perturbation, T_w fixed at w)."""
        eps = [g.clone() for g in grads]
        scaled_dual_(eps, scales, radius, p, batched)
        return eps

    generator = torch.Generator().manual_seed(seed)
    with _measuring(model):
        w = [x.detach().clone() for x in params]
        loss0, g0 = _loss_and_grad(model, loss_fn, batches, params, batched)
        starts = [steepest(g0, rho)]
        starts += [_random_start(w, scales, rho, p, generator, batched) for _ in range(restarts)]
        best, best_eps, first_order = torch.full_like(loss0, -math.inf), starts[0], None
        for eps in starts:
            for i in range(steps + 1):
                with torch.no_grad():
                    torch._foreach_copy_(params, w)
                    torch._foreach_add_(params, eps)
                loss, grads = _loss_and_grad(model, loss_fn, batches, params, batched)
                gain = loss - loss0
                first_order = gain if first_order is None else first_order
                better = gain > best
                best, best_eps = torch.where(better, gain, best), _where(better, eps, best_eps, batched)
                if i < steps:
                    eps = _project(torch._foreach_add(eps, steepest(grads, step_size)), scales, rho, p, batched)
    return best, first_order, loss0, [e.detach() for e in best_eps]


def sharpness(
    model: nn.Module, loss_fn: LossFn, batches: Batches, rho: float, p: float = 2.0,
    normalization: str | None = None, **options: Any,
) -> SharpnessEstimate:
    """max of L(w + e) - L(w) over ||T_w^-1 e||_p <= rho, by projected gradient ascent.

    Ascent step: e <- project(e + perturbation(grad L(w + e), w, rho=step_size)), i.e. a
    steepest-ascent step of p-norm ``step_size`` (default rho / 2) in the normalized
    coordinates T_w^-1 e, with T_w always taken at the unperturbed w.  Starts: the linearized
    maximizer perturbation(grad L(w), w, rho) and ``restarts`` random boundary points (from
    ``seed``).  The best value over every visited point is returned, so it is never below
    the first-order value.  normalization None is the SAM paper's sharpness; "element" and
    "filter" the ASAM paper's adaptive sharpness (biases normalized only with normalize_bias).
    Options and defaults: eta=0.01, normalize_bias=False, steps=10, step_size=None, restarts=1, seed=0.
    """
    best, first_order, loss, eps = _ascent(model, loss_fn, batches, rho, p, normalization, False, **options)
    return SharpnessEstimate(value=best.item(), first_order=first_order.item(), loss=loss.item(), eps=eps)


def member_sharpness(
    model: nn.Module, loss_fn: LossFn, batches: Batches, rho: float, p: float = 2.0,
    normalization: str | None = None, **options: Any,
) -> list[SharpnessEstimate]:
    """``sharpness`` (same arguments) of every member of a batched model at once: each parameter
    shaped (members, ...) with independent members, ``loss_fn`` one loss per member (members,),
    targets (members, N).  Member k's estimate is the one ``sharpness`` gives member k alone:
    its own region norm, ascent steps, projection and best point, from the same random starts.
    ``normalization``, ``eta`` and ``normalize_bias`` may be sequences, one entry per member, to
    measure each member in its own region.  eps follows ``region_parameters`` (the model's order)."""
    best, first_order, loss, eps = _ascent(model, loss_fn, batches, rho, p, normalization, True, **options)
    return [SharpnessEstimate(value=best[k].item(), first_order=first_order[k].item(), loss=loss[k].item(),
                              eps=[e[k] for e in eps]) for k in range(len(best))]


def hessian_top_eigenvalue(
    model: nn.Module, loss_fn: LossFn, batches: Batches, iters: int = 100, tol: float = 1e-6, seed: int = 0
) -> float:
    """The dominant eigenvalue of the Hessian of L at w (largest |lambda|; lambda_max near a
    minimum), by power iteration v <- Hv / ||Hv|| with Hessian-vector products (double
    backward); stops when the Rayleigh quotient v.Hv changes by less than tol relative."""
    batches = list(batches)
    params = [w for w in model.parameters() if w.requires_grad]
    generator = torch.Generator().manual_seed(seed)
    with _measuring(model), torch.enable_grad():
        loss = _mean_loss(model, loss_fn, batches)
        grads = torch.autograd.grad(loss, params, create_graph=True)
        v = [torch.randn(w.shape, generator=generator, dtype=w.dtype).to(w.device) for w in params]
        torch._foreach_div_(v, region_norm(v).item())
        eigenvalue = math.nan
        for _ in range(iters):
            hv = torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=True, allow_unused=True)
            hv = [torch.zeros_like(w) if h is None else h.detach() for w, h in zip(params, hv)]
            previous, eigenvalue = eigenvalue, sum(torch.sum(a * b) for a, b in zip(v, hv)).item()
            norm = region_norm(hv).item()
            if norm == 0.0 or abs(eigenvalue - previous) <= tol * abs(eigenvalue):
                break
            v = torch._foreach_div(hv, norm)
    return eigenvalue


def hidden_layers(model: nn.Sequential) -> list[int]:
    """Indices of the weight layers of ``model`` whose output units rescale_nodes can rescale."""
    weights = [i for i, m in enumerate(model) if isinstance(m, WEIGHT_LAYERS)]
    return [i for i, j in zip(weights, weights[1:]) if all(isinstance(m, HOMOGENEOUS) for m in model[i + 1 : j])]


def rescale_nodes(model: nn.Sequential, factors: Mapping[int, float | Tensor]) -> nn.Sequential:
    """A rescaled copy Aw of ``model``: for each ``index: a`` the output units (channels) of
    ``model[index]`` get incoming weights and bias times a > 0 (a scalar, or one factor per
    unit) and the next weight layer's weights from them times 1/a.  Only positively
    homogeneous modules (ReLU, pooling, Flatten, ...) may sit in between, so the function is
    unchanged."""
    allowed = hidden_layers(model)
    scaled = copy.deepcopy(model)
    with torch.no_grad():
        for index, a in factors.items():
            if index not in allowed:
                raise ValueError(f"layer {index} cannot be rescaled: choose one of the hidden layers {allowed}")
            layer = scaled[index]
            nxt = next(m for m in scaled[index + 1 :] if isinstance(m, WEIGHT_LAYERS))
            units = layer.weight.shape[0]
            a = torch.as_tensor(a, dtype=layer.weight.dtype).expand(units)
            if not bool((a > 0).all()) or not bool(torch.isfinite(a).all()):
                raise ValueError(f"rescaling factors must be finite and > 0, got {a.tolist()}")
            layer.weight.mul_(a.reshape(-1, *[1] * (layer.weight.dim() - 1)))
            if layer.bias is not None:
                layer.bias.mul_(a)
            inverse = (1.0 / a).repeat_interleave(nxt.weight.shape[1] // units)
            nxt.weight.mul_(inverse.reshape(1, -1, *[1] * (nxt.weight.dim() - 2)))
    return scaled


def filter_normalized_directions(params: Sequence[Tensor], count: int, generator: torch.Generator) -> list[list[Tensor]]:
    """``count`` random directions shaped like ``params`` (drawn one after another from ``generator``,
    on the CPU): Gaussian, each filter (slice along the first dimension of a tensor with two or more
    dimensions) rescaled to the L2 norm of the same filter of w; zero for 1-D tensors (Li et al.)."""
    directions = []
    for _ in range(count):
        direction = []
        for w in params:
            w = w.detach().cpu().float()
            d = torch.randn(w.shape, generator=generator)
            if w.dim() < 2:
                d.zero_()
            else:
                d_norm = torch.linalg.vector_norm(d.flatten(1), dim=1).clamp_min(1e-12)
                d *= (torch.linalg.vector_norm(w.flatten(1), dim=1) / d_norm).view(-1, *[1] * (w.dim() - 1))
            direction.append(d)
        directions.append(direction)
    return directions


def loss_profile(
    model: nn.Module, loss_fn: LossFn, batches: Batches, directions: Sequence[Sequence[Tensor]], ts: Sequence[float]
) -> list[list[float]]:
    """L(w + t d) for every direction d (shaped like the model's trainable parameters) and every t,
    in eval mode; the weights are restored bit-exactly afterwards."""
    batches = list(batches)
    zero = [torch.zeros_like(d) for d in directions[0]] if directions else []
    return [loss_grid(model, loss_fn, batches, (d, zero), ts, [0.0])[0] for d in directions]


def loss_grid(
    model: nn.Module, loss_fn: LossFn, batches: Batches, directions: tuple[Sequence[Tensor], Sequence[Tensor]],
    alphas: Sequence[float], betas: Sequence[float], center: Sequence[Tensor] | None = None,
) -> list[list[float]]:
    """grid[j][i] = L(c + alphas[i] d1 + betas[j] d2) with c = ``center`` (default: the current weights),
    d1, d2 shaped like the model's trainable parameters; eval mode, weights restored bit-exactly."""
    batches = list(batches)
    params = [w for w in model.parameters() if w.requires_grad]
    with _measuring(model), torch.no_grad():
        c = [(w if x is None else x).detach().to(device=w.device, dtype=w.dtype).clone()
             for w, x in zip(params, center or [None] * len(params))]
        d1, d2 = ([x.to(device=v.device, dtype=v.dtype) for x, v in zip(d, c)] for d in directions)
        grid = []
        for b in betas:
            row = []
            for a in alphas:
                torch._foreach_copy_(params, c)
                torch._foreach_add_(params, d1, alpha=float(a))
                torch._foreach_add_(params, d2, alpha=float(b))
                row.append(float(_mean_loss(model, loss_fn, batches)))
            grid.append(row)
    return grid
