"""Intervals that account for clustered attempts: attempts of one instance are not independent.

What an interval here is of: the model's expected resolve rate on instances drawn from the same
population as the run's (DESIGN.md, Statistics). The unit of independent information is the
instance, not the attempt, so every interval clusters by instance:

- ``cluster_wilson_interval``: Wilson score interval on an effective sample size
  n* = (N / design effect) * (t_{N-1} / t_{G-1})^2 for N cases in G instances, the design effect
  estimated from the cluster-robust (ratio-estimator) variance and never taken below 1; the t ratio
  is the degrees-of-freedom correction of Korn & Graubard (1998).
- ``paired_delta_interval``: the difference of two models on paired cases, Bonett & Price's
  (2012) adjusted Wald interval for paired proportions on the same effective sample size.

Both are checked by simulation against their 95 % label in benchmarks/interval_coverage.py
(docs/performance.md). Pure stdlib, deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from statistics import NormalDist

__all__ = [
    "cluster_wilson_interval",
    "effective_sample_size",
    "holm_adjust",
    "paired_delta_interval",
    "student_t_cdf",
    "student_t_quantile",
]


def student_t_cdf(t: float, df: int) -> float:
    """P(T <= t) for Student's t with integer df >= 1, in closed form.

    With theta = atan(|t| / sqrt(df)), A = P(|T| < |t|) is (Abramowitz & Stegun 26.7.3-4)
    odd df:  (2/pi) (theta + sin(theta) [cos + 2/3 cos^3 + ... + (2*4..(df-3))/(3*5..(df-2)) cos^(df-2)])
    even df: sin(theta) [1 + 1/2 cos^2 + ... + (1*3..(df-3))/(2*4..(df-2)) cos^(df-2)]
    and the CDF is (1 + A)/2 for t >= 0, (1 - A)/2 below.
    """
    if df < 1:
        raise ValueError(f"df must be >= 1, got {df}")
    theta = math.atan(abs(t) / math.sqrt(df))
    s, c = math.sin(theta), math.cos(theta)
    if df % 2:
        term, total = c, c if df > 1 else 0.0
        for j in range(3, df - 1, 2):
            term *= (j - 1) / j * c * c
            total += term
        a = 2 / math.pi * (theta + s * total)
    else:
        term = total = 1.0
        for j in range(2, df - 1, 2):
            term *= (j - 1) / j * c * c
            total += term
        a = s * total
    a = min(a, 1.0)
    return (1 + a) / 2 if t >= 0 else (1 - a) / 2


@lru_cache(maxsize=256)
def student_t_quantile(p: float, df: int) -> float:
    """The t with student_t_cdf(t, df) = p (bisection to 1e-12), for 0 < p < 1 and integer df >= 1."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if p < 0.5:
        return -student_t_quantile(1 - p, df)
    lo, hi = 0.0, 1.0
    while student_t_cdf(hi, df) < p:
        lo, hi = hi, hi * 2
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if student_t_cdf(mid, df) < p else (lo, mid)
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return (lo + hi) / 2


