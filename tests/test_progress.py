"""Live progress: the line's numbers and ETA, plain lines when not a terminal, and one line kept on the last
row of a real pseudo-terminal while pytest's own output and summary stay intact."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios

import pytest

from harness.plugin.progress import PREFIX, ProgressReporter, ProgressState, clock
from tests.conftest import ROOT

BUDGET = {
    "run_calls": 7,
    "spent_usd": 1.5,
    "unknown_cost_calls": 0,
    "calls_today": {"chutes": 120},
    "limits": {"usd_per_run": 5.0, "calls_per_day": {"chutes": 2000, "openrouter": 100}},
}


def test_line_counts_models_errors_spend_and_eta():
    state = ProgressState(total=10, first_start=100.0)
    state.finish({"outcome": "resolved", "model_id": "kimi", "llm_calls": 3, "cost_usd": 0.2}, now=110.0)
    state.finish({"outcome": "unresolved", "model_id": "kimi", "llm_calls": 4, "cost_usd": 0.1}, now=115.0)
    state.finish({"outcome": "error", "model_id": "glm"}, now=120.0)
    state.finish({"outcome": "skipped", "model_id": "glm"}, now=120.0)
    line = state.line(BUDGET, now=120.0)
    assert line.startswith(
        "4/10 cases | ETA 30s | resolved kimi 1/2 glm 0/1 | infra errors 1 | "
    )  # 20 s for 4
    assert line.endswith("LLM calls 7, $1.50 of $5, chutes 120/2000 today")  # the ledger's live figures
    assert ProgressState(total=3).line({}, 0.0).startswith("0/3 cases | ETA after the first case")
    state.calls, state.unpriced_calls = 12, 12  # finished cases saw more (unbudgeted, unpriced) calls
    assert "LLM calls 12, $1.50 of $5 (+12 unpriced)" in state.line(BUDGET, 120.0)
    assert clock(59) == "59s" and clock(3725) == "1h02m" and clock(125) == "2m05s"


class _Report:
    def __init__(self, case: str, when: str, props: dict | None = None):
        self.nodeid = f"evals/test_swebench.py::test_swebench[{case}]"
        self.when, self.user_properties = when, list((props or {}).items())


def _feed(reporter: ProgressReporter, times: list[float], cases: int = 3) -> None:
    reporter.state.total = cases
    for n in range(cases):
        reporter.now = lambda n=n: times[n]  # type: ignore[method-assign]
        reporter.pytest_runtest_logstart(_Report(f"c{n}", "setup").nodeid, None)
        props = {"harness_case": f"c{n}", "outcome": "resolved", "model_id": "m"}
        for when in ("setup", "call", "teardown"):
            reporter.pytest_runtest_logreport(_Report(f"c{n}", when, props))


def test_plain_lines_when_not_a_terminal_at_most_one_per_interval():
    out = io.StringIO()
    reporter = ProgressReporter(lambda: {}, out=out, tty=False, interval_s=10.0)
    _feed(reporter, [1.0, 5.0, 12.0, 13.0], cases=4)
    lines = out.getvalue().splitlines()
    assert [ln.split(" | ")[0] for ln in lines] == [f"{PREFIX}1/4 cases", f"{PREFIX}3/4 cases"]
    assert "\x1b" not in out.getvalue()
    reporter.pytest_sessionfinish(None)  # the last line, once, at the end
    assert out.getvalue().splitlines()[-1].startswith(f"{PREFIX}4/4 cases")
    assert out.getvalue().splitlines()[-1].startswith(f"{PREFIX}4/4 cases | done in 12s")


def test_a_broken_ledger_never_breaks_the_output():
    def broken() -> dict:
        raise OSError("database is locked")

    out = io.StringIO()
    _feed(ProgressReporter(broken, out=out, tty=False, interval_s=0.0), [1.0, 2.0, 3.0])
    assert "3/3 cases" not in out.getvalue() and "2/3 cases" in out.getvalue()


def _in_a_terminal(args: list[str], rows: int = 30, cols: int = 140) -> tuple[int, str]:
    """Run a command on a pseudo-terminal of rows x cols; its exit status and everything it wrote."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    env = {**os.environ, "TERM": "xterm", "COLUMNS": str(cols), "LINES": str(rows)}
    proc = subprocess.Popen(args, cwd=ROOT, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        elif proc.poll() is not None:
            break
    os.close(master)
    return proc.wait(timeout=60), b"".join(chunks).decode(errors="replace")


DEMO_EMPTY = [
    sys.executable,
    "-m",
    "pytest",
    "evals",
    "-m",
    "demo",
    "--models",
    "empty",
    "-p",
    "no:cacheprovider",
]


@pytest.mark.containers
def test_one_updating_line_on_a_terminal(tmp_path):
    code, out = _in_a_terminal([*DEMO_EMPTY, "--runs-dir", str(tmp_path), "--run-id", "tty"])
    assert code == 0, out[-3000:]
    region, reset = "\x1b[1;29r", "\x1b7\x1b[1;30r\x1b8\x1b[J"  # rows 1..29 scroll, row 30 is ours
    assert out.count(region) == 1 and out.count(reset) == 1 and out.index(region) < out.index(reset)
    drawn = out[out.index(region) : out.index(reset)]
    updates = drawn.split("\x1b[30;1H\x1b[2K")[1:]  # each redraw of the last row
    assert len(updates) >= 4 and all(u.startswith(f"\x1b[7m{PREFIX}") for u in updates)
    assert "ETA" in updates[1] and "3/3 cases" in updates[-1]
    after = out[out.index(reset) + len(reset) :]
    assert re.search(
        f"{PREFIX}3/3 cases [|] done in [0-9]+s [|] resolved empty 0/3", after
    )  # left in the scrollback, then pytest's summary
    assert "swebench-harness leaderboard (run tty)" in after and "3 failed" in after
    assert "\x1b7" not in after  # nothing drawn once the terminal is given back


@pytest.mark.containers
def test_plain_lines_in_ci(tmp_path):
    done = subprocess.run(
        [*DEMO_EMPTY, "--runs-dir", str(tmp_path), "--run-id", "ci"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith(PREFIX)]
    assert lines[0].startswith(f"{PREFIX}1/3 cases") and "ETA" in lines[0]
    assert lines[-1].startswith(f"{PREFIX}3/3 cases") and "done in" in lines[-1]
    assert "\x1b" not in done.stdout and "3 failed" in done.stdout
