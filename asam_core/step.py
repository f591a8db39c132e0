"""One sharpness-aware training step on a batch, with m-sharpness (SAM paper Section 4.1).

With m = None the whole batch is one chunk (plain SAM/ASAM).  With m, the batch is split into
chunks of m examples; each chunk gets its own perturbation eps_k from its own gradient, and
the gradients at w + eps_k are averaged (weighted by chunk size) before one base step.
BatchNorm running statistics are updated by the first pass only.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from asam_core.optim import SAM, frozen_batchnorm_stats

LossFn = Callable[[Tensor, Tensor], Tensor]


def sharpness_aware_step(
    optimizer: SAM,
    model: nn.Module,
    loss_fn: LossFn,
    inputs: Tensor,
    targets: Tensor,
    m: int | None = None,
    on_first_pass: Callable[[Tensor, Tensor], None] | None = None,
) -> Tensor:
    """One update of ``optimizer`` on (inputs, targets); returns the mean loss at w (detached).

    ``on_first_pass(outputs, targets)``, if given, sees each chunk's detached outputs at w
    (e.g. to count training accuracy without another forward pass)."""
    if m is not None and m < 1:
        raise ValueError(f"m must be a positive number of examples per chunk, got {m!r}")
    n = len(inputs)
    chunks = list(zip(inputs.split(m or n), targets.split(m or n)))
    params = [w for group in optimizer.param_groups for w in group["params"]]
    summed: list[Tensor] | None = None
    loss_at_w = torch.zeros((), device=inputs.device)
    for x, y in chunks:
        optimizer.zero_grad(set_to_none=True)
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
        with torch.no_grad():
            grads = [w.grad if w.grad is not None else torch.zeros_like(w) for w in params]
            if summed is None:
                summed = torch._foreach_mul(grads, len(x) / n)
            else:
                torch._foreach_add_(summed, grads, alpha=len(x) / n)
    for w, g in zip(params, summed):
        w.grad = g
    optimizer.base_step()
    return loss_at_w
