"""Baselines that need no model: `gold` submits the instance's gold patch, `empty` submits nothing.

`empty` is the no-patch baseline of the i1 gate; `gold` is the upper bound that proves the image and
the evaluator work for an instance.
"""

from __future__ import annotations

from harness.agents import AgentResult, AgentTask


class BaselineRunner:
    name = "baseline"

    def run(self, task: AgentTask) -> AgentResult:
        if task.model.kind == "gold":
            return AgentResult(patch=task.row["patch"], exit_status="Submitted")
        return AgentResult(patch="", exit_status="Submitted")
