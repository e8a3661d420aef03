"""harness.results.stats pinned against brute-force enumeration, closed forms and published values."""

from __future__ import annotations

import math
import random
import statistics
from fractions import Fraction
from itertools import combinations

import pytest

from harness.results.stats import (
    cluster_bootstrap_interval,
    flip_rate,
    mcnemar_exact,
    mean_over_instances,
    paired_bootstrap_delta,
    pass_at_k,
    pass_hat_k,
    percentiles,
    rates,
    ratio_gate,
    wilson_interval,
)

NCK = [
    (1, 0, 1),
    (1, 1, 1),
    (5, 0, 2),
    (5, 5, 2),
    (5, 5, 5),
    (6, 2, 1),
    (6, 3, 3),
    (7, 3, 7),
    (7, 0, 7),
    (8, 1, 4),
    (8, 7, 4),
    (10, 3, 5),
    (10, 6, 10),
]


def _subsets(n: int, c: int, k: int) -> list[tuple[int, ...]]:
    """All k-subsets of n attempts of which the first c succeeded (1) and the rest failed (0)."""
    outcomes = [1] * c + [0] * (n - c)
    return list(combinations(outcomes, k))


# ---------------------------------------------------------------- pass@k / pass^k


@pytest.mark.parametrize(("n", "c", "k"), NCK)
def test_pass_at_k_matches_subset_enumeration(n: int, c: int, k: int) -> None:
    subsets = _subsets(n, c, k)
    brute = sum(1 for s in subsets if any(s)) / len(subsets)
    assert pass_at_k(n, c, k) == pytest.approx(brute, abs=1e-12)


@pytest.mark.parametrize(("n", "c", "k"), NCK)
def test_pass_hat_k_matches_subset_enumeration(n: int, c: int, k: int) -> None:
    subsets = _subsets(n, c, k)
    brute = sum(1 for s in subsets if all(s)) / len(subsets)
    assert pass_hat_k(n, c, k) == pytest.approx(brute, abs=1e-12)


@pytest.mark.parametrize(("n", "c"), [(1, 0), (1, 1), (5, 2), (10, 7), (3, 3), (4, 0)])
def test_k1_is_the_plain_success_rate(n: int, c: int) -> None:
    assert pass_at_k(n, c, 1) == pytest.approx(c / n, abs=1e-12)
    assert pass_hat_k(n, c, 1) == pytest.approx(c / n, abs=1e-12)


def test_edge_values_exact() -> None:
    assert pass_at_k(5, 0, 3) == 0.0
    assert pass_at_k(5, 5, 3) == 1.0
    assert pass_at_k(5, 3, 3) == 1.0  # n - c < k: every 3-subset contains a success
    assert pass_at_k(4, 1, 4) == 1.0  # k == n and c > 0
    assert pass_hat_k(5, 2, 3) == 0.0  # c < k
    assert pass_hat_k(4, 4, 4) == 1.0  # k == n and c == n
    assert pass_hat_k(4, 3, 4) == 0.0  # k == n and one failure


def test_large_n_stable_against_exact_fractions() -> None:
    n, c, k = 200, 10, 100
    exact_at = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
    exact_hat = Fraction(math.comb(c, 5), math.comb(n, 5))
    assert pass_at_k(n, c, k) == pytest.approx(float(exact_at), rel=1e-12)
    assert pass_hat_k(n, c, 5) == pytest.approx(float(exact_hat), rel=1e-12)


@pytest.mark.parametrize("fn", [pass_at_k, pass_hat_k])
@pytest.mark.parametrize(("n", "c", "k"), [(3, 1, 4), (0, 0, 1), (5, 2, 0), (5, 6, 2), (5, -1, 2)])
def test_invalid_arguments_raise(fn, n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError):
        fn(n, c, k)


def test_k_greater_than_n_message() -> None:
    with pytest.raises(ValueError, match="k=4 exceeds"):
        pass_at_k(3, 1, 4)


