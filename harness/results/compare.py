"""Paired comparison of two runs of the same grid: per model, delta with a paired-bootstrap interval,
exact McNemar p-value on the paired cases, and the cases that flipped (rerun reproducibility).
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.results import stats
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

    @property
    def flip_rate(self) -> float:
        return len(self.flips) / self.paired_cases if self.paired_cases else 0.0


def compare_runs(
    a: list[CaseRecord], b: list[CaseRecord], *, n_boot: int = 2000, seed: int = 0
) -> list[ModelComparison]:
    """Compare every model present in both runs on the cases completed in both."""
    done_a = {r.case_id: r for r in a if r.completed}
    done_b = {r.case_id: r for r in b if r.completed}
    out = []
    for model in sorted({r.model_id for r in done_a.values()} & {r.model_id for r in done_b.values()}):
        shared = sorted(k for k, r in done_a.items() if r.model_id == model and k in done_b)
        if not shared:
            continue
        ra = {k: done_a[k].resolved for k in shared}
        rb = {k: done_b[k].resolved for k in shared}
        per_instance_a: dict[str, list[bool]] = {}
        per_instance_b: dict[str, list[bool]] = {}
        for k in shared:
            per_instance_a.setdefault(done_a[k].instance_id, []).append(ra[k])
            per_instance_b.setdefault(done_a[k].instance_id, []).append(rb[k])
        mean_a = {i: sum(v) / len(v) for i, v in per_instance_a.items()}
        mean_b = {i: sum(v) / len(v) for i, v in per_instance_b.items()}
        delta, lo, hi = stats.paired_bootstrap_delta(mean_a, mean_b, n_boot=n_boot, seed=seed)
        b_only = sum(ra[k] and not rb[k] for k in shared)
        c_only = sum(rb[k] and not ra[k] for k in shared)
        flips = [(k, done_a[k].outcome_class, done_b[k].outcome_class) for k in shared if ra[k] != rb[k]]
        out.append(
            ModelComparison(
                model,
                len(shared),
                sum(ra.values()) / len(shared),
                sum(rb.values()) / len(shared),
                delta,
                lo,
                hi,
                stats.mcnemar_exact(b_only, c_only),
                flips,
            )
        )
    return out


def format_comparison(rows: list[ModelComparison], name_a: str, name_b: str) -> str:
    lines = [
        f"paired comparison: a={name_a}  b={name_b}",
        f"{'model':22} {'pairs':>5} {'rate a':>7} {'rate b':>7} {'delta a-b [95% CI]':>26} {'McNemar p':>9} {'flips':>6}",
    ]
    for r in rows:
        ci = f"{r.delta:+.1%} [{r.delta_lo:+.1%}, {r.delta_hi:+.1%}]"
        lines.append(
            f"{r.model:22} {r.paired_cases:5d} {r.rate_a:7.1%} {r.rate_b:7.1%} {ci:>26} {r.mcnemar_p:9.3g} "
            f"{r.flip_rate:6.0%}"
        )
    for r in rows:
        lines += [f"  flip {r.model}: {cid} {oa} -> {ob}" for cid, oa, ob in r.flips]
    return "\n".join(lines) if rows else "no model has completed cases in both runs"
