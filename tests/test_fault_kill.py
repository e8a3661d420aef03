"""Crash safety: SIGKILL the xdist worker of a live case (seeded: which one), then the whole controller;
`--resume` must keep every record written before the kill byte for byte, set the interrupted case's
artifacts aside, remove the run's orphaned containers and finish with exactly one record per case."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from harness.results.records import RunPaths, stale_markers
from tests.helpers import ROOT, labelled_containers, run_evals

pytestmark = pytest.mark.containers
SEEDS = [11, 37, 59]  # the 4th, 1st and 2nd case seen with a container up
DEMO_CASES = 9


def _start(runs: Path, run_id: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "pytest", "evals", "-m", "demo", "-n", "2", "-p", "no:cacheprovider",
           "--runs-dir", str(runs), "--run-id", run_id]  # fmt: skip
    env = {**os.environ, "PYTEST_ADDOPTS": ""}
    return subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=env
    )


@dataclass
class Kill:
    """What the two kills hit: proof that they landed on a live run."""

    victim_case: str = ""
    victim_pid: int = 0
    records_at_worker_kill: int = 0
    controller_alive: bool = False
    container_after_kill: bool = False
    container_after_kills: bool = False
    note: str = ""
    records: dict[str, bytes] = field(default_factory=dict)
    artifacts: dict[str, set[str] | None] = field(default_factory=dict)
    """Stale case id -> files of its artifacts folder when the run died (None: no folder yet)."""


def _live_case_with_container(
    runtime, paths: RunPaths, workers: set[int], seen: list[str]
) -> tuple[str, int]:
    """A running case (marker, no record) of a live worker whose labelled container is up: (case id, pid)."""
    for marker in sorted(paths.cases.glob("*.running")) if paths.cases.is_dir() else []:
        case_id = marker.name[: -len(".running")]
        try:
            pid = json.loads(marker.read_text())["pid"]
        except (OSError, ValueError, KeyError):
            continue  # being written
        live = pid in workers and not paths.record(case_id).exists()
        if live and labelled_containers(runtime, case_id=case_id):
            if case_id not in seen:
                seen.append(case_id)
            return case_id, pid
    return "", 0


def _is_python(proc: psutil.Process) -> bool:
    """A python child of the controller; False for one that ended since it was listed (the controller's short
    podman calls at start do), which is not the controller ending."""
    try:
        return "python" in proc.name().lower()
    except psutil.NoSuchProcess:
        return False


def _kill_a_live_case(proc: subprocess.Popen, runtime, paths: RunPaths, seed: int) -> Kill:
    """SIGKILL the worker of the `nth` live case seen with a container up, then the controller's group."""
    rng = random.Random(seed)
    nth, pause = rng.randint(1, 2), rng.uniform(0.5, 3.0)
    kill, seen = Kill(), []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            children = psutil.Process(proc.pid).children()
        except psutil.NoSuchProcess:
            break  # the run ended first: asserted below (no victim)
        workers = {p.pid for p in children if _is_python(p)}
        case_id, pid = _live_case_with_container(runtime, paths, workers, seen)
        if case_id and len(seen) >= nth:
            kill.records_at_worker_kill = len(list(paths.cases.glob("*.json")))
            os.kill(pid, signal.SIGKILL)
            kill.victim_case, kill.victim_pid = case_id, pid
            # an evaluation that ended in the instant between the look and the kill removes its own
            # container: what the resume must clean up is what is still there once the worker is dead
            kill.container_after_kill = bool(labelled_containers(runtime, case_id=case_id))
            break
        time.sleep(0.1)
    time.sleep(pause)
    kill.controller_alive = proc.poll() is None
    if kill.controller_alive:
        os.killpg(proc.pid, signal.SIGKILL)  # the controller and whatever workers it still has
    proc.wait(timeout=30)
    # Looked at after both kills: the controller may have been finishing the run (removing its leftovers), and
    # a removal an evaluation asked for just before the kill is finished by the container service anyway.
    kill.container_after_kills = bool(kill.victim_case) and bool(
        labelled_containers(runtime, case_id=kill.victim_case)
    )
    kill.note = (
        f"seed {seed}: worker {kill.victim_pid} of {kill.victim_case} (case #{nth}), controller +{pause:.1f}s"
    )
    kill.records = {p.name: p.read_bytes() for p in paths.cases.glob("*.json")}
    for case_id in stale_markers(paths):
        root = paths.case_artifacts(case_id)
        kill.artifacts[case_id] = (
            {str(f.relative_to(root)) for f in root.rglob("*")} if root.is_dir() else None
        )
    return kill


