"""harness.leaderboard from synthetic CaseRecords, and `python -m harness leaderboard` as a user runs it."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

from harness.leaderboard import (
    COLUMNS_V0,
    build_leaderboard,
    format_table,
    leaderboard_rows,
    write_all_runs,
    write_csv,
)
from harness.records import CaseRecord, RunPaths, write_record

ROOT = Path(__file__).resolve().parents[1]


def rec(model_id: str, instance_id: str, outcome: str, attempt: int = 1, run_id: str = "run-a") -> CaseRecord:
    cls = {"resolved": "resolved", "unresolved": "unresolved", "error": "provider-error", "skipped": "budget"}
    return CaseRecord(
        run_id=run_id,
        case_id=f"{model_id}-{instance_id}-a{attempt}",
        model_id=model_id,
        provider=None,
        litellm_id=None,
        instance_id=instance_id,
        repo="r/r",
        split="dev",
        attempt=attempt,
        agent_backend="mini",
        outcome=outcome,  # type: ignore[arg-type]
        outcome_class=cls[outcome],
    )


def synthetic(run_id: str = "run-a") -> list[CaseRecord]:
    """kimi 2/3 resolved; glm 1/4 (one of each outcome); empty 0/2; qwen 1/4 (ties glm on rate)."""
    return [
        rec("kimi", "i1", "resolved", 1, run_id),
        rec("kimi", "i1", "unresolved", 2, run_id),
        rec("kimi", "i2", "resolved", 1, run_id),
        rec("glm", "i1", "resolved", 1, run_id),
        rec("glm", "i2", "unresolved", 1, run_id),
        rec("glm", "i3", "error", 1, run_id),
        rec("glm", "i4", "skipped", 1, run_id),
        rec("empty", "i1", "unresolved", 1, run_id),
        rec("empty", "i2", "unresolved", 1, run_id),
        rec("qwen", "i1", "resolved", 1, run_id),
        rec("qwen", "i2", "error", 1, run_id),
        rec("qwen", "i3", "error", 1, run_id),
        rec("qwen", "i4", "error", 1, run_id),
    ]


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_leaderboard_rows_counts_and_order() -> None:
    rows = leaderboard_rows(synthetic())
    assert [r["model"] for r in rows] == ["kimi", "glm", "qwen", "empty"]  # rate desc, then model name
    by_model = {r["model"]: r for r in rows}
    assert by_model["kimi"] == {
        "run_id": "run-a",
        "model": "kimi",
        "cases": 3,
        "resolved": 2,
        "resolve_rate": 0.6667,
        "unresolved": 1,
        "errors": 0,
        "skipped": 0,
    }
    assert by_model["glm"] == {
        "run_id": "run-a",
        "model": "glm",
        "cases": 4,
        "resolved": 1,
        "resolve_rate": 0.25,
        "unresolved": 1,
        "errors": 1,
        "skipped": 1,
    }
    # resolve_rate divides by all cases, errors and skips included
    assert by_model["qwen"]["resolve_rate"] == 0.25
    assert by_model["qwen"]["errors"] == 3
    assert by_model["empty"]["resolve_rate"] == 0.0
    for row in rows:
        assert list(row) == COLUMNS_V0
        assert row["cases"] == sum(int(row[k]) for k in ("resolved", "unresolved", "errors", "skipped"))


def test_leaderboard_rows_empty() -> None:
    assert leaderboard_rows([]) == []


def test_format_table() -> None:
    table = format_table(leaderboard_rows(synthetic()))
    lines = table.splitlines()
    assert lines[0].split() == [
        "model",
        "cases",
        "resolved",
        "resolve_rate",
        "unresolved",
        "errors",
        "skipped",
    ]
    assert lines[1].split() == ["kimi", "3", "2", "66.7%", "1", "0", "0"]
    assert lines[2].split() == ["glm", "4", "1", "25.0%", "1", "1", "1"]
    assert lines[4].split() == ["empty", "2", "0", "0.0%", "2", "0", "0"]
    assert len(lines) == 5
    # columns are aligned: every "resolved" cell starts where its header starts
    col = lines[0].index("resolved")
    assert lines[1][col] == "2" and lines[4][col] == "0"


def test_format_table_without_rows() -> None:
    assert format_table([]).split() == [
        "model",
        "cases",
        "resolved",
        "resolve_rate",
        "unresolved",
        "errors",
        "skipped",
    ]


def test_write_csv(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "board.csv"
    write_csv(path, leaderboard_rows(synthetic()))
    rows = read_csv(path)
    assert list(rows[0]) == COLUMNS_V0
    assert rows[0] == {
        "run_id": "run-a",
        "model": "kimi",
        "cases": "3",
        "resolved": "2",
        "resolve_rate": "0.6667",
        "unresolved": "1",
        "errors": "0",
        "skipped": "0",
    }
    assert sorted(p.name for p in path.parent.iterdir()) == ["board.csv"]


def test_build_leaderboard_across_two_runs(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    first, second = RunPaths(runs, "run-a"), RunPaths(runs, "run-b")
    for r in synthetic("run-a"):
        write_record(first, r)
    for r in [rec("kimi", "i1", "unresolved", run_id="run-b"), rec("gold", "i1", "resolved", run_id="run-b")]:
        write_record(second, r)

    rows_a = build_leaderboard(first)
    assert [r["model"] for r in rows_a] == ["kimi", "glm", "qwen", "empty"]
    assert read_csv(first.leaderboard_csv)[0]["resolve_rate"] == "0.6667"
    assert len(read_csv(runs / "leaderboard.csv")) == 4

    rows_b = build_leaderboard(second)
    assert [(r["model"], r["resolve_rate"]) for r in rows_b] == [("gold", 1.0), ("kimi", 0.0)]
    combined = read_csv(runs / "leaderboard.csv")
    assert [(r["run_id"], r["model"]) for r in combined] == [
        ("run-a", "kimi"),
        ("run-a", "glm"),
        ("run-a", "qwen"),
        ("run-a", "empty"),
        ("run-b", "gold"),
        ("run-b", "kimi"),
    ]
    # rebuilding is idempotent: the combined file is not read back as a run
    write_all_runs(runs)
    assert len(read_csv(runs / "leaderboard.csv")) == 6


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_cli_leaderboard(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    paths = RunPaths(runs, "run-a")
    for r in synthetic("run-a"):
        write_record(paths, r)
    proc = run_cli("leaderboard", str(paths.root))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    out = proc.stdout.splitlines()
    assert out[1].split() == ["kimi", "3", "2", "66.7%", "1", "0", "0"]
    assert out[-1] == f"written: {paths.leaderboard_csv}, {runs / 'leaderboard.csv'}"
    assert [r["model"] for r in read_csv(paths.leaderboard_csv)] == ["kimi", "glm", "qwen", "empty"]
    assert [r["run_id"] for r in read_csv(runs / "leaderboard.csv")] == ["run-a"] * 4
    kimi = [json.loads(line) for line in (paths.predictions / "kimi.jsonl").read_text().splitlines()]
    assert [(p["instance_id"], p["attempt"]) for p in kimi] == [("i1", 1), ("i1", 2), ("i2", 1)]


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
    paths = RunPaths(tmp_path / "runs", "run-a")
    write_record(paths, rec("kimi", "i1", "resolved"))
    paths.record("kimi-i2-a1").write_text('{"run_id": "run-a", "case')
    proc = run_cli("leaderboard", str(paths.root))
    assert "Traceback" not in proc.stderr
    assert proc.returncode in (0, 2)
