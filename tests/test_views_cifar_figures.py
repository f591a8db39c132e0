"""The CIFAR page's figures: curves per epoch, step losses, trajectories sharing a plane."""
from __future__ import annotations

import pytest
from run_records import make_run, metric_rows

from views import cifar_figures


def test_curves_hold_each_runs_metrics_in_percent_and_skip_epochs_without_evaluation():
    runs = [make_run(3, optimizer="sam"), make_run(5, optimizer="asam")]
    metrics = metric_rows(3, 4, evaluated_every=2) + metric_rows(5, 3)
    traces = {(t.run_id, t.panel, t.split): t for t in cifar_figures.curve_traces(runs, metrics)}
    assert len(traces) == 8
    test_acc = traces[3, "accuracy", "test"]
    assert (test_acc.epochs, test_acc.values, test_acc.dash, test_acc.color_index) == ([2, 4], [10.0, 20.0], "solid", 0)
    train_loss = traces[5, "loss", "train"]
    assert train_loss.epochs == [1, 2, 3] and train_loss.values == pytest.approx([5.1, 5.2, 5.3])
    assert (train_loss.dash, train_loss.color_index) == ("dot", 1)
    assert traces[5, "accuracy", "train"].name == "#5 ASAM rho=0.5 resnet20 (train)"


def test_trajectories_start_at_w0_and_share_a_plane_only_with_the_same_dataset_model_and_seed():
    runs = [make_run(1, optimizer="sgd"), make_run(2, optimizer="asam"), make_run(3, seed=1), make_run(4, dataset="cifar100")]
    metrics = [m for i in (1, 2, 3, 4) for m in metric_rows(i, 2)]
    groups = cifar_figures.trajectory_groups(runs, metrics)
    assert [[p.run_id for p in g.paths] for g in groups] == [[1, 2], [3], [4]]
    assert groups[0].title == "resnet20 on cifar10, seed 0"
    path = groups[0].paths[1]
    assert (path.epochs, path.x[0], path.y[0], path.color_index) == ([0, 1, 2], 0.0, 0.0, 1)
    assert path.x[1:] == [m["traj_x"] for m in metric_rows(2, 2)]


def test_step_losses_are_one_line_per_run_that_has_them():
    runs = [make_run(1), make_run(2), make_run(3)]
    traces = cifar_figures.step_loss_traces(runs, [(1, 5, 2.0), (1, 10, 1.5), (3, 5, 2.2)])
    assert [(t.run_id, t.steps, t.losses, t.color_index) for t in traces] == [
        (1, [5, 10], [2.0, 1.5], 0), (3, [5], [2.2], 2)]
