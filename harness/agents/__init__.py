"""The agent seam: every backend turns an AgentTask into an AgentResult (a patch plus how it got there).

Backends: baselines (gold, empty: no LLM, no container), mini (mini-swe-agent in the instance container).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from harness.config import ModelEntry, RetryPolicy
from harness.results.records import Telemetry

T = TypeVar("T")


@dataclass
class AgentTask:
    run_id: str
    case_id: str
    row: dict
    """The SWE-bench row (problem_statement, base_commit, patch, ...)."""
    image: str
    model: ModelEntry
    step_limit: int
    command_timeout_s: int
    agent_timeout_s: int
    artifacts_dir: Path
    container_executable: str
    agent_env: str = "docker"
    """docker (the instance container on this machine) or modal (SWE-ReX's ModalDeployment: harness.infra.modal)."""
    api_base: str | None = None
    api_key_env: str | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    attempt: int = 1
    mini_config: str = ""
    """mini-swe-agent benchmark config (a file path; agent.mini_config resolved by agents.mini.mini_config_path)."""
    reserve_call: Callable[[], int] | None = None
    """Budget ledger hook before each request (raises budget.BudgetExhausted)."""
    settle_call: Callable[[int, float | None, str], None] | None = None
    run_label: str = ""
    """The run label its container carries (harness.results.records.RunPaths.run_label); '' = the run id."""
    ledger: Any = None
    """The run's budget ledger (harness.infra.budget.Ledger) for agents whose requests happen in another
    process (SWE-agent, the agent server: they open the same SQLite file there); None = no budget (baselines,
    scripted)."""

    def __post_init__(self) -> None:
        self.run_label = self.run_label or self.run_id


@dataclass
class AgentResult:
    patch: str
    exit_status: str
    """Submitted | LimitsExceeded | TimeExceeded | RepeatedFormatError | <exception name> (mini-swe-agent's words)."""
    steps: int = 0
    wall_s: float = 0.0
    """The agent loop's wall time (the container's start and removal are counted apart)."""
    container_start_s: float | None = None
    container_remove_s: float | None = None
    server_wait_s: float = 0.0
    """Waiting for the run's agent server to finish loading before this agent could start (a worker's first
    cases; part of neither wall_s nor the container's start)."""
    removal: Future[float | None] | None = field(default=None, repr=False, compare=False)
    """The agent's container removal when it runs on after the result (a runner made with
    `remove_in_background`): its seconds, or None when it failed; `settle_removal` waits for it."""
    trajectory: Path | None = None
    telemetry: Telemetry = field(default_factory=Telemetry)
    infra_error: str | None = None
    """Set when the attempt ended for a reason that is not the model's (provider, container, budget)."""
    infra_class: str = ""
    """provider-error, container-error, agent-crash (errors) or unavailable, budget (skips)."""
    traceback: str = ""
    outcome_class: str = ""
    message: str = ""
    """A backend's own one-line explanation of its outcome (e.g. the empty baseline's)."""
    """A backend's own model-outcome class for an attempt without a patch (e.g. SWE-agent's context-limit)."""


REMOVAL_WAIT_S = 180.0
"""How long a case waits for its agent's container removal before its record is written (the `rm` itself
gives up after 120 s)."""


def in_background(work: Callable[[], T], name: str) -> Future[T | None]:
    """`work()` in a daemon thread named `name`; its value, or None when it raised, in the returned future."""
    future: Future[T | None] = Future()

    def run() -> None:
        try:
            future.set_result(work())
        except Exception:
            future.set_result(None)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


def settle_removal(result: AgentResult) -> None:
    """Wait for the container removal still under way after `result` (if any) and record its seconds."""
    if result.removal is not None:
        removal, result.removal = result.removal, None
        try:
            result.container_remove_s = removal.result(timeout=REMOVAL_WAIT_S)
        except Exception:  # a removal that failed or hangs: the record lands; the run's end removes leftovers
            result.container_remove_s = None


def with_budget_hooks(task: AgentTask) -> AgentTask:
    """`task` with its reserve/settle hooks on its ledger (set again in a process the task was sent to)."""
    if task.ledger is not None:
        ledger, provider, case_id = task.ledger, task.model.provider or task.model.id, task.case_id
        task.reserve_call = lambda: ledger.reserve_call(provider, case_id)
        task.settle_call = lambda call_id, cost, status: ledger.settle_call(
            call_id, cost_usd=cost, status=status
        )
    return task


def looks_like_diff(patch: str) -> bool:
    """A git diff (any `diff --git` header: binary, rename and mode-only diffs included) or a unified diff."""
    lines = patch.splitlines()
    if any(line.startswith("diff --git ") for line in lines):
        return True
    return any(line.startswith("--- ") for line in lines) and "@@" in patch


class AgentRunner(Protocol):
    name: str

    def run(self, task: AgentTask) -> AgentResult: ...


BACKENDS = ("mini", "sweagent")


def runner_for(
    model: ModelEntry,
    backend: str = "mini",
    agent_server: Path | None = None,
    *,
    remove_in_background: bool = False,
) -> AgentRunner:
    """The runner for `model` under `backend`: gold needs no agent; everything else runs in the chosen agent
    (mini-swe-agent in a fork of the run's agent server when there is one: harness.agents.server).
    `remove_in_background`: mini-swe-agent's result comes back while its container is still being removed
    (AgentResult.removal; the caller settles it with `settle_removal`)."""
    if model.kind == "predictions":
        from harness.agents.predictions import PredictionsRunner

        return PredictionsRunner()
    if model.kind in ("gold", "noop") or (model.kind == "empty" and backend == "mini"):
        from harness.agents.baselines import BaselineRunner

        return BaselineRunner()
    if backend == "sweagent":
        from harness.agents.sweagent import SweAgentRunner

        return SweAgentRunner()
    if agent_server is not None:
        from harness.agents.server import RemoteMiniRunner

        return RemoteMiniRunner(agent_server, remove_in_background=remove_in_background)
    from harness.agents.mini import MiniRunner

    return MiniRunner(remove_in_background=remove_in_background)
