"""toy_problems.regions: Figure 1 geometry, the exact inner maximum, and Theorem 1 in numbers."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from asam_core import perturbation, region_norm
from toy_problems.losses import PRODUCT_TARGET, get_loss
from toy_problems.regions import (
    REGIONS, adaptive_region, boundary, region_pair, rescale, sharpness_table, unit_circle, worst_case,
)

PRODUCT = get_loss("product")
ONE_ONE = torch.tensor([1.0, 1.0], dtype=torch.float64)
ALL_REGIONS = [*REGIONS.values(), adaptive_region(4.0), adaptive_region(1.5)]


@pytest.mark.parametrize("region", ALL_REGIONS, ids=lambda r: r.name)
@settings(max_examples=20, deadline=None)
@given(w1=st.floats(-2, 2), w2=st.floats(-2, 2), rho=st.floats(0.01, 1.0), eta=st.floats(0.01, 0.5))
def test_boundary_lies_on_the_region_norm_sphere(region, w1, w2, rho, eta):
    w = torch.tensor([w1, w2], dtype=torch.float64)
    e = boundary(w, region, rho, eta, n=64) - w
    norms = region_norm([e], [w.expand_as(e)], p=region.p, kinds=region.kinds, eta=eta, batched=True)
    torch.testing.assert_close(norms, torch.full_like(norms, rho), rtol=1e-10, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(theta=st.floats(0, 2 * math.pi), p=st.sampled_from([1.5, 2.0, 3.0, math.inf]))
def test_unit_circle_has_unit_p_norm(theta, p):
    u = unit_circle(torch.tensor(theta, dtype=torch.float64), p)
    assert float(torch.linalg.vector_norm(u, ord=p)) == pytest.approx(1.0, rel=1e-12)


@pytest.mark.parametrize("rho", [0.1, 0.3, 0.6])
def test_worst_case_matches_the_closed_forms_on_the_product_loss(rho):
    """At w = (1, 1), eta = 0: the cuboid max is at the corner e = rho (1, 1); the ellipsoid's
    and the sphere's at e = rho (1, 1) / sqrt(2) (they coincide because T_w = I there)."""
    def product_loss(u):
        return 0.5 * (u - PRODUCT_TARGET) ** 2

    cuboid = worst_case(PRODUCT, ONE_ONE, REGIONS["cuboid"], rho)
    assert cuboid.max_loss == pytest.approx(product_loss((1 + rho) ** 2), rel=1e-12)
    torch.testing.assert_close(cuboid.e_star, torch.full((2,), rho, dtype=torch.float64), rtol=1e-6, atol=1e-9)
    for name in ("ellipsoid", "sphere"):
        result = worst_case(PRODUCT, ONE_ONE, REGIONS[name], rho)
        assert result.max_loss == pytest.approx(product_loss((1 + rho / math.sqrt(2)) ** 2), rel=1e-12)
        assert result.sharpness == pytest.approx(result.max_loss - product_loss(1.0), rel=1e-12)


@pytest.mark.parametrize("loss_name, w", [("quadratic", (0.8, -0.3)), ("rosenbrock", (-0.5, 0.8)), ("relu_product", (0.3, 0.033))])
@pytest.mark.parametrize("region", ALL_REGIONS[:4], ids=lambda r: r.name)
def test_worst_case_beats_the_first_order_guess_and_random_points_of_the_region(loss_name, w, region):
    loss, w = get_loss(loss_name), torch.tensor(w, dtype=torch.float64)
    rho, eta = 0.2, 0.05
    result = worst_case(loss, w, region, rho, eta)
    assert float(region_norm([result.e_star], [w], p=region.p, kinds=region.kinds, eta=eta)) <= rho * (1 + 1e-9)
    first = perturbation([loss.grad(w)], [w], rho=rho, p=region.p, kinds=region.kinds, eta=eta)[0]
    torch.testing.assert_close(result.e_first_order, first, rtol=0, atol=0)
    assert result.first_order_loss == pytest.approx(float(loss.value(w + first)))
    assert result.max_loss >= result.first_order_loss - 1e-12
    gen = torch.Generator().manual_seed(0)
    directions = torch.randn(20000, 2, generator=gen, dtype=torch.float64)
    directions /= torch.linalg.vector_norm(directions, ord=region.p, dim=1, keepdim=True)
    radii = torch.rand(20000, 1, generator=gen, dtype=torch.float64) ** 0.5
    scale = torch.ones(2, dtype=torch.float64) if not region.normalized else w.abs() + eta
    samples = loss.value(w + scale * rho * radii * directions)
    assert result.max_loss >= float(samples.max()) - 1e-12


