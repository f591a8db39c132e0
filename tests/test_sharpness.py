"""asam_core.sharpness: rescaling invariance (ASAM paper, Theorem 1), the estimator's contract,
closed forms on quadratics, and the Hessian's top eigenvalue against an exact eigendecomposition."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as F

from asam_core.perturbation import perturbation, region_norm
from asam_core.sharpness import (
    hessian_top_eigenvalue,
    hidden_layers,
    member_sharpness,
    region_parameters,
    rescale_nodes,
    sharpness,
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def mlp(seed: int, width: int = 8) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(2, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 2)
    ).double()


def convnet(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(4 * 2 * 2, 3),
    ).double()


def data(seed: int, n: int = 64) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=gen, dtype=torch.float64)
    return [(x, (x[:, 0] * x[:, 1] > 0).long())]


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), abs(b))


@given(seed=st.integers(0, 10_000), log_a=st.lists(st.floats(-1.0, 1.0), min_size=8, max_size=8))
@settings(max_examples=25, deadline=None)
def test_rescale_nodes_preserves_the_function_of_an_mlp(seed, log_a):
    model = mlp(seed)
    factors = 10.0 ** torch.tensor(log_a, dtype=torch.float64)
    scaled = rescale_nodes(model, {0: factors, 2: factors.flip(0)})
    x = data(seed)[0][0]
    torch.testing.assert_close(scaled(x), model(x), rtol=1e-5, atol=1e-5 * model(x).abs().max().item())
    torch.testing.assert_close(scaled[0].weight, factors[:, None] * model[0].weight)
    torch.testing.assert_close(scaled[2].bias, factors.flip(0) * model[2].bias)
    torch.testing.assert_close(scaled[4].weight, model[4].weight / factors.flip(0))


def test_rescale_nodes_preserves_the_function_of_a_convnet_through_pooling_and_flatten():
    model = convnet(0)
    assert hidden_layers(model) == [0, 3]
    scaled = rescale_nodes(model, {0: torch.tensor([0.1, 3.0, 7.0]), 3: torch.tensor([5.0, 0.2, 1.0, 9.0])})
    x = torch.randn(5, 2, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(scaled(x), model(x), rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize(
    "model, factors, message",
    [
        (mlp(0), {4: 2.0}, "hidden layers"),
        (mlp(0), {0: -1.0}, "> 0"),
        (nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 1)), {0: 2.0}, "hidden layers"),
    ],
)
def test_rescale_nodes_refuses_rescalings_that_change_the_function(model, factors, message):
    with pytest.raises(ValueError, match=message):
        rescale_nodes(model, factors)


def _sharpness(model, normalization, p, **kwargs):
    options = dict(rho=0.05, p=p, normalization=normalization, eta=0.0, normalize_bias=True, steps=5, restarts=1)
    return sharpness(model, F.cross_entropy, data(1), **{**options, **kwargs}).value


@pytest.mark.parametrize("p", [2.0, math.inf])
@pytest.mark.parametrize("normalization", ["element", "filter"])
def test_adaptive_sharpness_is_invariant_to_rescaling_while_sharpness_is_not(normalization, p):
    """Theorem 1: with T_w = |w| (eta = 0, biases normalized) the region moves with A.  Element-wise
    normalization allows any node-wise factors; filter-wise (per-row) needs one factor per layer."""
    model = mlp(3)
    if normalization == "element":
        factors = {0: 10.0 ** torch.linspace(-1, 1, 8, dtype=torch.float64), 2: 10.0}
    else:
        factors = {0: 10.0, 2: 0.1}
    scaled = rescale_nodes(model, {2: 10.0})
    assert rel(_sharpness(rescale_nodes(model, factors), normalization, p), _sharpness(model, normalization, p)) < 1e-3
    plain, plain_scaled = _sharpness(model, None, p), _sharpness(scaled, None, p)
    assert max(plain, plain_scaled) > 2 * min(plain, plain_scaled)


def test_default_eta_and_unnormalized_biases_make_the_invariance_approximate():
    model, scaled = mlp(3), rescale_nodes(mlp(3), {2: 10.0})
    exact = rel(_sharpness(model, "element", 2.0), _sharpness(scaled, "element", 2.0))
    default = rel(
        _sharpness(model, "element", 2.0, eta=0.01, normalize_bias=False),
        _sharpness(scaled, "element", 2.0, eta=0.01, normalize_bias=False),
    )
    assert exact < 1e-6 < default


@st.composite
def estimator_problems(draw):
    return dict(
        seed=draw(st.integers(0, 1000)),
        rho=draw(st.floats(0.01, 1.0)),
        p=draw(st.sampled_from([2.0, 3.0, math.inf])),
        normalization=draw(st.sampled_from([None, "element", "filter"])),
        eta=draw(st.sampled_from([0.0, 0.01, 0.5])),
        normalize_bias=draw(st.booleans()),
    )


@given(estimator_problems())
@settings(max_examples=30, deadline=None)
def test_estimate_stays_in_the_region_and_never_falls_below_the_first_order_value(problem):
    seed = problem.pop("seed")
    model = mlp(seed)
    batches = data(seed)
    estimate = sharpness(model, F.cross_entropy, batches, steps=4, restarts=1, seed=seed, **problem)
    params, kinds = region_parameters(model, problem["normalization"], problem["normalize_bias"])
    radius = region_norm(estimate.eps, params, p=problem["p"], kinds=kinds, eta=problem["eta"]).item()
    assert radius <= problem["rho"] * (1 + 1e-9)
    x, y = batches[0]
    loss = F.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, params)
    e1 = perturbation(grads, [w.detach() for w in params], rho=problem["rho"], p=problem["p"], kinds=kinds, eta=problem["eta"])
    with torch.no_grad():
        for w, e in zip(params, e1):
            w.add_(e)
        first_order = F.cross_entropy(model(x), y).item() - loss.item()
        for w, e in zip(params, e1):
            w.sub_(e)
    assert estimate.first_order == pytest.approx(first_order, rel=1e-9, abs=1e-12)
    assert estimate.value >= estimate.first_order
    assert estimate.loss == pytest.approx(loss.item(), rel=1e-12)


@st.composite
def member_problems(draw):
    """Rescaled copies of one network, each member with its own data and, when ``own_regions``, its own
    normalization, eta and normalize_bias."""
    members = draw(st.integers(1, 4))
    regions = [draw(estimator_problems()) for _ in range(members)]
    own = draw(st.booleans())
    return dict(
        seed=regions[0]["seed"], rho=regions[0]["rho"], p=regions[0]["p"], restarts=draw(st.integers(0, 2)),
        log_a=draw(st.lists(st.floats(-1.0, 1.0), min_size=members, max_size=members)),
        regions=[{key: (r if own else regions[0])[key] for key in ("normalization", "eta", "normalize_bias")}
                 for r in regions],
    )


@given(member_problems())
@settings(max_examples=30, deadline=None)
def test_member_sharpness_gives_each_member_the_estimate_it_gets_alone(problem):
    """One batched ascent over rescaled copies of a network (each member its own data, its own region or
    a shared one) equals ``sharpness`` on every member alone: the region norm, the steps, the
    projection, the best point and the random starts are per member."""
    from toy_problems.classification import MLP, member_losses

    seed, regions = problem["seed"], problem["regions"]
    networks = [rescale_nodes(mlp(seed), {0: 10.0 ** v}) for v in problem["log_a"]]
    batches = [data(seed + k)[0] for k in range(len(networks))]
    common = dict(rho=problem["rho"], p=problem["p"], steps=3, restarts=problem["restarts"], seed=seed)
    per_member = {key: [region[key] for region in regions] for key in regions[0]}
    shared = all(region == regions[0] for region in regions)
    model = MLP.stack(networks)
    together = member_sharpness(model, member_losses,
                                [(torch.stack([x for x, _ in batches]), torch.stack([y for _, y in batches]))],
                                **common, **(regions[0] if shared else per_member))
    assert len(together) == len(networks)
    for k, (network, batch, estimate) in enumerate(zip(networks, batches, together)):
        alone = sharpness(network, F.cross_entropy, [batch], **common, **regions[k])
        for field in ("value", "first_order", "loss"):
            assert getattr(estimate, field) == pytest.approx(getattr(alone, field), rel=1e-9, abs=1e-12), field
        for a, b in zip(estimate.eps, alone.eps, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_per_member_regions_need_a_batched_model_and_one_entry_per_member():
    from toy_problems.classification import MLP, member_losses

    model = MLP.stack([mlp(0), mlp(1)])
    (x, y), = data(0)
    batches = [(x, y.expand(2, -1))]
    with pytest.raises(ValueError, match="one entry per member"):
        member_sharpness(model, member_losses, batches, 0.1, normalization=["element"])
    with pytest.raises(ValueError, match="eta"):
        member_sharpness(model, member_losses, batches, 0.1, normalization=["element", None], eta=[0.0, -1.0])
    with pytest.raises(ValueError, match="one entry per member"):
        sharpness(mlp(0), F.cross_entropy, data(0), 0.1, normalization=["element"])


class Quadratic(nn.Module):
    """L(w) = c.w + 0.5 w.H w with H diagonal (entries h) or a full matrix; the input is ignored."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(w.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight


