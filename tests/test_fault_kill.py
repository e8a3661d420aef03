"""Crash safety: SIGKILL an xdist worker, then the whole controller, at seeded points of a demo run;
`--resume` must finish the run with exactly one record per case and no container of the run left."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import psutil
import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.containers
SEEDS = [11, 23, 37, 41, 59]
DEMO_CASES = 9


def _workers(controller: psutil.Process) -> list[psutil.Process]:
    return [p for p in controller.children(recursive=False) if "python" in p.name().lower()]


def _start(runs, run_id: str) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "evals",
        "-m",
        "demo",
        "-n",
        "2",
        "-p",
        "no:cacheprovider",
        "--runs-dir",
        str(runs),
        "--run-id",
        run_id,
    ]
    env = {**os.environ, "PYTEST_ADDOPTS": ""}
    return subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=env
    )


def _kill_at_seeded_points(proc: subprocess.Popen, seed: int) -> str:
    rng = random.Random(seed)
    first, second = rng.uniform(1.5, 7.0), rng.uniform(0.5, 5.0)
    time.sleep(first)
    if proc.poll() is not None:
        return "finished before the first kill point"
    workers = _workers(psutil.Process(proc.pid))
    if workers:
        rng.choice(workers).send_signal(signal.SIGKILL)
    time.sleep(second)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)  # the controller and whatever workers it still has
    proc.wait(timeout=30)
    return f"worker killed at {first:.1f}s, controller at {first + second:.1f}s"


@pytest.mark.parametrize("seed", SEEDS)
def test_resume_after_sigkill_leaves_one_record_per_case(seed, runtime, fixture_images, tmp_path):
    runs = tmp_path / "runs"
    run_id = f"kill-{seed}"
    when = _kill_at_seeded_points(_start(runs, run_id), seed)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "evals",
            "-m",
            "demo",
            "-p",
            "no:cacheprovider",
            "--runs-dir",
            str(runs),
            "--resume",
            run_id,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"{when}\n{done.stdout[-3000:]}"
    cases = runs / run_id / "cases"
    records = {p.stem: json.loads(p.read_text()) for p in cases.glob("*.json")}
    assert len(records) == DEMO_CASES, when
    assert not list(cases.glob("*.running")), when
    assert all(r["outcome"] in ("resolved", "unresolved") for r in records.values()), when
    assert sum(r["outcome"] == "resolved" for r in records.values()) == 5, when
    for pred_file in (runs / run_id / "predictions").glob("*/*.jsonl"):
        for line in pred_file.read_text().splitlines():
            pred = json.loads(line)
            assert records[pred["case_id"]]["patch"] == pred["model_patch"]
    assert (
        sum(len(p.read_text().splitlines()) for p in (runs / run_id / "predictions").glob("*/*.jsonl"))
        == DEMO_CASES
    )
    left = runtime.run(
        "ps", "-aq", "--filter", f"label=swebench-harness.run={run_id}", check=False
    ).stdout.split()
    assert left == [], f"{when}: containers of the run left behind"
