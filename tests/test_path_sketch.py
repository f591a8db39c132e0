"""asam_core.train.path_sketch: the compact record of a run's path and the shared PCA plane."""
import math

import pytest
import torch

from asam_core.train.path_sketch import SKETCH_DIM, PathSketch, pca_plane

P = 300_000
TOLERANCE = 5 * math.sqrt(2 / SKETCH_DIM)  # five standard deviations of a squared distance's relative error


def random_vectors(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, P, generator=torch.Generator().manual_seed(seed))


def test_sketch_is_linear_and_the_same_for_every_run_of_a_model():
    x, y = random_vectors(2)
    a = PathSketch([torch.zeros(P)])
    b = PathSketch([torch.zeros(P // 2), torch.zeros(P - P // 2)])  # same parameter count, another run
    torch.testing.assert_close(a.sketch(x + 2 * y), a.sketch(x) + 2 * a.sketch(y), rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(a.sketch(x), b.sketch(x), rtol=0, atol=0)
    w0 = torch.randn(P)
    torch.testing.assert_close(PathSketch([w0])([w0 + x]), a.sketch(x), rtol=1e-4, atol=1e-3)


def test_sketch_keeps_squared_distances_within_the_stated_tolerance():
    points = random_vectors(6, seed=1) * torch.logspace(-3, 1, 6)[:, None]
    sketch = PathSketch([torch.zeros(P)])
    sketched = torch.stack([sketch.sketch(p) for p in points])
    for i in range(6):
        for j in range(i + 1, 6):
            true = float((points[i] - points[j]).double().square().sum())
            kept = float((sketched[i] - sketched[j]).double().square().sum())
            assert abs(kept / true - 1) < TOLERANCE, (i, j, kept / true)


def known_path(seed: int, steps: int = 12, noise: float = 1e-3):
    """w_t - w0 = a_t u + b_t v + noise, with u, v orthonormal: (displacements (T, P), true (a_t, b_t))."""
    gen = torch.Generator().manual_seed(seed)
    basis, _ = torch.linalg.qr(torch.randn(P, 2, generator=torch.Generator().manual_seed(99), dtype=torch.float64))
    t = torch.linspace(0.1, 1.0, steps, dtype=torch.float64)
    ab = torch.stack([3.0 * t, torch.sin(3 * t) * (1 + seed)], dim=1)
    return ab @ basis.T + noise * torch.randn(steps, P, generator=gen, dtype=torch.float64) / math.sqrt(P), ab


def pairwise(x: torch.Tensor) -> torch.Tensor:
    return torch.cdist(x, x)


@pytest.mark.parametrize("sketched", [False, True])
def test_pca_plane_recovers_a_known_path_of_two_runs_sharing_w0(sketched):
    (d1, ab1), (d2, ab2) = known_path(0), known_path(1)
    sketch = PathSketch([torch.zeros(P)])
    paths = {"a": d1, "b": d2}
    if sketched:
        paths = {name: torch.stack([sketch.sketch(row.float()) for row in d]) for name, d in paths.items()}
    plane = pca_plane(paths)
    assert sum(plane.explained) > 0.999
    assert plane.explained[0] >= plane.explained[1]
    got = torch.cat([plane.coordinates["a"], plane.coordinates["b"]])
    want = torch.cat([torch.zeros(1, 2, dtype=torch.float64), ab1, torch.zeros(1, 2, dtype=torch.float64), ab2])
    tolerance = TOLERANCE if sketched else 1e-3
    distances, true = pairwise(got), pairwise(want)
    mask = true > 0.5
    assert float(((distances[mask] / true[mask]) - 1).abs().max()) < tolerance
    assert plane.coordinates["a"].shape == (13, 2) and torch.equal(plane.coordinates["a"][0], torch.zeros(2, dtype=torch.float64))
    assert bool((plane.coordinates["a"][-1] >= 0).all()), "oriented: the first path ends in the first quadrant"


def test_explained_shares_split_the_path_length_between_the_axes():
    gen = torch.Generator().manual_seed(0)
    along = torch.zeros(4, 50, dtype=torch.float64)
    along[:, 0] = torch.tensor([1.0, 2.0, 3.0, 4.0])  # 30 units of squared length on e0
    along[:, 1] = torch.tensor([1.0, -1.0, -1.0, 1.0])  # 4 on e1 (orthogonal columns: the principal axes)
    along[:, 2] = torch.tensor([1.0, -3.0, 3.0, -1.0]) * 0.1 ** 0.5  # 2 on e2: left out of the plane
    plane = pca_plane({"run": along[torch.randperm(4, generator=gen)]})
    assert plane.explained == pytest.approx((30 / 36, 4 / 36), rel=1e-6)
