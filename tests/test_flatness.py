"""asam_core.train.flatness: the flatness of a trained model, measured without disturbing it."""
import math

import pytest
import torch
from small_nets import batch, small_net
from torch import nn
from torch.nn import functional as F

from asam_core.sharpness import hessian_top_eigenvalue, sharpness
from asam_core.train.flatness import ASCENT_STEPS, HESSIAN_ITERS, PROFILE_T, measure_flatness


def tiny_trained_net() -> tuple[nn.Module, list[tuple[torch.Tensor, torch.Tensor]]]:
    model = small_net()
    x, y = batch(1, n=32)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(20):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model, [(x, y)]


def test_measures_match_asam_core_sharpness_and_leave_the_model_and_rng_untouched():
    model, batches = tiny_trained_net()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    result = measure_flatness(model, batches, p=2.0, eta=0.01, dataset="cifar10")
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert model.training and torch.equal(torch.get_rng_state(), rng)
    plain = sharpness(model, F.cross_entropy, batches, 0.05, 2.0, None, steps=ASCENT_STEPS, restarts=0)
    adaptive = sharpness(model, F.cross_entropy, batches, 0.5, 2.0, "element", eta=0.01, steps=ASCENT_STEPS, restarts=0)
    lam = hessian_top_eigenvalue(model, F.cross_entropy, batches, iters=HESSIAN_ITERS, tol=1e-3)
    assert result.sharpness == pytest.approx(plain.value, rel=1e-6)
    assert result.adaptive_sharpness == pytest.approx(adaptive.value, rel=1e-6)
    assert result.lambda_max == pytest.approx(lam, rel=1e-6)
    # p = inf: the radius shrinks by sqrt(n), so the inf-ball lies inside the 2-ball of the same rho
    scale = sum(w.numel() for w in model.parameters()) ** -0.5
    plain_inf = sharpness(model, F.cross_entropy, batches, 0.05 * scale, math.inf, None, steps=ASCENT_STEPS, restarts=0)
    adaptive_inf = sharpness(model, F.cross_entropy, batches, 0.5 * scale, math.inf, "element", eta=0.01,
                             steps=ASCENT_STEPS, restarts=0)
    assert result.sharpness_inf == pytest.approx(plain_inf.value, rel=1e-6)
    assert result.adaptive_sharpness_inf == pytest.approx(adaptive_inf.value, rel=1e-6)
    assert result.sharpness >= plain.first_order - 1e-12 and result.lambda_max > 0
    with torch.no_grad():
        model.eval()
        at_w = F.cross_entropy(model(batches[0][0]), batches[0][1]).item()
        model.train()
    zero = PROFILE_T.index(0.0)
    assert all(row[zero] == pytest.approx(at_w, rel=1e-6) for row in result.profile), "t = 0 is the model itself"


def test_profile_of_a_convex_model_at_its_minimum_is_lowest_at_zero():
    """Multinomial logistic regression is convex in its weights; every input appears with every label
    (and half of them once more with label 0), so the loss has a finite minimum.  At that minimum every
    line through w rises on both sides."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(2)
    points = torch.randn(20, 3, 2, 2, generator=gen)
    x = torch.cat([points, points, points, points[:10]])
    y = torch.cat([torch.full((20,), k) for k in range(3)] + [torch.zeros(10, dtype=torch.long)])
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    opt = torch.optim.LBFGS(model.parameters(), lr=1, max_iter=500, tolerance_grad=1e-9, tolerance_change=0,
                            history_size=50, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss

    opt.step(closure)
    result = measure_flatness(model, [(x, y)], model_seed=3)
    zero = PROFILE_T.index(0.0)
    for row in result.profile:
        assert min(range(len(row)), key=row.__getitem__) == zero
        assert all(a > b for a, b in zip(row[:zero], row[1:zero + 1])), "falls towards t = 0"
        assert all(a < b for a, b in zip(row[zero:], row[zero + 1:])), "rises after t = 0"


def test_loss_surface_spans_the_runs_path_and_places_its_epochs_on_it():
    """On a model trained from w0, the surface passes through w0 (0, 0) and the final weights (1, 0):
    its loss there equals the model's loss at those weights, and the path's sketches land near them."""
    import json

    from asam_core.runs.analysis import loss_surface as surface_with_path
    from asam_core.train.flatness import SURFACE_ALPHAS, SURFACE_BETAS, loss_surface
    from asam_core.train.path_sketch import PathSketch

    model = small_net()
    sketch = PathSketch(model.parameters())
    w0 = [w.detach().clone() for w in model.parameters()]
    x, y = batch(1, n=32)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sketches = []
    for epoch in range(1, 4):
        for _ in range(5):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
        sketches.append((epoch, sketch(model.parameters()).numpy().tobytes()))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    surface = loss_surface(model, [(x, y)], sketch)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items()), "weights restored exactly"
    assert surface["length"] == pytest.approx(
        torch.cat([(w - a).reshape(-1) for w, a in zip(model.parameters(), w0)]).norm().item(), rel=1e-5)
    with torch.no_grad():
        model.eval()
        at_end = F.cross_entropy(model(x), y).item()
        for w, a in zip(model.parameters(), w0):
            w.copy_(a)
        at_start = F.cross_entropy(model(x), y).item()
    row = SURFACE_BETAS.index(0.0)
    assert surface["loss"][row][SURFACE_ALPHAS.index(1.0)] == pytest.approx(at_end, rel=1e-4)
    assert surface["loss"][row][SURFACE_ALPHAS.index(0.0)] == pytest.approx(at_start, rel=1e-4)
    placed = surface_with_path([(3, json.dumps(surface).encode())], sketches)
    assert placed.epochs == [0, 1, 2, 3] and tuple(placed.path[0]) == (0.0, 0.0)
    assert placed.path[-1] == pytest.approx([1.0, 0.0], abs=0.1), "the last epoch lands near (1, 0)"