def test_mean_over_instances_excludes_short_instances() -> None:
    per_instance = {"a": (5, 2), "b": (5, 0), "c": (2, 2), "d": (3, 3)}
    mean, used, excluded = mean_over_instances(per_instance, pass_at_k, 3)
    expected = (pass_at_k(5, 2, 3) + pass_at_k(5, 0, 3) + pass_at_k(3, 3, 3)) / 3
    assert (used, excluded) == (3, 1)
    assert mean == pytest.approx(expected, abs=1e-12)
    mean_hat, _, _ = mean_over_instances(per_instance, pass_hat_k, 3)
    assert mean_hat == pytest.approx((0.0 + 0.0 + 1.0) / 3, abs=1e-12)


def test_mean_over_instances_all_excluded_or_empty() -> None:
    assert mean_over_instances({"a": (1, 1), "b": (2, 0)}, pass_at_k, 3) == (None, 0, 2)
    assert mean_over_instances({}, pass_at_k, 1) == (None, 0, 0)


# ---------------------------------------------------------------- Wilson


def _wilson_by_quadratic(s: int, n: int, confidence: float) -> tuple[float, float]:
    """Wilson bounds as the roots in p of (p_hat - p)^2 = z^2 p (1 - p) / n."""
    z = statistics.NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    p_hat, z2 = s / n, z * z
    a, b, c = 1 + z2 / n, -(2 * p_hat + z2 / n), p_hat * p_hat
    disc = math.sqrt(b * b - 4 * a * c)
    return (-b - disc) / (2 * a), (-b + disc) / (2 * a)


@pytest.mark.parametrize(("s", "n"), [(0, 10), (5, 10), (10, 10), (1, 3), (7, 40), (123, 300)])
@pytest.mark.parametrize("confidence", [0.90, 0.95, 0.99])
def test_wilson_matches_quadratic_roots(s: int, n: int, confidence: float) -> None:
    lo, hi = wilson_interval(s, n, confidence)
    ref_lo, ref_hi = _wilson_by_quadratic(s, n, confidence)
    assert lo == pytest.approx(max(0.0, ref_lo), abs=1e-9)
    assert hi == pytest.approx(min(1.0, ref_hi), abs=1e-9)


