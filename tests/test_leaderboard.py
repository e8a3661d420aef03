"""harness.results.leaderboard from synthetic CaseRecords, and `python -m harness leaderboard` as a user runs it."""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.results.leaderboard import (
    build_leaderboard,
    csv_rows,
    format_table,
    leaderboard_rows,
    version_columns,
    write_all_runs,
)
from harness.results.records import CaseRecord, RunPaths, write_record
from tests.helpers import case_record, distribution_quantiles, run_cli


def synthetic(run_id: str = "run-a") -> list[CaseRecord]:
    """kimi 2/3 resolved; glm 1/4 (one of each outcome); empty 0/2; qwen 1/4 (ties glm on rate)."""
    return [
        case_record("kimi", "i1", "resolved", 1, run_id=run_id),
        case_record("kimi", "i1", "unresolved", 2, run_id=run_id),
        case_record("kimi", "i2", "resolved", 1, run_id=run_id),
        case_record("glm", "i1", "resolved", 1, run_id=run_id),
        case_record("glm", "i2", "unresolved", 1, run_id=run_id),
        case_record("glm", "i3", "error", 1, run_id=run_id),
        case_record("glm", "i4", "skipped", 1, run_id=run_id),
        case_record("empty", "i1", "unresolved", 1, run_id=run_id),
        case_record("empty", "i2", "unresolved", 1, run_id=run_id),
        case_record("qwen", "i1", "resolved", 1, run_id=run_id),
        case_record("qwen", "i2", "error", 1, run_id=run_id),
        case_record("qwen", "i3", "error", 1, run_id=run_id),
        case_record("qwen", "i4", "error", 1, run_id=run_id),
    ]


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


V0 = [
    "run_id",
    "model",
    "agent_backend",
    "cases",
    "resolved",
    "resolve_rate",
    "unresolved",
    "errors",
    "skipped",
]


def test_rows_count_outcomes_per_model_best_first() -> None:
    rows = leaderboard_rows(synthetic())
    assert [r["model"] for r in rows] == ["kimi", "glm", "qwen", "empty"]
    glm = rows[1]
    assert (glm["cases"], glm["resolved"], glm["unresolved"], glm["errors"], glm["skipped"]) == (
        4,
        1,
        1,
        1,
        1,
    )
    assert glm["resolve_rate"] == 0.25 and glm["completed"] == 2
    assert glm["resolve_rate_completed"] == 0.5 and glm["run_fail_rate"] == 0.5
    assert leaderboard_rows([]) == []


def test_intervals_cluster_by_instance_and_pass_at_k() -> None:
    from harness.results.intervals import cluster_wilson_interval

    kimi = leaderboard_rows(synthetic())[0]
    by_instance = {"i1": [1, 0], "i2": [1]}
    assert (kimi["resolve_rate_lo"], kimi["resolve_rate_hi"]) == cluster_wilson_interval(by_instance)
    assert kimi["resolve_rate_lo"] < kimi["resolve_rate"] < kimi["resolve_rate_hi"]
    # k = 2 (highest attempt); only i1 has 2 completed attempts: i2 is left out of all three
    assert kimi["k"] == 2 and kimi["pass_k_instances_excluded"] == 1
    assert kimi["pass_at_1"] == pytest.approx(0.5) and kimi["pass_at_k"] == pytest.approx(1.0)
    assert kimi["pass_hat_k"] == pytest.approx(0.0)
    assert kimi["per_repo"] == {"r/r": {"cases": 3, "resolved": 2, "rate": pytest.approx(2 / 3)}}
    glm = leaderboard_rows(synthetic())[1]  # 1 resolved, 1 unresolved, 1 error, 1 skipped
    assert (glm["resolve_rate_completed_lo"], glm["resolve_rate_completed_hi"]) == cluster_wilson_interval(
        {"i1": [1], "i2": [0]}
    )


def test_pass_at_k_with_a_short_instance_does_not_fall_below_pass_at_1() -> None:
    """Defect: 8 instances 2/2 plus one 0/3 gave k=3, pass@k 0.0 beside pass@1 0.89."""
    recs = [case_record("m", f"i{i}", "resolved", a) for i in range(8) for a in (1, 2)]
    recs += [case_record("m", "i8", "unresolved", a) for a in (1, 2, 3)]
    row = leaderboard_rows(recs)[0]
    assert row["k"] == 3 and row["pass_k_instances_excluded"] == 8
    assert row["pass_at_1"] == row["pass_at_k"] == row["pass_hat_k"] == 0.0  # the one instance with 3
    assert row["resolve_rate"] == pytest.approx(16 / 19)
    header, flat = csv_rows([row], "v1")
    assert flat[0]["k"] == 3 and flat[0]["pass_k_instances_excluded"] == 8


