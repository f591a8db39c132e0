"""toy_problems.simulate: the batched simulator reproduces asam_core's optimizers step by step."""
import math

import pytest
import torch
from pydantic import ValidationError

from asam_core import ASAM, SAM
from toy_problems.losses import get_loss
from toy_problems.simulate import SimulationConfig, simulate

STEPS = 25


def optimizer_path(loss, start, method, config):
    """The same run with the library optimizers and autograd (the reference)."""
    w = torch.nn.Parameter(torch.tensor(start, dtype=torch.float64))
    base = dict(lr=config.lr, momentum=config.momentum)
    if method == "sgd":
        opt = torch.optim.SGD([w], **base)
    elif method == "sam":
        opt = SAM([w], torch.optim.SGD, rho=config.rho, p=2.0, **base)
    else:
        opt = ASAM([w], torch.optim.SGD, rho=config.rho, p=config.p, eta=config.eta, **base)
    path = [w.detach().clone()]
    for _ in range(config.steps):
        def closure():
            opt.zero_grad()
            value = loss.value(w)
            value.backward()
            return value
        opt.step(closure)
        path.append(w.detach().clone())
    return torch.stack(path)


@pytest.mark.parametrize("loss_name, start", [("product", (1.2, 0.3)), ("quadratic", (0.8, -0.6)), ("relu_product", (0.2, 0.05))])
@pytest.mark.parametrize("p, eta, momentum", [(2.0, 0.0, 0.0), (math.inf, 0.01, 0.9), (2.0, 0.01, 0.5)])
def test_every_step_matches_the_asam_core_optimizers(loss_name, start, p, eta, momentum):
    loss = get_loss(loss_name)
    config = SimulationConfig(lr=0.05, steps=STEPS, rho=0.1, p=p, eta=eta, momentum=momentum)
    run = simulate(loss, torch.tensor([start], dtype=torch.float64), config)
    for m, method in enumerate(run.methods):
        torch.testing.assert_close(run.points[m, :, 0], optimizer_path(loss, start, method, config), rtol=1e-12, atol=1e-14)


def test_many_starts_in_one_call_equal_separate_runs():
    loss = get_loss("relu_product")
    starts = torch.tensor([[0.2, 0.05], [0.3, 0.033], [0.1, -0.05], [0.35, 0.25]], dtype=torch.float64)
    config = SimulationConfig(lr=0.01, steps=200, rho=0.05, eta=0.01, momentum=0.3)
    together = simulate(loss, starts, config)
    for b in range(len(starts)):
        alone = simulate(loss, starts[b : b + 1], config)
        torch.testing.assert_close(together.points[:, :, b], alone.points[:, :, 0], rtol=1e-13, atol=1e-15)
        torch.testing.assert_close(together.losses[:, :, b], alone.losses[:, :, 0], rtol=1e-13, atol=1e-15)


def test_rho_zero_turns_sam_and_asam_into_sgd():
    run = simulate(get_loss("rosenbrock"), torch.tensor([[-1.0, 1.0]]), SimulationConfig(lr=0.01, steps=100, rho=0.0))
    assert torch.equal(run.points[1], run.points[0]) and torch.equal(run.points[2], run.points[0])


def test_recording_every_k_steps_keeps_the_last_step():
    loss, start = get_loss("product"), torch.tensor([[1.0, 0.2]], dtype=torch.float64)
    config = SimulationConfig(lr=0.05, steps=10)
    full = simulate(loss, start, config)
    sparse = simulate(loss, start, config, record_every=4)
    ends = simulate(loss, start, config, record_every=None)
    assert full.steps.tolist() == list(range(11))
    assert sparse.steps.tolist() == [0, 4, 8, 10]
    assert ends.steps.tolist() == [0, 10]
    torch.testing.assert_close(sparse.points, full.points[:, [0, 4, 8, 10]], rtol=0, atol=0)
    torch.testing.assert_close(ends.final(), full.final(), rtol=0, atol=0)
    torch.testing.assert_close(full.losses, loss.value(full.points), rtol=0, atol=0)


def test_methods_subset_is_kept_in_canonical_order():
    config = SimulationConfig(methods=("asam", "sgd"), steps=3)
    run = simulate(get_loss("quadratic"), torch.tensor([[1.0, 1.0]]), config)
    assert run.methods == ("sgd", "asam") and run.points.shape == (2, 4, 1, 2)


@pytest.mark.parametrize(
    "field, value, words",
    [("p", 3.0, "p must be 2 or inf"), ("lr", 0.0, "lr"), ("momentum", 1.0, "momentum"), ("methods", ("sam", "sam"), "repeat"),
     ("methods", ("adam",), "methods"), ("rho", -0.1, "rho"), ("steps", 0, "steps")],
)
def test_bad_config_names_the_field(field, value, words):
    with pytest.raises(ValidationError, match=words):
        SimulationConfig(**{field: value})


def test_starts_must_be_rows_of_two():
    with pytest.raises(ValueError, match="starts must have shape"):
        simulate(get_loss("quadratic"), torch.zeros(3), SimulationConfig(steps=1))


def test_summary_reports_the_final_point_of_one_start():
    starts = torch.tensor([[0.2, 0.05], [0.3, 0.033]], dtype=torch.float64)
    run = simulate(get_loss("relu_product"), starts, SimulationConfig(lr=0.01, steps=50))
    summary = run.summary(start=1)
    end = run.final()[:, 1]
    assert summary["w1"] == end[:, 0].tolist() and summary["w2"] == end[:, 1].tolist()
    assert summary["w1*w2"] == pytest.approx((end[:, 0] * end[:, 1]).tolist())
    assert summary["w1/w2"] == pytest.approx((end[:, 0] / end[:, 1]).tolist())
    assert summary["loss"] == run.losses[:, -1, 1].tolist()
    assert summary["moved"] == pytest.approx(torch.linalg.vector_norm(end - starts[1], dim=-1).tolist())


def test_running_min_and_thinning_keep_the_ends_and_the_order():
    loss = get_loss("relu_product")
    run = simulate(loss, torch.tensor([[0.2, 0.05], [0.3, 0.2]], dtype=torch.float64),
                   SimulationConfig(lr=0.05, steps=50))
    best = run.running_min_losses()
    assert torch.all(best[:, 1:] <= best[:, :-1]) and torch.all(best <= run.losses)
    assert torch.equal(best[:, 0], run.losses[:, 0])
    thin = run.thinned(7)
    assert thin.steps.tolist() == [0, 8, 17, 25, 33, 42, 50]
    assert torch.equal(thin.points[:, -1], run.points[:, -1]) and torch.equal(thin.losses[:, 0], run.losses[:, 0])
    assert run.thinned(500).steps.tolist() == run.steps.tolist()
