"""The one-start fast path (simulate_start, Python floats) equals the batched simulate(), which
calls asam_core.perturbation, to 1e-9 over random losses, starts and settings.

Settings where simulate() itself is chaotic (moving the start by one ulp moves the path by more
than 1e-10, e.g. Rosenbrock with a large ρ) are skipped: there any one-ulp difference between two
correct implementations grows past 1e-9, so they cannot tell a wrong formula from rounding."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings, strategies as st

from toy_problems.losses import LOSSES
from toy_problems.simulate import METHODS, SimulationConfig, simulate, simulate_start


@st.composite
def scenarios(draw):
    loss = LOSSES[draw(st.sampled_from(sorted(LOSSES)))]
    (x0, x1), (y0, y1) = loss.box
    start = (draw(st.floats(x0, x1)), draw(st.floats(y0, y1)))
    methods = draw(st.lists(st.sampled_from(METHODS), min_size=1, max_size=len(METHODS), unique=True))
    config = SimulationConfig(
        methods=tuple(methods), lr=draw(st.floats(1e-3, 0.05)), steps=draw(st.integers(1, 300)),
        rho=draw(st.floats(0.0, 0.5)), p=draw(st.sampled_from([2.0, math.inf])), eta=draw(st.floats(0.0, 0.1)),
        momentum=draw(st.sampled_from([0.0, draw(st.floats(0.0, 0.9))])),
    )
    return loss, start, config


@settings(max_examples=60, deadline=None)
@given(scenarios())
def test_fast_path_equals_the_batched_simulator(scenario):
    loss, start, config = scenario
    batched = simulate(loss, torch.tensor([start], dtype=torch.float64), config)
    assume(bool(torch.isfinite(batched.points).all()))
    nudged = simulate(loss, torch.tensor([[math.nextafter(start[0], math.inf), start[1]]], dtype=torch.float64), config)
    assume(float((nudged.points - batched.points).abs().max()) < 1e-10)
    fast = simulate_start(loss, start, config)
    assert fast.methods == batched.methods and torch.equal(fast.steps, batched.steps)
    np.testing.assert_allclose(fast.points.numpy(), batched.points.numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(fast.losses.numpy(), batched.losses.numpy(), rtol=1e-9, atol=1e-9)


def test_fast_path_reproduces_figure_3_sam_stuck_asam_in_the_valley():
    from toy_problems.presets import FIGURE3_CONFIG, FIGURE3_LOSS

    run = simulate_start(LOSSES[FIGURE3_LOSS], (0.3, 0.033), FIGURE3_CONFIG)
    final = dict(zip(run.methods, run.final()[:, 0].tolist()))
    assert final["sam"] == [0.3, 0.033]
    assert final["asam"][0] * final["asam"][1] == pytest.approx(0.04, abs=2e-3)
