"""Live progress of a run in the terminal: cases done/total, resolved per model, infra errors, LLM requests,
USD against the budgets, and an ETA from the cases finished so far.

A plugin object registered next to RunHooks on the controller (as xdist's DSession is). It reads what
pytest already sends the controller: each case's report (`pytest_runtest_logreport`) with the case's
user_properties (outcome, model, LLM requests, cost), from xdist workers too. On a terminal the line is
drawn on the last row, kept out of pytest's own output by a scroll region (what apt does), so pytest's
dots, percentages and summary are untouched; the region is reset before the summary. Not on a terminal
(CI logs, TERM=dumb): plain `swebench-harness: progress ...` lines through pytest's terminal reporter,
at most one every `interval_s`, and always the last one.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

CASE_PROP = "harness_case"
PREFIX = "swebench-harness: progress "


def clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


@dataclass
class ProgressState:
    """What the controller has seen so far; `line` formats it (pure, tested without pytest)."""

    total: int = 0
    done: int = 0
    running: int = 0
    infra_errors: int = 0
    calls: int = 0
    unpriced_calls: int = 0
    first_start: float | None = None
    last_finish: float | None = None
    per_model: dict[str, list[int]] = field(default_factory=dict)
    """model -> [resolved, finished]."""

    def finish(self, props: dict[str, Any], now: float) -> None:
        self.done += 1
        self.last_finish = now
        self.running = max(0, self.running - 1)
        outcome = str(props.get("outcome", "error"))
        model = str(props.get("model_id") or "?")
        tally = self.per_model.setdefault(model, [0, 0])
        tally[0] += outcome == "resolved"
        tally[1] += outcome != "skipped"
        self.infra_errors += outcome == "error"
        calls = int(props.get("llm_calls") or 0)
        self.calls += calls
        self.unpriced_calls += calls if props.get("cost_usd") in (None, "") else 0

    def eta(self, now: float) -> str:
        if not self.done or self.first_start is None:
            return "ETA after the first case"
        if self.done >= self.total:
            return f"done in {clock((self.last_finish or now) - self.first_start)}"
        return f"ETA {clock((now - self.first_start) / self.done * (self.total - self.done))}"

    def line(self, budget: dict[str, Any] | None, now: float) -> str:
        models = " ".join(f"{m} {r}/{n}" for m, (r, n) in self.per_model.items()) or "-"
        parts = [f"{self.done}/{self.total} cases", self.eta(now), f"{self.running} running" if self.running else "",
                 f"resolved {models}", f"infra errors {self.infra_errors}", _spend(self, budget or {})]  # fmt: skip
        return " | ".join(p for p in parts if p)


def _spend(state: ProgressState, budget: dict[str, Any]) -> str:
    """LLM requests (the ledger's live count, or the finished cases' where higher) and USD against the caps."""
    limits = budget.get("limits") or {}
    calls = max(int(budget.get("run_calls") or 0), state.calls)
    text = f"LLM calls {calls}"
    spent, cap = float(budget.get("spent_usd") or 0.0), limits.get("usd_per_run")
    text += f", ${spent:.2f}" + (f" of ${cap:g}" if cap is not None else "")
    unpriced = max(int(budget.get("unknown_cost_calls") or 0), state.unpriced_calls)
    text += f" (+{unpriced} unpriced)" if unpriced else ""
    quotas = limits.get("calls_per_day") or {}
    used = budget.get("calls_today") or {}
    text += "".join(f", {p} {used.get(p, 0)}/{q} today" for p, q in quotas.items() if used.get(p))
    return text


class ProgressReporter:
    """The controller's progress plugin: counts from reports, draws one line (TTY) or prints lines (not)."""

    def __init__(
        self,
        budget: Callable[[], dict[str, Any]],
        *,
        out: TextIO | None = None,
        tty: bool | None = None,
        interval_s: float = 10.0,
        now: Callable[[], float] = time.monotonic,
    ):
        self.state = ProgressState()
        self.budget, self.now, self.interval_s = budget, now, interval_s
        self.out = out or sys.stdout
        self.tty = (self.out.isatty() and os.environ.get("TERM") != "dumb") if tty is None else tty
        self.config: Any = None
        self._region = 0
        self._last_plain = -1e9
        self._last_text = ""
        self._finished: set[str] = set()

    # -- pytest hooks ------------------------------------------------------------------------------

    def pytest_configure(self, config) -> None:
        self.config = config

    def pytest_collection_finish(self, session) -> None:
        if not self.state.total:
            self.state.total = sum(1 for item in session.items if "test_swebench[" in item.nodeid)

    def pytest_xdist_node_collection_finished(self, node, ids: list[str]) -> None:
        if not self.state.total:
            self.state.total = sum(1 for i in ids if "test_swebench[" in i)

    def pytest_runtest_logstart(self, nodeid: str, location) -> None:
        if "test_swebench[" in nodeid:
            self.state.first_start = self.state.first_start or self.now()
            self.state.running += 1
            if self.tty:
                self.draw()

    def pytest_runtest_logreport(self, report) -> None:
        """A case is finished at its teardown; its outcome comes from the properties of any phase."""
        if (
            "test_swebench[" not in report.nodeid
            or report.when != "teardown"
            or report.nodeid in self._finished
        ):
            return
        self._finished.add(report.nodeid)
        props = dict(report.user_properties)
        self.state.finish(props if CASE_PROP in props else {"outcome": "error"}, self.now())
        self.draw()

    def pytest_sessionfinish(self, session) -> None:
        """Before pytest's summary: give the terminal back, and leave the last line in the output."""
        self.release()
        if self.state.done and (line := self._line()) != self._last_text:
            self._plain(line)

    def pytest_unconfigure(self, config) -> None:
        self.release()

    # -- drawing -----------------------------------------------------------------------------------

    def _line(self) -> str:
        try:
            budget = self.budget()
        except Exception:  # a busy or missing ledger must never break the run's output
            budget = {}
        return PREFIX + self.state.line(budget, self.now())

    def draw(self) -> None:
        """TTY: redraw the reserved row. Else a plain line, at most one per interval (the last one at the end)."""
        if not self.state.total:
            return
        if not self.tty:
            if self.state.done < self.state.total and self.now() - self._last_plain >= self.interval_s:
                self._last_plain = self.now()
                self._plain(self._line())
            return
        cols, rows = shutil.get_terminal_size((100, 24))
        if rows < 4:
            return
        if self._region != rows:  # reserve the last row: scroll region 1..rows-1 (as apt's progress line)
            column = self._column()  # make room below, come back to where pytest's line ends
            self.out.write(f"\n\x1b[1A\x1b[{column + 1}G\x1b7\x1b[1;{rows - 1}r\x1b8")
            self._region = rows
        self.out.write(f"\x1b7\x1b[{rows};1H\x1b[2K\x1b[7m{self._line()[: cols - 1]}\x1b[0m\x1b8")
        self.out.flush()

    def release(self) -> None:
        """Reset the scroll region and clear the reserved row."""
        if self._region:
            self.out.write(f"\x1b7\x1b[1;{self._region}r\x1b8\x1b[J")
            self.out.flush()
            self._region = 0

    def _column(self) -> int:
        """Where pytest's current output line ends (its TerminalWriter tracks it)."""
        try:
            return int(self.config.get_terminal_writer().width_of_current_line)
        except Exception:
            return 0

    def _plain(self, line: str) -> None:
        self._last_text = line
        reporter = self.config.pluginmanager.get_plugin("terminalreporter") if self.config else None
        if reporter is not None:
            if self._column():  # after pytest's dots or [100%]: a line of our own
                self.config.get_terminal_writer().line()
            reporter.write_line(line)
        else:
            self.out.write(line + "\n")
            self.out.flush()
