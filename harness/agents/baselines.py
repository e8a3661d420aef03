"""Baselines that need no model: `gold` submits the instance's gold patch, `empty` submits nothing,
`noop` submits a patch that changes no code (it adds an empty marker file).

`empty` is the no-patch baseline of the i1 gate; `gold` is the upper bound that proves the image and
the evaluator work for an instance. swebench never evaluates an empty patch, so calibration uses `noop`
to run an instance's tests on the unchanged code: an instance the no-op patch resolves is broken.
"""

from __future__ import annotations

from harness.agents import AgentResult, AgentTask
from harness.outcomes import OutcomeClass

NOOP_FILE = ".harness-noop"
NOOP_PATCH = f"diff --git a/{NOOP_FILE} b/{NOOP_FILE}\nnew file mode 100644\nindex 0000000..e69de29\n"
"""A git diff that adds one empty file and touches no code (git apply accepts it)."""
EMPTY_MESSAGE = "the no-patch baseline submitted nothing on purpose"


class BaselineRunner:
    name = "baseline"

    def run(self, task: AgentTask) -> AgentResult:
        if task.model.kind == "gold":
            return AgentResult(patch=task.row["patch"], exit_status="Submitted")
        if task.model.kind == "noop":
            return AgentResult(patch=NOOP_PATCH, exit_status="Submitted")
        return AgentResult(
            patch="", exit_status="Submitted", outcome_class=OutcomeClass.EMPTY_PATCH, message=EMPTY_MESSAGE
        )
