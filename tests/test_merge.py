"""`python -m harness merge`: shard runs joined into one run folder; conflicting or unfinished parts refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.results.merge import merge_runs
from harness.results.records import (
    CaseRecord,
    RunPaths,
    load_records,
    mark_running,
    write_json_atomic,
    write_record,
)

ROOT = Path(__file__).resolve().parents[1]


def rec(
    run_id: str, model: str, instance: str, outcome: str = "resolved", attempt: int = 1, **kw
) -> CaseRecord:
    return CaseRecord(
        run_id=run_id,
        case_id=f"{model}-{instance}-a{attempt}",
        model_id=model,
        provider=None,
        litellm_id=None,
        instance_id=instance,
        repo=f"org/{instance.split('-')[0]}",
        split="dev",
        attempt=attempt,
        agent_backend="baseline",
        outcome=outcome,
        outcome_class=kw.pop("outcome_class", outcome),
        config_hash=kw.pop("config_hash", "sha256:same"),
        **kw,
    )


def make_run(runs: Path, run_id: str, records: list[CaseRecord], shard: str | None = None) -> RunPaths:
    paths = RunPaths(runs, run_id)
    for r in records:
        write_record(paths, r)
        art = paths.case_artifacts(r.case_id)
        art.mkdir(parents=True, exist_ok=True)
        (art / "patch.diff").write_text(f"patch of {r.case_id}\n")
    manifest = {"run_id": run_id, "grids": ["i1"], "argv": ["evals", "-m", "i1"]}
    if shard:
        k, n = shard.split("/")
        manifest["shard"] = {"index": int(k), "count": int(n)}
    write_json_atomic(paths.manifest, manifest)
    return paths


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_merge_joins_records_artifacts_and_names_the_parts(tmp_path):
    a = make_run(tmp_path, "s1", [rec("s1", "gold", "x-1"), rec("s1", "gold", "x-1", attempt=2)], "1/2")
    (a.artifacts / "gold-x-1-a1.infra-1-123").mkdir(parents=True)  # a try set aside by --infra-retries
    b = make_run(
        tmp_path, "s2", [rec("s2", "empty", "x-1", "unresolved", outcome_class="empty-patch")], "2/2"
    )
    result = merge_runs([a, b], RunPaths(tmp_path, "merged"))
    merged = {r.case_id: r for r in load_records(RunPaths(tmp_path, "merged"))}
    assert sorted(merged) == ["empty-x-1-a1", "gold-x-1-a1", "gold-x-1-a2"]
    assert {r.run_id for r in merged.values()} == {"merged"}
    assert merged["empty-x-1-a1"].outcome_class == "empty-patch"
    root = tmp_path / "merged"
    assert (root / "artifacts" / "gold-x-1-a2" / "patch.diff").read_text() == "patch of gold-x-1-a2\n"
    assert (root / "artifacts" / "gold-x-1-a1.infra-1-123").is_dir()
    manifest = json.loads((root / "manifest.json").read_text())
    assert [(p["run_id"], p["shard"]["index"], p["case_ids"]) for p in manifest["parts"]] == [
        ("s1", 1, ["gold-x-1-a1", "gold-x-1-a2"]),
        ("s2", 2, ["empty-x-1-a1"]),
    ]
    assert manifest["cases"] == 3 and manifest["grids"] == ["i1"] and result.duplicates == 0


def test_identical_duplicates_are_kept_once(tmp_path):
    a = make_run(tmp_path, "s1", [rec("s1", "gold", "x-1")])
    b = make_run(tmp_path, "s2", [rec("s2", "gold", "x-1"), rec("s2", "gold", "x-2")])
    result = merge_runs([a, b], RunPaths(tmp_path, "m"))
    assert result.duplicates == 1 and len(result.records) == 2
    assert json.loads((tmp_path / "m" / "manifest.json").read_text())["parts"][1]["case_ids"] == [
        "gold-x-2-a1"
    ]


@pytest.mark.parametrize(
    "other",
    [
        {"outcome": "unresolved", "outcome_class": "unresolved"},
        {"outcome": "error", "outcome_class": "evaluator-error"},
        {"patch_sha256": "f" * 64},
    ],
)
def test_runs_that_disagree_on_a_case_are_refused(tmp_path, other):
    a = make_run(tmp_path, "s1", [rec("s1", "kimi", "x-1", patch_sha256="a" * 64)])
    fields = {"patch_sha256": "a" * 64} | other
    outcome = fields.pop("outcome", "resolved")
    b = make_run(tmp_path, "s2", [rec("s2", "kimi", "x-1", outcome, **fields)])
    with pytest.raises(HarnessError) as exc:
        merge_runs([a, b], RunPaths(tmp_path, "m"))
    message = str(exc.value)
    assert "kimi-x-1-a1" in message and "s1" in message and "s2" in message and "conflicting" in message
    assert "\n" not in message and not (tmp_path / "m" / "cases").exists()


def test_refusals_are_one_line(tmp_path):
    a = make_run(tmp_path, "s1", [rec("s1", "gold", "x-1")])
    other_config = make_run(tmp_path, "s2", [rec("s2", "gold", "x-2", config_hash="sha256:other")])
    with pytest.raises(HarnessError, match="different configs"):
        merge_runs([a, other_config], RunPaths(tmp_path, "m1"))
    with pytest.raises(HarnessError, match="is one of the runs being merged"):
        merge_runs([a], a)
    with pytest.raises(HarnessError, match="already has records"):
        merge_runs([a], RunPaths(tmp_path, "s2"))
    with pytest.raises(HarnessError, match="named twice"):
        merge_runs([a, RunPaths(tmp_path, "s1")], RunPaths(tmp_path, "m2"))
    unfinished = make_run(tmp_path, "s3", [rec("s3", "gold", "x-3")])
    mark_running(unfinished, "gold-x-4-a1")
    with pytest.raises(HarnessError, match="--resume s3"):
        merge_runs([a, unfinished], RunPaths(tmp_path, "m3"))
    (a.cases / "torn.json").write_text("{")
    with pytest.raises(HarnessError, match="torn.json"):
        merge_runs([a], RunPaths(tmp_path, "m4"))


def test_cli_merge_rebuilds_leaderboard_predictions_and_gates(tmp_path):
    runs = tmp_path / "runs"
    make_run(runs, "s1", [rec("s1", "gold", "x-1"), rec("s1", "empty", "x-2", "unresolved")], "1/2")
    make_run(runs, "s2", [rec("s2", "gold", "x-2"), rec("s2", "empty", "x-1", "unresolved")], "2/2")
    done = run_cli("merge", str(runs / "s1"), str(runs / "s2"), "--into", str(runs / "all"))
    assert done.returncode == 0, done.stderr
    assert "merged 4 cases from s1 (2), s2 (2)" in done.stdout
    rows = (runs / "all" / "leaderboard.csv").read_text().splitlines()
    assert rows[1].startswith("all,gold,") and rows[2].startswith("all,empty,")
    assert (runs / "all" / "leaderboard.html").is_file()
    preds = [
        json.loads(x)
        for x in (runs / "all" / "predictions" / "gold" / "attempt-1.jsonl").read_text().splitlines()
    ]
    assert [(p["instance_id"], p["run_id"]) for p in preds] == [("x-1", "all"), ("x-2", "all")]
    assert "gates" in json.loads((runs / "all" / "manifest.json").read_text())


def test_cli_merge_refusal_is_one_error_line(tmp_path):
    make_run(tmp_path, "s1", [rec("s1", "gold", "x-1")])
    make_run(tmp_path, "s2", [rec("s2", "gold", "x-1", "unresolved")])
    done = run_cli("merge", str(tmp_path / "s1"), str(tmp_path / "s2"), "--into", str(tmp_path / "m"))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(
        "error: gold-x-1-a1: run s1 recorded resolved"
    )


def test_shards_that_share_one_run_id_merge_by_folder(tmp_path):
    """Shards of one grid may share a run id (one USD budget in a shared ledger): parts are told apart by folder."""
    a = make_run(tmp_path / "shard-1", "i1-42", [rec("i1-42", "gold", "x-1")], "1/2")
    b = make_run(tmp_path / "shard-2", "i1-42", [rec("i1-42", "gold", "x-2")], "2/2")
    result = merge_runs([a, b], RunPaths(tmp_path, "i1-42"))
    assert [(p["path"], p["case_ids"]) for p in result.parts] == [
        (str(a.root), ["gold-x-1-a1"]),
        (str(b.root), ["gold-x-2-a1"]),
    ]
    c = make_run(tmp_path / "shard-3", "i1-42", [rec("i1-42", "gold", "x-1", "unresolved")])
    with pytest.raises(HarnessError) as exc:
        merge_runs([a, c], RunPaths(tmp_path, "again"))
    assert str(a.root) in str(exc.value) and str(c.root) in str(exc.value)
