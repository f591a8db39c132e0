"""asam_core.runs.analysis: shared PCA planes per initialization and loss profiles, from stored artifacts."""
import json

import numpy as np
import pytest
from run_records import make_run, with_fields

from asam_core.runs.analysis import loss_profiles, shared_planes


def sketches_along(direction: np.ndarray, other: np.ndarray, steps: int, bend: float) -> list[tuple[int, bytes]]:
    """Epoch sketches of a path t * direction + bend * sin(3t) * other."""
    rows = []
    for epoch in range(1, steps + 1):
        t = epoch / steps
        rows.append((epoch, (t * direction + bend * np.sin(3 * t) * other).astype(np.float32).tobytes()))
    return rows


def test_runs_from_one_initialization_share_a_plane_and_others_get_their_own():
    rng = np.random.default_rng(0)
    u, v = np.linalg.qr(rng.standard_normal((64, 2)))[0].T
    runs = [make_run(1, optimizer="sgd", seed=0), make_run(2, optimizer="sam", seed=0), make_run(3, optimizer="asam", seed=1),
            make_run(4, optimizer="asam", seed=0), with_fields(make_run(5, seed=0), config=None)]
    sketches = {1: sketches_along(u, v, 5, 0.2), 2: sketches_along(u, v, 5, -0.3), 3: sketches_along(v, u, 3, 0.1),
                5: sketches_along(u, v, 5, 0.1)}
    planes = shared_planes(runs, sketches)
    assert [p.run_ids for p in planes] == [(1, 2), (3,)], "run 4 has no sketches yet, run 5 is quarantined"
    shared = planes[0]
    assert shared.initialization == ("resnet20", 0, "cifar10")
    assert shared.epochs[1] == [0, 1, 2, 3, 4, 5] and shared.coordinates[1].shape == (6, 2)
    assert sum(shared.explained) == pytest.approx(1.0, abs=1e-6), "two paths in one 2-D subspace"
    assert shared.axis_title(0).startswith("PC1 (") and shared.axis_title(0).endswith("% of the path)")
    # distances in the plane are the true distances between the points of the two paths
    points = {run: np.stack([np.frombuffer(d, dtype=np.float32) for _, d in sketches[run]]) for run in (1, 2)}
    true = np.linalg.norm(points[1][-1] - points[2][-1])
    got = np.linalg.norm(shared.coordinates[1][-1] - shared.coordinates[2][-1])
    assert got == pytest.approx(true, rel=1e-5)


def test_loss_profiles_take_each_runs_last_measurement():
    first = json.dumps({"t": [-1, 0, 1], "loss": [[3.0, 1.0, 2.0]], "seconds": 1.5}).encode()
    last = json.dumps({"t": [-1, 0, 1], "loss": [[2.0, 1.0, 2.5]], "seconds": 2.0}).encode()
    profiles = loss_profiles({7: [(2, first), (4, last)], 8: []})
    assert list(profiles) == [7]
    assert (profiles[7].epoch, profiles[7].loss, profiles[7].seconds) == (4, [[2.0, 1.0, 2.5]], 2.0)
