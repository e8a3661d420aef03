"""End to end: the demo grid as three shards (`pytest evals -m demo --shard k/3`, each a normal run in a
subprocess), merged with `python -m harness merge`, gives the same records and leaderboard as one
unsharded run.

What is compared: every CaseRecord field except what belongs to one run (run_id, started_at, finished_at,
the times agent_wall_s / eval_wall_s / eval_queue_wait_s / case_wall_s / handoff_wait_s / overhead_s / container_start_s /
container_remove_s / server_start_wait_s, telemetry latencies_s and retry_wait_s, and artifact paths, which name the
evaluation's run id: there the same artifact names must exist and point at files); every leaderboard.csv
column except run_id, wall_s_median, wall_s_total and latency_p50/p90/p99; pairwise.csv and predictions
minus their run_id; the gates' statuses (cpu apart: a merge has no CPU samples). All four runs grade
afresh (--no-eval-cache), so no verdict is shared between them.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import uuid

import pytest

from tests.conftest import ROOT
from tests.test_e2e_demo import run_pytest

pytestmark = pytest.mark.containers
RUN_FIELDS = {
    "run_id",
    "started_at",
    "finished_at",
    "agent_wall_s",
    "eval_wall_s",
    "eval_queue_wait_s",
    "case_wall_s",
    "handoff_wait_s",
    "overhead_s",
    "container_start_s",
    "container_remove_s",
    "server_start_wait_s",
}
TELEMETRY_TIMES = {"latencies_s", "retry_wait_s"}
BOARD_TIMES = {"run_id", "wall_s_median", "wall_s_total", "latency_p50", "latency_p90", "latency_p99"}


def merge_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness", "merge", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


# Per process: under `pytest -n`, each xdist worker that runs a test here makes these runs. Since dcfb685 the
# harness tells same-id runs in different folders apart (RunPaths.run_label); distinct ids keep them apart in any
# listing too.
TAG = uuid.uuid4().hex[:8]
WHOLE = f"whole-{TAG}"


@pytest.fixture(scope="module")
def runs(fixture_images, tmp_path_factory):
    runs = tmp_path_factory.mktemp("shard-runs")
    # --no-eval-cache: every run grades its patches itself (no verdict reused from another run)
    common = ["evals", "-m", "demo", "--runs-dir", str(runs), "-p", "no:randomly", "--no-eval-cache"]
    whole = run_pytest(*common, "-n", "2", "--run-id", WHOLE)
    assert whole.returncode == 0, whole.stdout[-3000:] + whole.stderr[-2000:]
    for k in (1, 2, 3):
        shard = run_pytest(*common, "--shard", f"{k}/3", "--run-id", f"shard-{k}-{TAG}", "--no-gates")
        assert shard.returncode == 0, shard.stdout[-3000:] + shard.stderr[-2000:]
        assert f"shard {k}/3:" in shard.stdout and "of 9 selected cases" in shard.stdout
    merged = merge_cli(*(str(runs / f"shard-{k}-{TAG}") for k in (1, 2, 3)), "--into", str(runs / "merged"))
    assert merged.returncode == 0, merged.stdout + merged.stderr
    return runs


def _records(run_dir) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (run_dir / "cases").glob("*.json")}


def _comparable(record: dict) -> dict:
    out = {k: v for k, v in record.items() if k not in RUN_FIELDS and k != "artifacts"}
    out["telemetry"] = {k: v for k, v in record["telemetry"].items() if k not in TELEMETRY_TIMES}
    out["artifacts"] = sorted(record["artifacts"])
    return out


def test_each_shard_is_a_normal_run_and_the_shards_partition_the_grid(runs):
    shards = [set(_records(runs / f"shard-{k}-{TAG}")) for k in (1, 2, 3)]
    assert all(shards) and sum(map(len, shards)) == 9 and set().union(*shards) == set(_records(runs / WHOLE))
    for k in (1, 2, 3):
        manifest = json.loads((runs / f"shard-{k}-{TAG}" / "manifest.json").read_text())
        assert manifest["shard"]["index"] == k and manifest["shard"]["count"] == 3
        assert manifest["shard"]["cases"] == len(shards[k - 1]) and manifest["shard"]["selected_cases"] == 9
        assert (runs / f"shard-{k}-{TAG}" / "leaderboard.csv").is_file()
    scripted = [sum(c.startswith("scripted-") for c in s) for s in shards]
    assert scripted == [1, 1, 1], "the agent-run (expensive) cases should be spread over the shards"


def test_merged_records_equal_the_unsharded_run(runs):
    whole, merged = _records(runs / WHOLE), _records(runs / "merged")
    assert sorted(merged) == sorted(whole) and len(merged) == 9
    for case_id, record in merged.items():
        assert record["run_id"] == "merged"
        assert _comparable(record) == _comparable(whole[case_id]), case_id
        for path in record["artifacts"].values():
            assert (runs / "merged" / path).is_file(), path
    assert merged["scripted-fixtures__calc-1-a1"]["telemetry"]["calls"] == 5


def _csv_minus_run_id(path) -> list[dict]:
    with path.open(newline="") as f:
        return [{k: v for k, v in row.items() if k != "run_id"} for row in csv.DictReader(f)]


def _board(run_dir) -> list[dict]:
    with (run_dir / "leaderboard.csv").open(newline="") as f:
        return [{k: v for k, v in row.items() if k not in BOARD_TIMES} for row in csv.DictReader(f)]


def test_merged_leaderboard_and_predictions_equal_the_unsharded_run(runs):
    assert _board(runs / "merged") == _board(runs / WHOLE)
    assert (runs / "merged" / "leaderboard.html").is_file()
    for model in ("gold", "empty", "scripted"):
        lines = [
            [
                {k: v for k, v in json.loads(x).items() if k != "run_id"}
                for x in (runs / r / "predictions" / model / "attempt-1.jsonl").read_text().splitlines()
            ]
            for r in (WHOLE, "merged")
        ]
        assert lines[0] == lines[1] and len(lines[0]) == 3
    manifest = json.loads((runs / "merged" / "manifest.json").read_text())
    assert [p["run_id"] for p in manifest["parts"]] == [f"shard-{k}-{TAG}" for k in (1, 2, 3)]
    assert manifest["cases"] == 9 and manifest["outcomes"] == {"resolved": 5, "unresolved": 4}
    gates = {g["name"]: g["status"] for g in manifest["gates"] if g["name"] != "cpu"}
    whole = json.loads((runs / WHOLE / "manifest.json").read_text())["gates"]
    assert gates == {
        g["name"]: g["status"] for g in whole if g["name"] != "cpu"
    }  # cpu: a merge has no samples
    assert _csv_minus_run_id(runs / "merged" / "pairwise.csv") == _csv_minus_run_id(
        runs / WHOLE / "pairwise.csv"
    )


def test_merging_runs_that_disagree_is_refused(runs):
    rogue = runs / "shard-1-rerun"
    shutil.copytree(runs / f"shard-1-{TAG}", rogue)
    victim = next(p for p in (rogue / "cases").glob("scripted-*.json"))
    record = json.loads(victim.read_text())
    record.update(outcome="unresolved" if record["outcome"] == "resolved" else "resolved")
    victim.write_text(json.dumps(record))
    done = merge_cli(str(runs / f"shard-1-{TAG}"), str(rogue), "--into", str(runs / "refused"))
    assert done.returncode == 2 and done.stdout == "" and done.stderr.count("\n") == 1
    assert (
        done.stderr.startswith(f"error: {victim.stem}: run shard-1-{TAG} recorded ")
        and "conflicting" in done.stderr
    )
    assert not (runs / "refused" / "cases").exists()
