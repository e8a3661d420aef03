"""Paired comparison of two runs of the same grid: per model, the resolve rates on the cases completed in
both, their difference with a 95 % interval clustered by instance, the exact McNemar p-value on the
paired cases, and the cases that flipped (rerun reproducibility).

Rates and delta are over the same paired cases, so delta = rate a - rate b exactly.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from harness.results import stats
from harness.results.intervals import paired_delta_interval
from harness.results.pairwise import format_delta
from harness.results.records import CaseRecord


@dataclass
class ModelComparison:
    model: str
    paired_cases: int
    rate_a: float
    rate_b: float
    delta: float
    delta_lo: float
    delta_hi: float
    mcnemar_p: float
    flips: list[tuple[str, str, str]]
    """(case_id, outcome in a, outcome in b) for cases whose resolved value differs."""
    a_only: int = 0
    b_only: int = 0

    @property
    def flip_rate(self) -> float:
        return len(self.flips) / self.paired_cases if self.paired_cases else 0.0


def compare_runs(a: list[CaseRecord], b: list[CaseRecord]) -> list[ModelComparison]:
    """Compare every model present in both runs on the cases completed in both (matched on model_id)."""
    done_a = {r.case_id: r for r in a if r.completed}
    done_b = {r.case_id: r for r in b if r.completed}
    out = []
    for model in sorted({r.model_id for r in done_a.values()} & {r.model_id for r in done_b.values()}):
        shared = sorted(
            k
            for k, r in done_a.items()
            if r.model_id == model and k in done_b and done_b[k].model_id == model
        )
        if not shared:
            continue
        by_instance: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for k in shared:
            by_instance[done_a[k].instance_id].append((int(done_a[k].resolved), int(done_b[k].resolved)))
        delta, lo, hi = paired_delta_interval(by_instance)
        a_only = sum(done_a[k].resolved and not done_b[k].resolved for k in shared)
        b_only = sum(done_b[k].resolved and not done_a[k].resolved for k in shared)
        flips = [
            (k, done_a[k].outcome_class, done_b[k].outcome_class)
            for k in shared
            if done_a[k].resolved != done_b[k].resolved
        ]
        out.append(
            ModelComparison(
                model,
                len(shared),
                sum(done_a[k].resolved for k in shared) / len(shared),
                sum(done_b[k].resolved for k in shared) / len(shared),
                delta,
                lo,
                hi,
                stats.mcnemar_exact(a_only, b_only),
                flips,
                a_only,
                b_only,
            )
        )
    return out


def format_comparison(rows: list[ModelComparison], name_a: str, name_b: str) -> str:
    lines = [
        f"paired comparison: a={name_a}  b={name_b} (cases completed in both; 95% CI clustered by instance)",
        f"{'model':22} {'pairs':>5} {'rate a':>7} {'rate b':>7} {'delta a-b [95% CI]':>36} {'McNemar p':>9} {'flips':>6}",
    ]
    for r in rows:
        ci = format_delta(r.delta, r.delta_lo, r.delta_hi, r.a_only, r.b_only)
        lines.append(
            f"{r.model:22} {r.paired_cases:5d} {r.rate_a:7.1%} {r.rate_b:7.1%} {ci:>36} {r.mcnemar_p:9.3g} "
            f"{r.flip_rate:6.0%}"
        )
    for r in rows:
        lines += [f"  flip {r.model}: {cid} {oa} -> {ob}" for cid, oa, ob in r.flips]
    return "\n".join(lines) if rows else "no model has completed cases in both runs"
