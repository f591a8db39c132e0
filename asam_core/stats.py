"""Small statistics for the papers' tables, in pure Python (no SciPy):

    t_quantile(q, df)        the q-quantile of Student's t with df degrees of freedom, by bisection on
                             its CDF  F(t) = 1 - I_{df/(df+t^2)}(df/2, 1/2) / 2  (t >= 0), where I is the
                             regularized incomplete beta function (continued fraction, Lentz's method)
    mean_interval(values)    mean and the half-width of its two-sided 95% t-interval,
                             t_{0.975, n-1} * s / sqrt(n) with the sample standard deviation s,
                             as the SAM paper reports its results (mean +- 95% interval over runs)
    kendall_tau(x, y)        Kendall's tau-b: (concordant - discordant) / sqrt((n0 - n1)(n0 - n2)),
                             n0 = n(n-1)/2 pairs, n1 / n2 pairs tied in x / in y (ASAM Table 1)
    granulated_tau(...)      Jiang et al. (2019)'s Psi: for each hyper-parameter, the mean of tau over
                             the groups of models that differ in that hyper-parameter only (psi_i);
                             Psi is the mean of the psi_i
"""
from __future__ import annotations

import math
import statistics
from typing import Sequence


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    tiny, c, d = 1e-300, 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 500):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return result


def regularized_beta(x: float, a: float, b: float) -> float:
    """I_x(a, b) for 0 <= x <= 1 and a, b > 0."""
    if x <= 0.0 or x >= 1.0:
        return 0.0 if x <= 0.0 else 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` > 0 degrees of freedom."""
    tail = 0.5 * regularized_beta(df / (df + t * t), df / 2.0, 0.5)
    return 1.0 - tail if t >= 0 else tail


def t_quantile(q: float, df: float) -> float:
    """The t with P(T <= t) = q, 0 < q < 1 (bisection to 1e-12)."""
    if not (0.0 < q < 1.0) or not df > 0:
        raise ValueError(f"need 0 < q < 1 and df > 0, got q={q!r}, df={df!r}")
    if q < 0.5:
        return -t_quantile(1.0 - q, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < q:
        high *= 2.0
    for _ in range(200):
        middle = 0.5 * (low + high)
        low, high = (middle, high) if t_cdf(middle, df) < q else (low, middle)
        if high - low < 1e-12:
            break
    return 0.5 * (low + high)


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float | None]:
    """(mean, half-width of the two-sided t-interval); the half-width is None for fewer than 2 values."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("mean_interval needs at least one value")
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, None
    t = t_quantile(0.5 + confidence / 2.0, len(values) - 1)
    return mean, t * statistics.stdev(values) / math.sqrt(len(values))


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b of two equally long samples (ties allowed); NaN when either is constant."""
    if len(x) != len(y):
        raise ValueError(f"kendall_tau needs samples of one length, got {len(x)} and {len(y)}")
    concordant = discordant = tied_x = tied_y = pairs = 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            dx, dy = x[i] - x[j], y[i] - y[j]
            pairs += 1
            tied_x += dx == 0
            tied_y += dy == 0
            concordant += dx * dy > 0
            discordant += dx * dy < 0
    denominator = math.sqrt((pairs - tied_x) * (pairs - tied_y))
    return (concordant - discordant) / denominator if denominator else math.nan


def granulated_tau(
    settings: Sequence[dict[str, object]], measure: Sequence[float], gap: Sequence[float]
) -> tuple[float, dict[str, float]]:
    """(Psi, {hyper-parameter: psi_i}) for models described by ``settings`` (hyper-parameter -> value,
    the same keys for every model): psi_i averages kendall_tau(measure, gap) over the groups of models
    whose settings agree on every hyper-parameter but i (groups of one model, or with NaN tau, are
    skipped)."""
    if not (len(settings) == len(measure) == len(gap)):
        raise ValueError("settings, measure and gap must describe the same models")
    names = list(settings[0]) if settings else []
    per_parameter = {}
    for name in names:
        groups: dict[tuple, list[int]] = {}
        for index, setting in enumerate(settings):
            others = tuple(sorted((k, repr(v)) for k, v in setting.items() if k != name))
            groups.setdefault(others, []).append(index)
        taus = [kendall_tau([measure[i] for i in members], [gap[i] for i in members])
                for members in groups.values() if len(members) > 1]
        taus = [t for t in taus if not math.isnan(t)]
        per_parameter[name] = statistics.fmean(taus) if taus else math.nan
    finite = [v for v in per_parameter.values() if not math.isnan(v)]
    return (statistics.fmean(finite) if finite else math.nan), per_parameter
