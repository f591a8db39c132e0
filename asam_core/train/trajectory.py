"""The weights' path, projected onto a fixed plane (Li et al. 2018, "Visualizing the Loss
Landscape of Neural Nets", Section 4: filter-normalized random directions).

Directions d1, d2: standard normal tensors shaped like the parameters, drawn on the CPU from a
generator seeded by ``plane_seed(model, seed)``, then filter-normalized against the initial
weights w0:  d_i <- d_i / ||d_i|| * ||w0_i|| for every filter i (slice along the first
dimension) of a tensor with two or more dimensions; zero for biases and BatchNorm parameters
(Li et al.'s choice).  Coordinates of weights w:

    (x, y) = argmin || w - w0 - x d1 - y d2 ||      (least squares, a 2x2 system)

so w0 + x d1 + y d2 is the point of the plane nearest to w, and w0 itself is (0, 0).  Runs of
the same model and seed start from the same w0 (the loop seeds the initialization) and get the
same d1, d2, so SGD, SAM and ASAM trajectories share one plane.
"""
from __future__ import annotations

import zlib
from typing import Iterable

import torch
from torch import Tensor

from asam_core.sharpness import filter_normalized_directions
from asam_core.train.path_sketch import flat


def plane_seed(model: str, seed: int) -> int:
    """A generator seed determined by the model name and the run seed."""
    return zlib.crc32(f"{model}:{seed}".encode())


class TrajectoryPlane:
    """The plane through the initial weights spanned by two filter-normalized random directions."""

    def __init__(self, initial_params: Iterable[Tensor], seed: int, device: torch.device | str = "cpu") -> None:
        params = list(initial_params)
        generator = torch.Generator().manual_seed(seed)
        d1, d2 = (flat(d) for d in filter_normalized_directions(params, 2, generator))
        self.origin = flat(params).to(device)
        self.directions = torch.stack([d1, d2]).to(device)
        self.gram = (self.directions.double() @ self.directions.double().T).cpu()

    def coordinates(self, params: Iterable[Tensor]) -> tuple[float, float]:
        """(x, y) of ``params`` in the plane (see the module docstring)."""
        displacement = flat(params) - self.origin
        rhs = (self.directions @ displacement).double().cpu()
        x, y = torch.linalg.solve(self.gram, rhs).tolist()
        return x, y
