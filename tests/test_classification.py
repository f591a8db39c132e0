"""toy_problems.classification: datasets, label flips, the batched MLP and its training."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from torch.nn import functional as F

from asam_core import ASAM, SAM, sharpness_aware_step
from asam_core.step import MemberMethod, RowRegions, member_methods_step
from toy_problems.classification import (
    DATASETS,
    MLP,
    ClassifierConfig,
    decision_grid,
    ensemble_loss,
    evaluate,
    flip_labels,
    make_data,
    make_points,
    member_losses,
    train_classifiers,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


TINY = dict(n_train=40, n_test=50, width=8, depth=2, steps=6, evals=3, snapshots=2, resolution=8)


@pytest.mark.parametrize("name", DATASETS)
def test_datasets_are_balanced_seeded_and_bounded(name):
    x, y = make_points(name, 101, 0.0, torch.Generator().manual_seed(0))
    again, _ = make_points(name, 101, 0.0, torch.Generator().manual_seed(0))
    other, _ = make_points(name, 101, 0.0, torch.Generator().manual_seed(1))
    assert x.shape == (101, 2) and y.tolist() == [0] * 51 + [1] * 50
    assert torch.equal(x, again) and not torch.equal(x, other)
    assert x.abs().max() <= 1.6


def test_circles_put_each_class_on_its_radius():
    x, y = make_points("circles", 200, 0.0, torch.Generator().manual_seed(0))
    torch.testing.assert_close(x.norm(dim=1), 1.0 - 0.5 * y.float())


@given(n=st.integers(1, 400), rate=st.floats(0.0, 1.0), seed=st.integers(0, 10_000), classes=st.integers(2, 5))
@settings(max_examples=60, deadline=None)
def test_flips_hit_exactly_the_stated_fraction_and_always_change_the_label(n, rate, seed, classes):
    y = torch.randint(0, classes, (n,), generator=torch.Generator().manual_seed(seed))
    noisy, flipped = flip_labels(y, rate, torch.Generator().manual_seed(seed), classes)
    assert int(flipped.sum()) == round(rate * n)
    assert torch.equal(noisy != y, flipped)
    assert int(noisy.min()) >= 0 and int(noisy.max()) < classes


def test_flips_hit_the_training_set_only_and_follow_their_own_seed():
    """Circles without jitter: the true label is the radius, so flips are visible exactly."""
    config = ClassifierConfig(dataset="circles", noise=0.0, flip_rate=0.3, members=3, **TINY)
    data = make_data(config)
    truth_train = (data.x_train.norm(dim=-1) < 0.75).long()
    truth_test = (data.x_test.norm(dim=-1) < 0.75).long()
    assert torch.equal(data.y_test, truth_test)
    assert torch.equal(data.y_train != truth_train, data.flipped)
    assert data.flipped.sum(1).tolist() == [round(0.3 * 40)] * 3
    other_flips = make_data(config.model_copy(update=dict(flip_seed=7)))
    assert torch.equal(other_flips.x_train, data.x_train)
    assert not torch.equal(other_flips.flipped, data.flipped)
    assert not torch.equal(data.x_train[0], data.x_train[1])


def test_members_match_their_plain_sequential_copies_and_equal_seeds_initialize_equally():
    model = MLP([3, 4, 3], width=6, depth=3)
    x = torch.randn(20, 2)
    out = model(x)
    assert out.shape == (3, 20, 2)
    for k in range(3):
        torch.testing.assert_close(model.member(k)(x), out[k])
    torch.testing.assert_close(out[0], out[2])
    assert not torch.allclose(out[0], out[1])
    bound = 1 / math.sqrt(6)
    assert model.layers[1].weight.abs().max() <= bound and model.layers[1].bias.abs().max() <= bound


def test_stack_is_the_inverse_of_member_and_refuses_mixed_architectures():
    model = MLP([5, 6], width=4, depth=2)
    stacked = MLP.stack([model.member(1), model.member(0)])
    x = torch.randn(7, 2)
    torch.testing.assert_close(stacked(x), model(x).flip(0), rtol=0, atol=0)
    assert MLP.stack([model.member(0).double()]).layers[2].bias.dtype == torch.float64
    assert torch.equal(model.double().member(1)[2].weight, model.layers[1].weight[1])  # in the model's dtype, exact
    with pytest.raises(ValueError, match="one architecture"):
        MLP.stack([model.member(0), MLP([1], width=3, depth=2).member(0)])


def test_member_losses_are_each_members_mean_cross_entropy_and_sum_to_the_ensemble_loss():
    logits, y = torch.randn(3, 11, 2, dtype=torch.float64), torch.randint(0, 2, (3, 11))
    losses = member_losses(logits, y)
    torch.testing.assert_close(losses, torch.stack([F.cross_entropy(logits[k], y[k]) for k in range(3)]))
    torch.testing.assert_close(losses.sum(), ensemble_loss(logits, y))


def test_ensemble_loss_gradient_is_each_members_own_mean_loss_gradient():
    model = MLP([0, 1], width=5, depth=1)
    x, y = torch.randn(2, 30, 2), torch.randint(0, 2, (2, 30))
    ensemble_loss(model(x), y).backward()
    for k in range(2):
        single = model.member(k)
        F.cross_entropy(single(x[k]), y[k]).backward()
        torch.testing.assert_close(model.layers[0].weight.grad[k], single[0].weight.grad)


@pytest.mark.parametrize("p", [2.0, math.inf])
def test_one_batched_model_trains_each_member_as_its_optimizer_would_alone(p):
    """SGD, SAM and ASAM members trained in one batched model (asam_core.step.member_methods_step)
    each follow the trajectory of their own optimizer on the plain network: torch.optim.SGD, or
    SAM / ASAM (from_model, biases unnormalized) with sharpness_aware_step, under a cosine schedule."""
    config = ClassifierConfig(members=2, rho_sam=0.1, rho_asam=0.5, p=p, schedule="cosine", **{**TINY, "steps": 12})
    run = train_classifiers(config)
    data = make_data(config)
    start = MLP([0, 1], config.width, config.depth)
    for name in config.optimizers:
        for k in range(2):
            model = start.member(k)
            base = dict(lr=config.lr, momentum=config.momentum)
            if name == "SGD":
                opt = torch.optim.SGD(model.parameters(), **base)
            else:
                cls, rho = (SAM, config.rho_sam) if name == "SAM" else (ASAM, config.rho_asam)
                opt = cls.from_model(model, torch.optim.SGD, rho=rho, p=p, eta=config.eta, **base)
            schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, config.steps)
            for _ in range(config.steps):
                if name == "SGD":
                    opt.zero_grad()
                    F.cross_entropy(model(data.x_train[k]), data.y_train[k]).backward()
                    opt.step()
                else:
                    sharpness_aware_step(opt, model, F.cross_entropy, data.x_train[k], data.y_train[k])
                schedule.step()
            for plain, batched in zip(model.parameters(), run.models[name].member(k).parameters()):
                torch.testing.assert_close(batched, plain, rtol=1e-5, atol=1e-6)


@settings(max_examples=15, deadline=None)
@given(regions=st.lists(st.one_of(st.none(), st.tuples(st.sampled_from([2.0, 3.0, math.inf]),
                                                         st.sampled_from(["none", "element", "filter"]),
                                                         st.floats(0.01, 1.0), st.sampled_from([0.0, 0.01]))),
                        min_size=1, max_size=4), seed=st.integers(0, 100))
def test_rows_of_any_p_and_normalization_step_in_one_batched_model_as_each_alone(regions, seed):
    """RowRegions.of gives every member its own rho, p and T_w (none, element- or filter-wise), several p
    in one model included: one member_methods_step moves member k exactly as one step of its own
    optimizer (plain SGD, or SAM / ASAM from_model with sharpness_aware_step) on member k alone."""
    torch.manual_seed(seed)
    model = MLP(list(range(len(regions))), width=6, depth=2).double()
    x, y = torch.randn(len(regions), 25, 2, dtype=torch.float64), torch.randint(0, 2, (len(regions), 25))
    singles = [model.member(k) for k in range(len(regions))]
    members = [MemberMethod.of(model, slice(k, k + 1), None if r is None else dict(rho=r[2], p=r[0], kinds=r[1], eta=r[3]))
               for k, r in enumerate(regions)]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    member_methods_step(optimizer, model, ensemble_loss, x, y, RowRegions.of(list(model.parameters()), members))
    for k, (region, single) in enumerate(zip(regions, singles)):
        if region is None:
            opt = torch.optim.SGD(single.parameters(), lr=0.5, momentum=0.9)
            opt.zero_grad()
            F.cross_entropy(single(x[k]), y[k]).backward()
            opt.step()
        else:
            p, kind, rho, eta = region
            opt = SAM.from_model(single, torch.optim.SGD, normalization=kind, rho=rho, p=p, eta=eta, lr=0.5, momentum=0.9)
            sharpness_aware_step(opt, single, F.cross_entropy, x[k], y[k])
        for plain, batched in zip(single.parameters(), model.member(k).parameters()):
            torch.testing.assert_close(batched, plain, rtol=1e-10, atol=1e-12)


def test_member_step_refuses_regions_of_other_parameters():
    model = MLP([0, 1], width=4, depth=1)
    regions = RowRegions.of(list(model.parameters())[::-1], [MemberMethod.of(model, slice(0, 1), dict(rho=0.1, p=2.0, kinds="none", eta=0.0))])
    with pytest.raises(ValueError, match="optimizer's trainable parameters"):
        member_methods_step(torch.optim.SGD(model.parameters(), lr=0.1), model, ensemble_loss,
                            torch.randn(2, 5, 2), torch.randint(0, 2, (2, 5)), regions)


def test_methods_in_one_model_move_apart_only_through_their_regions():
    """With rho = 0 every method is SGD: the three optimizers' members end bit for bit where SGD's do."""
    run = train_classifiers(ClassifierConfig(rho_sam=0.0, rho_asam=0.0, **TINY))
    sgd = [w.detach() for w in run.models["SGD"].parameters()]
    for name in ("SAM", "ASAM"):
        assert all(torch.equal(a, w.detach()) for a, w in zip(sgd, run.models[name].parameters()))
    moved = train_classifiers(ClassifierConfig(**TINY))
    assert not torch.equal(moved.models["SAM"].layers[0].weight, moved.models["SGD"].layers[0].weight)


def test_run_records_metrics_grids_and_progress_consistently():
    calls = []
    config = ClassifierConfig(members=2, flip_rate=0.25, **{**TINY, "steps": 200})
    run = train_classifiers(config, progress=lambda s, n: calls.append((s, n)))
    assert calls[-1] == (200, 200) and [s for s, _ in calls] == sorted(s for s, _ in calls)
    assert run.eval_steps.tolist() == [0, 100, 200] and run.snapshot_steps.tolist() == [0, 200]
    assert run.grids.shape == (3, 2, 2, 8, 8)
    for o, name in enumerate(config.optimizers):
        model = run.models[name]
        scores = evaluate(model, run.data)
        for metric, values in scores.items():
            torch.testing.assert_close(torch.from_numpy(run.metrics[metric][o, :, -1]), values)
        predicted = model(run.data.x_train).argmax(-1)
        fitted_flips = (predicted == run.data.y_train) & run.data.flipped
        expected = fitted_flips.sum(1) / run.data.flipped.sum(1)
        torch.testing.assert_close(torch.from_numpy(run.metrics["flipped_fit"][o, :, -1]), expected.float())
        grid = torch.from_numpy(run.grids[o, :, -1])
        point = torch.tensor([[run.x1[3], run.x2[5]]])
        torch.testing.assert_close(grid[:, 5, 3], model(point).softmax(-1)[:, 0, 1])
    assert run.final("test_acc")["SGD"] == pytest.approx(run.metrics["test_acc"][0, :, -1].mean())


def test_decision_grid_rows_follow_x2_and_columns_x1():
    model = torch.nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[0.0, 0.0], [0.0, 1.0]]))
        model.bias.zero_()
    grid = decision_grid(model, torch.linspace(-1, 1, 4), torch.linspace(-1, 1, 3))
    assert grid.shape == (3, 4)
    assert torch.all(grid[0] < 0.5) and torch.all(grid[2] > 0.5) and torch.allclose(grid[1], torch.full((4,), 0.5))


@pytest.mark.parametrize(
    "field, value, words", [("width", 0, "width"), ("flip_rate", 0.7, "flip_rate"), ("dataset", "swiss", "dataset")]
)
def test_bad_settings_are_refused_naming_the_field(field, value, words):
    with pytest.raises(ValidationError, match=words):
        ClassifierConfig(**{field: value})


def test_seed_mean_curves_average_the_members_at_every_eval_step():
    run = train_classifiers(ClassifierConfig(members=3, **TINY))
    curves = run.seed_mean_curves("test_acc")
    assert list(curves) == list(run.config.optimizers)
    for o, name in enumerate(run.config.optimizers):
        np.testing.assert_allclose(curves[name], run.metrics["test_acc"][o].sum(0) / 3, rtol=1e-12)
        assert curves[name][-1] == pytest.approx(run.final("test_acc")[name])