def quadratic_loss(h: torch.Tensor, c: torch.Tensor):
    def loss(w: torch.Tensor, _target: torch.Tensor) -> torch.Tensor:
        hw = h * w if h.shape == w.shape else h @ w.reshape(-1)
        return (c * w).sum() + 0.5 * (w.reshape(-1) * hw.reshape(-1)).sum()

    return loss


NO_DATA = [(torch.zeros(1), torch.zeros(1))]


@pytest.mark.parametrize("normalization", [None, "element", "filter"])
def test_p_inf_on_a_separable_quadratic_matches_the_closed_form(normalization):
    """Coordinate-wise max over |u_ij| <= rho of g_ij T_ij u_ij + 0.5 h_ij T_ij^2 u_ij^2 (h >= 0):
    rho T_ij |g_ij| + 0.5 h_ij T_ij^2 rho^2."""
    gen = torch.Generator().manual_seed(0)
    w, c = torch.randn(3, 4, generator=gen, dtype=torch.float64), torch.randn(3, 4, generator=gen, dtype=torch.float64)
    h = torch.rand(3, 4, generator=gen, dtype=torch.float64) * 3
    rho, eta = 0.2, 0.1
    t = {None: torch.ones_like(w), "element": w.abs() + eta, "filter": (w.norm(dim=1, keepdim=True) + eta).expand_as(w)}
    g = c + h * w
    expected = (rho * t[normalization] * g.abs() + 0.5 * h * t[normalization] ** 2 * rho**2).sum().item()
    estimate = sharpness(Quadratic(w), quadratic_loss(h, c), NO_DATA, rho, math.inf, normalization, eta=eta, steps=3)
    assert estimate.value == pytest.approx(expected, rel=1e-9)


