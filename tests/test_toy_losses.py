"""toy_problems.losses: analytic gradients agree with autograd; the rescaling symmetry holds."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from toy_problems.losses import LOSSES, bounding_box, get_loss, loss_grid

coordinate = st.floats(-3.0, 3.0, allow_nan=False)


def autograd_grad(loss, w: torch.Tensor) -> torch.Tensor:
    w = w.clone().requires_grad_(True)
    loss.value(w).sum().backward()
    return w.grad


@pytest.mark.parametrize("name", sorted(LOSSES))
@settings(max_examples=60, deadline=None)
@given(w1=coordinate, w2=coordinate)
def test_analytic_gradient_matches_autograd(name, w1, w2):
    loss = get_loss(name)
    w = torch.tensor([[w1, w2]], dtype=torch.float64)
    torch.testing.assert_close(loss.grad(w), autograd_grad(loss, w), rtol=1e-12, atol=1e-12)


def test_relu_product_kinks_follow_autograd_conventions():
    loss = get_loss("relu_product")
    w = torch.tensor([[0.3, 0.0], [0.3, -0.2], [0.2, 0.2], [-0.5, 0.1]], dtype=torch.float64)
    torch.testing.assert_close(loss.grad(w), autograd_grad(loss, w), rtol=0, atol=1e-15)
    assert torch.equal(loss.grad(w[1:2]), torch.zeros(1, 2, dtype=torch.float64))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_batched_shapes(name):
    loss = get_loss(name)
    w = torch.rand(4, 3, 2, dtype=torch.float64)
    assert loss.value(w).shape == (4, 3)
    assert loss.grad(w).shape == (4, 3, 2)
    torch.testing.assert_close(loss.grad(w)[1, 2], loss.grad(w[1, 2]))


@settings(max_examples=50, deadline=None)
@given(w1=coordinate, w2=coordinate, a=st.floats(0.1, 10.0))
def test_scale_invariant_losses_ignore_diag_a_one_over_a(w1, w2, a):
    w = torch.tensor([w1, w2], dtype=torch.float64)
    scaled = w * torch.tensor([a, 1 / a], dtype=torch.float64)
    for loss in LOSSES.values():
        if loss.scale_invariant:
            torch.testing.assert_close(loss.value(scaled), loss.value(w), rtol=1e-12, atol=1e-12)


def test_contrast_losses_are_not_scale_invariant():
    w, scaled = torch.tensor([1.0, 0.5]), torch.tensor([3.0, 0.5 / 3])
    for name in ("quadratic", "rosenbrock"):
        loss = get_loss(name)
        assert not loss.scale_invariant
        assert abs(float(loss.value(scaled) - loss.value(w))) > 1e-3


@pytest.mark.parametrize("name", ["relu_product", "product"])
def test_valley_is_the_set_of_minimizers(name):
    loss = get_loss(name)
    w1 = torch.linspace(0.05, 3.0, 50, dtype=torch.float64)
    on_valley = torch.stack((w1, loss.valley(w1)), dim=-1)
    assert float(loss.value(on_valley).abs().max()) < 1e-15


def test_unknown_loss_names_the_choices():
    with pytest.raises(ValueError, match="relu_product"):
        get_loss("nope")


def test_loss_grid_is_indexed_w2_then_w1():
    loss = get_loss("rosenbrock")
    xs, ys, values = loss_grid(loss, ((-1.0, 1.0), (0.0, 2.0)), n=5)
    assert values.shape == (5, 5)
    assert float(values[3, 1]) == pytest.approx(float(loss.value(torch.stack((xs[1], ys[3])))))


def test_bounding_box_contains_every_point_set_with_a_margin():
    sets = [torch.tensor([[0.0, 1.0], [2.0, 3.0]]), torch.tensor([-1.0, 0.5])]
    (x0, x1), (y0, y1) = bounding_box(sets, margin=0.1)
    assert (x0, x1, y0, y1) == pytest.approx((-1.3, 2.3, 0.2, 3.3))
