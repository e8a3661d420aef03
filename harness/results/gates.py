"""Exit gates (config/gates.yaml) over a run's records and manifest: each passes, fails or does not apply.

The plugin evaluates them at the end of a run (terminal summary, manifest, one JUnit testcase each)
and the session exits non-zero only when an applicable gate fails. A gate listed as `report_only` for
the run's grids is evaluated and shown, but its failure is "failed-report-only" and fails nothing.
Gate values are finite numbers or None, so the manifest stays valid JSON.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Literal

from harness.config.schema import GateSpec
from harness.results import stats
from harness.results.intervals import cluster_wilson_interval, holm_adjust
from harness.results.records import CaseRecord

Status = Literal["passed", "failed", "failed-report-only", "not-applicable"]


@dataclass
class GateResult:
    name: str
    status: Status
    value: float | None
    threshold: float | None
    detail: str

    def __post_init__(self) -> None:
        for field in ("value", "threshold"):
            x = getattr(self, field)
            if isinstance(x, float) and not math.isfinite(x):
                setattr(self, field, None)  # JSON has no Infinity/NaN: the detail says what happened


def _paired(a: list[CaseRecord], b: list[CaseRecord]) -> dict[str, list[tuple[int, int]]]:
    """Per instance, (a resolved, b resolved) for each attempt completed by both."""
    b_done = {(r.instance_id, r.attempt): r.resolved for r in b if r.completed}
    out: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for r in a:
        if r.completed and (r.instance_id, r.attempt) in b_done:
            out[r.instance_id].append((int(r.resolved), int(b_done[(r.instance_id, r.attempt)])))
    return out


def _discordant(pairs: dict[str, list[tuple[int, int]]]) -> tuple[int, int]:
    flat = [p for v in pairs.values() for p in v]
    return sum(1 for x, y in flat if x and not y), sum(1 for x, y in flat if y and not x)


def _side(pairs: dict[str, list[tuple[int, int]]], index: int) -> dict[str, list[int]]:
    return {i: [p[index] for p in v] for i, v in pairs.items()}


def _rate(outcomes: dict[str, list[int]]) -> float:
    flat = [x for v in outcomes.values() for x in v]
    return sum(flat) / len(flat)


def baseline_ratio(spec: GateSpec, records: list[CaseRecord]) -> GateResult:
    """Best model vs the baseline on the cases both completed: passes only when the lead is significant
    (exact McNemar, Holm-adjusted over every model tried) and lower bound of the best model's 95 %
    interval >= factor x upper bound of the baseline's (cluster Wilson by instance)."""
    base = [r for r in records if r.model_id == spec.baseline]
    models: dict[str, dict[str, list[tuple[int, int]]]] = {}
    for model in sorted({r.model_id for r in records} - {spec.baseline, *spec.exclude}):
        pairs = _paired([r for r in records if r.model_id == model], base)
        if pairs:
            models[model] = pairs
    if not models:
        detail = f"needs {spec.baseline} and another model with completed cases on the same instances"
        return GateResult(spec.name, "not-applicable", None, spec.factor, detail)
    names = list(models)
    holm = dict(
        zip(names, holm_adjust([stats.mcnemar_exact(*_discordant(models[m])) for m in names]), strict=True)
    )
    best = max(names, key=lambda m: (_rate(_side(models[m], 0)), m))
    pairs = models[best]
    mine, theirs = _side(pairs, 0), _side(pairs, 1)
    lo, hi = cluster_wilson_interval(mine)
    base_lo, base_hi = cluster_wilson_interval(theirs)
    b, c = _discordant(pairs)
    p_raw = stats.mcnemar_exact(b, c)
    leads = b > c and holm[best] <= spec.alpha
    ratio_ok = stats.ratio_gate(lo, base_hi, spec.factor)
    n = sum(len(v) for v in pairs.values())
    detail = (
        f"best {best} {_rate(mine):.1%} [95% CI {lo:.1%}-{hi:.1%}] vs {spec.baseline} {_rate(theirs):.1%} "
        f"[{base_lo:.1%}-{base_hi:.1%}] on {n} paired cases ({len(pairs)} instances); "
        f"lead {'significant' if leads else 'not significant'}: McNemar p={p_raw:.3g}, Holm p={holm[best]:.3g} "
        f"over {len(names)} model(s) ({b} vs {c} discordant), need <= {spec.alpha:g}; "
        f"interval ratio {lo:.1%}/{base_hi:.1%} = {lo / base_hi:.2f}x, need >= {spec.factor:g}x"
    )
    return GateResult(
        spec.name, "passed" if leads and ratio_ok else "failed", lo / base_hi, spec.factor, detail
    )


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
    """Per model (matched on the record's model_id), the share of cases completed in both runs whose
    resolved value differs; the worst model decides."""
    if other is None:
        return GateResult(spec.name, "not-applicable", None, spec.max_flip_rate, "no --compare-to run")
    worst, detail = 0.0, []
    for model in sorted({r.model_id for r in records}):
        mine = {r.case_id: r.resolved for r in records if r.model_id == model and r.completed}
        theirs = {r.case_id: r.resolved for r in other if r.model_id == model and r.completed}
        rate, shared = stats.flip_rate(mine, theirs)
        if shared:
            worst = max(worst, rate)
            detail.append(f"{model} {rate:.0%} of {shared}")
    if not detail:
        return GateResult(spec.name, "not-applicable", None, spec.max_flip_rate, "no shared completed cases")
    status = "passed" if worst <= spec.max_flip_rate else "failed"
    return GateResult(
        spec.name, status, worst, spec.max_flip_rate, "flip rate per model: " + ", ".join(detail)
    )