def test_skips_and_errors_are_not_failed_attempts() -> None:
    """Defect: a1 resolved + a2 skipped for budget on 8 instances gave pass^k = 0.0."""
    recs = [case_record("m", f"i{i}", "resolved", 1) for i in range(8)]
    recs += [case_record("m", f"i{i}", "skipped" if i % 2 else "error", 2) for i in range(8)]
    row = leaderboard_rows(recs)[0]
    assert row["k"] == 2 and row["pass_k_instances_excluded"] == 8
    assert row["pass_at_1"] is None and row["pass_at_k"] is None and row["pass_hat_k"] is None
    recs[8] = case_record("m", "i0", "resolved", 2)  # i0 now has 2 completed attempts, both resolved
    row = leaderboard_rows(recs)[0]
    assert row["pass_k_instances_excluded"] == 7 and row["pass_hat_k"] == 1.0


def test_pass_at_k_is_never_below_pass_at_1_exhaustively() -> None:
    """Every grid of 2 instances x 1-3 attempts x {resolved, unresolved, error, skipped}."""
    outcomes = ["resolved", "unresolved", "error", "skipped"]
    per_instance = [seq for n in (1, 2, 3) for seq in itertools.product(outcomes, repeat=n)]
    checked = 0
    for first, second in itertools.product(per_instance, repeat=2):
        recs = [case_record("m", "i0", o, a + 1) for a, o in enumerate(first)]
        recs += [case_record("m", "i1", o, a + 1) for a, o in enumerate(second)]
        row = leaderboard_rows(recs)[0]
        k = max(len(first), len(second))
        done = [sum(o in ("resolved", "unresolved") for o in seq) for seq in (first, second)]
        assert row["k"] == k and row["pass_k_instances_excluded"] == sum(d < k for d in done)
        if row["pass_at_1"] is None:
            assert row["pass_at_k"] is None and row["pass_hat_k"] is None and all(d < k for d in done)
            continue
        assert row["pass_hat_k"] <= row["pass_at_1"] + 1e-12 <= row["pass_at_k"] + 2e-12
        checked += 1
    assert checked > 1000


def test_usage_columns_keep_unknown_cost_unknown() -> None:
    from harness.results.records import Telemetry

    recs = synthetic()
    recs[0].telemetry = Telemetry(
        calls=2, prompt_tokens=100, completion_tokens=10, cost_usd=0.5, latencies_s=[1.0, 3.0]
    )
    recs[2].telemetry = Telemetry(
        calls=1, prompt_tokens=50, completion_tokens=5, cost_usd=None, latencies_s=[2.0]
    )
    kimi = leaderboard_rows(recs)[0]
    assert (kimi["prompt_tokens"], kimi["completion_tokens"]) == (150, 15)
    assert kimi["cost_usd"] is None and kimi["cost_per_resolved_usd"] is None
    assert kimi["latency_p50"] == 2.0 and kimi["latency_p90"] == pytest.approx(2.8)
    recs[2].telemetry.cost_usd = 0.25
    kimi = leaderboard_rows(recs)[0]
    assert kimi["cost_usd"] == 0.75 and kimi["cost_per_resolved_usd"] == 0.375


def test_wall_counts_each_cases_own_time_not_its_waits_on_other_cases() -> None:
    """Agent + evaluation + the case's overhead. Not the hand-off (the finished agent's patch waiting for its
    worker, still grading the case before) nor the evaluation queue: those depend on the schedule."""
    times = {"agent_wall_s": 10.0, "eval_wall_s": 5.0, "overhead_s": 1.0}
    recs = [
        case_record("m", "i1", "resolved", **times, handoff_wait_s=40.0, case_wall_s=56.0),
        case_record("m", "i2", "unresolved", **times | {"agent_wall_s": 20.0}, eval_queue_wait_s=30.0, case_wall_s=56.0),
        case_record("m", "i3", "unresolved", **times | {"agent_wall_s": 30.0}, case_wall_s=36.0),
        case_record("empty", "i1", "unresolved", outcome_class="empty-patch", handoff_wait_s=12.0, case_wall_s=12.0),
    ]  # fmt: skip
    rows = {row["model"]: row for row in leaderboard_rows(recs)}
    assert (rows["m"]["wall_s_median"], rows["m"]["wall_s_total"]) == (26.0, 16.0 + 26.0 + 36.0)
    assert (rows["empty"]["wall_s_median"], rows["empty"]["wall_s_total"]) == (0.0, 0.0)  # it only waited


def test_each_version_adds_columns() -> None:
    assert version_columns("v0") == V0
    v1, v2, v3 = (version_columns(v) for v in ("v1", "v2", "v3"))
    assert v1[: len(V0)] == V0 and {"pass_at_1", "pass_at_k", "run_fail_rate", "wall_s_median"} <= set(v1)
    assert v2[: len(v1)] == v1 and "repos" in v2
    assert v3[: len(v2)] == v2 and {"cost_usd", "latency_p50", "latency_p99", "prompt_tokens"} <= set(v3)
    with pytest.raises(HarnessError, match="unknown"):
        version_columns("v9")


def test_v2_spreads_repos_over_columns() -> None:
    recs = synthetic()
    recs[2].repo = "o/other"
    header, flat = csv_rows(leaderboard_rows(recs), "v2")
    assert header[-2:] == ["repo:o/other", "repo:r/r"]
    kimi = flat[0]
    assert (kimi["repo:o/other"], kimi["repo:r/r"]) == (1.0, 0.5)
    assert flat[-1]["repo:o/other"] == ""  # empty has no case there
    header0, _ = csv_rows(leaderboard_rows(recs), "v0")
    assert header0 == V0


def test_format_table() -> None:
    lines = format_table(leaderboard_rows(synthetic())).splitlines()
    assert lines[0].split()[:5] == ["rank", "model", "backend", "resolved", "rate"]
    assert lines[1].split()[:6] == ["1-4", "kimi", "mini", "2/3", "66.7%", "[4%-99%]"]  # 2 instances: wide
    assert len(lines) == 6 and lines[-1].startswith("rank: a range where pairs are not significantly")


def test_build_leaderboard_across_two_runs(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for run_id in ("run-a", "run-b"):
        paths = RunPaths(runs, run_id)
        for r in synthetic(run_id):
            write_record(paths, r)
        rows = build_leaderboard(paths, version="v1")
        assert len(rows) == 4
        assert [r["run_id"] for r in read_csv(paths.leaderboard_csv)] == [run_id] * 4
    combined = read_csv(runs / "leaderboard.csv")
    assert [r["run_id"] for r in combined] == ["run-a"] * 4 + ["run-b"] * 4
    assert list(combined[0])[: len(V0)] == V0
    assert write_all_runs(runs) == runs / "leaderboard.csv"


def test_cli_leaderboard(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    paths = RunPaths(runs, "run-a")
    for r in synthetic("run-a"):
        write_record(paths, r)
    proc = run_cli("leaderboard", str(paths.root))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    out = proc.stdout.splitlines()
    assert out[1].split()[:5] == ["1-4", "kimi", "mini", "2/3", "66.7%"]
    assert out[-1] == f"written: {paths.leaderboard_csv}, {runs / 'leaderboard.csv'}"
    assert [r["model"] for r in read_csv(paths.leaderboard_csv)] == ["kimi", "glm", "qwen", "empty"]
    assert [r["run_id"] for r in read_csv(runs / "leaderboard.csv")] == ["run-a"] * 4
    kimi = [
        json.loads(line)
        for k in (1, 2)
        for line in (paths.predictions / "kimi" / f"attempt-{k}.jsonl").read_text().splitlines()
    ]
    assert [(p["instance_id"], p["attempt"]) for p in kimi] == [("i1", 1), ("i2", 1), ("i1", 2)]


def test_cli_leaderboard_not_a_run(tmp_path: Path) -> None:
    proc = run_cli("leaderboard", str(tmp_path))
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    assert f"{tmp_path}: not a run folder (no cases/)" in lines[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "leaderboard.csv").exists()


def test_cli_leaderboard_corrupt_record(tmp_path: Path) -> None:
    """A torn record is left in place, not counted, and named; the rest of the run still gets its leaderboard."""
    paths = RunPaths(tmp_path / "runs", "run-a")
    write_record(paths, case_record("kimi", "i1", "resolved"))
    torn = paths.record("kimi-i2-a1")
    torn.write_text('{"run_id": "run-a", "case')
    proc = run_cli("leaderboard", str(paths.root))
    assert (proc.returncode, proc.stderr) == (0, "")
    out = proc.stdout.splitlines()
    assert out[1].split()[:5] == ["1", "kimi", "mini", "1/1", "100.0%"]  # the torn case is not counted
    assert out[-2].startswith("written: ")
    assert out[-1] == f"unreadable record left in place (not counted): {torn}"
    assert torn.read_text() == '{"run_id": "run-a", "case'
    assert [(r["model"], r["cases"]) for r in read_csv(paths.leaderboard_csv)] == [("kimi", "1")]


def _exact_cluster_bootstrap_quantiles(
    clusters: dict[str, list[int]], qs: tuple[float, float]
) -> list[float]:
    """Quantiles of the exact cluster bootstrap distribution: every G-tuple of G clusters, pooled rate."""
    sums = [(sum(v), len(v)) for v in clusters.values()]
    g = len(sums)
    dist: dict[float, float] = {}
    for draw in itertools.product(sums, repeat=g):
        rate = sum(s for s, _ in draw) / sum(n for _, n in draw)
        dist[rate] = dist.get(rate, 0.0) + 1 / g**g
    return distribution_quantiles(dist, qs)


def test_repo_bootstrap_kept_for_the_coverage_benchmark_resamples_repos() -> None:
    """Not on the leaderboard any more (it under-covers with few repos), still what
    benchmarks/interval_coverage.py measures as the old interval: pin its percentile quantiles."""
    from harness.results import stats

    outcomes = {"a/a": [1, 1], "b/b": [1, 0], "c/c": [0, 1], "d/d": [0, 0], "e/e": [1, 0]}
    exact = _exact_cluster_bootstrap_quantiles(outcomes, (0.025, 0.975))
    assert exact == pytest.approx([0.2, 0.8])
    # 1000 replicates land on the exact quantiles: pooled rates of 5 two-case repos live on a 1/10 grid
    assert stats.cluster_bootstrap_interval(outcomes, n_boot=1000) == pytest.approx(exact, abs=1e-9)
    assert stats.cluster_bootstrap_interval({"a/a": [1, 0, 1]}) == pytest.approx((2 / 3, 2 / 3))
    assert "boot_lo" not in leaderboard_rows(synthetic())[0]  # dropped from the leaderboard


def test_token_sources_of_the_cases_are_joined_with_plus() -> None:
    from harness.results.records import Telemetry

    recs = synthetic()
    recs[0].telemetry = Telemetry(calls=1, token_source="provider")
    recs[2].telemetry = Telemetry(calls=2, token_source="tokenizer")
    assert leaderboard_rows(recs)[0]["token_source"] == "provider+tokenizer"
    recs[2].telemetry.token_source = "provider"
    assert leaderboard_rows(recs)[0]["token_source"] == "provider"
    assert leaderboard_rows(synthetic())[0]["token_source"] == "none"  # no LLM call at all


def test_a_source_is_named_once_when_a_case_is_already_mixed() -> None:
    from harness.results.records import Telemetry

    recs = synthetic()
    recs[0].telemetry = Telemetry(calls=2, token_source="provider+tokenizer")
    recs[2].telemetry = Telemetry(calls=1, token_source="provider")
    assert leaderboard_rows(recs)[0]["token_source"] == "provider+tokenizer"


def test_one_row_per_agent_backend_when_both_ran(tmp_path: Path) -> None:
    """The same model under mini-swe-agent and SWE-agent: two rows, each from its own records."""
    recs = [
        case_record("scripted", "i1", "resolved", agent_backend="mini-swe-agent"),
        case_record("scripted", "i2", "resolved", agent_backend="mini-swe-agent"),
        case_record("scripted", "i3", "unresolved", agent_backend="mini-swe-agent"),
        case_record("scripted", "i1", "resolved", 2, agent_backend="swe-agent"),
        case_record("scripted", "i2", "unresolved", 2, agent_backend="swe-agent"),
        case_record("gold", "i1", "resolved", agent_backend="baseline"),
    ]
    paths = RunPaths(tmp_path / "runs", "run-a")
    for r in recs:
        write_record(paths, r)
    build_leaderboard(paths, version="v0")
    rows = [
        (r["model"], r["agent_backend"], r["cases"], r["resolved"]) for r in read_csv(paths.leaderboard_csv)
    ]
    assert rows == [
        ("gold", "baseline", "1", "1"),
        ("scripted", "mini-swe-agent", "3", "2"),
        ("scripted", "swe-agent", "2", "1"),
    ]
    table = format_table(leaderboard_rows(recs)).splitlines()
    assert [line.split()[:4] for line in table[1:4]] == [
        ["1-3", "gold", "baseline", "1/1"],
        ["1-3", "scripted", "mini-swe-agent", "2/3"],
        ["1-3", "scripted", "swe-agent", "1/2"],
    ]
