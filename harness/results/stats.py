"""Small, dependency-free statistics for the leaderboard: intervals, pass@k, paired tests, rates.

Every function is pure (no I/O, no pandas, no numpy) and deterministic: anything random takes
a ``seed`` and draws from its own ``random.Random(seed)``. The intervals the leaderboard shows cluster
by instance and live in harness.results.intervals; the two bootstraps here are kept as references for
benchmarks/interval_coverage.py, which shows they under-cover at the grid sizes of this project. Percentiles everywhere use linear
interpolation between closest ranks, i.e. numpy's default ``method="linear"`` (Hyndman & Fan
type 7), which is also ``statistics.quantiles(..., method="inclusive")``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from statistics import NormalDist

__all__ = [
    "cluster_bootstrap_interval",
    "flip_rate",
    "mcnemar_exact",
    "mean_over_instances",
    "paired_bootstrap_delta",
    "pass_at_k",
    "pass_hat_k",
    "percentiles",
    "ratio_gate",
    "rates",
    "wilson_interval",
]


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def _check_nck(n: int, c: int, k: int) -> None:
    if n < 0 or not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if k > n:
        raise ValueError(f"k={k} exceeds the number of samples n={n}")


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks: h = (N-1)q, x[floor h] + (h - floor h)(x[floor h + 1] - x[floor h])."""
    h = (len(sorted_values) - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (h - lo) * (sorted_values[hi] - sorted_values[lo])


def _percentile_interval(samples: Iterable[float], confidence: float) -> tuple[float, float]:
    """Bootstrap percentile interval: the alpha/2 and 1 - alpha/2 quantiles, alpha = 1 - confidence."""
    ordered = sorted(samples)
    alpha = 1.0 - confidence
    return _quantile(ordered, alpha / 2), _quantile(ordered, 1 - alpha / 2)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion.

    With p = successes/n and z = Phi^-1(1 - (1 - confidence)/2):
    centre = (p + z^2/(2n)) / (1 + z^2/n),
    half   = z / (1 + z^2/n) * sqrt(p(1-p)/n + z^2/(4n^2)),
    interval = (centre - half, centre + half), clamped to [0, 1]; the lower bound is exactly 0.0
    when successes == 0 and the upper exactly 1.0 when successes == n (the closed form only
    cancels to ~1e-17 there). n == 0 gives the uninformative (0.0, 1.0).
    Reference: Wilson (1927), JASA 22:209-212; Brown, Cai & DasGupta (2001), Statist. Sci. 16:101-133.
    """
    _check_confidence(confidence)
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    p = successes / n
    z2n = z * z / n
    centre = (p + z2n / 2) / (1 + z2n)
    half = z / (1 + z2n) * math.sqrt(p * (1 - p) / n + z2n / (4 * n))
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return lo, hi


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c pass: 1 - C(n-c, k) / C(n, k).

    Computed in the numerically stable product form
    1 - prod_{i=n-c+1}^{n} (1 - k/i), which is 1.0 whenever n - c < k.
    Reference: Chen et al. (2021), "Evaluating Large Language Models Trained on Code", Sec. 2.1.
    Raises ValueError when k > n (the estimator is undefined) or k < 1.
    """
    _check_nck(n, c, k)
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def pass_hat_k(n: int, c: int, k: int) -> float:
    """Unbiased pass^k (all k of k attempts succeed) from n samples with c passes: C(c, k) / C(n, k).

    Computed as the product prod_{i=0}^{k-1} (c - i)/(n - i), which is 0.0 whenever c < k.
    Reference: Yao et al. (2024), "tau-bench: A Benchmark for Tool-Agent-User Interaction in
    Real-World Domains", arXiv:2406.12045 (pass^k). Raises ValueError when k > n or k < 1.
    """
    _check_nck(n, c, k)
    if c < k:
        return 0.0
    prod = 1.0
    for i in range(k):
        prod *= (c - i) / (n - i)
    return prod


def mean_over_instances(
    per_instance: Mapping[str, tuple[int, int]],
    fn: Callable[[int, int, int], float],
    k: int,
) -> tuple[float | None, int, int]:
    """Benchmark-level estimate: (1/|U|) * sum_{i in U} fn(n_i, c_i, k), U = {i : n_i >= k}.

    ``per_instance`` maps instance id -> (n attempts, c successes); ``fn`` is e.g. pass_at_k or
    pass_hat_k. Instances with fewer than k attempts are excluded (not imputed) and counted.
    Returns (mean, n_used, n_excluded); mean is None when no instance has n >= k.
    Reference: Chen et al. (2021), Sec. 2.1 (pass@k averaged over problems).
    """
    values = [fn(n, c, k) for n, c in per_instance.values() if n >= k]
    excluded = len(per_instance) - len(values)
    mean = math.fsum(values) / len(values) if values else None
    return mean, len(values), excluded


def cluster_bootstrap_interval(
    outcomes_by_cluster: Mapping[str, Sequence[int]],
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Cluster (block) bootstrap percentile interval for a pooled success rate.

    Each replicate draws G clusters with replacement from the G non-empty clusters (e.g. repos)
    and takes the pooled mean sum(successes)/sum(cases) over the drawn clusters' cases; the
    interval is the alpha/2 and 1 - alpha/2 percentiles of the replicates. One cluster gives a
    degenerate interval (its own rate twice). Not on the leaderboard: with 4-13 repos it covers
    83-92 % at a nominal 95 % (docs/performance.md, Interval coverage). Reference: Cameron, Gelbach & Miller (2008),
    "Bootstrap-Based Improvements for Inference with Clustered Errors", REStat 90:414-427;
    Efron & Tibshirani (1993), An Introduction to the Bootstrap, ch. 13 (percentile interval).
    """
    _check_confidence(confidence)
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    clusters = [
        (sum(outcomes), len(outcomes)) for _, outcomes in sorted(outcomes_by_cluster.items()) if outcomes
    ]
    if not clusters:
        raise ValueError("no cases: every cluster is empty")
    rng = random.Random(seed)
    g = len(clusters)
    replicates = []
    for _ in range(n_boot):
        drawn = rng.choices(clusters, k=g)
        replicates.append(sum(s for s, _ in drawn) / sum(m for _, m in drawn))
    return _percentile_interval(replicates, confidence)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar test p-value from the discordant pair counts.

    b = cases A resolved and B did not, c = cases A did not and B did. Under H0, b ~ Bin(b+c, 1/2);
    p = min(1, 2 * P(X <= min(b, c))) = min(1, 2 * sum_{i=0}^{min(b,c)} C(b+c, i) / 2^(b+c)).
    b + c == 0 gives 1.0. Computed in exact integer arithmetic.
    Reference: McNemar (1947), Psychometrika 12:153-157; Fagerland, Lydersen & Laake (2013),
    "The McNemar test for binary matched-pairs data", BMC Med. Res. Methodol. 13:91.
    """
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got b={b}, c={c}")
    n = b + c
    if n == 0:
        return 1.0
    tail, term = 0, 1  # term = C(n, i), updated exactly: C(n, i + 1) = C(n, i) (n - i) / (i + 1)
    for i in range(min(b, c) + 1):
        tail += term
        term = term * (n - i) // (i + 1)
    return min(1.0, 2 * tail / 2**n)


def paired_bootstrap_delta(
    a: Mapping[str, float],
    b: Mapping[str, float],
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Paired bootstrap of the difference in mean per-instance rate between two models.

    delta = mean_i(a_i) - mean_i(b_i) = mean_i(a_i - b_i) over the shared instances; each replicate
    resamples instances with replacement (keeping the pair (a_i, b_i) together) and recomputes the
    mean difference; (lo, hi) is the percentile interval. Returns (delta, lo, hi). Not used by
    `compare` any more: it under-covers at 8-19 instances (docs/performance.md, Interval coverage).
    Raises ValueError unless a and b have exactly the same instance keys (the message names one
    missing instance) or when they are empty.
    Reference: Efron & Tibshirani (1993), ch. 13; Koehn (2004), "Statistical Significance Tests
    for Machine Translation Evaluation", EMNLP (paired bootstrap).
    """
    _check_confidence(confidence)
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    only_a, only_b = sorted(a.keys() - b.keys()), sorted(b.keys() - a.keys())
    if only_a:
        raise ValueError(f"instance {only_a[0]!r} is missing from b ({len(only_a)} missing in all)")
    if only_b:
        raise ValueError(f"instance {only_b[0]!r} is missing from a ({len(only_b)} missing in all)")
    if not a:
        raise ValueError("no instances to compare")
    diffs = [a[key] - b[key] for key in sorted(a)]
    m = len(diffs)
    delta = math.fsum(a.values()) / m - math.fsum(b.values()) / m
    rng = random.Random(seed)
    replicates = [math.fsum(rng.choices(diffs, k=m)) / m for _ in range(n_boot)]
    lo, hi = _percentile_interval(replicates, confidence)
    return delta, lo, hi


def rates(resolved: int, completed: int, total: int) -> dict[str, float | None]:
    """Headline rates of one run.

    resolve_rate_all       = resolved / total      (None when total == 0)
    resolve_rate_completed = resolved / completed  (None when completed == 0)
    run_fail_rate          = (total - completed) / total  (0.0 when total == 0: nothing failed)
    A None means "undefined", never 0%: the denominator is empty. Requires
    0 <= resolved <= completed <= total, else ValueError.
    """
    if not 0 <= resolved <= completed <= total:
        raise ValueError(f"need 0 <= resolved <= completed <= total, got {resolved}, {completed}, {total}")
    return {
        "resolve_rate_all": resolved / total if total else None,
        "resolve_rate_completed": resolved / completed if completed else None,
        "run_fail_rate": (total - completed) / total if total else 0.0,
    }


def flip_rate(run_a: Mapping[str, bool], run_b: Mapping[str, bool]) -> tuple[float, int]:
    """Run-to-run instability: |{k in S : a_k != b_k}| / |S|, S = keys(run_a) & keys(run_b).

    Keys are case keys of the same grid run twice; only shared keys count. Returns
    (flip fraction, |S|); no shared keys gives (0.0, 0).
    """
    shared = run_a.keys() & run_b.keys()
    if not shared:
        return 0.0, 0
    flips = sum(1 for key in shared if bool(run_a[key]) != bool(run_b[key]))
    return flips / len(shared), len(shared)


def percentiles(values: Sequence[float], qs: Sequence[float] = (50, 90, 99)) -> dict[str, float | None]:
    """Percentiles keyed "p50", "p90", ... (key f"p{q:g}") by linear interpolation between closest ranks.

    For sorted x_0..x_{N-1} and q in [0, 100]: h = (N-1) q/100, result = x_floor(h) +
    (h - floor(h)) (x_floor(h)+1 - x_floor(h)); numpy.percentile's default method="linear",
    Hyndman & Fan (1996) type 7, "Sample Quantiles in Statistical Packages", Am. Stat. 50:361-365.
    Empty values give None for every key.
    """
    for q in qs:
        if not 0 <= q <= 100:
            raise ValueError(f"percentile must be in [0, 100], got {q}")
    ordered = sorted(values)
    return {f"p{q:g}": (_quantile(ordered, q / 100) if ordered else None) for q in qs}


def ratio_gate(best_rate: float, baseline_rate: float, factor: float = 1.5) -> bool:
    """Gate: best_rate >= factor * baseline_rate, up to float rounding (relative tolerance 1e-9).

    The tolerance keeps exact ties such as 0.3 vs 1.5 * 0.2 (= 0.30000000000000004) passing.
    With baseline_rate == 0 the ratio is undefined; the gate then passes for any best_rate > 0
    and fails for best_rate == 0 (zero beats nothing). Negative rates or factor <= 0 raise
    ValueError.
    """
    if best_rate < 0 or baseline_rate < 0:
        raise ValueError(f"rates must be >= 0, got best={best_rate}, baseline={baseline_rate}")
    if factor <= 0:
        raise ValueError(f"factor must be > 0, got {factor}")
    if baseline_rate == 0:
        return best_rate > 0
    threshold = factor * baseline_rate
    return best_rate >= threshold or math.isclose(best_rate, threshold, rel_tol=1e-9)
