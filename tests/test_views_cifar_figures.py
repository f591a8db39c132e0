"""The CIFAR page's figures: curves per epoch, step losses, paths on the shared PCA plane, loss profiles."""
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
    assert (test_acc.epochs, test_acc.values, test_acc.dash) == ([2, 4], [10.0, 20.0], "solid")
    train_loss = traces[5, "loss", "train"]
    assert train_loss.epochs == [1, 2, 3] and train_loss.values == pytest.approx([5.1, 5.2, 5.3])
    assert train_loss.dash == "dot"
    assert traces[5, "accuracy", "train"].name == "#5 ASAM rho=0.5 resnet20 (train)"


def test_each_run_keeps_its_colour_whatever_else_is_compared():
    runs = [make_run(3, optimizer="sam"), make_run(5, optimizer="asam")]
    alone = cifar_figures.curves_figure(cifar_figures.curve_traces(runs[1:], metric_rows(5, 2)))
    both = cifar_figures.curves_figure(cifar_figures.curve_traces(runs, metric_rows(3, 2) + metric_rows(5, 2)))
    colours = {t.name: t.line.color for t in both.data}
    assert all(colours[t.name] == t.line.color for t in alone.data)
    assert colours["#3 SAM rho=0.05 resnet20 (test)"] != colours["#5 ASAM rho=0.5 resnet20 (test)"]


def test_plane_figure_marks_w0_every_epoch_the_direction_and_the_last_point():
    import numpy as np

    from asam_core.runs.analysis import SharedPlane
    from views.cifar_analysis import plane_figure
    from views.style import run_color

    runs = {1: make_run(1, optimizer="sgd"), 2: make_run(2, optimizer="asam")}
    plane = SharedPlane(("resnet20", 0, "cifar10"), (1, 2), {1: [0, 1, 2], 2: [0, 1]},
                        {1: np.array([[0, 0], [1, 0.5], [2, 0.2]]), 2: np.array([[0, 0], [0.5, -1]])}, (0.8, 0.15))
    fig = plane_figure(plane, runs)
    assert fig.layout.xaxis.title.text == "PC1 (80% of the path)" and fig.layout.yaxis.title.text == "PC2 (15% of the path)"
    paths = [t for t in fig.data if t.mode == "lines+markers"]
    assert [list(t.customdata) for t in paths] == [[0, 1, 2], [0, 1]], "every epoch is a marked point"
    assert [t.line.color for t in paths] == [run_color(1), run_color(2)]
    ends = [t for t in fig.data if t.marker.symbol == "diamond"]
    assert [(list(t.x), list(t.customdata)) for t in ends] == [([2.0], [2]), ([0.5], [1])]
    assert len(fig.layout.annotations) == 2, "an arrow into each last point"
    assert any(t.name == "w₀ (shared initial weights)" for t in fig.data)


def test_step_losses_are_one_line_per_run_that_has_them():
    runs = [make_run(1), make_run(2), make_run(3)]
    traces = cifar_figures.step_loss_traces(runs, [(1, 5, 2.0), (1, 10, 1.5), (3, 5, 2.2)])
    assert [(t.run_id, t.steps, t.losses) for t in traces] == [(1, [5, 10], [2.0, 1.5]), (3, [5], [2.2])]
