"""Quarantined instances (config/quarantine.yaml) are skipped as `excluded`, kept out of every rate and
listed apart; --include-quarantined runs and counts them."""

from __future__ import annotations

import csv
import shutil
import subprocess

import pytest
import yaml

from tests.helpers import ROOT, run_evals

pytestmark = pytest.mark.containers

ENTRY = {
    "instance": "fixtures__ledger-3",
    "verdict": "flaky",
    "reason": "gold resolved 1/2",
    "date": "2026-12-01",
    "run_id": "cal-x",
    "harness_version": "0.1.0",
    "evaluator_version": "swebench 4.1.0",
}


def _run(cfg, runs, run_id, *extra) -> subprocess.CompletedProcess:
    return run_evals(
        "-m", "demo", "--models", "gold", "--harness-config", str(cfg), "--runs-dir", str(runs),
        "--run-id", run_id, *extra,
    )  # fmt: skip


def test_quarantined_instances_are_reported_apart_and_come_back_on_request(fixture_images, tmp_path):
    cfg = tmp_path / "config"
    shutil.copytree(ROOT / "config", cfg)
    (cfg / "quarantine.yaml").write_text(yaml.safe_dump({"instances": [ENTRY]}))
    runs = tmp_path / "runs"
    done = _run(cfg, runs, "q")
    assert done.returncode == 0, done.stdout[-3000:]
    assert "1 quarantined instance(s), not in any rate" in done.stdout and "fixtures__ledger-3" in done.stdout
    [row] = list(csv.DictReader((runs / "q" / "leaderboard.csv").open()))
    assert (row["model"], row["cases"], row["resolved"], row["skipped"]) == ("gold", "2", "2", "0")
    assert float(row["resolve_rate"]) == 1.0
    html = (runs / "q" / "leaderboard.html").read_text()
    assert "Quarantined instances (1)" in html and "fixtures__ledger-3" in html
    again = _run(cfg, runs, "q-all", "--include-quarantined")
    assert again.returncode == 0, again.stdout[-3000:]
    [row] = list(csv.DictReader((runs / "q-all" / "leaderboard.csv").open()))
    assert (row["cases"], row["resolved"]) == ("3", "3")
    assert "quarantined instance" not in again.stdout
