"""asam_core.perturbation against the closed forms and the linearized inner maximization."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from asam_core.perturbation import dual_vector, normalization_operator, perturbation, region_norm



@pytest.fixture(autouse=True, scope="module")
def float64():
    """The closed-form comparisons run in double precision; other modules keep float32."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)

P_VALUES = [1.25, 1.5, 2.0, 3.0, 7.0, math.inf]
KINDS = ["none", "element", "filter"]


def _flat(tensors):
    return torch.cat([t.reshape(-1) for t in tensors])


@st.composite
def problems(draw):
    """A few random tensors (w, g), a p, one normalization kind per tensor, eta and rho.

    Shape () is a single number: batched, a 1-D tensor of one number per problem (the toy simulator's
    w1 and w2)."""
    seed = draw(st.integers(0, 2**31 - 1))
    gen = torch.Generator().manual_seed(seed)
    shapes = draw(st.lists(st.sampled_from([(3,), (2, 3), (4, 2, 2, 2), (1,), ()]), min_size=1, max_size=3))
    params = [torch.randn(s, generator=gen) for s in shapes]
    grads = [torch.randn(s, generator=gen) for s in shapes]
    kinds = [draw(st.sampled_from(KINDS)) for _ in shapes]
    p = draw(st.sampled_from(P_VALUES))
    eta = draw(st.sampled_from([0.0, 0.01, 0.5]))
    rho = draw(st.floats(0.01, 2.0))
    return params, grads, kinds, p, eta, rho, gen


def _scales(params, kinds, eta):
    return [torch.ones_like(w) if t is None else t for w, t in zip(params, normalization_operator(params, kinds, eta))]


@given(problems())
@settings(max_examples=60, deadline=None)
def test_eps_lies_on_the_region_boundary_and_beats_every_sampled_point(problem):
    params, grads, kinds, p, eta, rho, gen = problem
    eps = perturbation(grads, params, rho=rho, p=p, kinds=kinds, eta=eta)
    assert region_norm(eps, params, p=p, kinds=kinds, eta=eta).item() == pytest.approx(rho, rel=1e-9)
    t = _flat(_scales(params, kinds, eta))
    g = _flat(grads)
    best = torch.dot(_flat(eps), g)
    # Random points of the region: e = T e' with ||e'||_p <= rho (sampled on the boundary, the worst case).
    directions = torch.randn(2000, t.numel(), generator=gen)
    directions *= torch.rand(2000, t.numel(), generator=gen) ** 3  # also sparse-ish corners
    e_norm = directions / torch.linalg.vector_norm(directions, p, dim=1, keepdim=True) * rho
    assert (e_norm * t @ g).max() <= best * (1 + 1e-9)
    # The dual-norm value: max e.g = rho ||T g||_q.
    q = 1.0 if p == math.inf else p / (p - 1)
    assert best.item() == pytest.approx(rho * torch.linalg.vector_norm(t * g, q).item(), rel=1e-9)


@pytest.mark.parametrize("p", P_VALUES)
def test_general_formula_matches_closed_form(p):
    gen = torch.Generator().manual_seed(1)
    w, g = [torch.randn(5, 3, generator=gen)], [torch.randn(5, 3, generator=gen)]
    t = w[0].abs() + 0.1
    tg = t * g[0]
    if p == math.inf:
        expected = 0.3 * t * torch.sign(g[0])
    else:
        q = p / (p - 1)
        expected = 0.3 * t * torch.sign(g[0]) * tg.abs() ** (q - 1) / torch.linalg.vector_norm(tg, q) ** (q - 1)
    eps = perturbation(g, w, rho=0.3, p=p, kinds="element", eta=0.1)[0]
    torch.testing.assert_close(eps, expected)


