"""Dispatch order: with measured costs (config/case_costs.yaml) the longest expected case first, laid out for
xdist's start, one case at a time; without them the grid order. Real pytest runs of the demo grid."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from harness.run.dispatch import paired_for_xdist
from tests.helpers import run_evals

ROOT = Path(__file__).resolve().parents[1]

# Expected seconds per attempt (harness.run.shard.case_cost_s): the scripted model's 10 s scaled by the
# instance's agents over the median instance's (10 s), plus the instance's evaluation; gold only evaluates;
# mini-swe-agent's empty baseline neither runs an agent nor is evaluated.
TABLE = """\
evaluation_s: {fixtures__calc-1: 2.0, fixtures__textkit-2: 1.0, fixtures__ledger-3: 30.0}
agent_s: {scripted: 10.0}
agent_instance_s: {fixtures__calc-1: 5.0, fixtures__textkit-2: 40.0, fixtures__ledger-3: 10.0}
"""
LONGEST_FIRST = [
    "scripted-fixtures__textkit-2-a1",  # 10 x 4 + 1 = 41 s
    "scripted-fixtures__ledger-3-a1",  # 10 x 1 + 30 = 40 s
    "gold-fixtures__ledger-3-a1",  # 30 s
    "scripted-fixtures__calc-1-a1",  # 10 x 0.5 + 2 = 7 s
    "gold-fixtures__calc-1-a1",  # 2 s
    "gold-fixtures__textkit-2-a1",  # 1 s
    "empty-fixtures__calc-1-a1",  # 0 s each: grid order
    "empty-fixtures__textkit-2-a1",
    "empty-fixtures__ledger-3-a1",
]


@pytest.fixture
def measured_config(tmp_path) -> Path:
    config = tmp_path / "config"
    shutil.copytree(ROOT / "config", config)
    (config / "case_costs.yaml").write_text(TABLE)
    return config


def _collected(*args: str) -> list[str]:
    done = run_evals("-m", "demo", "--collect-only", "-q", *args, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return re.findall(r"test_swebench\[(.+?)\]", done.stdout)


@pytest.fixture
def unmeasured_config(tmp_path) -> Path:
    config = tmp_path / "unmeasured"
    shutil.copytree(ROOT / "config", config)
    (config / "case_costs.yaml").unlink(missing_ok=True)  # a fork may have committed one
    return config


def test_without_a_cost_table_the_grid_order_stays(unmeasured_config):
    ids = _collected("--harness-config", str(unmeasured_config))
    assert ids[:3] == [
        "gold-fixtures__calc-1-a1",
        "gold-fixtures__textkit-2-a1",
        "gold-fixtures__ledger-3-a1",
    ]
    assert sorted(ids) == sorted(LONGEST_FIRST)


def test_with_measured_costs_the_longest_expected_case_comes_first(measured_config):
    assert _collected("--harness-config", str(measured_config)) == LONGEST_FIRST
    # -k deselects first; what is left keeps its order (the hook runs after pytest's own deselection)
    assert _collected("--harness-config", str(measured_config), "-k", "gold") == [
        i for i in LONGEST_FIRST if i.startswith("gold")
    ]


def test_other_xdist_distributions_keep_the_grid_order(measured_config, unmeasured_config):
    """worksteal and loadscope deal out contiguous chunks or scopes: a sorted grid would unbalance them."""
    grid = _collected("--harness-config", str(unmeasured_config))
    assert _collected("--harness-config", str(measured_config), "--dist", "worksteal") == grid


def test_the_first_two_cases_of_each_worker_are_paired_longest_with_shortest():
    ranks = list(range(10))
    assert paired_for_xdist(ranks, 3) == [0, 5, 1, 4, 2, 3, 6, 7, 8, 9]
    assert paired_for_xdist(ranks, 1) == ranks and paired_for_xdist(ranks[:5], 3) == ranks[:5]


def test_a_malformed_cost_table_is_one_line_before_anything_runs(measured_config):
    (measured_config / "case_costs.yaml").write_text("agent_s: [1, 2]\n")
    done = run_evals("-m", "demo", "--harness-config", str(measured_config), "-n", "2", timeout=120)
    errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR:")]
    assert done.returncode == 4 and len(errors) == 1 and "case-cost table" in errors[0], done.stderr
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.containers
def test_two_workers_run_the_longest_cases_first_one_at_a_time(measured_config, fixture_images, tmp_path):
    """The demo on 2 workers: each worker's first cases are the pairs the order laid out (xdist's start
    hands each worker two consecutive cases), and the terminal says how cases are handed out."""
    done = run_evals(
        "-m", "demo", "-n", "2", "-v", "--harness-config", str(measured_config),
        "--runs-dir", str(tmp_path / "runs"), "--no-eval-cache", "--no-gates",
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-2000:]
    assert "dispatch: longest expected case first" in done.stdout
    assert "xdist hands out one case at a time" in done.stdout
    by_worker: dict[str, list[str]] = {}
    for worker, case_id in re.findall(r"\[(gw\d)\] \[\s*\d+%\] \w+ .*test_swebench\[(.+?)\]", done.stdout):
        by_worker.setdefault(worker, []).append(case_id)
    assert sum(len(v) for v in by_worker.values()) == 9, done.stdout[-3000:]
    firsts = sorted(cases[:2] for cases in by_worker.values())
    pairs = [LONGEST_FIRST[0:4:3], LONGEST_FIRST[1:3]]  # (41 s, 7 s) and (40 s, 30 s)
    assert firsts == sorted(pairs), by_worker
