"""What library users ask of a SAM optimizer (the public SAM issue trackers), made to work and checked:
GradScaler with clipping, gradient accumulation, Lightning / accelerate closures, frozen layers
under m-sharpness, keeping the parameters' storage, and one filter-wise rule everywhere."""
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from small_nets import batch, params_of, small_net

from asam_core import ASAM, SAM, frozen_batchnorm_stats, param_groups_for, sharpness_aware_step
from asam_core.sharpness import region_parameters


def assert_params_close(a: nn.Module, b: nn.Module, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    for x, y in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(x, y, rtol=rtol, atol=atol)


MAX_NORM = 0.05  # small enough that clipping changes every step here


def test_grad_scaler_with_clipping_unscales_once_and_skips_non_finite_steps():
    reference, scaled = small_net(), small_net()
    opt_ref = SAM.from_model(reference, torch.optim.SGD, lr=0.1, momentum=0.9)
    opt = SAM.from_model(scaled, torch.optim.SGD, lr=0.1, momentum=0.9)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12)

    def reference_step(x, y):
        F.cross_entropy(reference(x), y).backward()
        opt_ref.first_step(zero_grad=True)
        with frozen_batchnorm_stats(reference):
            F.cross_entropy(reference(x), y).backward()
        norm = torch.nn.utils.clip_grad_norm_(reference.parameters(), MAX_NORM)
        opt_ref.second_step(zero_grad=True)
        return norm

    def scaled_step(x, y, loss_scale=1.0):
        scaler.scale(F.cross_entropy(scaled(x), y) * loss_scale).backward()
        opt.first_step(zero_grad=True)
        with frozen_batchnorm_stats(scaled):
            scaler.scale(F.cross_entropy(scaled(x), y)).backward()
        scaler.unscale_(opt)
        norm = torch.nn.utils.clip_grad_norm_(scaled.parameters(), MAX_NORM)
        opt.second_step(zero_grad=True, scaler=scaler)
        scaler.update()
        return norm

    for i in range(3):
        x, y = batch(i)
        ref_norm, norm = reference_step(x, y), scaled_step(x, y)
        assert ref_norm > MAX_NORM, "the test needs clipping to bite"
        torch.testing.assert_close(norm, ref_norm, rtol=1e-4, atol=0)
    assert_params_close(reference, scaled)
    before = params_of(scaled)
    scaled_step(*batch(9), loss_scale=float("inf"))
    assert all(torch.equal(a, b) for a, b in zip(params_of(scaled), before)), "inf: step skipped, w restored exactly"


@pytest.mark.parametrize("cls", [SAM, ASAM])
def test_gradient_accumulation_over_micro_batches_equals_the_full_batch_step(cls):
    """k micro-batches, one perturbation from their accumulated gradient, one base step."""
    torch.manual_seed(1)
    full = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))
    accumulated = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))
    accumulated.load_state_dict(full.state_dict())
    opt_full = cls.from_model(full, torch.optim.SGD, lr=0.2, momentum=0.9)
    opt_acc = cls.from_model(accumulated, torch.optim.SGD, lr=0.2, momentum=0.9)
    gen = torch.Generator().manual_seed(0)
    k = 4
    for _ in range(3):
        x, y = torch.randn(32, 5, generator=gen), torch.randint(0, 3, (32,), generator=gen)
        sharpness_aware_step(opt_full, full, F.cross_entropy, x, y)
        for xs, ys in zip(x.chunk(k), y.chunk(k)):
            (F.cross_entropy(accumulated(xs), ys) / k).backward()
        opt_acc.first_step(zero_grad=True)
        for xs, ys in zip(x.chunk(k), y.chunk(k)):
            (F.cross_entropy(accumulated(xs), ys) / k).backward()
        opt_acc.second_step(zero_grad=True)
    assert_params_close(full, accumulated)