def test_p2_closed_forms_for_sam_and_asam():
    gen = torch.Generator().manual_seed(2)
    w = [torch.randn(4, 3, generator=gen), torch.randn(4, generator=gen)]
    g = [torch.randn(4, 3, generator=gen), torch.randn(4, generator=gen)]
    sam = perturbation(g, rho=0.05)
    torch.testing.assert_close(_flat(sam), 0.05 * _flat(g) / _flat(g).norm())
    # ASAM with an unnormalized bias: T = |w| + eta on the weight, 1 on the bias.
    t = torch.cat([(w[0].abs() + 0.01).reshape(-1), torch.ones(4)])
    asam = perturbation(g, w, rho=0.5, kinds=["element", "none"], eta=0.01)
    torch.testing.assert_close(_flat(asam), 0.5 * t**2 * _flat(g) / (t * _flat(g)).norm())


def test_filter_wise_operator_uses_each_output_filter_norm():
    gen = torch.Generator().manual_seed(3)
    conv = torch.randn(6, 3, 3, 3, generator=gen)
    bn_weight = torch.randn(6, generator=gen)
    t_conv, t_bn = normalization_operator([conv, bn_weight], ["filter", "filter"], eta=0.2)
    for i in range(6):
        assert torch.allclose(t_conv[i], conv[i].norm() + 0.2)
    torch.testing.assert_close(t_bn, bn_weight.abs() + 0.2)


@pytest.mark.parametrize("p", P_VALUES)
@pytest.mark.parametrize("kind", KINDS)
def test_zero_gradient_gives_zero_perturbation(p, kind):
    w = [torch.randn(3, 2), torch.zeros(2)]
    eps = perturbation([torch.zeros(3, 2), torch.zeros(2)], w, rho=1.0, p=p, kinds=kind, eta=0.0)
    assert all(torch.equal(e, torch.zeros_like(e)) for e in eps)
    batched = perturbation([torch.zeros(4, 2)], [torch.randn(4, 2)], rho=1.0, p=p, kinds=kind, batched=True)
    assert torch.equal(batched[0], torch.zeros(4, 2))


@given(problems())
@settings(max_examples=30, deadline=None)
def test_batched_equals_one_problem_at_a_time(problem):
    params, grads, kinds, p, eta, rho, gen = problem
    batch = 5
    params_b = [torch.randn(batch, *w.shape, generator=gen) for w in params]
    grads_b = [torch.randn(batch, *w.shape, generator=gen) for w in params]
    grads_b[0][2] = 0.0  # a zero-gradient problem in the batch stays finite and isolated
    eps_b = perturbation(grads_b, params_b, rho=rho, p=p, kinds=kinds, eta=eta, batched=True)
    norms = region_norm(eps_b, params_b, p=p, kinds=kinds, eta=eta, batched=True)
    assert norms.shape == (batch,)
    for i in range(batch):
        params_i = [w[i] for w in params_b]
        eps_i = perturbation([g[i] for g in grads_b], params_i, rho=rho, p=p, kinds=kinds, eta=eta)
        for e_b, e_i in zip(eps_b, eps_i):
            torch.testing.assert_close(e_b[i], e_i)
        torch.testing.assert_close(norms[i], region_norm(eps_i, params_i, p=p, kinds=kinds, eta=eta))
        torch.testing.assert_close(norms[i], torch.tensor(0.0 if i == 2 and len(params) == 1 else rho))


def test_general_p_does_not_overflow_for_p_close_to_one():
    g = [torch.tensor([1e3, 2e3, -5e2], dtype=torch.float32)]
    eps = dual_vector(g, rho=1.0, p=1.01)
    assert torch.isfinite(eps[0]).all()
    assert torch.linalg.vector_norm(eps[0], 1.01).item() == pytest.approx(1.0, rel=1e-4)


def _mlp_params(gen, widths=(3, 5, 4, 2)):
    return [
        t
        for fan_in, fan_out in zip(widths[:-1], widths[1:])
        for t in (torch.randn(fan_out, fan_in, generator=gen), 0.1 * torch.randn(fan_out, generator=gen))
    ]


