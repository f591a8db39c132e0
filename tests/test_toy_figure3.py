"""ASAM paper, Figure 3, on L(w) = |w1 ReLU(w2) - 0.04| with the presets of toy_problems.presets."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from asam_core import perturbation
from toy_problems.losses import RELU_PRODUCT_TARGET, get_loss
from toy_problems.presets import FIGURE3_CONFIG, FIGURE3_LOSS, FIGURE3_STARTS
from toy_problems.simulate import simulate

LOSS = get_loss(FIGURE3_LOSS)
BALANCED, SAM_STUCK = FIGURE3_STARTS.values()


@pytest.fixture(scope="module")
def finals():
    """{method: {start: final point}} for both presets, simulated in one call."""
    run = simulate(LOSS, torch.tensor([BALANCED, SAM_STUCK], dtype=torch.float64), FIGURE3_CONFIG, record_every=None)
    return {m: {BALANCED: run.final()[i, 0], SAM_STUCK: run.final()[i, 1]} for i, m in enumerate(run.methods)}


def on_valley(w: torch.Tensor, tol: float = 2e-3) -> bool:
    return abs(float(w[0] * w[1]) - RELU_PRODUCT_TARGET) < tol and float(w[1]) > 0


def test_presets_use_the_papers_rho_and_small_steps():
    assert FIGURE3_CONFIG.rho == 0.05 and 0.005 <= FIGURE3_CONFIG.lr <= 0.01
    assert FIGURE3_CONFIG.p == 2.0 and FIGURE3_CONFIG.momentum == 0.0


def test_sam_from_0_3_0_033_is_stuck_because_w2_plus_eps2_is_negative(finals):
    w = torch.tensor(SAM_STUCK, dtype=torch.float64)
    eps = perturbation([LOSS.grad(w)], rho=FIGURE3_CONFIG.rho)[0]
    assert float(w[1] + eps[1]) < 0
    assert torch.equal(LOSS.grad(w + eps), torch.zeros(2, dtype=torch.float64))
    assert torch.equal(finals["sam"][SAM_STUCK], w)


def test_asam_from_0_3_0_033_reaches_the_valley_near_its_start(finals):
    end = finals["asam"][SAM_STUCK]
    assert on_valley(end)
    assert abs(float(end[0]) - SAM_STUCK[0]) < 0.03


def test_sam_from_0_2_0_05_drifts_along_the_valley_to_0_2_0_2(finals):
    end = finals["sam"][BALANCED]
    assert on_valley(end)
    assert float(torch.linalg.vector_norm(end - torch.tensor([0.2, 0.2], dtype=torch.float64))) < 0.005


def test_asam_from_0_2_0_05_stops_on_the_valley_off_the_diagonal(finals):
    end = finals["asam"][BALANCED]
    assert on_valley(end)
    assert float(end[0] / end[1]) > 1.4


def test_large_steps_push_every_method_to_the_diagonal():
    config = FIGURE3_CONFIG.model_copy(update=dict(lr=0.05))
    run = simulate(LOSS, torch.tensor([BALANCED], dtype=torch.float64), config, record_every=None)
    ratio = run.final()[:, 0, 0] / run.final()[:, 0, 1]
    assert torch.all((ratio - 1).abs() < 0.05), ratio


@settings(max_examples=100, deadline=None)
@given(
    w1=st.floats(0.01, 2.0), w2=st.floats(0.01, 2.0), rho=st.floats(0.01, math.sqrt(2) * 0.999),
)
def test_asam_perturbation_rescales_w_so_the_relu_stays_alive_below_sqrt_2(w1, w2, rho):
    """eta = 0, p = 2: eps = rho T_w^2 g / ||T_w g|| = s rho w / sqrt(2), s = sign(w1 w2 - 0.04)."""
    w = torch.tensor([w1, w2], dtype=torch.float64)
    eps = perturbation([LOSS.grad(w)], [w], rho=rho, kinds="element", eta=0.0)[0]
    sign = math.copysign(1.0, w1 * w2 - RELU_PRODUCT_TARGET)
    torch.testing.assert_close(eps, sign * rho / math.sqrt(2) * w, rtol=1e-12, atol=1e-15)
    assert float(w[1] + eps[1]) > 0


def test_asam_kills_the_relu_too_once_rho_exceeds_sqrt_2():
    w = torch.tensor(SAM_STUCK, dtype=torch.float64)
    eps = perturbation([LOSS.grad(w)], [w], rho=1.5, kinds="element", eta=0.0)[0]
    assert float(w[1] + eps[1]) < 0
