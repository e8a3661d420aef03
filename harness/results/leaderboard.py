"""The leaderboard from CaseRecords: one row per (model, agent backend), versions v0-v3.

Records are the truth; CSV, HTML and the terminal table are views. Every number of a row comes from
the records of that model in that run (cases/<model_id>-*.json), by the functions of harness.results.stats
and harness.results.intervals (95 % intervals clustered by instance). Every pair of models is compared
on paired cases in runs/<run_id>/pairwise.csv (harness.results.pairwise), which also gives each row its
`rank` range. `runs/leaderboard.csv` joins every run's rows, each naming its run_id.
"""

from __future__ import annotations

import csv
import io
import statistics
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness.config import LeaderboardColumns, load_yaml_model
from harness.outcomes import Outcome, OutcomeClass
from harness.results import intervals, pairwise, stats
from harness.results.records import CaseRecord, RunPaths, load_records, write_text_atomic

DEFAULT_COLUMNS_FILE = Path(__file__).resolve().parents[2] / "config" / "leaderboard_columns.yaml"
REPO_PREFIX = "repo:"


def load_columns(columns_file: Path = DEFAULT_COLUMNS_FILE) -> LeaderboardColumns:
    return load_yaml_model(columns_file, LeaderboardColumns)


def version_columns(version: str, columns_file: Path = DEFAULT_COLUMNS_FILE) -> list[str]:
    """The columns of `version`: v0's plus every later version's up to it."""
    return load_columns(columns_file).columns(version)


def _outcome_counts(recs: list[CaseRecord]) -> dict[str, int]:
    counts = {"resolved": 0, "unresolved": 0, "errors": 0, "skipped": 0}
    for r in recs:
        counts[
            {
                Outcome.RESOLVED: "resolved",
                Outcome.UNRESOLVED: "unresolved",
                Outcome.ERROR: "errors",
                Outcome.SKIPPED: "skipped",
            }[r.outcome]
        ] += 1
    return counts


def _pass_columns(recs: list[CaseRecord]) -> dict[str, Any]:
    """pass@1, pass@k, pass^k over completed attempts, on the same instances: those with >= k completed.

    k is the grid's K as the records show it: the highest attempt number recorded for the model in
    the run (skips and errors included: they were scheduled). Skips and infra errors are not failed
    attempts; an instance with fewer than k completed attempts is left out and counted. All three
    averages are over the same instances, so pass^k <= pass@1 <= pass@k.
    """
    per_instance: dict[str, list[int]] = {}
    for r in recs:
        counts = per_instance.setdefault(r.instance_id, [0, 0])
        if r.completed:
            counts[0] += 1
            counts[1] += r.resolved
    k = max((r.attempt for r in recs), default=1)
    usable = {i: (n, c) for i, (n, c) in per_instance.items() if n >= k}
    pass_1, _, _ = stats.mean_over_instances(usable, stats.pass_at_k, 1)
    pass_k, _, _ = stats.mean_over_instances(usable, stats.pass_at_k, k)
    hat_k, _, _ = stats.mean_over_instances(usable, stats.pass_hat_k, k)
    return {
        "pass_at_1": pass_1,
        "k": k,
        "pass_at_k": pass_k,
        "pass_hat_k": hat_k,
        "pass_k_instances_excluded": len(per_instance) - len(usable),
    }


def _by_instance(recs: list[CaseRecord], completed_only: bool) -> dict[str, list[int]]:
    out: dict[str, list[int]] = defaultdict(list)
    for r in recs:
        if r.completed or not completed_only:
            out[r.instance_id].append(int(r.resolved))
    return out


def _interval(by_instance: dict[str, list[int]]) -> tuple[float | None, float | None]:
    """95 % cluster Wilson interval (clusters = instances); None when there is no case."""
    return intervals.cluster_wilson_interval(by_instance) if by_instance else (None, None)


def _rate_columns(recs: list[CaseRecord], counts: dict[str, int]) -> dict[str, Any]:
    n, resolved = len(recs), counts["resolved"]
    completed = resolved + counts["unresolved"]
    lo, hi = _interval(_by_instance(recs, completed_only=False))
    done_lo, done_hi = _interval(_by_instance(recs, completed_only=True))
    by_repo: dict[str, list[int]] = defaultdict(list)
    for r in recs:
        by_repo[r.repo].append(int(r.resolved))
    rates = stats.rates(resolved, completed, n)
    return {
        "resolve_rate": rates["resolve_rate_all"],
        "resolve_rate_lo": lo,
        "resolve_rate_hi": hi,
        "completed": completed,
        "resolve_rate_completed": rates["resolve_rate_completed"],
        "resolve_rate_completed_lo": done_lo,
        "resolve_rate_completed_hi": done_hi,
        "run_fail_rate": rates["run_fail_rate"],
        "instances": len({r.instance_id for r in recs}),
        "repos": len(by_repo),
        "per_repo": {
            repo: {"cases": len(v), "resolved": sum(v), "rate": sum(v) / len(v)}
            for repo, v in sorted(by_repo.items())
        },
    }