def test_p2_at_a_minimum_finds_half_the_top_eigenvalue_times_rho_squared():
    """At g = 0 the first-order step is zero; ascent from a random start must find 0.5 lambda_max rho^2."""
    gen = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=gen, dtype=torch.float64))
    h = q @ torch.diag(torch.tensor([0.5, 1.0, 1.5, 2.0, 3.0, 4.0], dtype=torch.float64)) @ q.T
    w = torch.zeros(6, dtype=torch.float64)
    rho = 0.3
    estimate = sharpness(Quadratic(w), quadratic_loss(h, torch.zeros(6, dtype=torch.float64)), NO_DATA, rho, steps=60)
    assert estimate.first_order == 0.0
    assert estimate.value == pytest.approx(0.5 * 4.0 * rho**2, rel=1e-3)


def test_p2_with_isotropic_curvature_matches_rho_norm_g_plus_half_lambda_rho_squared():
    gen = torch.Generator().manual_seed(1)
    w, c = torch.randn(5, generator=gen, dtype=torch.float64), torch.randn(5, generator=gen, dtype=torch.float64)
    lam, rho = 2.0, 0.4
    g = c + lam * w
    estimate = sharpness(Quadratic(w), quadratic_loss(torch.full((5,), lam, dtype=torch.float64), c), NO_DATA, rho)
    assert estimate.value == pytest.approx(rho * g.norm().item() + 0.5 * lam * rho**2, rel=1e-9)


def test_estimator_is_deterministic_and_restores_weights_mode_and_batchnorm_statistics():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 2)).double()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    values = [sharpness(model, F.cross_entropy, data(0), 0.1, normalization="element", seed=3).value for _ in range(2)]
    hessian_top_eigenvalue(model, F.cross_entropy, data(0), iters=5)
    assert values[0] == values[1]
    assert model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert all(w.grad is None for w in model.parameters())


