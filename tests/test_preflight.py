"""The pre-flight cost estimate counts the cases pytest will run: after -m, -k and --resume."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.helpers import run_evals


def _evals(tmp_path, *args: str) -> subprocess.CompletedProcess:
    creds = tmp_path / "credentials.txt"
    creds.write_text("")
    return run_evals(
        "--credentials", str(creds), "--runs-dir", str(tmp_path / "runs"), "--check-models", "no", *args,
        env={"CHUTES_API_KEY": "", "OPENROUTER_API_KEY": ""}, timeout=300,
    )  # fmt: skip


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]])
def test_the_estimate_counts_what_k_selects(tmp_path, xdist):
    done = _evals(tmp_path, "-m", "i1", "-k", "kimi-k2-0905 and sqlfluff", "--no-gates", *xdist)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    estimates = re.findall(r"swebench-harness: estimate (\S+): (\d+) cases", done.stdout)
    assert estimates == [("kimi-k2-0905", "4")]  # 2 sqlfluff instances x K=2, not the grid's 16