@pytest.mark.parametrize(
    ("s", "n", "lo", "hi"),
    [
        (0, 10, 0.0, 0.2775),
        (5, 10, 0.2366, 0.7634),
        # Newcombe (1998), Statist. Med. 17:857-872, method 3 (Wilson score, no CC).
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_published_values(s: int, n: int, lo: float, hi: float) -> None:
    got_lo, got_hi = wilson_interval(s, n)
    assert got_lo == pytest.approx(lo, abs=1e-4)
    assert got_hi == pytest.approx(hi, abs=1e-4)


def test_wilson_edges() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert wilson_interval(0, 10)[0] == 0.0
    assert wilson_interval(10, 10)[1] == 1.0
    lo95, hi95 = wilson_interval(3, 10, 0.95)
    lo99, hi99 = wilson_interval(3, 10, 0.99)
    assert lo99 < lo95 < 0.3 < hi95 < hi99
    for bad in [(-1, 5), (6, 5)]:
        with pytest.raises(ValueError):
            wilson_interval(*bad)
    with pytest.raises(ValueError):
        wilson_interval(1, 5, confidence=1.0)


# ---------------------------------------------------------------- McNemar


@pytest.mark.parametrize(
    ("b", "c", "p"),
    [(1, 9, 0.021484375), (9, 1, 0.021484375), (0, 5, 0.0625), (5, 5, 1.0), (0, 0, 1.0), (0, 1, 1.0)],
)
def test_mcnemar_known_values(b: int, c: int, p: float) -> None:
    assert mcnemar_exact(b, c) == p


def test_mcnemar_matches_two_sided_binomial_sum() -> None:
    """Brute force: sum of Bin(n, 1/2) probabilities at least as far from n/2 as the observed b."""
    for b in range(13):
        for c in range(13):
            n = b + c
            if n == 0:
                continue
            dev = abs(2 * b - n)
            brute = sum(Fraction(math.comb(n, x), 2**n) for x in range(n + 1) if abs(2 * x - n) >= dev)
            assert mcnemar_exact(b, c) == pytest.approx(float(min(Fraction(1), brute)), abs=1e-15)


def test_mcnemar_large_counts_and_invalid() -> None:
    p = mcnemar_exact(400, 600)
    assert 0.0 < p < 1e-9
    assert mcnemar_exact(600, 400) == p
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 3)


# ---------------------------------------------------------------- cluster bootstrap


def _clusters(g: int, per: int = 10, rate: float = 0.4, seed: int = 1) -> dict[str, list[int]]:
    """g clusters whose success rates spread around `rate` (heterogeneous, as repos are)."""
    rng = random.Random(seed)
    out = {}
    for i in range(g):
        r = min(1.0, max(0.0, rate + rng.uniform(-0.3, 0.3)))
        out[f"repo{i}"] = [1 if rng.random() < r else 0 for _ in range(per)]
    return out


def test_cluster_bootstrap_deterministic_and_contains_estimate() -> None:
    data = _clusters(12)
    first = cluster_bootstrap_interval(data, n_boot=1000, seed=7)
    assert first == cluster_bootstrap_interval(data, n_boot=1000, seed=7)
    assert first != cluster_bootstrap_interval(data, n_boot=1000, seed=8)
    pooled = sum(map(sum, data.values())) / sum(map(len, data.values()))
    lo, hi = first
    assert 0.0 <= lo < pooled < hi <= 1.0


def test_cluster_bootstrap_narrows_with_more_clusters() -> None:
    lo_few, hi_few = cluster_bootstrap_interval(_clusters(5), n_boot=1000, seed=0)
    lo_many, hi_many = cluster_bootstrap_interval(_clusters(80), n_boot=1000, seed=0)
    assert hi_many - lo_many < 0.6 * (hi_few - lo_few)


def test_cluster_bootstrap_is_wider_than_iid_when_clusters_differ() -> None:
    """Clusters that are all-pass or all-fail carry one effective observation each."""
    data = {f"r{i}": [i % 2] * 20 for i in range(10)}
    lo, hi = cluster_bootstrap_interval(data, n_boot=1000, seed=0)
    w_lo, w_hi = wilson_interval(100, 200)
    assert hi - lo > 1.5 * (w_hi - w_lo)


def test_cluster_bootstrap_degenerate_cases() -> None:
    assert cluster_bootstrap_interval({"only": [1, 0, 1, 1]}, n_boot=200) == (0.75, 0.75)
    assert cluster_bootstrap_interval({"a": [1, 1], "b": [1]}, n_boot=200) == (1.0, 1.0)
    assert cluster_bootstrap_interval({"a": [0, 1], "empty": []}, n_boot=200) == (0.5, 0.5)
    with pytest.raises(ValueError):
        cluster_bootstrap_interval({"empty": []})
    with pytest.raises(ValueError):
        cluster_bootstrap_interval({"a": [1]}, n_boot=0)


# ---------------------------------------------------------------- paired bootstrap


def _rates(m: int, seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    return {f"inst{i}": rng.choice([0.0, 0.25, 0.5, 0.75, 1.0]) for i in range(m)}


def test_paired_bootstrap_identical_inputs_give_zero() -> None:
    a = _rates(30, 1)
    assert paired_bootstrap_delta(a, dict(a), n_boot=500) == (0.0, 0.0, 0.0)


def test_paired_bootstrap_constant_shift_is_exact() -> None:
    b = {k: v * 0.5 for k, v in _rates(25, 2).items()}
    a = {k: v + 0.25 for k, v in b.items()}
    delta, lo, hi = paired_bootstrap_delta(a, b, n_boot=500)
    for value in (delta, lo, hi):
        assert value == pytest.approx(0.25, abs=1e-12)


def test_paired_bootstrap_deterministic_and_contains_delta() -> None:
    a, b = _rates(40, 3), _rates(40, 4)
    first = paired_bootstrap_delta(a, b, n_boot=1000, seed=5)
    assert first == paired_bootstrap_delta(a, b, n_boot=1000, seed=5)
    assert first != paired_bootstrap_delta(a, b, n_boot=1000, seed=6)
    delta, lo, hi = first
    assert delta == pytest.approx(statistics.fmean(a.values()) - statistics.fmean(b.values()), abs=1e-12)
    assert lo < delta < hi
    # Key order must not matter: the pairing is by instance id.
    shuffled = dict(reversed(list(a.items())))
    assert paired_bootstrap_delta(shuffled, b, n_boot=1000, seed=5) == first


def test_paired_bootstrap_mismatched_keys_raise() -> None:
    a = {"x": 1.0, "y": 0.0}
    with pytest.raises(ValueError, match="'y'"):
        paired_bootstrap_delta(a, {"x": 1.0})
    with pytest.raises(ValueError, match="'z'"):
        paired_bootstrap_delta(a, {"x": 1.0, "y": 0.0, "z": 1.0})
    with pytest.raises(ValueError):
        paired_bootstrap_delta({}, {})


# ---------------------------------------------------------------- rates, flips, percentiles, gate


def test_rates_values_and_zero_denominators() -> None:
    assert rates(3, 8, 10) == {"resolve_rate_all": 0.3, "resolve_rate_completed": 0.375, "run_fail_rate": 0.2}
    assert rates(0, 0, 5) == {"resolve_rate_all": 0.0, "resolve_rate_completed": None, "run_fail_rate": 1.0}
    assert rates(0, 0, 0) == {"resolve_rate_all": None, "resolve_rate_completed": None, "run_fail_rate": 0.0}
    for bad in [(3, 2, 5), (1, 6, 5), (-1, 0, 0)]:
        with pytest.raises(ValueError):
            rates(*bad)


def test_flip_rate_examples() -> None:
    a = {"m|i1": True, "m|i2": False, "m|i3": True, "m|i4": False, "only_a": True}
    b = {"m|i1": True, "m|i2": True, "m|i3": False, "m|i4": False, "only_b": False}
    assert flip_rate(a, b) == (0.5, 4)
    assert flip_rate(a, a) == (0.0, 5)
    assert flip_rate({"x": True}, {"x": False}) == (1.0, 1)
    assert flip_rate({"x": True}, {"y": True}) == (0.0, 0)
    assert flip_rate({}, {}) == (0.0, 0)


def test_percentiles_hand_worked() -> None:
    got = percentiles([4, 1, 3, 2])
    assert got["p50"] == pytest.approx(2.5)
    assert got["p90"] == pytest.approx(3.7)
    assert got["p99"] == pytest.approx(3.97)
    assert list(got) == ["p50", "p90", "p99"]
    assert percentiles([7.0]) == {"p50": 7.0, "p90": 7.0, "p99": 7.0}
    assert percentiles([1, 2, 3], qs=(0, 100, 99.5)) == {"p0": 1, "p100": 3, "p99.5": pytest.approx(2.99)}


def test_percentiles_match_statistics_quantiles_inclusive() -> None:
    rng = random.Random(11)
    for size in (2, 3, 10, 57):
        values = [rng.uniform(0, 100) for _ in range(size)]
        cuts = statistics.quantiles(values, n=100, method="inclusive")
        got = percentiles(values, qs=(1, 25, 50, 90, 99))
        for q in (1, 25, 50, 90, 99):
            assert got[f"p{q}"] == pytest.approx(cuts[q - 1], abs=1e-9)


def test_percentiles_empty_and_invalid() -> None:
    assert percentiles([]) == {"p50": None, "p90": None, "p99": None}
    with pytest.raises(ValueError):
        percentiles([1.0], qs=(101,))


def test_ratio_gate() -> None:
    assert ratio_gate(0.3, 0.2) is True  # exact tie despite 1.5 * 0.2 == 0.30000000000000004
    assert ratio_gate(0.29, 0.2) is False
    assert ratio_gate(0.5, 0.2, factor=2.5) is True
    assert ratio_gate(0.49, 0.2, factor=2.5) is False
    assert ratio_gate(0.01, 0.0) is True
    assert ratio_gate(0.0, 0.0) is False
    assert ratio_gate(0.0, 0.1) is False
    with pytest.raises(ValueError):
        ratio_gate(-0.1, 0.2)
    with pytest.raises(ValueError):
        ratio_gate(0.3, 0.2, factor=0)
