"""toy_problems.table1: ASAM Table 1 in 2-D; adaptive sharpness keeps its ranking under function-preserving rescalings."""
import numpy as np
import pytest

from asam_core.stats import kendall_tau
from toy_problems.table1 import Table1Config, run_table1

SMALL = Table1Config(n_train=60, members=2, lrs=(0.03, 0.3), widths=(8, 32), steps=(60, 400), ascent_steps=3)


@pytest.fixture(scope="module")
def plain_and_rescaled():
    return run_table1(SMALL), run_table1(SMALL, rescale=True, rescale_seed=1)


def test_every_network_of_the_grid_is_measured_and_ranked(plain_and_rescaled):
    result, _ = plain_and_rescaled
    assert len(result.settings) == 2 * 2 * 2 * 2 and {s["seed"] for s in result.settings} == {0, 1}
    assert (result.sharpness >= 0).all() and (result.adaptive >= 0).all()
    assert result.tau["sharpness"] == pytest.approx(kendall_tau(list(result.sharpness), list(result.gap)))
    assert set(result.psi_per_parameter["adaptive sharpness"]) == {"lr", "width", "steps"}


def test_rescaling_keeps_gaps_and_adaptive_sharpness_with_its_tau_but_moves_sharpness(plain_and_rescaled):
    plain, rescaled = plain_and_rescaled
    np.testing.assert_array_equal(plain.gap, rescaled.gap)  # the same functions: the same predictions
    np.testing.assert_allclose(rescaled.adaptive, plain.adaptive, rtol=1e-9)
    assert rescaled.tau["adaptive sharpness"] == pytest.approx(plain.tau["adaptive sharpness"], abs=1e-9)
    assert rescaled.psi["adaptive sharpness"] == pytest.approx(plain.psi["adaptive sharpness"], abs=1e-9)
    assert np.max(np.abs(np.log(rescaled.sharpness / plain.sharpness))) > 0.1, "plain sharpness moves"
    assert rescaled.tau["sharpness"] != pytest.approx(plain.tau["sharpness"], abs=1e-9)
