"""Exit gates (config/gates.yaml) over a run's records and manifest: each passes, fails or does not apply.

The plugin evaluates them at the end of a run (terminal summary, manifest, one JUnit testcase each)
and the session exits non-zero only when an applicable gate fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from harness.config.schema import GateSpec
from harness.results import stats
from harness.results.records import CaseRecord


@dataclass
class GateResult:
    name: str
    status: Literal["passed", "failed", "not-applicable"]
    value: float | None
    threshold: float | None
    detail: str


def _rate(recs: list[CaseRecord]) -> float:
    return sum(r.resolved for r in recs) / len(recs) if recs else 0.0


def _by_model(records: list[CaseRecord], exclude: list[str]) -> dict[str, list[CaseRecord]]:
    out: dict[str, list[CaseRecord]] = {}
    for r in records:
        if r.model_id not in exclude:
            out.setdefault(r.model_id, []).append(r)
    return out


def baseline_ratio(spec: GateSpec, records: list[CaseRecord]) -> GateResult:
    base = [r for r in records if r.model_id == spec.baseline]
    models = {
        model: recs
        for model, recs in _by_model(records, [*spec.exclude, spec.baseline]).items()
        if any(r.completed for r in recs)  # only skips or infra errors: no result yet
    }
    if not base or not models:
        detail = f"needs {spec.baseline} and another model with results"
        return GateResult(spec.name, "not-applicable", None, spec.factor, detail)
    best, recs = max(models.items(), key=lambda kv: (_rate(kv[1]), kv[0]))
    best_rate, base_rate = _rate(recs), _rate(base)
    lo, hi = stats.wilson_interval(sum(r.resolved for r in recs), len(recs))
    pairs = {(r.instance_id, r.attempt): r.resolved for r in base}
    b = sum(
        1
        for r in recs
        if (r.instance_id, r.attempt) in pairs and r.resolved and not pairs[(r.instance_id, r.attempt)]
    )
    c = sum(
        1
        for r in recs
        if (r.instance_id, r.attempt) in pairs and not r.resolved and pairs[(r.instance_id, r.attempt)]
    )
    passed = stats.ratio_gate(best_rate, base_rate, spec.factor)
    detail = (
        f"best {best} {best_rate:.1%} [95% CI {lo:.1%}-{hi:.1%}] vs {spec.baseline} {base_rate:.1%}; "
        f"need >= {spec.factor:g}x; McNemar p={stats.mcnemar_exact(b, c):.3g} ({b} vs {c} discordant)"
    )
    ratio = best_rate / base_rate if base_rate else float("inf") if best_rate else 0.0
    return GateResult(spec.name, "passed" if passed else "failed", ratio, spec.factor, detail)


def class_rate(spec: GateSpec, records: list[CaseRecord]) -> GateResult:
    done = [r for r in records if r.model_id not in spec.exclude and r.completed]
    if not done:
        return GateResult(spec.name, "not-applicable", None, spec.max_rate, "no completed model cases")
    hits = sum(r.outcome_class in spec.classes for r in done)
    rate = hits / len(done)
    status = "passed" if rate <= spec.max_rate else "failed"
    return GateResult(
        spec.name,
        status,
        rate,
        spec.max_rate,
        f"{hits}/{len(done)} completed cases in {', '.join(spec.classes)}",
    )


def flip_gate(spec: GateSpec, records: list[CaseRecord], other: list[CaseRecord] | None) -> GateResult:
    if other is None:
        return GateResult(spec.name, "not-applicable", None, spec.max_flip_rate, "no --compare-to run")
    a = {r.case_id: r.resolved for r in records if r.completed}
    b = {r.case_id: r.resolved for r in other if r.completed}
    worst, detail = 0.0, []
    for model in sorted({r.model_id for r in records}):
        mine = {k: v for k, v in a.items() if k.startswith(model + "-")}
        rate, shared = stats.flip_rate(mine, b)
        if shared:
            worst = max(worst, rate)
            detail.append(f"{model} {rate:.0%} of {shared}")
    if not detail:
        return GateResult(spec.name, "not-applicable", None, spec.max_flip_rate, "no shared completed cases")
    status = "passed" if worst <= spec.max_flip_rate else "failed"
    return GateResult(
        spec.name, status, worst, spec.max_flip_rate, "flip rate per model: " + ", ".join(detail)
    )


def cpu_gate(spec: GateSpec, samples: list[float]) -> GateResult:
    if not samples:
        return GateResult(spec.name, "not-applicable", None, spec.max_percent, "no CPU samples")
    mean = sum(samples) / len(samples)
    status = "passed" if mean <= spec.max_percent else "failed"
    return GateResult(
        spec.name,
        status,
        round(mean, 1),
        spec.max_percent,
        f"mean {mean:.1f}% over {len(samples)} samples (max {max(samples):.0f}%)",
    )


def min_models(spec: GateSpec, records: list[CaseRecord]) -> GateResult:
    models = {r.model_id for r in records if r.model_id not in spec.exclude and r.completed}
    status = "passed" if len(models) >= spec.min_models else "failed"
    return GateResult(spec.name, status, len(models), spec.min_models, f"{len(models)} model(s) with results")


def evaluate_gates(
    specs: list[GateSpec],
    records: list[CaseRecord],
    *,
    active_grids: frozenset[str],
    cpu_samples: list[float],
    compare_to: list[CaseRecord] | None = None,
) -> list[GateResult]:
    results = []
    for spec in specs:
        if "all" not in spec.grids and not active_grids & set(spec.grids):
            results.append(
                GateResult(spec.name, "not-applicable", None, None, f"applies to -m {'/'.join(spec.grids)}")
            )
            continue
        if spec.kind == "baseline_ratio":
            results.append(baseline_ratio(spec, records))
        elif spec.kind == "class_rate":
            results.append(class_rate(spec, records))
        elif spec.kind == "flip_rate":
            results.append(flip_gate(spec, records, compare_to))
        elif spec.kind == "cpu":
            results.append(cpu_gate(spec, cpu_samples))
        else:
            results.append(min_models(spec, records))
    return results


def format_gates(results: list[GateResult]) -> list[str]:
    return [f"gate {r.name}: {r.status.upper()} - {r.detail}" for r in results]
