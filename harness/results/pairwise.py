"""Every pair of models compared on their paired cases: runs/<run_id>/pairwise.csv and the rank ties.

A paired case is one (instance, attempt) completed (resolved or unresolved) by both models; errors and
skips are not pairs. Per pair: both rates on the paired cases, delta = rate_a - rate_b with its 95 %
interval clustered by instance (harness.results.intervals.paired_delta_interval), the exact McNemar
p-value (H0: on each of these instances the two models are equally likely to resolve it) and its
Holm adjustment over all pairs of the run. Model a is the one ranked higher on the leaderboard.
A model's rank is a range: 1 + the models significantly better, to the count of models not
significantly worse (Holm-adjusted p <= ALPHA), so models not told apart share a range ("1-2").
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from itertools import combinations
from typing import Any

from harness.results import stats
from harness.results.intervals import holm_adjust, paired_delta_interval
from harness.results.records import CaseRecord

ALPHA = 0.05
COLUMNS = [
    "run_id",
    "model_a",
    "agent_backend_a",
    "model_b",
    "agent_backend_b",
    "paired_cases",
    "instances",
    "rate_a",
    "rate_b",
    "delta",
    "delta_lo",
    "delta_hi",
    "a_only",
    "b_only",
    "p_value",
    "p_holm",
    "significant",
]
Key = tuple[str, str]
"""(model_id, agent_backend): one leaderboard row."""


def completed_by_case(records: Iterable[CaseRecord]) -> dict[Key, dict[tuple[str, int], bool]]:
    """(model, backend) -> (instance, attempt) -> resolved, over completed cases only."""
    out: dict[Key, dict[tuple[str, int], bool]] = defaultdict(dict)
    for r in records:
        if r.completed:
            out[(r.model_id, r.agent_backend)][(r.instance_id, r.attempt)] = r.resolved
    return out


def compare_pair(a: dict[tuple[str, int], bool], b: dict[tuple[str, int], bool]) -> dict[str, Any]:
    """The statistics of one pair on its paired cases (only the counts when there is none)."""
    by_instance: dict[str, list[tuple[int, int]]] = defaultdict(list)
    resolved_a = resolved_b = a_only = b_only = 0
    for key in a.keys() & b.keys():
        x, y = int(a[key]), int(b[key])
        by_instance[key[0]].append((x, y))
        resolved_a, resolved_b = resolved_a + x, resolved_b + y
        a_only, b_only = a_only + (x > y), b_only + (y > x)
    n = sum(len(v) for v in by_instance.values())
    row: dict[str, Any] = {"paired_cases": n, "instances": len(by_instance)}
    if not n:
        return row
    delta, lo, hi = paired_delta_interval(by_instance)
    row.update(
        rate_a=resolved_a / n,
        rate_b=resolved_b / n,
        delta=delta,
        delta_lo=lo,
        delta_hi=hi,
        a_only=a_only,
        b_only=b_only,
        p_value=stats.mcnemar_exact(a_only, b_only),
    )
    return row


def pairwise_rows(records: Sequence[CaseRecord], order: Sequence[Key]) -> list[dict[str, Any]]:
    """One row per pair of `order` (leaderboard order, best first), Holm-adjusted over the pairs with data."""
    done = completed_by_case(records)
    run_id = records[0].run_id if records else ""
    rows = []
    for (ma, ba), (mb, bb) in combinations(order, 2):
        row = {"run_id": run_id, "model_a": ma, "agent_backend_a": ba, "model_b": mb, "agent_backend_b": bb}
        row.update(compare_pair(done.get((ma, ba), {}), done.get((mb, bb), {})))
        rows.append(row)
    tested = [r for r in rows if "p_value" in r]
    for row, adjusted in zip(tested, holm_adjust([r["p_value"] for r in tested]), strict=True):
        row["p_holm"] = adjusted
        row["significant"] = adjusted <= ALPHA
    return rows


def rank_ranges(order: Sequence[Key], pairs: Sequence[dict[str, Any]]) -> dict[Key, str]:
    """'lo-hi' (or 'lo') per model: lo = 1 + significantly better models, hi = n - significantly worse."""
    better: dict[Key, int] = dict.fromkeys(order, 0)
    worse: dict[Key, int] = dict.fromkeys(order, 0)
    for p in pairs:
        if not p.get("significant") or p["delta"] == 0:
            continue
        a, b = (p["model_a"], p["agent_backend_a"]), (p["model_b"], p["agent_backend_b"])
        winner, loser = (a, b) if p["delta"] > 0 else (b, a)
        better[loser] += 1
        worse[winner] += 1
    n = len(order)
    out = {}
    for key in order:
        lo, hi = 1 + better[key], n - worse[key]
        out[key] = str(lo) if lo == hi else f"{lo}-{hi}"
    return out


def csv_cells(pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of pairwise.csv (COLUMNS): 4 significant digits, empty where a pair has no paired case."""
    return [{c: _cell(p.get(c)) for c in COLUMNS} for p in pairs]


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:.4g}" if isinstance(value, float) else value


def format_delta(delta: float, lo: float, hi: float, a_only: int, b_only: int) -> str:
    """'+12.5% [95% CI -3.1%, +28.0%]', or 'no discordant pairs' when the two never differ."""
    if a_only == 0 and b_only == 0:
        return f"{delta:+.1%} (no discordant pairs)"
    return f"{delta:+.1%} [95% CI {lo:+.1%}, {hi:+.1%}]"
