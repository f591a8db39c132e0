"""asam_core.runs.seed_groups: runs that differ only in their seed, as mean +- 95% t-interval."""
import csv
import io
import math

import pytest
from run_records import make_run, with_fields

from asam_core.runs.seed_groups import GROUP_MEASURES, group_rows, groups_csv, seed_groups


def rows(run_id, test_acc, train_acc, sharpness=None, epochs=3):
    """Metric rows whose last evaluated epoch has these accuracies (fractions) and, at the end, a sharpness."""
    out = []
    for e in range(1, epochs + 1):
        out.append(dict(run_id=run_id, epoch=e, train_acc=train_acc * e / epochs, test_acc=test_acc * e / epochs,
                        sharpness=sharpness if e == epochs else None))
    return out


def test_runs_differing_only_in_seed_form_one_group_with_the_hand_computed_interval():
    runs = [make_run(1, optimizer="sam", seed=0), make_run(2, optimizer="sam", seed=1), make_run(3, optimizer="sam", seed=2),
            make_run(4, optimizer="sgd", seed=0), make_run(5, optimizer="sam", seed=0, lr=0.05)]
    test = {1: 0.50, 2: 0.53, 3: 0.56, 4: 0.45, 5: 0.40}
    metrics = [r for i in test for r in rows(i, test[i], 0.9, sharpness=0.01 * i)]
    groups = seed_groups(runs, metrics)
    assert [g.run_ids for g in groups] == [(1, 2, 3), (4,), (5,)]
    sam = groups[0]
    mean, half, n = sam.summary["test_acc"]
    # By hand: mean 53, sample sd 3, t_{0.975, 2} = 4.3027
    assert (mean, n) == (pytest.approx(53.0), 3) and half == pytest.approx(4.3027 * 3 / math.sqrt(3), rel=1e-4)
    gap_mean, gap_half, _ = sam.summary["gap"]
    assert gap_mean == pytest.approx(90 - 53) and gap_half == pytest.approx(half)
    assert sam.summary["sharpness"][0] == pytest.approx(0.02)
    assert groups[1].summary["test_acc"] == (pytest.approx(45.0), None, 1)
    assert sam.seeds == (0, 1, 2) and sam.name == "SAM resnet20"


def test_unevaluated_and_quarantined_runs_are_left_out_and_tables_carry_every_measure():
    runs = [make_run(1, seed=0), make_run(2, seed=1), make_run(3, seed=2), with_fields(make_run(4, seed=3), config=None)]
    metrics = rows(1, 0.6, 0.8) + rows(2, 0.7, 0.8) + [dict(run_id=3, epoch=1, train_acc=0.5, test_acc=None)] + rows(4, 0.1, 0.1)
    (group,) = seed_groups(runs, metrics)
    assert group.run_ids == (1, 2) and "sharpness" not in group.summary
    (row,) = group_rows([group])
    assert row["test accuracy (%)"].startswith("65.00 ± ") and row["sharpness"] == ""
    table = list(csv.DictReader(io.StringIO(groups_csv([group]))))
    assert float(table[0]["test_acc_mean"]) == pytest.approx(65.0) and table[0]["test_acc_n"] == "2"
    assert set(f"{m}_mean" for m in GROUP_MEASURES) <= set(table[0])