@pytest.mark.parametrize("call", ["keyword", "positional"])
def test_step_with_closure_as_lightning_and_accelerate_call_it(call):
    """Lightning's automatic optimization calls ``optimizer.step(closure=closure)``; accelerate calls
    ``optimizer.step(closure)``.  The closure (zero_grad, forward, backward, return loss) runs at w
    and at w + eps, like first_step / second_step around two backward passes."""
    model, twin = small_net(), small_net()
    opt = ASAM.from_model(model, torch.optim.SGD, lr=0.1, momentum=0.9)
    opt_twin = ASAM.from_model(twin, torch.optim.SGD, lr=0.1, momentum=0.9)
    calls = []
    for i in range(3):
        x, y = batch(i)

        def closure():
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            calls.append(i)
            return loss

        loss = opt.step(closure=closure) if call == "keyword" else opt.step(closure)
        twin_loss = F.cross_entropy(twin(x), y)
        twin_loss.backward()
        opt_twin.first_step(zero_grad=True)
        F.cross_entropy(twin(x), y).backward()
        opt_twin.second_step(zero_grad=True)
        assert loss.item() == twin_loss.item(), "step returns the loss at w"
    assert calls == [0, 0, 1, 1, 2, 2], "the closure runs twice per step"
    assert_params_close(model, twin, rtol=0, atol=0)


@pytest.mark.parametrize("m", [None, 4])
def test_frozen_parameters_never_move_and_unused_ones_keep_grad_none(m):
    model = small_net()
    frozen = model[0].weight
    frozen.requires_grad_(False)
    unused = nn.Parameter(torch.ones(3))
    opt = ASAM.from_model(model, torch.optim.SGD, lr=0.1, momentum=0.9, weight_decay=0.1)
    opt.add_param_group({"params": [unused]})
    before = frozen.detach().clone()
    for i in range(2):
        sharpness_aware_step(opt, model, F.cross_entropy, *batch(i), m=m)
    assert torch.equal(frozen, before), "weight decay and momentum must not move a frozen layer"
    assert frozen.grad is None and unused.grad is None
    assert torch.equal(unused.detach(), torch.ones(3))
    assert not torch.equal(model[5].weight, small_net()[5].weight), "trainable layers do move"


@pytest.mark.parametrize("cls", [SAM, ASAM])
def test_compact_false_keeps_the_parameters_storage_and_trains_like_the_default(cls):
    default, keep = small_net(), small_net()
    opt_default = cls.from_model(default, torch.optim.SGD, lr=0.1, momentum=0.9)
    opt_keep = cls.from_model(keep, torch.optim.SGD, lr=0.1, momentum=0.9, compact=False)
    pointers = [w.data_ptr() for w in keep.parameters()]
    for i in range(3):
        x, y = batch(i)
        sharpness_aware_step(opt_default, default, F.cross_entropy, x, y)
        sharpness_aware_step(opt_keep, keep, F.cross_entropy, x, y)
    assert [w.data_ptr() for w in keep.parameters()] == pointers
    assert len({w.untyped_storage().data_ptr() for w in default.parameters()}) == 1
    assert_params_close(default, keep)


def test_compact_moves_the_parameters_at_once():
    model = small_net()
    before = params_of(model)
    opt = ASAM.from_model(model, torch.optim.SGD, lr=0.1, compact=False).compact()
    assert len({w.untyped_storage().data_ptr() for w in model.parameters()}) == 1
    assert all(torch.equal(a, b) for a, b in zip(params_of(model), before))
    pointer = model[0].weight.data_ptr()
    sharpness_aware_step(opt, model, F.cross_entropy, *batch())
    assert model[0].weight.data_ptr() == pointer, "the first step reuses the buffer compact() built"


@pytest.mark.parametrize("normalize_bias", [False, True])
@pytest.mark.parametrize("normalization", ["none", "element", "filter"])
def test_optimizer_and_sharpness_measures_normalize_every_parameter_alike(normalization, normalize_bias):
    model = small_net()
    groups = {id(w): g["normalization"] for g in param_groups_for(model, normalization, normalize_bias) for w in g["params"]}
    params, kinds = region_parameters(model, normalization, normalize_bias)
    assert {id(w): k for w, k in zip(params, kinds)} == groups
    if normalization == "filter":
        assert groups[id(model[5].weight)] == groups[id(model[0].weight)] == "filter"
        assert groups[id(model[1].weight)] == "element"