def _mlp_loss(params, x, y):
    h = x
    for i in range(0, len(params), 2):
        h = h @ params[i].T + params[i + 1]
        if i + 2 < len(params):
            h = torch.relu(h)
    return torch.nn.functional.cross_entropy(h, y)


def _rescale(params, factors):
    """Node-wise rescaling A: hidden unit j of layer l gets incoming (weights, bias) * a_j,
    outgoing weights / a_j.  ReLU is positively homogeneous, so the function is unchanged."""
    out = [t.clone() for t in params]
    for layer, a in enumerate(factors):
        w_in, b_in, w_out = 2 * layer, 2 * layer + 1, 2 * layer + 2
        out[w_in] = out[w_in] * a[:, None]
        out[b_in] = out[b_in] * a
        out[w_out] = out[w_out] / a[None, :]
    return out


def _grads(params, x, y):
    params = [t.clone().requires_grad_() for t in params]
    return list(torch.autograd.grad(_mlp_loss(params, x, y), params))


@pytest.mark.parametrize("p", [2.0, math.inf, 3.0])
def test_asam_perturbation_is_equivariant_under_node_rescaling_and_sam_is_not(p):
    """ASAM Theorem 1, first-order form: eps(Aw) = A eps(w) with eta = 0 and biases normalized."""
    gen = torch.Generator().manual_seed(4)
    params = _mlp_params(gen)
    x, y = torch.randn(16, 3, generator=gen), torch.randint(0, 2, (16,), generator=gen)
    factors = [torch.exp(torch.randn(5, generator=gen)), torch.exp(torch.randn(4, generator=gen))]
    scaled = _rescale(params, factors)
    assert _mlp_loss(scaled, x, y).item() == pytest.approx(_mlp_loss(params, x, y).item(), rel=1e-10)
    g, g_scaled = _grads(params, x, y), _grads(scaled, x, y)

    def a_times(eps):
        """A acts on a perturbation like on the weights (A is diagonal on the parameter space)."""
        return [s * e / w for s, e, w in zip(scaled, eps, params)]

    asam = perturbation(g, params, rho=0.5, p=p, kinds="element", eta=0.0)
    asam_scaled = perturbation(g_scaled, scaled, rho=0.5, p=p, kinds="element", eta=0.0)
    torch.testing.assert_close(_flat(asam_scaled), _flat(a_times(asam)), rtol=1e-9, atol=1e-12)
    sam = perturbation(g, rho=0.5, p=p)
    sam_scaled = perturbation(g_scaled, rho=0.5, p=p)
    assert (_flat(sam_scaled) - _flat(a_times(sam))).norm() > 0.1 * _flat(sam_scaled).norm()


def test_filter_wise_perturbation_is_equivariant_under_layer_rescaling():
    """Filter-wise T_w scales with the filter: rescaling a whole layer by a leaves it equivariant."""
    gen = torch.Generator().manual_seed(5)
    params = _mlp_params(gen)
    x, y = torch.randn(16, 3, generator=gen), torch.randint(0, 2, (16,), generator=gen)
    scaled = _rescale(params, [torch.full((5,), 7.0), torch.full((4,), 0.2)])
    eps = perturbation(_grads(params, x, y), params, rho=0.5, kinds="filter", eta=0.0)
    eps_scaled = perturbation(_grads(scaled, x, y), scaled, rho=0.5, kinds="filter", eta=0.0)
    torch.testing.assert_close(_flat(eps_scaled), _flat([s * e / w for s, e, w in zip(scaled, eps, params)]))


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(rho=-0.1), "rho"),
        (dict(rho=float("nan")), "rho"),
        (dict(rho=0.1, p=1.0), "p"),
        (dict(rho=0.1, p=0.5), "p"),
        (dict(rho=0.1, eta=-1.0), "eta"),
        (dict(rho=0.1, kinds="adaptive"), "normalization"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, field):
    with pytest.raises(ValueError, match=field):
        perturbation([torch.ones(2)], [torch.ones(2)], **kwargs)