def _share_above(samples: list[float], limit: float) -> float:
    return sum(1 for s in samples if s > limit) / len(samples)


def cpu_gate(spec: GateSpec, samples: list[float], harness_samples: list[float] | None = None) -> GateResult:
    """The share of machine CPU samples above max_percent must be <= max_share_above; fewer than
    min_samples samples: not applicable. The harness's own share (its process tree) is reported beside."""
    own = ""
    if harness_samples:
        own = (
            f"; harness process tree mean {sum(harness_samples) / len(harness_samples):.1f}%, "
            f"{_share_above(harness_samples, spec.max_percent):.0%} of its samples above "
            f"(containers not included)"
        )
    if len(samples) < spec.min_samples:
        detail = f"{len(samples)} CPU samples, fewer than {spec.min_samples}: too short a run to judge{own}"
        return GateResult(spec.name, "not-applicable", None, spec.max_share_above, detail)
    share = _share_above(samples, spec.max_percent)
    status = "passed" if share <= spec.max_share_above else "failed"
    detail = (
        f"machine: {share:.0%} of {len(samples)} samples above {spec.max_percent:g}% (allowed "
        f"{spec.max_share_above:.0%}; mean {sum(samples) / len(samples):.1f}%, max {max(samples):.0f}%){own}"
    )
    return GateResult(spec.name, status, round(share, 4), spec.max_share_above, detail)


def min_models(spec: GateSpec, records: list[CaseRecord]) -> GateResult:
    models = {r.model_id for r in records if r.model_id not in spec.exclude and r.completed}
    status = "passed" if len(models) >= spec.min_models else "failed"
    return GateResult(spec.name, status, len(models), spec.min_models, f"{len(models)} model(s) with results")


def _evaluate(
    spec: GateSpec,
    records: list[CaseRecord],
    cpu_samples: list[float],
    compare_to: list[CaseRecord] | None,
    cpu_harness_samples: list[float] | None,
) -> GateResult:
    if spec.kind == "baseline_ratio":
        return baseline_ratio(spec, records)
    if spec.kind == "class_rate":
        return class_rate(spec, records)
    if spec.kind == "flip_rate":
        return flip_gate(spec, records, compare_to)
    if spec.kind == "cpu":
        return cpu_gate(spec, cpu_samples, cpu_harness_samples)
    return min_models(spec, records)


def _report_only(spec: GateSpec, active_grids: frozenset[str]) -> bool:
    """True when every grid of the run the gate applies to is one it only reports on."""
    if "all" in spec.report_only:
        return True
    applying = active_grids if "all" in spec.grids else active_grids & set(spec.grids)
    return bool(applying) and applying <= set(spec.report_only)


def evaluate_gates(
    specs: list[GateSpec],
    records: list[CaseRecord],
    *,
    active_grids: frozenset[str],
    cpu_samples: list[float],
    compare_to: list[CaseRecord] | None = None,
    cpu_harness_samples: list[float] | None = None,
) -> list[GateResult]:
    results = []
    for spec in specs:
        if "all" not in spec.grids and not active_grids & set(spec.grids):
            results.append(
                GateResult(spec.name, "not-applicable", None, None, f"applies to -m {'/'.join(spec.grids)}")
            )
            continue
        result = _evaluate(spec, records, cpu_samples, compare_to, cpu_harness_samples)
        if result.status == "failed" and _report_only(spec, active_grids):
            result.status = "failed-report-only"
            result.detail += f" [report only on {'/'.join(sorted(spec.report_only))}: does not fail the run]"
        results.append(result)
    return results


def format_gates(results: list[GateResult]) -> list[str]:
    return [
        f"gate {r.name}: {'FAILED (report only)' if r.status == 'failed-report-only' else r.status.upper()}"
        f" - {r.detail}"
        for r in results
    ]
