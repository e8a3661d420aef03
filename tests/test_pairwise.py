"""Every pair of models on paired cases: pairwise.csv, Holm-adjusted McNemar, rank ties, the HTML matrix."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from harness.results.intervals import holm_adjust, paired_delta_interval
from harness.results.leaderboard import build_leaderboard, format_table, leaderboard_tables
from harness.results.records import RunPaths, write_record
from harness.results.stats import mcnemar_exact
from tests.helpers import ROOT
from tests.helpers import case_record as rec


def run(strong: str, weak: str, twin: str) -> list:
    """Three models on the same 16 instances (K=1); 'r' resolved, 'u' unresolved, 'e' error, 's' skipped."""
    out = {"r": "resolved", "u": "unresolved", "e": "error", "s": "skipped"}
    return [
        rec(model, f"i{i:02d}", out[ch])
        for model, text in (("strong", strong), ("weak", weak), ("twin", twin))
        for i, ch in enumerate(text)
    ]


RECORDS = run("r" * 12 + "u" * 4, "u" * 14 + "ee", "r" * 12 + "u" * 3 + "s")


def _pairs() -> dict[tuple[str, str], dict]:
    _, pairs = leaderboard_tables(RECORDS)
    return {(p["model_a"], p["model_b"]): p for p in pairs}


def test_every_pair_on_completed_paired_cases() -> None:
    pairs = _pairs()
    assert set(pairs) == {("strong", "twin"), ("strong", "weak"), ("twin", "weak")}  # best first in a pair
    sw = pairs[("strong", "weak")]
    assert sw["paired_cases"] == 14 and sw["instances"] == 14  # weak's two errors are not pairs
    assert (sw["a_only"], sw["b_only"]) == (12, 0)
    assert sw["rate_a"] == pytest.approx(12 / 14) and sw["rate_b"] == 0.0
    assert sw["delta"] == pytest.approx(sw["rate_a"] - sw["rate_b"])
    by_instance = {f"i{i:02d}": [(int(i < 12), 0)] for i in range(14)}
    assert (sw["delta"], sw["delta_lo"], sw["delta_hi"]) == paired_delta_interval(by_instance)
    st = pairs[("strong", "twin")]
    assert st["paired_cases"] == 15 and (st["a_only"], st["b_only"]) == (0, 0) and st["p_value"] == 1.0


def test_holm_over_all_pairs_and_rank_ties() -> None:
    pairs = _pairs()
    order = [("strong", "twin"), ("strong", "weak"), ("twin", "weak")]
    raw = [pairs[k]["p_value"] for k in order]
    assert raw[1] == mcnemar_exact(12, 0) and raw[2] == mcnemar_exact(12, 0)
    assert [pairs[k]["p_holm"] for k in order] == pytest.approx(holm_adjust(raw))
    assert [pairs[k]["significant"] for k in order] == [False, True, True]
    rows, _ = leaderboard_tables(RECORDS)
    assert {r["model"]: r["rank"] for r in rows} == {"strong": "1-2", "twin": "1-2", "weak": "3"}
    table = format_table(rows).splitlines()
    assert [line.split()[:2] for line in table[1:4]] == [["1-2", "strong"], ["1-2", "twin"], ["3", "weak"]]


def test_a_weak_difference_is_a_tie() -> None:
    rows, pairs = leaderboard_tables(run("r" + "u" * 15, "u" * 16, "u" * 16))
    assert all(not p["significant"] for p in pairs)
    assert {r["rank"] for r in rows} == {"1-3"}


def test_pairwise_csv_and_html_matrix(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path / "runs", "run-a")
    for r in RECORDS:
        write_record(paths, r)
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "leaderboard", str(paths.root)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    with (paths.root / "pairwise.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:5] == ["run_id", "model_a", "agent_backend_a", "model_b", "agent_backend_b"]
    assert {"delta", "delta_lo", "delta_hi", "p_value", "p_holm", "significant"} <= set(rows[0])
    sw = next(r for r in rows if (r["model_a"], r["model_b"]) == ("strong", "weak"))
    assert sw["paired_cases"] == "14" and sw["significant"] == "yes" and float(sw["p_holm"]) < 0.01
    with (paths.leaderboard_csv).open(newline="") as f:
        assert [r["rank"] for r in csv.DictReader(f)] == ["1-2", "1-2", "3"]
    html = (paths.root / "leaderboard.html").read_text()
    matrix = html.split('id="pairwise"')[1].split("</table>")[0]
    assert matrix.count("pw-self") == 3 and matrix.count("pw-better") == 2 and matrix.count("pw-worse") == 2
    assert "no discordant pairs" in matrix and "+85.7%" in matrix and "-85.7%" in matrix
    assert "[+0.0%, +0.0%]" not in html


def test_build_leaderboard_writes_pairwise_with_one_model(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path / "runs", "solo")
    for r in RECORDS[:16]:
        write_record(paths, r)
    rows = build_leaderboard(paths)
    assert rows[0]["rank"] == "1"
    text = (paths.root / "pairwise.csv").read_text().splitlines()
    assert len(text) == 1 and text[0].startswith("run_id,model_a")
    assert "Fewer than two models" in (paths.root / "leaderboard.html").read_text()