def _z(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return NormalDist().inv_cdf(1 - (1 - confidence) / 2)


def effective_sample_size(
    totals: Sequence[tuple[float, int]], estimate: float, iid_variance: float, confidence: float = 0.95
) -> float:
    """n* = (N / deff) * (t_{N-1} / t_{G-1})^2 for G clusters with (sum of values, cases) in `totals`.

    deff = v_cluster / v_iid, v_cluster = G/(G-1) * sum_i (y_i - estimate * m_i)^2 / N^2 (the
    cluster-robust variance of a ratio estimator), v_iid = `iid_variance` (the variance if the N
    cases were independent), taken >= 1 (clustering never adds information). When v_iid is 0 (a 0 %
    or 100 % rate, or no discordant pair) the data cannot estimate the correlation, and the worst
    case is assumed: deff = N / G, one instance counts once. Needs G >= 2 (df = G - 1).
    Reference: Korn & Graubard (1998), "Confidence intervals for proportions with small expected
    number of positive counts estimated from survey data", Survey Methodology 24:193-201.
    """
    g = len(totals)
    if g < 2:
        raise ValueError(f"need at least 2 clusters, got {g}")
    n = sum(m for _, m in totals)
    if iid_variance > 0:
        v_cluster = g / (g - 1) * math.fsum((y - estimate * m) ** 2 for y, m in totals) / n**2
        deff = max(1.0, v_cluster / iid_variance)
    else:
        deff = n / g
    q = 1 - (1 - confidence) / 2
    t_cases = student_t_quantile(q, n - 1)
    return n / deff * (t_cases / student_t_quantile(q, g - 1)) ** 2


def _nonempty(clusters: Mapping[str, Sequence]) -> list[Sequence]:
    return [v for _, v in sorted(clusters.items()) if len(v)]


def cluster_wilson_interval(
    outcomes_by_instance: Mapping[str, Sequence[int]], confidence: float = 0.95
) -> tuple[float, float]:
    """Interval of the pooled rate sum(y)/N (N cases in G instances), clustered by instance.

    Wilson's score interval, centre (p + z^2/2n*) / (1 + z^2/n*), half-width
    z / (1 + z^2/n*) * sqrt(p(1-p)/n* + z^2/(4 n*^2)), on n* = effective_sample_size(...).
    It is never of zero width; lower bound 0.0 exactly at p = 0 and upper 1.0 at p = 1. Fewer than
    two instances say nothing about how instances vary: (0.0, 1.0). No case raises ValueError.
    Reference: Wilson (1927), JASA 22:209-212; Korn & Graubard (1998) for n*.
    """
    clusters = _nonempty(outcomes_by_instance)
    if not clusters:
        raise ValueError("no cases: every instance is empty")
    z = _z(confidence)
    if len(clusters) < 2:
        return 0.0, 1.0
    totals = [(float(sum(v)), len(v)) for v in clusters]
    n = sum(m for _, m in totals)
    p = sum(y for y, _ in totals) / n
    n_star = effective_sample_size(totals, p, p * (1 - p) / n, confidence)
    z2n = z * z / n_star
    centre = (p + z2n / 2) / (1 + z2n)
    half = z / (1 + z2n) * math.sqrt(p * (1 - p) / n_star + z2n / (4 * n_star))
    lo = 0.0 if p == 0 else max(0.0, centre - half)
    hi = 1.0 if p == 1 else min(1.0, centre + half)
    return lo, hi


def paired_delta_interval(
    pairs_by_instance: Mapping[str, Sequence[tuple[int, int]]], confidence: float = 0.95
) -> tuple[float, float, float]:
    """(delta, lo, hi) for delta = rate(a) - rate(b) over paired cases (a, b), clustered by instance.

    delta = (n10 - n01) / N with n10 the pairs a resolved and b did not, n01 the reverse. Interval:
    Bonett & Price's adjusted Wald on n* = effective_sample_size(...): p10~ = (n* p10 + 1)/(n* + 2),
    p01~ likewise, d~ = p10~ - p01~, d~ +- z sqrt((p10~ + p01~ - d~^2) / (n* + 2)), within [-1, 1].
    Never of zero width, also with no discordant pair. One instance: (delta, -1.0, 1.0).
    Reference: Bonett & Price (2012), "Adjusted Wald confidence interval for a difference of binomial
    proportions based on paired data", J. Educ. Behav. Stat. 37:479-488; Fagerland, Lydersen & Laake
    (2014), Stat. Methods Med. Res. 23:523-540 (recommended among paired intervals).
    """
    clusters = _nonempty(pairs_by_instance)
    if not clusters:
        raise ValueError("no paired cases")
    z = _z(confidence)
    n = sum(len(v) for v in clusters)
    n10 = sum(1 for v in clusters for a, b in v if a and not b)
    n01 = sum(1 for v in clusters for a, b in v if b and not a)
    p10, p01 = n10 / n, n01 / n
    delta = p10 - p01
    if len(clusters) < 2:
        return delta, -1.0, 1.0
    totals = [(float(sum(int(bool(a)) - int(bool(b)) for a, b in v)), len(v)) for v in clusters]
    n_star = effective_sample_size(totals, delta, (p10 + p01 - delta**2) / n, confidence)
    t10, t01 = (n_star * p10 + 1) / (n_star + 2), (n_star * p01 + 1) / (n_star + 2)
    centre = t10 - t01
    half = z * math.sqrt((t10 + t01 - centre**2) / (n_star + 2))
    return delta, max(-1.0, centre - half), min(1.0, centre + half)


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order.

    Sorted ascending p_(1) <= ... <= p_(m): adj_(j) = max_{i <= j} min(1, (m - i + 1) p_(i)).
    Rejecting where adj <= alpha controls the family-wise error rate at alpha.
    Reference: Holm (1979), "A simple sequentially rejective multiple test procedure",
    Scand. J. Statist. 6:65-70.
    """
    for p in p_values:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p-values must be in [0, 1], got {p}")
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted
