"""The SAM / ASAM perturbation as pure functions on lists of tensors.

Formulas (ASAM paper, Algorithm 1 and Section 4; SAM paper, Eq. 2), with 1/p + 1/q = 1:

    T_w = diag(|w| + eta)                      element-wise normalization
    T_w = diag(||f_i||_2 + eta) on filter i    filter-wise (conv weights; others element-wise)
    T_w = I                                    SAM, and biases unless normalize_bias=True

    eps = T_w · dual(T_w g),   dual(z) = rho · sign(z) |z|^(q-1) / ||z||_q^(q-1)

so that ||T_w^-1 eps||_p = rho and eps maximizes eps·g over that region (the linearized
inner maximization).  p = 2 gives rho T_w^2 g / ||T_w g||_2; p = inf gives rho T_w sign(g).
The norm is global over all tensors.  A zero gradient gives eps = 0.

Every function takes a list of tensors.  With ``batched=True`` each tensor carries a leading
batch dimension of independent problems (the toy simulator's many starting points); norms
are then taken per batch element.
"""
from __future__ import annotations

import math
from typing import Any, Literal, Sequence

import torch
from torch import Tensor

Normalization = Literal["none", "element", "filter"]
NORMALIZATIONS: tuple[str, ...] = ("none", "element", "filter")


def check_hyperparameters(rho: float, p: float, eta: float) -> None:
    """Raise ValueError naming the argument when rho, p or eta is out of its allowed range."""
    if not (isinstance(rho, (int, float)) and math.isfinite(rho) and rho >= 0):
        raise ValueError(f"rho must be a finite number >= 0, got {rho!r}")
    if not (isinstance(p, (int, float)) and p > 1):
        raise ValueError(f"p must be a number > 1 (2, float('inf') or any p > 1), got {p!r}")
    if not (isinstance(eta, (int, float)) and math.isfinite(eta) and eta >= 0):
        raise ValueError(f"eta must be a finite number >= 0, got {eta!r}")


def check_normalization(normalization: str) -> None:
    """Raise ValueError unless ``normalization`` is one of NORMALIZATIONS."""
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")


def normalization_kind(param: Tensor, is_bias: bool, normalization: str, normalize_bias: bool = False) -> str:
    """The one rule for the T_w a parameter gets under a model-wide ``normalization``.

    "none" for every parameter when normalization is "none", and for biases unless
    ``normalize_bias``; "filter" for weights of two or more dimensions (conv filters, Linear
    rows: one norm per output unit) when normalization is "filter"; "element" for the rest
    (BatchNorm weights, and normalized biases).
    """
    check_normalization(normalization)
    if normalization == "none" or (is_bias and not normalize_bias):
        return "none"
    if normalization == "filter" and not is_bias and param.dim() >= 2:
        return "filter"
    return "element"


def normalization_operator(
    params: Sequence[Tensor], kinds: Sequence[str], eta: float, batched: bool = False
) -> list[Tensor | None]:
    """The diagonal of T_w per tensor, shaped like the tensor; None where T_w = I ("none").

    "filter" normalizes each slice along the (first non-batch) output dimension by its L2
    norm: conv filter i -> ||f_i||_2 + eta on all its entries.  Tensors with fewer than two
    non-batch dimensions (biases, BatchNorm weights) fall back to element-wise.
    """
    lead = 1 if batched else 0
    scales: list[Tensor | None] = [None] * len(params)
    element = [i for i, k in enumerate(kinds) if k == "element" or (k == "filter" and params[i].dim() - lead < 2)]
    if element:
        abs_w = torch._foreach_abs([params[i] for i in element])
        torch._foreach_add_(abs_w, eta)
        for i, t in zip(element, abs_w):
            scales[i] = t
    for i, k in enumerate(kinds):
        if k == "filter" and scales[i] is None:
            w = params[i]
            norms = torch.linalg.vector_norm(w, dim=tuple(range(lead + 1, w.dim())), keepdim=True)
            scales[i] = (norms + eta).expand_as(w)
    return scales


