"""toy_problems.convergence and toy_problems.export."""
import csv
import io

import pytest
import torch

from toy_problems.convergence import OUTCOMES, convergence_map
from toy_problems.export import CSV_COLUMNS, trajectories_csv
from toy_problems.losses import get_loss
from toy_problems.presets import FIGURE3_CONFIG
from toy_problems.simulate import simulate

LOSS = get_loss("relu_product")
BOX = ((0.1, 0.4), (-0.05, 0.1))
CONFIG = FIGURE3_CONFIG.model_copy(update=dict(steps=400, lr=0.01))


@pytest.fixture(scope="module")
def small_map():
    return convergence_map(LOSS, BOX, 7, CONFIG, dtype=torch.float64)


def test_map_cells_equal_single_runs_from_their_start(small_map):
    i, j = 5, 2
    start = torch.tensor([[float(small_map.w1[j]), float(small_map.w2[i])]], dtype=torch.float64)
    alone = simulate(LOSS, start, CONFIG, record_every=None)
    torch.testing.assert_close(small_map.final[:, i, j], alone.final()[:, 0], rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(small_map.final_loss[:, i, j], alone.losses[:, -1, 0], rtol=1e-12, atol=1e-14)


def test_starts_with_a_dead_relu_are_stuck_for_every_method(small_map):
    dead_rows = small_map.w2 <= 0
    assert dead_rows.any()
    assert torch.all(small_map.outcome[:, dead_rows] == OUTCOMES.index("stuck"))
    assert torch.equal(small_map.final[:, dead_rows, :, 1], small_map.w2[dead_rows, None].expand(3, -1, 7))


def test_outcome_and_balance_follow_their_definitions(small_map):
    converged = small_map.outcome == OUTCOMES.index("converged")
    assert converged.any()
    assert torch.all(small_map.final_loss[converged] < 5e-3)
    expected = torch.log10(small_map.final[..., 0].abs() / small_map.final[..., 1].abs())
    stuck = small_map.outcome == OUTCOMES.index("stuck")
    assert torch.isnan(small_map.balance[stuck]).all()
    torch.testing.assert_close(small_map.balance[~stuck], expected[~stuck])
    assert small_map.outcome_counts().sum(dim=1).tolist() == [49, 49, 49]
    assert small_map.outcome_counts()[:, 0].tolist() == stuck.sum(dim=(1, 2)).tolist()


def test_sam_is_stuck_more_often_than_asam(small_map):
    stuck = (small_map.outcome == OUTCOMES.index("stuck")).sum(dim=(1, 2))
    sam, asam = small_map.methods.index("sam"), small_map.methods.index("asam")
    assert stuck[sam] > stuck[asam]


def test_csv_has_one_row_per_method_start_and_step_and_round_trips():
    starts = torch.tensor([[0.2, 0.05], [0.3, 0.033]], dtype=torch.float64)
    run = simulate(LOSS, starts, CONFIG.model_copy(update=dict(steps=6)), record_every=3)
    rows = list(csv.DictReader(io.StringIO(trajectories_csv(run))))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == 3 * 2 * 3
    row = next(r for r in rows if r["method"] == "asam" and r["start"] == "1" and r["step"] == "6")
    m = run.methods.index("asam")
    assert float(row["w1"]) == float(run.points[m, -1, 1, 0]) and float(row["w2"]) == float(run.points[m, -1, 1, 1])
    assert float(row["loss"]) == float(run.losses[m, -1, 1])


def test_map_needs_two_points_per_axis():
    with pytest.raises(ValueError, match="n must be >= 2"):
        convergence_map(LOSS, BOX, 1, CONFIG)