def _usage_columns(recs: list[CaseRecord], resolved: int) -> dict[str, Any]:
    ran = [r for r in recs if r.outcome != "skipped"]
    llm = [r for r in ran if r.telemetry.calls]
    costs = [r.telemetry.cost_usd for r in llm]
    cost = sum(costs) if llm and all(c is not None for c in costs) else None  # type: ignore[arg-type]
    provider = [r.telemetry.provider_cost_usd for r in llm if r.telemetry.provider_cost_usd is not None]
    latencies = [x for r in llm for x in r.telemetry.latencies_s]
    walls = [r.own_wall_s for r in ran]  # not the waits on other cases
    sources = sorted({s for r in llm for s in r.telemetry.token_source.split("+")})  # cases may be mixed
    pct = stats.percentiles(latencies)
    return {
        "attempts_run": len(ran),
        "wall_s_median": statistics.median(walls) if walls else None,
        "wall_s_total": round(sum(walls), 3),
        "prompt_tokens": sum(r.telemetry.prompt_tokens for r in llm),
        "completion_tokens": sum(r.telemetry.completion_tokens for r in llm),
        "token_source": "+".join(sources) if sources else "none",
        "cost_usd": cost,
        "cost_per_resolved_usd": cost / resolved if cost is not None and resolved else None,
        "provider_cost_usd": sum(provider) if provider else None,
        "latency_p50": pct["p50"],
        "latency_p90": pct["p90"],
        "latency_p99": pct["p99"],
    }