def _norm_along(x: Tensor, ord: float, dim: int) -> Tensor:
    """||x||_ord along ``dim`` from elementwise ops and a plain sum or amax, which torch reduces fast
    along any dim (on CPU, torch.linalg.vector_norm along an outer dim, or with ord != 2, is ~50x slower)."""
    if ord == math.inf:
        return x.abs().amax(dim)
    if ord == 2:
        return x.square().sum(dim).sqrt()
    return x.abs().pow(ord).sum(dim).pow(1.0 / ord)


_CHUNK = 4096  # entries per float32 partial norm: exact to ~1e-8 relative on any CPU


def _global_norm(tensors: Sequence[Tensor], ord: float, batched: bool) -> Tensor:
    """The ord-norm of all tensors together: a float64 scalar or, batched, one norm per batch element (B,).

    Unbatched, a long float32 reduction is inexact on the CPU (torch's vector_norm of 10M values is
    off by ~3e-4), so tensors longer than _CHUNK are reduced in rows of _CHUNK entries, and the
    partial norms are combined in float64.  Batched, each problem's entries form one row (a float64
    row when longer than _CHUNK), reduced in one op."""
    if batched:
        if all(t.dim() == 1 for t in tensors):
            return tensors[0].abs() if len(tensors) == 1 else _norm_along(torch.stack(list(tensors)), ord, 0)
        rows = torch.cat([t.reshape(len(t), -1) for t in tensors], 1)
        return _norm_along(rows.double() if rows.shape[1] > _CHUNK else rows, ord, 1)
    short, rows = [], []
    for t in tensors:
        if t.numel() <= _CHUNK:
            short.append(t)
            continue
        flat = t.reshape(-1)
        whole = flat.numel() // _CHUNK * _CHUNK
        rows.append(flat[:whole].view(-1, _CHUNK))
        if whole < flat.numel():
            short.append(flat[whole:])
    partial = [torch.stack(torch._foreach_norm(short, ord))] if short else []
    partial += [torch.linalg.vector_norm(r, 2, dim=1) if ord == 2 else _norm_along(r, ord, 1) for r in rows]
    return _norm_along((torch.cat(partial) if len(partial) > 1 else partial[0]).double(), ord, 0)


def _scale_(tensors: Sequence[Tensor], factor: Tensor, batched: bool) -> None:
    """In place: tensors *= factor (a scalar, or one factor per batch element when batched), the
    factor rounded to the tensors' dtype."""
    factor = factor.to(tensors[0].dtype)
    if not batched:
        torch._foreach_mul_(tensors, factor)
        return
    torch._foreach_mul_(tensors, [factor if t.dim() == 1 else factor.view(-1, *([1] * (t.dim() - 1))) for t in tensors])


def dual_vector_(z: Sequence[Tensor], rho: float | Tensor, p: float = 2.0, batched: bool = False) -> None:
    """In place: z <- argmax of e·z over ||e||_p <= rho = rho · sign(z) |z|^(q-1) / ||z||_q^(q-1).

    Batched, ``rho`` may be a tensor of one radius per problem, in the tensors' dtype.

    z = 0 gives 0 (never NaN).  For general p the computation is done on z / max|z|, which
    leaves the result unchanged and avoids overflow of |z|^(q-1).
    """
    z = list(z)
    if not z:
        return
    if p == math.inf:
        torch._foreach_sign_(z)
        if isinstance(rho, Tensor):
            _scale_(z, rho, batched)
        else:
            torch._foreach_mul_(z, rho)
        return
    tiny = torch.finfo(z[0].dtype).tiny
    if p == 2:
        total = _global_norm(z, 2.0, batched)
        _scale_(z, rho / total.clamp_min(tiny), batched)
        return
    q = p / (p - 1.0)
    _scale_(z, 1.0 / _global_norm(z, math.inf, batched).clamp_min(tiny), batched)
    # max|z| = 1 now, so ||z||_q >= 1 unless z = 0 (then the numerator is 0): clamping at 1 is exact.
    norm_q = _global_norm(z, q, batched).clamp_min(1.0)
    signs = torch._foreach_sign(z)
    torch._foreach_abs_(z)
    torch._foreach_pow_(z, q - 1.0)
    torch._foreach_mul_(z, signs)
    _scale_(z, rho / norm_q ** (q - 1.0), batched)