@pytest.mark.parametrize("a", [3.0, 0.5, 1.7])
@pytest.mark.parametrize("rho", [0.1, 0.5])
@pytest.mark.parametrize("w", [(1.0, 1.0), (0.7, 1.3)])
def test_theorem_1_adaptive_sharpness_is_scale_invariant_and_sphere_sharpness_is_not(a, rho, w):
    rows = {row.region: row for row in sharpness_table(PRODUCT, torch.tensor(w, dtype=torch.float64), a, rho, 0.0, ALL_REGIONS[:4])}
    for name in ("cuboid", "ellipsoid", "adaptive p=4"):
        assert rows[name].relative_difference < 1e-6, rows[name]
    assert rows["sphere"].relative_difference > 1e-2, rows["sphere"]


def test_eta_breaks_theorem_1_a_little():
    rows = sharpness_table(PRODUCT, ONE_ONE, 3.0, 0.3, 0.1, [REGIONS["ellipsoid"]])
    assert 1e-6 < rows[0].relative_difference < 0.2


def test_region_pair_draws_w_and_w_prime():
    pair = region_pair(PRODUCT, ONE_ONE, 3.0, REGIONS["ellipsoid"], 0.3, 0.0)
    torch.testing.assert_close(pair.at_w_prime.w, torch.tensor([3.0, 1 / 3], dtype=torch.float64))
    torch.testing.assert_close(pair.boundary_prime, pair.boundary * torch.tensor([3.0, 1 / 3], dtype=torch.float64))
    assert pair.row.at_w == pytest.approx(pair.at_w.sharpness)


def test_rescale_keeps_the_product_and_rejects_non_positive_a():
    w = torch.tensor([0.4, -2.0], dtype=torch.float64)
    assert float(rescale(w, 5.0).prod()) == pytest.approx(float(w.prod()))
    with pytest.raises(ValueError, match="a must be > 0"):
        rescale(w, 0.0)


def test_adaptive_region_rejects_p_at_most_one():
    with pytest.raises(ValueError, match="p must be"):
        adaptive_region(1.0)


def test_theorem1_verdict_for_the_page_rows():
    """The regions page's 'equal' column and its Theorem 1 message come from these, at product loss w = (1, 1), a = 3."""
    from toy_problems.regions import REGIONS, EQUAL_TOLERANCE, SharpnessRow, sharpness_table, theorem1_visible

    rows = sharpness_table(get_loss("product"), torch.tensor([1.0, 1.0]), 3.0, 0.3, 0.0, list(REGIONS.values()))
    assert [row.equal for row in rows] == [False, True, True]
    assert theorem1_visible(rows)
    assert not theorem1_visible(sharpness_table(get_loss("product"), torch.tensor([1.0, 1.0]), 3.0, 0.3, 0.2,
                                                list(REGIONS.values()))), "eta > 0 breaks exact invariance"
    assert SharpnessRow("x", 1.0, 1.0 + 0.5 * EQUAL_TOLERANCE).equal
    assert not SharpnessRow("x", 1.0, 1.0 + 2 * EQUAL_TOLERANCE).equal