def leaderboard_tables(records: Iterable[CaseRecord]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(rows, pairs): one row per (model, agent backend), best resolve rate first, with its `rank`
    range from the pairwise tests; and every pair of rows compared on paired cases (pairwise.csv)."""
    records = [r for r in records if r.outcome_class != OutcomeClass.EXCLUDED]  # quarantined: apart
    groups: dict[tuple[str, str], list[CaseRecord]] = defaultdict(list)
    for rec in records:
        groups[(rec.model_id, rec.agent_backend)].append(rec)
    rows = []
    for (model, backend), recs in groups.items():
        counts = _outcome_counts(recs)
        row: dict[str, Any] = {
            "run_id": recs[0].run_id,
            "model": model,
            "agent_backend": backend,
            "cases": len(recs),
        }
        row.update(counts)
        row["integrity_flagged"] = sum(bool(r.integrity) for r in recs)
        row.update(_rate_columns(recs, counts))
        row.update(_pass_columns(recs))
        row.update(_usage_columns(recs, counts["resolved"]))
        rows.append(row)
    rows.sort(key=lambda r: (-(r["resolve_rate"] or 0.0), r["model"], r["agent_backend"]))
    order = [(r["model"], r["agent_backend"]) for r in rows]
    pairs = pairwise.pairwise_rows(records, order)
    ranks = pairwise.rank_ranges(order, pairs)
    for row, key in zip(rows, order, strict=True):
        row["rank"] = ranks[key]
    return rows, pairs


def quarantined_instances(records: Iterable[CaseRecord]) -> list[str]:
    """Instances whose cases were skipped as quarantined (config/quarantine.yaml): reported apart, not rated."""
    return sorted({r.instance_id for r in records if r.outcome_class == OutcomeClass.EXCLUDED})


def leaderboard_rows(records: Iterable[CaseRecord]) -> list[dict[str, Any]]:
    """One row per (model, agent backend), best resolve rate first; all v3 columns plus `per_repo`."""
    return leaderboard_tables(records)[0]


def csv_rows(
    rows: list[dict[str, Any]], version: str, columns_file: Path = DEFAULT_COLUMNS_FILE
) -> tuple[list[str], list[dict]]:
    """(header, rows) for a CSV of `version`; v2+ spreads per-repo rates over repo:<name> columns."""
    columns = version_columns(version, columns_file)
    repos = sorted({repo for r in rows for repo in r.get("per_repo", {})}) if "repos" in columns else []
    header = columns + [REPO_PREFIX + repo for repo in repos]
    out = []
    for row in rows:
        flat = {c: _cell(row.get(c)) for c in columns}
        for repo in repos:
            cell = row.get("per_repo", {}).get(repo)
            flat[REPO_PREFIX + repo] = _cell(cell["rate"]) if cell else ""
        out.append(flat)
    return header, out


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    return round(value, 4) if isinstance(value, float) else value


def write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    """The CSV, redacted and atomic with a unique temporary name (two runs may finish at once)."""
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())


def build_leaderboard(
    paths: RunPaths,
    version: str | None = None,
    records: list[CaseRecord] | None = None,
    columns_file: Path = DEFAULT_COLUMNS_FILE,
) -> list[dict[str, Any]]:
    """Rebuild runs/<run_id>/leaderboard.csv, pairwise.csv and leaderboard.html from the records,
    then runs/leaderboard.csv."""
    records = load_records(paths) if records is None else records
    rows, pairs = leaderboard_tables(records)
    version = version or load_columns(columns_file).default
    header, flat = csv_rows(rows, version, columns_file)
    write_csv(paths.leaderboard_csv, flat, header)
    write_csv(paths.root / "pairwise.csv", pairwise.csv_cells(pairs), pairwise.COLUMNS)
    _write_html(paths, rows, records, pairs)
    write_all_runs(paths.runs_dir)
    return rows


def _write_html(
    paths: RunPaths, rows: list[dict[str, Any]], records: list[CaseRecord], pairs: list[dict[str, Any]]
) -> None:
    try:
        from harness.results.html import write_html
    except ImportError:  # the report module is optional for the CSV path
        return
    write_html(
        paths.root / "leaderboard.html",
        rows,
        records,
        title=f"swebench-harness run {paths.run_id}",
        run_dir=paths.root,
        pairs=pairs,
    )


def write_all_runs(runs_dir: Path) -> Path:
    combined: list[dict[str, str]] = []
    header: list[str] = []
    for csv_path in sorted(runs_dir.glob("*/leaderboard.csv")):
        with csv_path.open(newline="") as f:
            reader = csv.DictReader(f)
            header += [c for c in reader.fieldnames or [] if c not in header]
            combined.extend(reader)
    out = runs_dir / "leaderboard.csv"
    write_csv(out, combined, header)
    return out


def _fmt_rate(row: dict[str, Any]) -> str:
    if row["resolve_rate_lo"] is None:
        return _num(row["resolve_rate"], ".1%")
    return f"{row['resolve_rate']:.1%} [{row['resolve_rate_lo']:.0%}-{row['resolve_rate_hi']:.0%}]"


def format_table(rows: list[dict[str, Any]]) -> str:
    """The terminal summary: one line per model, like pytest-benchmark's table.

    `rank` is a range when the pairwise tests cannot order models ("1-2": not significantly different).
    """
    headers = [
        "rank",
        "model",
        "backend",
        "resolved",
        "rate [95% CI]",
        "pass@1",
        "pass@k",
        "fail",
        "wall p50",
        "tokens in/out",
        "cost",
        "lat p50",
    ]
    cells = [
        [
            str(r.get("rank", "")),
            str(r["model"]),
            str(r["agent_backend"]),
            f"{r['resolved']}/{r['cases']}",
            _fmt_rate(r),
            _num(r["pass_at_1"], ".2f"),
            _fmt_pass_k(r),
            _num(r["run_fail_rate"], ".0%"),
            _num(r["wall_s_median"], ".1f", "s"),
            f"{r['prompt_tokens']}/{r['completion_tokens']}",
            "unknown"
            if r["cost_usd"] is None and r["prompt_tokens"]
            else _num(r["cost_usd"], ".4f", prefix="$"),
            _num(r["latency_p50"], ".2f", "s"),
        ]
        for r in rows
    ]
    widths = [max([len(h), *(len(c[i]) for c in cells)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    if len(rows) > 1:
        lines.append(RANK_NOTE)
    return "\n".join(lines)


RANK_NOTE = (
    "rank: a range where pairs are not significantly different (exact McNemar on paired cases, "
    "Holm-adjusted, p <= 0.05; pairwise.csv); 95% CI: cluster Wilson by instance"
)


def _fmt_pass_k(row: dict[str, Any]) -> str:
    left_out = row.get("pass_k_instances_excluded") or 0
    note = f"; {left_out} inst. left out" if left_out else ""
    return f"{_num(row['pass_at_k'], '.2f')} (k={row['k']}{note})"


def _num(value: float | None, fmt: str, suffix: str = "", prefix: str = "") -> str:
    return "-" if value is None else f"{prefix}{value:{fmt}}{suffix}"