def dual_vector(z: Sequence[Tensor], rho: float, p: float = 2.0, batched: bool = False) -> list[Tensor]:
    """dual_vector_ on copies: returns new tensors, z is left unchanged."""
    out = [t.clone() for t in z]
    dual_vector_(out, rho, p, batched)
    return out


def perturbation_(
    grads: Sequence[Tensor],
    params: Sequence[Tensor] | None = None,
    *,
    rho: float,
    p: float = 2.0,
    kinds: Sequence[str] | str = "none",
    eta: float = 0.0,
    batched: bool = False,
) -> None:
    """In place: grads <- eps = T_w · dual(T_w g) for each tensor (see the module docstring).

    ``kinds`` is one normalization per tensor ("none" = SAM / unnormalized bias, "element",
    "filter") or one string for all.  ``params`` (the weights w) are needed unless every
    kind is "none".
    """
    check_hyperparameters(rho, p, eta)
    grads = list(grads)
    kinds = [kinds] * len(grads) if isinstance(kinds, str) else list(kinds)
    if len(kinds) != len(grads):
        raise ValueError(f"kinds must give one normalization per tensor ({len(grads)}), got {len(kinds)}")
    for k in kinds:
        check_normalization(k)
    if all(k == "none" for k in kinds):
        dual_vector_(grads, rho, p, batched)
        return
    if params is None or len(params) != len(grads):
        raise ValueError("params must be given, one per gradient, when any tensor is normalized")
    scaled_dual_(grads, normalization_operator(params, kinds, eta, batched), rho, p, batched)


def scaled_dual_(grads: Sequence[Tensor], scales: Sequence[Tensor | None], rho: float | Tensor, p: float = 2.0,
                 batched: bool = False) -> None:
    """In place: grads <- T · dual(T g) for a given diagonal T per tensor (``normalization_operator``'s
    output; None = identity): perturbation_ once T_w is known."""
    grads = list(grads)
    scaled = [i for i, t in enumerate(scales) if t is not None]
    if not scaled:
        dual_vector_(grads, rho, p, batched)
        return
    z_scaled, t_scaled = [grads[i] for i in scaled], [scales[i] for i in scaled]
    torch._foreach_mul_(z_scaled, t_scaled)
    dual_vector_(grads, rho, p, batched)
    torch._foreach_mul_(z_scaled, t_scaled)


def perturbation(grads: Sequence[Tensor], params: Sequence[Tensor] | None = None, **kwargs: Any) -> list[Tensor]:
    """perturbation_ (same keyword arguments) on copies of the gradients: returns eps as new tensors."""
    eps = [g.clone() for g in grads]
    perturbation_(eps, params, **kwargs)
    return eps


def region_norm(
    eps: Sequence[Tensor],
    params: Sequence[Tensor] | None = None,
    *,
    p: float = 2.0,
    kinds: Sequence[str] | str = "none",
    eta: float = 0.0,
    batched: bool = False,
) -> Tensor:
    """||T_w^-1 eps||_p, the quantity the region {||T_w^-1 e||_p <= rho} bounds."""
    eps = list(eps)
    kinds = [kinds] * len(eps) if isinstance(kinds, str) else list(kinds)
    if all(k == "none" for k in kinds):
        scales: list[Tensor | None] = [None] * len(eps)
    elif params is None:
        raise ValueError("params must be given when any tensor is normalized")
    else:
        scales = normalization_operator(params, kinds, eta, batched)
    unscaled = [e if t is None else e / t for e, t in zip(eps, scales)]
    return _global_norm(unscaled, p, batched)
