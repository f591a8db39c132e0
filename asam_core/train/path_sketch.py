"""The weights' path kept compact, and the shared PCA plane of several runs' paths (Li et al. 2018,
"Visualizing the Loss Landscape of Neural Nets", Section 7: trajectories drawn on the principal
directions of the path, because random directions in high dimension miss the motion).

Sketch.  Each epoch a run stores s_t = S (w_t - w0), a CountSketch of its displacement from the
initial weights: S is k x P with one entry +-1 per column, at row h(i) with sign sigma(i), both drawn
from a generator seeded by SKETCH_SEED and the parameter count, so every run of a model uses the same
S.  S preserves inner products in expectation, E<Sx, Sy> = <x, y>, and the relative standard deviation
of a squared distance is about sqrt(2 / k) (k = 4096: 2.2%).  Storage: k float32 per epoch (16 KB),
whatever the model; cost: one pass over the weights (the hash is regenerated chunk by chunk, so no
P-sized index is kept).

Plane.  ``pca_plane`` stacks the displacements of runs that share w0 (same model, seed and number of
classes), takes their top two right singular vectors V (uncentred: w0 stays at the origin), and gives
every path's coordinates D V and the share of the squared path length each axis explains,
s_i^2 / sum_j s_j^2.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import torch
from torch import Tensor

SKETCH_DIM = 4096
SKETCH_SEED = 0x5EE7C4
_CHUNK = 1 << 20


def flat(params: Iterable[Tensor]) -> Tensor:
    """All of ``params`` as one float32 vector (on their device), in order."""
    return torch.cat([p.detach().reshape(-1).float() for p in params])


class PathSketch:
    """s(w) = S (w - w0) for the parameters of one model (see the module docstring)."""

    def __init__(self, initial_params: Iterable[Tensor], k: int = SKETCH_DIM) -> None:
        self.origin = flat(initial_params).cpu()
        self.k = k

    def __call__(self, params: Iterable[Tensor]) -> Tensor:
        """The sketch (k,) float32 of ``params`` - w0, on the CPU."""
        return self.sketch(flat(params).cpu() - self.origin)

    def sketch(self, vector: Tensor) -> Tensor:
        """S vector for any flat vector of P entries (S depends only on P and k)."""
        total = torch.zeros(2 * self.k, dtype=torch.float64)
        n = vector.numel()
        for index, start in enumerate(range(0, n, _CHUNK)):
            part = vector[start:start + _CHUNK]
            generator = torch.Generator().manual_seed(SKETCH_SEED + 1_000_003 * n + index)
            slots = torch.randint(0, 2 * self.k, (part.numel(),), generator=generator)
            total.index_add_(0, slots, part.detach().cpu().double())
        return (total[: self.k] - total[self.k :]).float()


@dataclass(frozen=True)
class PlaneProjection:
    """Paths in the shared PCA plane: coordinates[name] is (T + 1, 2), starting at w0 = (0, 0);
    explained[i] is the share of the paths' squared length along axis i."""

    coordinates: dict[str, Tensor]
    explained: tuple[float, float]


def pca_plane(paths: Mapping[str, Tensor | Sequence[Tensor]]) -> PlaneProjection:
    """Project the displacement paths (name -> (T, d), T >= 1; all from one w0) onto their top two
    principal directions.  Orientation: the last point of the first path has PC1 >= 0 and PC2 >= 0."""
    stacked = {name: torch.stack(list(p)) if not torch.is_tensor(p) else p for name, p in paths.items()}
    matrix = torch.cat([p.double() for p in stacked.values()])
    if matrix.shape[0] == 0:
        raise ValueError("pca_plane needs at least one recorded point")
    _, singular, vh = torch.linalg.svd(matrix, full_matrices=False)
    axes = vh[:2].T
    if axes.shape[1] < 2:
        axes = torch.cat([axes, torch.zeros_like(axes)], dim=1)
    first_end = next(iter(stacked.values()))[-1].double()
    signs = torch.where(first_end @ axes < 0, -1.0, 1.0).to(axes.dtype)
    axes = axes * signs
    energy = singular.square()
    total = float(energy.sum())
    shares = [float(energy[i]) / total if total > 0 and i < len(energy) else 0.0 for i in range(2)]
    origin = torch.zeros(1, 2, dtype=torch.float64)
    coordinates = {name: torch.cat([origin, p.double() @ axes]) for name, p in stacked.items()}
    return PlaneProjection(coordinates, (shares[0], shares[1]))
