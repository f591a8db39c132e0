"""asam_core.optim / asam_core.step: the SAM and ASAM wrappers behave as torch optimizers."""
import copy
import math
import warnings

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from small_nets import batch, params_of, small_net

from asam_core import ASAM, SAM, frozen_batchnorm_stats, param_groups_for, perturbation, sharpness_aware_step

BASES = [
    (torch.optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)),
    (torch.optim.Adam, dict(lr=1e-2)),
    (torch.optim.AdamW, dict(lr=1e-2, weight_decay=0.01)),
]


def all_equal(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b))


def train(model, opt, steps, seed=0, m=None):
    losses = []
    for i in range(steps):
        x, y = batch(seed + i)
        losses.append(sharpness_aware_step(opt, model, F.cross_entropy, x, y, m=m).item())
    return losses


@pytest.mark.parametrize("base, kwargs", BASES)
@pytest.mark.parametrize("cls", [SAM, ASAM])
def test_rho_zero_reproduces_the_base_optimizer_exactly(cls, base, kwargs):
    model_a, model_b = small_net(), small_net()
    opt_a = cls.from_model(model_a, base, rho=0.0, **kwargs)
    opt_b = base(model_b.parameters(), **kwargs)
    for i in range(4):
        x, y = batch(i)
        sharpness_aware_step(opt_a, model_a, F.cross_entropy, x, y)
        opt_b.zero_grad()
        F.cross_entropy(model_b(x), y).backward()
        opt_b.step()
    assert all_equal(params_of(model_a), params_of(model_b))


@pytest.mark.parametrize("cls, kwargs", [(SAM, dict(p=2.0)), (ASAM, dict(p=math.inf)), (ASAM, dict(normalization="filter"))])
def test_first_step_moves_by_eps_and_restore_is_bit_exact(cls, kwargs):
    model = small_net()
    opt = cls.from_model(model, torch.optim.SGD, lr=0.1, **kwargs)
    x, y = batch()
    F.cross_entropy(model(x), y).backward()
    before = params_of(model)
    groups = [(w, g["normalization"]) for g in opt.param_groups for w in g["params"]]
    expected_eps = perturbation(
        [w.grad for w, _ in groups], [w.detach() for w, _ in groups], rho=opt.param_groups[0]["rho"],
        p=opt.param_groups[0]["p"], kinds=[k for _, k in groups], eta=opt.param_groups[0]["eta"],
    )
    expected = {id(w): e for (w, _), e in zip(groups, expected_eps)}
    start = {id(w): w.detach().clone() for w in model.parameters()}
    opt.first_step()
    for w in model.parameters():
        # Two code paths that reduce in different orders: equal to float32 rounding, not bit for bit
        # (w + eps itself is rounded to |w| * 2^-24).
        torch.testing.assert_close(w.detach() - start[id(w)], expected[id(w)], rtol=1e-5, atol=1e-7)
    opt.restore()
    assert all_equal(params_of(model), before)


def test_frozen_params_and_params_without_grad_are_not_perturbed():
    model = small_net()
    frozen = model[0].weight
    frozen.requires_grad_(False)
    unused = nn.Parameter(torch.randn(3, dtype=torch.float64))  # another dtype: kept out of the buffer
    unused.requires_grad_(False)
    idle = model[5].bias  # trainable, but this step leaves its grad None
    opt = ASAM.from_model(model, torch.optim.SGD, lr=0.1)
    opt.add_param_group({"params": [unused]})
    x, y = batch()
    F.cross_entropy(model(x), y).backward()
    idle.grad = None
    before = params_of(model)
    opt.first_step()
    assert torch.equal(frozen, before[0]) and torch.equal(idle, before[-1])
    assert not all_equal(params_of(model), before), "the other parameters move to w + eps"
    assert frozen.untyped_storage().data_ptr() != idle.untyped_storage().data_ptr()
    opt.restore()
    assert all_equal(params_of(model), before)


