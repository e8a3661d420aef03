"""harness.results.intervals: t quantiles, cluster Wilson, paired delta, Holm; and a small version of the
coverage simulation of benchmarks/interval_coverage.py (the full one writes docs/performance.md)."""

from __future__ import annotations

import math
import random

import pytest

from benchmarks.interval_coverage import (
    MCNEMAR,
    PAIR_SCENARIOS,
    SCENARIOS,
    delta_coverage,
    rate_coverage,
    t_on_instance_means,
)
from harness.results.intervals import (
    cluster_wilson_interval,
    holm_adjust,
    paired_delta_interval,
    student_t_cdf,
    student_t_quantile,
)
from harness.results.stats import wilson_interval

# Two-sided 95 % (and 99 %) critical values of Student's t, from the standard table (e.g. NIST/SEMATECH
# e-Handbook 1.3.6.7.2), to the printed 3 decimals.
T_TABLE = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 7: 2.365, 10: 2.228, 18: 2.101, 30: 2.042, 100: 1.984}


@pytest.mark.parametrize(("df", "value"), sorted(T_TABLE.items()))
def test_t_quantile_matches_the_table(df: int, value: float) -> None:
    assert student_t_quantile(0.975, df) == pytest.approx(value, abs=6e-4)
    assert student_t_quantile(0.025, df) == pytest.approx(-value, abs=6e-4)


def test_t_cdf_closed_forms_and_limits() -> None:
    for t in (-3.0, -0.5, 0.0, 0.7, 4.0):
        assert student_t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-14)  # Cauchy
        assert student_t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), abs=1e-14)
    assert student_t_quantile(0.995, 5) == pytest.approx(4.032, abs=6e-4)
    assert student_t_quantile(0.975, 5000) == pytest.approx(1.95996, abs=1e-3)  # -> normal
    with pytest.raises(ValueError):
        student_t_quantile(1.0, 3)
    with pytest.raises(ValueError):
        student_t_cdf(1.0, 0)


def test_one_attempt_per_instance_is_wilson_on_one_fewer_case() -> None:
    """K=1: deff = G/(G-1) (the small-sample factor), t ratio 1: Wilson with n = G - 1."""
    outcomes = {f"i{i}": [int(i < 5)] for i in range(12)}
    lo, hi = cluster_wilson_interval(outcomes)
    p, n = 5 / 12, 11
    z = 1.959963984540054
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert (lo, hi) == pytest.approx((centre - half, centre + half), abs=1e-12)


def test_clustering_widens_and_edges_are_never_zero_width() -> None:
    split = {f"i{i}": [1, 0] for i in range(8)}  # every instance 1/2: attempts disagree
    lumped = {f"i{i}": [1, 1] if i < 4 else [0, 0] for i in range(8)}  # same 8/16, all within instances
    a, b = cluster_wilson_interval(split), cluster_wilson_interval(lumped)
    assert b[1] - b[0] > a[1] - a[0] and a[0] < 0.5 < a[1] and b[0] < 0.5 < b[1]
    assert (a[1] - a[0]) > (wilson_interval(8, 16)[1] - wilson_interval(8, 16)[0]) * 1.05  # t_7, not z
    zero = cluster_wilson_interval({f"i{i}": [0, 0] for i in range(8)})
    full = cluster_wilson_interval({f"i{i}": [1, 1] for i in range(8)})
    assert zero[0] == 0.0 and zero[1] > 0.25 and full[1] == 1.0 and full[0] < 0.75
    assert zero[1] == pytest.approx(1 - full[0], abs=1e-12)  # symmetric
    assert cluster_wilson_interval({"only": [1, 1, 0]}) == (0.0, 1.0)  # one instance: nothing to say
    assert cluster_wilson_interval({"a": [1], "empty": []}) == (0.0, 1.0)
    with pytest.raises(ValueError):
        cluster_wilson_interval({"empty": []})


def test_cluster_wilson_ignores_instance_order() -> None:
    rng = random.Random(3)
    outcomes = {f"i{i}": [rng.randint(0, 1) for _ in range(rng.randint(1, 3))] for i in range(15)}
    shuffled = dict(sorted(outcomes.items(), key=lambda kv: rng.random()))
    assert cluster_wilson_interval(outcomes) == cluster_wilson_interval(shuffled)


def test_paired_delta_interval() -> None:
    same = {f"i{i}": [(1, 1), (0, 0)] for i in range(8)}
    delta, lo, hi = paired_delta_interval(same)
    assert delta == 0.0 and lo == pytest.approx(-hi) and hi > 0.1  # no discordant pair: not zero width
    better = {f"i{i}": [(1, 0), (1, 0)] if i < 6 else [(0, 0), (0, 0)] for i in range(8)}
    delta, lo, hi = paired_delta_interval(better)
    assert delta == 0.75 and 0.0 < lo < 0.75 < hi <= 1.0
    mixed = {"a": [(1, 0), (0, 1)], "b": [(1, 1)], "c": [(0, 1), (0, 0)], "d": [(1, 0)], "e": [(1, 0)]}
    delta, lo, hi = paired_delta_interval(mixed)
    assert delta == pytest.approx(4 / 7 - 3 / 7) and -1.0 < lo < delta < hi < 1.0
    assert paired_delta_interval({"one": [(1, 0), (1, 0)]}) == (1.0, -1.0, 1.0)
    with pytest.raises(ValueError):
        paired_delta_interval({})


def test_holm_matches_published_example() -> None:
    # R: p.adjust(c(0.01, 0.04, 0.03, 0.005), "holm") == c(0.03, 0.06, 0.06, 0.02)
    assert holm_adjust([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm_adjust([0.5, 0.9]) == [1.0, 1.0] and holm_adjust([]) == []
    with pytest.raises(ValueError):
        holm_adjust([1.5])


# ---------------------------------------------------------------- coverage (small version of the benchmark)


@pytest.mark.parametrize("scenario", SCENARIOS[:2], ids=["i1", "i3"])
def test_rate_interval_covers_at_least_93_percent(scenario) -> None:
    methods = {"new": lambda o, _r: cluster_wilson_interval(o), "t": t_on_instance_means}
    tally = rate_coverage(scenario, methods, reps=2000, seed=11)
    new = tally["new"]
    assert new.coverage >= 0.93, new.cell()
    assert new.zero_width == 0
    assert new.width / new.reps < tally["t"].width / tally["t"].reps  # not uselessly wide


def test_rate_interval_is_honest_at_few_instances_and_extreme_rates() -> None:
    new = {"new": lambda o, _r: cluster_wilson_interval(o)}
    for scenario in SCENARIOS[2:]:
        tally = rate_coverage(scenario, new, reps=1000, seed=5)["new"]
        assert tally.coverage >= 0.93 and tally.zero_width == 0, (scenario.name, tally.cell())


@pytest.mark.parametrize("scenario", PAIR_SCENARIOS, ids=lambda s: s.name)
def test_delta_interval_covers_and_mcnemar_holds_its_level(scenario) -> None:
    def new(pairs):
        return paired_delta_interval(pairs)[1:]

    tally = delta_coverage(scenario, reps=800, seed=2, methods={"new": new})
    assert tally["new"].coverage >= 0.93 and tally["new"].zero_width == 0, tally["new"].cell()
    if scenario.kind == "identical":  # McNemar's own null: exact test, rejects at most 5 %
        assert tally[MCNEMAR].coverage <= 0.05
