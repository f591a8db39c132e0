"""Contiguous work buffers for the optimizer's perturb / restore (a private helper of optim.py).

A FlatLayout holds two buffers shaped like a fixed list of parameters: ``backup`` keeps w for
the exact restore; ``scratch`` first receives the gradients, then w + eps.  Parameters are
laid out grouped by normalization kind, so the perturbation runs on a few large *parts*
(one flat slice for all "none" tensors, one for all "element" tensors, one parameter-shaped
view per "filter" tensor) instead of several small ops per parameter; foreach copies move
data between the parameters and the buffers.  With ``batched`` every buffer keeps the
parameters' leading batch dimension.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

_FLAT_KINDS = ("none", "element")


class FlatLayout:
    def __init__(self, params: Sequence[Tensor], kinds: Sequence[str], batched: bool = False) -> None:
        if len({(w.device, w.dtype) for w in params}) > 1:
            raise ValueError("SAM/ASAM need all perturbed parameters on one device with one dtype")
        self.key = self.key_for(params, kinds)
        lead = tuple(params[0].shape[:1]) if batched else ()
        sizes = [w[0].numel() if batched else w.numel() for w in params]
        rank = {kind: r for r, kind in enumerate(_FLAT_KINDS)}
        order = sorted(range(len(params)), key=lambda i: rank.get(kinds[i], len(rank)))
        offsets, total = {}, 0
        for i in order:
            offsets[i] = total
            total += sizes[i]
        self.backup = torch.empty(lead + (total,), dtype=params[0].dtype, device=params[0].device)
        self.scratch = torch.empty_like(self.backup)

        def views(buf: Tensor) -> list[Tensor]:
            return [buf[..., offsets[i] : offsets[i] + sizes[i]].view(w.shape) for i, w in enumerate(params)]

        def parts(buf: Tensor, param_views: list[Tensor]) -> list[Tensor]:
            out = []
            for kind in _FLAT_KINDS:
                members = [i for i in order if kinds[i] == kind]
                if members:
                    start = offsets[members[0]]
                    out.append(buf[..., start : start + sum(sizes[i] for i in members)])
            return out + [param_views[i] for i in order if kinds[i] not in _FLAT_KINDS]

        self.backup_views, self.scratch_views = views(self.backup), views(self.scratch)
        self.backup_parts = parts(self.backup, self.backup_views)
        self.scratch_parts = parts(self.scratch, self.scratch_views)
        self.part_kinds = [k for k in _FLAT_KINDS if k in kinds] + [kinds[i] for i in order if kinds[i] not in _FLAT_KINDS]

    @staticmethod
    def key_for(params: Sequence[Tensor], kinds: Sequence[str]) -> tuple:
        """Identifies the parameter list a layout was built for."""
        return tuple(id(w) for w in params), tuple(kinds)
