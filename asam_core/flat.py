"""Contiguous storage for the optimizer's perturb / restore (a private helper of optim.py).

A FlatLayout has up to three buffers laid out like a fixed list of parameters:

* ``weights`` (only with ``owns_storage``) is the parameters' own storage: on construction every
  parameter is moved into it (``w.data`` becomes a view of it, same shape and strides, same
  values), so w <- w + eps and the exact restore are one op each over all parameters; without
  ``owns_storage`` the parameters keep their storage and these are one foreach op each;
* ``backup`` keeps w for that restore;
* ``scratch`` receives the gradients (one foreach copy), then holds eps.

Building a layout that owns the storage costs ~700 small aten ops (one copy per parameter), once.

Parameters are laid out grouped by normalization kind, so the perturbation runs on a few
large *parts* (one flat slice for all "none" tensors, one for all "element" tensors, one
parameter-shaped view per "filter" tensor) instead of several small ops per parameter.
With ``batched`` every buffer keeps the parameters' leading batch dimension.

``key_for`` includes each parameter's data pointer: if anything re-homes a parameter later
(``model.to(...)``, assigning ``w.data``), the key changes and the optimizer builds a new layout.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

_FLAT_KINDS = ("none", "element")


def _inner_strides(w: Tensor) -> tuple[int, ...]:
    """Strides that keep w's memory format (e.g. channels_last) in a dense buffer of w.numel()."""
    return torch.empty_like(w, device="meta").stride()


class FlatLayout:
    def __init__(
        self, params: Sequence[Tensor], kinds: Sequence[str], batched: bool = False, owns_storage: bool = True
    ) -> None:
        if len({(w.device, w.dtype) for w in params}) > 1:
            raise ValueError("SAM/ASAM need all perturbed parameters on one device with one dtype")
        lead = tuple(params[0].shape[:1]) if batched else ()
        inner = [w[0] if batched else w for w in params]
        sizes = [t.numel() for t in inner]
        rank = {kind: r for r, kind in enumerate(_FLAT_KINDS)}
        order = sorted(range(len(params)), key=lambda i: rank.get(kinds[i], len(rank)))
        offsets, total = {}, 0
        for i in order:
            offsets[i] = total
            total += sizes[i]
        self.backup = torch.empty(lead + (total,), dtype=params[0].dtype, device=params[0].device)
        self.scratch = torch.empty_like(self.backup)

        def views(buf: Tensor) -> list[Tensor]:
            return [
                buf[..., offsets[i] : offsets[i] + sizes[i]].as_strided(w.shape, buf.stride()[:-1] + _inner_strides(t))
                for i, (w, t) in enumerate(zip(params, inner))
            ]

        def parts(buf: Tensor, param_views: list[Tensor]) -> list[Tensor]:
            out = []
            for kind in _FLAT_KINDS:
                members = [i for i in order if kinds[i] == kind]
                if members:
                    start = offsets[members[0]]
                    out.append(buf[..., start : start + sum(sizes[i] for i in members)])
            return out + [param_views[i] for i in order if kinds[i] not in _FLAT_KINDS]

        self.params = list(params)
        self.weights: Tensor | None = None
        if owns_storage:
            self.weights = torch.empty_like(self.backup)
            for w, view in zip(params, views(self.weights)):
                view.copy_(w)
                w.data = view
        self.scratch_views = views(self.scratch)
        self.backup_views = views(self.backup)
        self.backup_parts = parts(self.backup, self.backup_views)
        self.scratch_parts = parts(self.scratch, self.scratch_views)
        self.part_kinds = [k for k in _FLAT_KINDS if k in kinds] + [kinds[i] for i in order if kinds[i] not in _FLAT_KINDS]
        self.key = self.key_for(params, kinds)

    def save(self) -> None:
        """backup <- w."""
        if self.weights is None:
            torch._foreach_copy_(self.backup_views, self.params)
        else:
            self.backup.copy_(self.weights)

    def add_scratch(self) -> None:
        """w <- w + scratch."""
        if self.weights is None:
            torch._foreach_add_(self.params, self.scratch_views)
        else:
            self.weights.add_(self.scratch)

    def restore(self) -> None:
        """w <- backup, by copy (bit-exact)."""
        if self.weights is None:
            torch._foreach_copy_(self.params, self.backup_views)
        else:
            self.weights.copy_(self.backup)

    @staticmethod
    def key_for(params: Sequence[Tensor], kinds: Sequence[str]) -> tuple:
        """Identifies the parameter list a layout was built for, and that it still lives in it."""
        return tuple((id(w), w.data_ptr()) for w in params), tuple(kinds)
