"""One sharpness-aware training step on a batch, with m-sharpness (SAM paper Section 4.1), and
one step of a batched model whose members train by different methods.

With m = None the whole batch is one chunk (plain SAM/ASAM).  With m, the batch is split into
chunks of m examples; each chunk gets its own perturbation eps_k from its own gradient, and
the gradients at w + eps_k are averaged (weighted by chunk size) before one base step.
BatchNorm running statistics are updated by the first pass only.  Only trainable parameters
(requires_grad) take part; one that no chunk gave a gradient keeps ``grad = None``, so weight
decay and momentum leave frozen and unused parameters where they are.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from asam_core.optim import SAM, frozen_batchnorm_stats, param_groups_for
from asam_core.perturbation import check_hyperparameters, normalization_operator, scaled_dual_

LossFn = Callable[[Tensor, Tensor], Tensor]


def sharpness_aware_step(
    optimizer: SAM,
    model: nn.Module,
    loss_fn: LossFn,
    inputs: Tensor,
    targets: Tensor,
    m: int | None = None,
    on_first_pass: Callable[[Tensor, Tensor], None] | None = None,
    sync_perturbation: bool = False,
) -> Tensor:
    """One update of ``optimizer`` on (inputs, targets); returns the mean loss at w (detached).

    ``on_first_pass(outputs, targets)``, if given, sees each chunk's detached outputs at w
    (e.g. to count training accuracy without another forward pass).

    Data-parallel models (anything with ``no_sync()``: DistributedDataParallel, FSDP): by default
    the first backward runs under ``model.no_sync()``, so every replica perturbs with its own
    gradient (the SAM paper's m-sharpness with m = the per-replica batch) and only the gradient
    at w + eps is averaged; ``sync_perturbation=True`` averages the first gradient too (one
    perturbation from the whole global batch)."""
    if m is not None and m < 1:
        raise ValueError(f"m must be a positive number of examples per chunk, got {m!r}")
    n = len(inputs)
    chunks = list(zip(inputs.split(m or n), targets.split(m or n)))
    trainable = [w for group in optimizer.param_groups for w in group["params"] if w.requires_grad]
    summed: list[Tensor | None] = [None] * len(trainable)
    loss_at_w = torch.zeros((), device=inputs.device)
    local = not sync_perturbation and hasattr(model, "no_sync")
    for x, y in chunks:
        first_pass_sync = model.no_sync() if local else contextlib.nullcontext()
        optimizer.zero_grad(set_to_none=True)
        with first_pass_sync:
            outputs = model(x)
            loss = loss_fn(outputs, y)
            if on_first_pass is not None:
                on_first_pass(outputs.detach(), y)
            loss.backward()
        loss_at_w += loss.detach() * (len(x) / n)
        optimizer.first_step(zero_grad=True)
        with frozen_batchnorm_stats(model):
            loss_fn(model(x), y).backward()
        if len(chunks) == 1:
            optimizer.second_step()
            return loss_at_w
        optimizer.restore()
        _accumulate_(summed, [w.grad for w in trainable], len(x) / n)
    for w, g in zip(trainable, summed):
        w.grad = g
    optimizer.base_step()
    return loss_at_w


@torch.no_grad()
def _accumulate_(summed: list[Tensor | None], grads: list[Tensor | None], weight: float) -> None:
    """summed[i] += weight * grads[i] where grads[i] exists (starting from None: a parameter that
    no chunk gave a gradient keeps grad None, so the base optimizer leaves it alone)."""
    new = [i for i, g in enumerate(grads) if g is not None and summed[i] is None]
    old = [i for i, g in enumerate(grads) if g is not None and summed[i] is not None]
    if new:
        for i, g in zip(new, torch._foreach_mul([grads[i] for i in new], weight)):
            summed[i] = g
    if old:
        torch._foreach_add_([summed[i] for i in old], [grads[i] for i in old], alpha=weight)


def training_step(
    optimizer: torch.optim.Optimizer,
    model: nn.Module,
    loss_fn: LossFn,
    inputs: Tensor,
    targets: Tensor,
    m: int | None = None,
    on_first_pass: Callable[[Tensor, Tensor], None] | None = None,
) -> Tensor:
    """One update by any registry method (asam_core.methods): ``sharpness_aware_step`` for SAM-family
    optimizers, else one plain step of the optimizer (m is then unused).  Returns the loss at w."""
    if isinstance(optimizer, SAM):
        return sharpness_aware_step(optimizer, model, loss_fn, inputs, targets, m, on_first_pass)
    optimizer.zero_grad(set_to_none=True)
    outputs = model(inputs)
    loss = loss_fn(outputs, targets)
    if on_first_pass is not None:
        on_first_pass(outputs.detach(), targets)
    loss.backward()
    optimizer.step()
    return loss.detach()


@dataclass(frozen=True)
class MemberMethod:
    """The members ``rows`` (a slice of every parameter's leading dimension) of a batched model and
    their method: ``region`` holds asam_core.perturbation's keyword arguments but kinds (rho, p, eta),
    None for a plain base step; ``kinds``: id(parameter) -> its T_w kind.  Build it with ``of``."""

    rows: slice
    region: dict[str, Any] | None
    kinds: dict[int, str]

    @classmethod
    def of(cls, model: nn.Module, rows: slice, region: dict[str, Any] | None) -> "MemberMethod":
        """``region`` as ``Method.perturbation_arguments`` gives it (kinds = the method's normalization),
        resolved per parameter by the rule of param_groups_for (biases unnormalized)."""
        if region is None:
            return cls(rows, None, {})
        region = dict(region)
        normalization = region.pop("kinds")
        kinds = {id(w): group["normalization"] for group in param_groups_for(model, normalization) for w in group["params"]}
        return cls(rows, region, kinds)


@dataclass(frozen=True)
class RowRegions:
    """The regions of all rows of a batched model that share one p, so that one batched perturbation
    serves every method: ``rho`` per row (0 on the other rows, whose eps is then exactly 0) and, per
    tensor, T_w = offset + element · |w| + filter · ||f_i||_2 with per-row 0/1 masks and offset = eta
    on the rows it normalizes, 1 elsewhere (T_w = I).  ``params``: the ids of the tensors, in order.
    Build them with ``of``."""

    p: float
    rho: Tensor
    offset: list[Tensor]
    element: list[Tensor]
    filter: list[Tensor | None]
    params: tuple[int, ...]

    @classmethod
    def of(cls, params: Sequence[Tensor], members: Sequence[MemberMethod]) -> list["RowRegions"]:
        """One RowRegions per distinct p of the members with a region (none when no member has one)."""
        regions = []
        w0, per_row = params[0], [(len(w),) + (1,) * (w.dim() - 1) for w in params]
        for p in dict.fromkeys(m.region["p"] for m in members if m.region is not None):
            rho = torch.zeros(len(w0), dtype=w0.dtype, device=w0.device)
            offset = [torch.ones(shape, dtype=w.dtype, device=w.device) for shape, w in zip(per_row, params)]
            masks = {kind: [torch.zeros_like(t) for t in offset] for kind in ("element", "filter")}
            for member in members:
                if member.region is None or member.region["p"] != p:
                    continue
                check_hyperparameters(**member.region)
                rho[member.rows] = member.region["rho"]
                for i, w in enumerate(params):
                    kind = member.kinds[id(w)]
                    if kind != "none":
                        offset[i][member.rows] = member.region["eta"]
                        masks[kind][i][member.rows] = 1.0
            regions.append(cls(p, rho, offset, masks["element"], [m if m.any() else None for m in masks["filter"]],
                               tuple(id(w) for w in params)))
        return regions

    def scales(self, params: Sequence[Tensor]) -> list[Tensor]:
        """T_w of every row at the weights ``params`` (asam_core.perturbation.normalization_operator's)."""
        scales = torch._foreach_abs(params)
        torch._foreach_mul_(scales, self.element)
        torch._foreach_add_(scales, self.offset)
        for t, w, mask in zip(scales, params, self.filter):
            if mask is not None:
                t.add_(mask * normalization_operator([w], ["filter"], 0.0, batched=True)[0])
        return scales


def member_methods_step(
    optimizer: torch.optim.Optimizer, model: nn.Module, loss_fn: LossFn, inputs: Tensor, targets: Tensor,
    regions: Sequence[RowRegions],
) -> Tensor:
    """One update of a batched model (every parameter shaped (members, ...), members independent,
    ``loss_fn`` a sum of per-member losses) where each group of members has its own method
    (``RowRegions.of`` the optimizer's trainable parameters and the MemberMethods, built once):

        g = grad L(w);  eps = T_w · dual(T_w g) per row, with that row's rho, p and T_w (one batched
        asam_core.perturbation per p; rho = 0 on rows without a region);  g' = grad L(w + eps);
        w restored exactly;  base step with g'.

    Rows of no member with a region are plain: their g' is their gradient at w, so their update is
    the base optimizer's own; the others follow ``sharpness_aware_step`` of their SAM / ASAM optimizer
    on that member alone (biases unnormalized, as ``from_model`` builds them).  One forward and
    backward pass of the whole batch at w and one at w + eps, instead of one or two per method.
    Returns the loss at w (detached)."""
    params = [w for group in optimizer.param_groups for w in group["params"] if w.requires_grad]
    if any(region.params != tuple(id(w) for w in params) for region in regions):
        raise ValueError("regions must be built from the optimizer's trainable parameters, in its order")
    optimizer.zero_grad(set_to_none=True)
    loss = loss_fn(model(inputs), targets)
    loss.backward()
    if not regions:
        optimizer.step()
        return loss.detach()
    with torch.no_grad():
        grads = [torch.zeros_like(w) if w.grad is None else w.grad for w in params]
        eps: list[Tensor] = []
        for region in regions:  # the gradients are dropped after this: the last region may overwrite them
            part = grads if region is regions[-1] else [g.clone() for g in grads]
            scaled_dual_(part, region.scales(params), region.rho, region.p, batched=True)
            eps = torch._foreach_add(eps, part) if eps else part
        backup = [w.detach().clone() for w in params]
        torch._foreach_add_(params, eps)
    optimizer.zero_grad(set_to_none=True)
    with frozen_batchnorm_stats(model):
        loss_fn(model(inputs), targets).backward()
    with torch.no_grad():
        torch._foreach_copy_(params, backup)
    optimizer.step()
    return loss.detach()