def test_hessian_top_eigenvalue_matches_the_exact_hessian():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    batches = data(2, n=32)
    names = [name for name, _ in model.named_parameters()]
    shapes = [w.shape for w in model.parameters()]
    flat = torch.cat([w.detach().reshape(-1) for w in model.parameters()])

    def loss_of(v: torch.Tensor) -> torch.Tensor:
        chunks = torch.split(v, [s.numel() for s in shapes])
        params = {n: c.reshape(s) for n, c, s in zip(names, chunks, shapes)}
        x, y = batches[0]
        return F.cross_entropy(torch.func.functional_call(model, params, (x,)), y)

    eigenvalues = torch.linalg.eigvalsh(torch.autograd.functional.hessian(loss_of, flat))
    dominant = eigenvalues[eigenvalues.abs().argmax()].item()
    estimate = hessian_top_eigenvalue(model, F.cross_entropy, batches, iters=2000, tol=1e-12)
    assert estimate == pytest.approx(dominant, rel=1e-6)


def test_ratio_curves_divide_each_measure_by_its_value_at_a_equal_one():
    import numpy as np

    from toy_problems.scale_invariance import ratio_curves

    scales = tuple(np.logspace(-1.0, 1.0, 9).tolist())
    curves = {"flat": np.full(9, 2.5), "linear": 3.0 * np.asarray(scales)}
    ratios = ratio_curves(curves, scales)
    np.testing.assert_allclose(ratios["flat"], 1.0)
    np.testing.assert_allclose(ratios["linear"], scales, rtol=1e-12)
    with pytest.raises(ValueError, match="a = 1"):
        ratio_curves(curves, (0.5, 2.0))


def test_scale_invariance_measures_of_a_subset_equal_those_of_the_whole_and_the_hessian_ignores_the_region():
    from toy_problems.scale_invariance import HESSIAN, MEASURES, REGION_MEASURES, MeasureConfig, measures

    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(2, 6), nn.ReLU(), nn.Linear(6, 2)).double()
    (x, y), = data(3, n=24)
    x = x.double()
    whole = measures(model, x, y, MeasureConfig(rho=0.1, p=2.0, steps=3))
    assert list(whole) == list(MEASURES)
    region = measures(model, x, y, MeasureConfig(rho=0.1, p=2.0, steps=3), REGION_MEASURES)
    assert region == {name: whole[name] for name in REGION_MEASURES}
    hessian = measures(model, x, y, MeasureConfig(rho=0.3, p=math.inf, steps=3), (HESSIAN,))
    assert hessian == {HESSIAN: whole[HESSIAN]}


def test_scale_invariance_measures_of_many_networks_are_each_networks_own_estimates():
    from toy_problems.scale_invariance import REGION_MEASURES, MeasureConfig, measures_of

    networks = [rescale_nodes(mlp(4), {0: a}) for a in (0.5, 3.0)]
    (x, y), = data(4)
    config = MeasureConfig(rho=0.2, p=3.0, eta=0.05, steps=2)
    found = measures_of(networks, x, y, config, REGION_MEASURES)
    regions = {
        "sharpness": dict(normalization=None, eta=0.0, normalize_bias=True),
        "adaptive, element-wise": dict(normalization="element", eta=0.0, normalize_bias=True),
        "adaptive, filter-wise": dict(normalization="filter", eta=0.0, normalize_bias=True),
        "adaptive, element-wise (ASAM defaults)": dict(normalization="element", eta=0.05, normalize_bias=False),
        "adaptive, filter-wise (ASAM defaults)": dict(normalization="filter", eta=0.05, normalize_bias=False),
    }
    for k, network in enumerate(networks):
        options = dict(rho=0.2, p=3.0, steps=2, restarts=config.restarts, seed=config.seed)
        assert found["loss"][k] == pytest.approx(F.cross_entropy(network(x), y).item(), rel=1e-12)
        for name, region in regions.items():
            alone = sharpness(network, F.cross_entropy, [(x, y)], **options, **region).value
            assert found[name][k] == pytest.approx(alone, rel=1e-9, abs=1e-12), name
