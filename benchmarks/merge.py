"""`python -m harness merge` of a 9,000-case grid split in N shards (docs/scale.md cites the result).

Writes N shard runs of synthetic CaseRecords (300 instances x 10 models x 3 attempts, split by the real
shard planner, each case with a patch.diff and a report.json artifact) once, then times the CLI merging
them (records, artifacts, manifest, predictions, leaderboard CSV + HTML, gates) in a fresh subprocess.

    .venv/bin/python benchmarks/merge.py [--shards 3] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.perfdoc import machine_line  # noqa: E402
from harness.results.records import CaseRecord, RunPaths, Telemetry, write_json_atomic  # noqa: E402
from harness.run.shard import assign_units  # noqa: E402

N_MODELS, N_INSTANCES, N_ATTEMPTS = 10, 300, 3


def write_shards(runs: Path, shards: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    units = {
        (f"model-{m}", f"org__repo-{i}"): 1.0 + (i % 17) for m in range(N_MODELS) for i in range(N_INSTANCES)
    }
    plan = assign_units(units, shards)
    base = CaseRecord(
        run_id="x", case_id="x", model_id="m", provider="chutes", litellm_id="chutes/m", instance_id="i",
        repo="org/repo", split="test", attempt=1, agent_backend="mini-swe-agent", outcome="resolved",
        outcome_class="resolved", config_hash="sha256:bench",
    ).model_dump(mode="json")  # fmt: skip
    for (model, instance), shard in plan.items():
        paths = RunPaths(runs, f"shard-{shard + 1}")
        for a in range(1, N_ATTEMPTS + 1):
            ok = rng.random() < 0.3
            case_id = f"{model}-{instance}-a{a}"
            tel = Telemetry(calls=12, prompt_tokens=40_000, completion_tokens=900, token_source="provider")
            rec = base | {
                "run_id": paths.run_id, "case_id": case_id, "model_id": model, "instance_id": instance,
                "attempt": a, "outcome": "resolved" if ok else "unresolved",
                "outcome_class": "resolved" if ok else "unresolved", "patch": "diff --git a/x b/x\n",
                "telemetry": tel.model_dump(mode="json"),
                "artifacts": {"patch": f"artifacts/{case_id}/patch.diff", "report": f"artifacts/{case_id}/report.json"},
            }  # fmt: skip
            paths.cases.mkdir(parents=True, exist_ok=True)
            (paths.cases / f"{case_id}.json").write_text(json.dumps(rec))
            art = paths.case_artifacts(case_id)
            art.mkdir(parents=True, exist_ok=True)
            (art / "patch.diff").write_text(rec["patch"])
            (art / "report.json").write_text(json.dumps({instance: {"resolved": ok}}))
    for k in range(shards):
        write_json_atomic(
            RunPaths(runs, f"shard-{k + 1}").manifest, {"run_id": f"shard-{k + 1}", "grids": ["i3"]}
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shards", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    times = []
    with tempfile.TemporaryDirectory(prefix="bench-merge-") as tmp:
        runs = Path(tmp)
        write_shards(runs, args.shards)
        parts = [str(runs / f"shard-{k + 1}") for k in range(args.shards)]
        for i in range(args.repeat):
            into = runs / f"merged-{i}"
            t0 = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "harness", "merge", *parts, "--into", str(into)],
                cwd=ROOT, capture_output=True, text=True,
            )  # fmt: skip
            times.append(time.perf_counter() - t0)
            assert done.returncode == 0, done.stderr
            shutil.rmtree(into)
    print(f"{machine_line()}")
    print(
        f"merge of {N_MODELS * N_INSTANCES * N_ATTEMPTS} cases from {args.shards} shards: median "
        f"{statistics.median(times):.2f} s (min {min(times):.2f}, max {max(times):.2f}, {args.repeat} runs)"
    )


if __name__ == "__main__":
    main()
