"""asam_core.stats: Student's t and the 95% interval of the papers' tables, against printed tables and by hand."""
import math
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asam_core.stats import mean_interval, regularized_beta, t_cdf, t_quantile

# Two-sided 95% critical values t_{0.975, df} from any statistics table.
TABLE = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 9: 2.262, 10: 2.228, 29: 2.045, 120: 1.980}


@pytest.mark.parametrize("df, value", TABLE.items())
def test_t_quantile_matches_the_printed_table(df, value):
    assert t_quantile(0.975, df) == pytest.approx(value, abs=6e-4)


def test_t_has_closed_forms_for_one_and_two_degrees_of_freedom():
    for t in (-3.0, -0.5, 0.0, 0.7, 4.0):
        assert t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-12)  # Cauchy
        assert t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), abs=1e-12)
    assert regularized_beta(0.3, 1.0, 1.0) == pytest.approx(0.3, abs=1e-14)
    assert t_quantile(0.975, 1e6) == pytest.approx(1.959964, abs=1e-5)


@settings(max_examples=40, deadline=None)
@given(q=st.floats(0.01, 0.99), df=st.integers(1, 200))
def test_quantile_inverts_the_cdf(q, df):
    assert t_cdf(t_quantile(q, df), df) == pytest.approx(q, abs=1e-9)


def test_mean_interval_by_hand():
    values = [57.7, 52.7, 51.8]
    mean, half = mean_interval(values)
    s = math.sqrt(sum((v - 54.0666666) ** 2 for v in values) / 2)
    assert mean == pytest.approx(54.0666666, abs=1e-6)
    assert half == pytest.approx(4.303 * s / math.sqrt(3), rel=1e-3)
    assert mean_interval([3.0]) == (3.0, None)
    assert mean_interval([2.0, 2.0, 2.0]) == (2.0, 0.0)
    with pytest.raises(ValueError):
        mean_interval([])
    assert statistics.fmean(values) == mean


def test_kendall_tau_b_by_hand_with_ties():
    from asam_core.stats import kendall_tau

    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    # x = 1, 2, 2, 3; y = 1, 3, 2, 2: pairs (6): (1,2) C, (1,3) C, (1,4) C, (2,3) x-tie, (2,4) D, (3,4) y-tie
    # C = 3, D = 1, ties in x: 1, ties in y: 1 -> (3 - 1) / sqrt(5 * 5) = 0.4
    assert kendall_tau([1, 2, 2, 3], [1, 3, 2, 2]) == pytest.approx(0.4)
    assert math.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError):
        kendall_tau([1, 2], [1])


def test_granulated_tau_averages_tau_within_groups_that_vary_one_hyper_parameter():
    from asam_core.stats import granulated_tau

    settings = [dict(lr=lr, wd=wd) for lr in (0.1, 0.2, 0.3) for wd in (0.0, 1e-4)]
    # gap rises with lr; the measure follows lr when wd = 0 and runs against it when wd = 1e-4;
    # across wd (lr fixed) the measure always rises while the gap falls.
    gap = [1.0, 0.5, 2.0, 1.5, 3.0, 2.5]
    measure = [1.0, 6.0, 2.0, 5.0, 3.0, 4.0]
    psi, per = granulated_tau(settings, measure, gap)
    assert per["lr"] == pytest.approx((1.0 + -1.0) / 2)  # tau = 1 within wd = 0, -1 within wd = 1e-4
    assert per["wd"] == pytest.approx(-1.0)  # each lr group: measure up, gap down
    assert psi == pytest.approx((0.0 - 1.0) / 2)