@pytest.mark.parametrize("seed", SEEDS)
def test_resume_after_sigkill_keeps_what_was_written_and_finishes_the_rest(
    seed, runtime, fixture_images, tmp_path
):
    runs, run_id = tmp_path / "runs", f"kill-{seed}"
    paths = RunPaths(runs, run_id)
    kill = _kill_a_live_case(_start(runs, run_id), runtime, paths, seed)
    # the interruption happened: both kills landed on a live run, in the middle of a case with a container
    assert kill.victim_case, f"seed {seed}: the run ended before a case with a container could be killed"
    assert kill.controller_alive, f"{kill.note}: the controller finished before it was killed"
    assert kill.records_at_worker_kill < DEMO_CASES and len(kill.records) < DEMO_CASES, kill.note
    assert kill.victim_case in kill.artifacts, f"{kill.note}: no stale marker for the killed case"
    assert kill.artifacts[kill.victim_case] is not None, (
        f"{kill.note}: the killed case has no artifacts folder"
    )

    print(kill.note, "stale:", sorted(kill.artifacts), "records before:", sorted(kill.records))
    done = run_evals("-m", "demo", "--runs-dir", str(runs), "--resume", run_id)
    assert done.returncode == 0, f"{kill.note}\n{done.stdout[-3000:]}"
    header = [line for line in done.stdout.splitlines() if "leftover container(s) of run" in line]
    if kill.container_after_kills:  # the resume removes what the killed run left
        assert len(header) == 1 and int(header[0].split("removed ")[1].split()[0]) >= 1, done.stdout[:3000]
    assert f"{len(kill.artifacts)} case(s) were running when the last process died" in done.stdout

    records = {p.name: p.read_bytes() for p in paths.cases.glob("*.json")}
    assert len(records) == DEMO_CASES and not list(paths.cases.glob("*.running")), kill.note
    changed = [name for name, data in kill.records.items() if records.get(name) != data]
    assert changed == [], f"{kill.note}: records written before the kill were rewritten"
    parsed = {name[: -len(".json")]: json.loads(data) for name, data in records.items()}
    assert all(r["outcome"] in ("resolved", "unresolved") for r in parsed.values()), kill.note
    assert sum(r["outcome"] == "resolved" for r in parsed.values()) == 5, kill.note

    for case_id, files in kill.artifacts.items():  # partial artifacts of interrupted cases: set aside, kept
        aside = list(paths.artifacts.glob(f"{case_id}.interrupted-*"))
        assert len(aside) == (0 if files is None else 1), (kill.note, case_id, aside)
        if files is not None:
            assert {str(f.relative_to(aside[0])) for f in aside[0].rglob("*")} == files, (kill.note, case_id)
    manifest = json.loads(paths.manifest.read_text())
    assert sorted(manifest["interrupted_cases"]) == sorted(kill.artifacts), kill.note

    predictions = [
        json.loads(x) for p in paths.predictions.glob("*/*.jsonl") for x in p.read_text().splitlines()
    ]
    assert len(predictions) == DEMO_CASES
    assert all(parsed[p["case_id"]]["patch"] == p["model_patch"] for p in predictions)
    assert labelled_containers(runtime, run_label=paths.run_label) == [], (
        f"{kill.note}: containers of the run left behind"
    )