def test_parameters_moved_into_one_buffer_keep_identity_values_and_memory_format():
    model = small_net().to(memory_format=torch.channels_last)
    identities, before = [id(w) for w in model.parameters()], params_of(model)
    opt = ASAM.from_model(model, torch.optim.SGD, lr=0.1, normalization="filter")
    x, y = batch()
    F.cross_entropy(model(x), y).backward()
    opt.first_step()
    opt.restore()
    assert [id(w) for w in model.parameters()] == identities
    assert all_equal(params_of(model), before)
    storages = {w.untyped_storage().data_ptr() for w in model.parameters()}
    assert len(storages) == 1, "first_step moves every parameter into one contiguous buffer"
    conv = model[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and isinstance(conv, nn.Parameter)


def test_parameters_moved_elsewhere_after_a_step_are_followed():
    """If w.data is replaced between steps (model.to(...), a user's assignment), the optimizer
    perturbs the new storage and trains exactly as if nothing had moved."""
    model_a, model_b = small_net(), small_net()
    opt_a = ASAM.from_model(model_a, torch.optim.SGD, lr=0.1, momentum=0.9)
    opt_b = ASAM.from_model(model_b, torch.optim.SGD, lr=0.1, momentum=0.9)
    for i in range(4):
        x, y = batch(i)
        sharpness_aware_step(opt_a, model_a, F.cross_entropy, x, y)
        sharpness_aware_step(opt_b, model_b, F.cross_entropy, x, y)
        for w in model_b.parameters():
            w.data = w.data.clone()
    assert all_equal(params_of(model_a), params_of(model_b))


def test_param_groups_are_decided_from_modules():
    model = small_net()
    conv, bn, linear = model[0], model[1], model[5]
    kinds = {id(w): g["normalization"] for g in param_groups_for(model, "filter") for w in g["params"]}
    assert kinds[id(conv.weight)] == kinds[id(linear.weight)] == "filter", "conv filters and Linear rows"
    assert kinds[id(bn.weight)] == "element"
    assert kinds[id(conv.bias)] == kinds[id(bn.bias)] == kinds[id(linear.bias)] == "none"
    with_bias = {id(w): g["normalization"] for g in param_groups_for(model, "element", True) for w in g["params"]}
    assert set(with_bias.values()) == {"element"}
    opt = ASAM.from_model(model, torch.optim.SGD, lr=0.1)
    assert opt.param_groups is opt.base_optimizer.param_groups
    assert sorted(g["normalization"] for g in opt.param_groups) == ["element", "none"]


@pytest.mark.parametrize("base, kwargs", BASES)
def test_state_dict_round_trip_resumes_bit_identically(base, kwargs):
    model = small_net()
    opt = ASAM.from_model(model, base, **kwargs)
    train(model, opt, 3)
    saved_model, saved_opt = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    assert saved_opt["state"], "the base optimizer's state (momentum / moments) must be saved"
    assert {g["rho"] for g in saved_opt["param_groups"]} == {0.5}
    train(model, opt, 3, seed=10)

    resumed = small_net(seed=123)
    resumed.load_state_dict(saved_model)
    opt_resumed = ASAM.from_model(resumed, base, rho=0.1, **kwargs)
    opt_resumed.load_state_dict(saved_opt)
    assert opt_resumed.param_groups is opt_resumed.base_optimizer.param_groups
    assert opt_resumed.param_groups[0]["rho"] == 0.5
    train(resumed, opt_resumed, 3, seed=10)
    assert all_equal(params_of(model), params_of(resumed))


def test_second_pass_leaves_batchnorm_statistics_untouched():
    model, reference = small_net(), small_net()
    opt = SAM.from_model(model, torch.optim.SGD, lr=0.0)
    x, y = batch()
    sharpness_aware_step(opt, model, F.cross_entropy, x, y)
    reference(x)  # one train-mode forward: the first pass only
    for name, buf in model[1].named_buffers():
        assert torch.equal(buf, dict(reference[1].named_buffers())[name]), name
    with frozen_batchnorm_stats(model):
        model(x + 1.0)
    assert model[1].num_batches_tracked.item() == 1 and model[1].track_running_stats


@pytest.mark.parametrize(
    "cls, kwargs",
    [
        (SAM, dict(rho=0.05)),
        (SAM, dict(rho=0.005, p=math.inf)),
        (ASAM, dict(rho=0.5, eta=0.01)),
        (ASAM, dict(rho=0.2, normalization="filter")),  # filter norms exceed |w|: a smaller rho
        (ASAM, dict(rho=0.5, p=3.0)),
    ],
)
@pytest.mark.parametrize("m", [None, 6])
def test_loss_decreases_for_every_variant(cls, kwargs, m):
    model = small_net()
    opt = cls.from_model(model, torch.optim.SGD, lr=0.05, momentum=0.9, **kwargs)
    x, y = batch(0, n=24)
    before = F.cross_entropy(model.eval()(x), y).item()
    model.train()
    for _ in range(30):
        sharpness_aware_step(opt, model, F.cross_entropy, x, y, m=m)
    after = F.cross_entropy(model.eval()(x), y).item()
    assert after < 0.7 * before


def test_step_with_closure_equals_first_and_second_step():
    model_a, model_b = small_net(), small_net()
    opt_a = ASAM.from_model(model_a, torch.optim.SGD, lr=0.1, momentum=0.9)
    opt_b = ASAM.from_model(model_b, torch.optim.SGD, lr=0.1, momentum=0.9)
    x, y = batch()

    def closure():
        opt_a.zero_grad()
        loss = F.cross_entropy(model_a(x), y)
        loss.backward()
        return loss

    for _ in range(3):
        loss_a = opt_a.step(closure)
        loss_b = sharpness_aware_step(opt_b, model_b, F.cross_entropy, x, y)
    assert loss_a.item() == loss_b.item()
    # The closure does not freeze BatchNorm statistics, but train-mode passes do not read them.
    assert all_equal(params_of(model_a), params_of(model_b))
    with pytest.raises(RuntimeError, match="closure"):
        opt_a.step()


def test_m_sharpness_averages_per_chunk_sharpness_aware_gradients():
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    x, y = torch.randn(12, 4), torch.randint(0, 3, (12,))
    w0 = params_of(model)
    opt = SAM(model.parameters(), torch.optim.SGD, rho=0.2, lr=1.0)
    sharpness_aware_step(opt, model, F.cross_entropy, x, y, m=4)

    expected = [torch.zeros_like(w) for w in w0]
    for xs, ys in zip(x.split(4), y.split(4)):
        w = [t.clone().requires_grad_() for t in w0]
        g = torch.autograd.grad(F.cross_entropy(F.linear(xs, *w), ys), w)
        eps = perturbation(list(g), rho=0.2)
        w_eps = [(t + e).detach().requires_grad_() for t, e in zip(w0, eps)]
        g_eps = torch.autograd.grad(F.cross_entropy(F.linear(xs, *w_eps), ys), w_eps)
        expected = [acc + gi / 3 for acc, gi in zip(expected, g_eps)]
    for w_new, w, g in zip(model.parameters(), w0, expected):
        torch.testing.assert_close(w_new.detach(), w - g)


def test_lr_scheduler_drives_the_base_optimizer_without_warnings():
    model = small_net()
    opt = ASAM.from_model(model, torch.optim.SGD, lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for i in range(4):
            x, y = batch(i)
            sharpness_aware_step(opt, model, F.cross_entropy, x, y)
            sched.step()
    assert opt.base_optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_bf16_autocast_training_step_runs_and_restores_fp32_weights():
    model = small_net()
    opt = ASAM.from_model(model, torch.optim.SGD, lr=0.05)
    x, y = batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = [sharpness_aware_step(opt, model, F.cross_entropy, x, y).item() for _ in range(10)]
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert losses[-1] < losses[0]


@pytest.mark.parametrize(
    "kwargs, error, field",
    [
        (dict(rho=-1.0), ValueError, "rho"),
        (dict(p=1.0), ValueError, "p"),
        (dict(eta=-0.1), ValueError, "eta"),
        (dict(normalization="layer"), ValueError, "normalization"),
        (dict(base_optimizer=torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)), TypeError, "base_optimizer"),
        (dict(base_optimizer=nn.Linear), TypeError, "base_optimizer"),
        (dict(base_optimizer=torch.optim.Adadelta), TypeError, "rho"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(kwargs, error, field):
    kwargs = {"base_optimizer": torch.optim.SGD, "lr": 0.1, **kwargs}
    with pytest.raises(error, match=field):
        ASAM(small_net().parameters(), **kwargs)


def test_groups_must_share_rho():
    model = small_net()
    groups = param_groups_for(model)
    groups[0]["rho"] = 0.1
    opt = ASAM(groups, torch.optim.SGD, lr=0.1)
    x, y = batch()
    F.cross_entropy(model(x), y).backward()
    with pytest.raises(ValueError, match="rho must be the same"):
        opt.first_step()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_step_matches_cpu():
    model_cpu = small_net()
    model_gpu = small_net().cuda()
    opt_cpu = ASAM.from_model(model_cpu, torch.optim.SGD, lr=0.1)
    opt_gpu = ASAM.from_model(model_gpu, torch.optim.SGD, lr=0.1)
    x, y = batch()
    sharpness_aware_step(opt_cpu, model_cpu, F.cross_entropy, x, y)
    sharpness_aware_step(opt_gpu, model_gpu, F.cross_entropy, x.cuda(), y.cuda())
    for a, b in zip(model_cpu.parameters(), model_gpu.parameters()):
        torch.testing.assert_close(a, b.cpu(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cls, p", [(SAM, 2.0), (ASAM, 2.0), (ASAM, math.inf)])
def test_batched_optimizer_steps_each_member_as_its_own_model(cls, p):
    """batched=True: the leading dimension indexes independent models, each with its own norm."""
    gen = torch.Generator().manual_seed(7)
    members, x, y = 3, torch.randn(3, 10, 4, generator=gen), torch.randint(0, 2, (3, 10), generator=gen)
    weight = torch.randn(members, 2, 4, generator=gen)
    bias = torch.randn(members, 2, generator=gen)

    def loss(w, b, xs, ys):
        return F.cross_entropy(torch.einsum("...oi,...ni->...no", w, xs) + b[..., None, :], ys, reduction="sum")

    groups = [
        {"params": [nn.Parameter(weight.clone())], "normalization": cls.defaults_for_class["normalization"]},
        {"params": [nn.Parameter(bias.clone())], "normalization": "none"},
    ]
    batched = cls(groups, torch.optim.SGD, p=p, lr=0.1, batched=True)
    (w_b,), (b_b,) = (g["params"] for g in batched.param_groups)
    sum(loss(w_b[k], b_b[k], x[k], y[k]) for k in range(members)).backward()
    batched.first_step(zero_grad=True)
    sum(loss(w_b[k], b_b[k], x[k], y[k]) for k in range(members)).backward()
    batched.second_step()
    for k in range(members):
        w_k, b_k = nn.Parameter(weight[k].clone()), nn.Parameter(bias[k].clone())
        single = cls(
            [{"params": [w_k], "normalization": cls.defaults_for_class["normalization"]}, {"params": [b_k], "normalization": "none"}],
            torch.optim.SGD, p=p, lr=0.1,
        )

        def closure():
            single.zero_grad()
            value = loss(w_k, b_k, x[k], y[k])
            value.backward()
            return value

        single.step(closure)
        torch.testing.assert_close(w_b[k].detach(), w_k.detach())
        torch.testing.assert_close(b_b[k].detach(), b_k.detach())
