"""The pre-flight cost estimate counts the cases pytest will run: after -m, -k and --resume."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def _evals(tmp_path, *args: str) -> subprocess.CompletedProcess:
    creds = tmp_path / "credentials.txt"
    creds.write_text("")
    env = {**os.environ, "CHUTES_API_KEY": "", "OPENROUTER_API_KEY": ""}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "evals",
            "-p",
            "no:cacheprovider",
            "--credentials",
            str(creds),
            "--runs-dir",
            str(tmp_path / "runs"),
            "--check-models",
            "no",
            *args,
        ],  # fmt: skip
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]])
def test_the_estimate_counts_what_k_selects(tmp_path, xdist):
    done = _evals(tmp_path, "-m", "i1", "-k", "kimi-k2-0905 and sqlfluff", "--no-gates", *xdist)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    estimates = re.findall(r"swebench-harness: estimate (\S+): (\d+) cases", done.stdout)
    assert estimates == [("kimi-k2-0905", "4")]  # 2 sqlfluff instances x K=2, not the grid's 16
