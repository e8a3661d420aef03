"""Time to the first new case when resuming a 9,000-case run with 8,990 records on disk (target: under 5 s).

Builds the 300 x 10 x 3 grid of benchmarks/collect.py, writes 8,990 finished CaseRecords and a
manifest, then runs `pytest evals --resume <run>` in a fresh subprocess with a probe plugin that notes
the moment the first remaining case starts (and stops the process there). Measured: process start to
that moment, so it includes interpreter and pytest start-up, config and grid, resume deselection
(reading every record), runtime detection, leftover cleanup and the preflight.

    .venv/bin/python benchmarks/resume.py            # print the markdown section
    .venv/bin/python benchmarks/resume.py --write    # and replace "## Resume" in docs/performance.md
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.collect import write_bench_config  # noqa: E402
from benchmarks.perfdoc import machine_line, replace_section  # noqa: E402
from harness.config import HarnessConfig  # noqa: E402
from harness.results.records import CaseRecord, RunPaths, write_json_atomic  # noqa: E402
from harness.run.grid import build_grid  # noqa: E402

MISSING = 10
TARGET_S = 5.0


def prepare(tmp: Path) -> tuple[Path, RunPaths, int]:
    config_dir = tmp / "config"
    write_bench_config(config_dir)
    cases = build_grid(HarnessConfig(config_dir, root=ROOT))
    paths = RunPaths(tmp / "runs", "bench-resume")
    paths.cases.mkdir(parents=True)
    base = CaseRecord(
        run_id=paths.run_id,
        case_id="x",
        model_id="m",
        provider="chutes",
        litellm_id="chutes/m",
        instance_id="i",
        repo="r",
        split="test",
        attempt=1,
        agent_backend="mini-swe-agent",
        outcome="unresolved",
        outcome_class="unresolved",
    ).model_dump(mode="json")
    for case in cases[: len(cases) - MISSING]:
        rec = {
            **base,
            "case_id": case.case_id,
            "model_id": case.model_id,
            "instance_id": case.instance_id,
            "attempt": case.attempt,
        }
        (paths.cases / f"{case.case_id}.json").write_text(json.dumps(rec))
    write_json_atomic(paths.manifest, {"run_id": paths.run_id, "started_at": "2026-01-01T00:00:00+00:00"})
    return config_dir, paths, len(cases)


def time_to_first_case(config_dir: Path, paths: RunPaths, probe: Path) -> tuple[float, str]:
    env = {**os.environ, "HARNESS_PROBE_FILE": str(probe), "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    start = time.time()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "evals",
            "-p",
            "no:cacheprovider",
            "-p",
            "benchmarks.first_case_probe",
            "--harness-config",
            str(config_dir),
            "--runs-dir",
            str(paths.runs_dir),
            "--resume",
            paths.run_id,
            "--check-models",
            "no",
            "-q",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    stamp, nodeid = probe.read_text().split(" ", 1)
    probe.unlink()
    return float(stamp) - start, nodeid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-resume-") as tmp:
        config_dir, paths, total = prepare(Path(tmp))
        results = [time_to_first_case(config_dir, paths, Path(tmp) / "probe") for _ in range(args.repeat)]
    walls = [w for w, _ in results]
    median = statistics.median(walls)
    section = f"""## Resume

Command: `.venv/bin/python benchmarks/resume.py --write` - {machine_line()}.

Resuming a {total:,}-case run (300 SWE-bench Lite test instances x 10 models x 3 attempts) with
{total - MISSING:,} records on disk: from process start to the first remaining case starting
(`{results[0][1]}`), {args.repeat} runs in a fresh subprocess: median **{median:.2f} s** (min {min(walls):.2f},
max {max(walls):.2f}); target under {TARGET_S:.0f} s: {"within target" if median < TARGET_S else "MISSED"}.
Included: interpreter and pytest start-up, config and grid, reading every record to deselect the
finished cases, container runtime detection, removing the run's leftover containers, the manifest update.
"""
    print(section)
    if args.write:
        replace_section("## Resume", section)


if __name__ == "__main__":
    main()
