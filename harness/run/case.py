"""run_case: one attempt of one model on one instance, from agent to official evaluation to CaseRecord.

The record is written atomically before the function returns; whatever happens to the process
afterwards, the case's outcome is on disk.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime

from harness.agents import (
    AgentResult,
    AgentTask,
    looks_like_diff,
    runner_for,
    settle_removal,
    with_budget_hooks,
)
from harness.config import FIXTURES_SLICE, ModelEntry, ProviderSettings
from harness.config.catalog import missing_key, provider_settings
from harness.errors import HarnessError
from harness.infra.containers import instance_image_name
from harness.infra.secrets import redact_json, redact_tree
from harness.outcomes import SKIP_CLASSES, Outcome, OutcomeClass
from harness.results.records import CaseRecord, mark_running, sha256_text, write_record, write_text_atomic
from harness.run.context import RunContext
from harness.run.grading import grade_patch
from harness.run.grid import Case

PATCH_CLASS_TEXT = {
    OutcomeClass.EMPTY_PATCH: "no patch submitted",
    OutcomeClass.MALFORMED_PATCH: "the submission is not a unified diff",
    OutcomeClass.STEP_LIMIT: "step limit reached without a submission",
    OutcomeClass.AGENT_TIMEOUT: "agent wall-time limit reached without a submission",
    OutcomeClass.FORMAT_ERRORS: "repeated format errors (no usable command)",
    OutcomeClass.COST_LIMIT: "cost limit reached without a submission",
    OutcomeClass.CONTEXT_LIMIT: "context window exhausted without a submission",
}
AGENT_EXIT_CLASSES = {  # mini-swe-agent's exit statuses
    "LimitsExceeded": OutcomeClass.STEP_LIMIT,
    "TimeExceeded": OutcomeClass.AGENT_TIMEOUT,
    "RepeatedFormatError": OutcomeClass.FORMAT_ERRORS,
}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def patch_class(result: AgentResult) -> str | None:
    """The model-outcome class decided before evaluation, or None when the patch should be evaluated."""
    if not result.patch.strip():
        return result.outcome_class or AGENT_EXIT_CLASSES.get(result.exit_status, OutcomeClass.EMPTY_PATCH)
    if not looks_like_diff(result.patch):
        return OutcomeClass.MALFORMED_PATCH
    return None


def agent_task(ctx: RunContext, case: Case, model: ModelEntry, row: dict) -> AgentTask:
    limits = ctx.cfg.agent.agent
    namespace = "localhost" if case.split == FIXTURES_SLICE else ctx.namespace
    needs_runtime = model.kind in ("scripted", "litellm") or (model.kind == "empty" and ctx.backend != "mini")
    task = AgentTask(
        run_id=ctx.run_id,
        run_label=ctx.paths.run_label,
        case_id=case.case_id,
        attempt=case.attempt,
        row=row,
        image=instance_image_name(case.instance_id, namespace),
        model=model,
        step_limit=limits.step_limit,
        command_timeout_s=limits.command_timeout_s,
        agent_timeout_s=case.agent_timeout_s(ctx.active_grids),
        artifacts_dir=ctx.paths.case_artifacts(case.case_id),
        container_executable=ctx.runtime.executable if needs_runtime else "",
        agent_env=ctx.agent_env,
        api_base=ctx.scripted_api_base() if model.kind == "scripted" else _api_base(ctx, model),
        api_key_env=provider_settings(ctx.cfg.catalog, model).api_key_env
        if model.kind == "litellm"
        else None,
        retry=ctx.cfg.agent.retries,
        mini_config=str(ctx.mini_config),
        ledger=ctx.ledger if model.kind == "litellm" else None,
    )
    return with_budget_hooks(task)  # the agent server's fork makes them again from task.ledger


def _api_base(ctx: RunContext, model: ModelEntry) -> str | None:
    """Explicit endpoints only (catalog or --model-spec); chutes/ and openrouter/ are known to litellm."""
    return (
        model.api_base or (ctx.cfg.catalog.providers.get(model.provider or "") or ProviderSettings()).api_base
    )


def skip_reason(ctx: RunContext, case: Case, model: ModelEntry) -> tuple[str, str] | None:
    """Why the case must not start: (excluded | no-credentials | unavailable | budget, message), else None."""
    quarantined = ctx.cfg.quarantined().get(case.instance_id)
    if quarantined is not None and not ctx.include_quarantined:
        return OutcomeClass.EXCLUDED, (
            f"quarantined ({quarantined.verdict}: {quarantined.reason}; run {quarantined.run_id}); "
            "--include-quarantined runs it"
        )
    if env := missing_key(ctx.cfg.catalog, model):
        return (
            OutcomeClass.NO_CREDENTIALS,
            f"{env} is not set: add it to secrets/credentials.txt (see README)",
        )
    status = ctx.availability.get(model.id, {})
    if status.get("status") == "unavailable":
        return OutcomeClass.UNAVAILABLE, f"{model.id}: {status.get('detail', 'not served by the provider')}"
    if model.kind == "litellm" and (scope := ctx.ledger.exhausted(model.provider or model.id, case.case_id)):
        return OutcomeClass.BUDGET, f"budget exhausted ({scope})"
    return None


@dataclass
class AgentPhase:
    """A case's agent, done: what grading and the record need (harness.run.prefetch runs it a case early)."""

    model: ModelEntry
    row: dict
    task: AgentTask
    result: AgentResult
    started: str
    t0: float
    finished: float = field(default_factory=time.monotonic)


def run_agent(ctx: RunContext, case: Case) -> AgentPhase:
    """The case's agent (or its skip: quarantined, no key, unavailable, budget), up to its patch."""
    started, t0 = _now(), time.monotonic()
    model = ctx.cfg.catalog.get(case.model_id)
    row = ctx.row(case.split, case.instance_id)
    task = agent_task(ctx, case, model, row)
    task.artifacts_dir.mkdir(parents=True, exist_ok=True)
    if skip := skip_reason(ctx, case, model):
        result = AgentResult(patch="", exit_status="NotStarted", infra_class=skip[0], infra_error=skip[1])
    else:
        runner = runner_for(model, ctx.backend, agent_server=ctx.agent_server, remove_in_background=True)
        result = runner.run(task)  # its container may still be going away: settled before the record
    return AgentPhase(model, row, task, result, started, t0)


def run_case(
    ctx: RunContext,
    case: Case,
    agent: Future[AgentPhase] | None = None,
    after_agent: Callable[[], None] | None = None,
) -> CaseRecord:
    """One attempt: agent, classification, official evaluation; the record is on disk when this returns.

    `agent`: the case's agent started earlier (harness.run.prefetch); `after_agent` runs once the agent is
    done and before grading (it starts the next case's agent).
    """
    phase = agent.result() if agent is not None else run_agent(ctx, case)
    handoff = time.monotonic() - phase.finished if agent is not None else 0.0
    if after_agent is not None:
        after_agent()
    model, row, task, result = phase.model, phase.row, phase.task, phase.result
    fields: dict = {"outcome_class": "", "message": "", "errors": [], "handoff_wait_s": round(handoff, 3)}
    if result.infra_class in SKIP_CLASSES:
        fields.update(
            outcome=Outcome.SKIPPED, outcome_class=result.infra_class, message=result.infra_error or ""
        )
    elif result.infra_error:
        fields.update(outcome=Outcome.ERROR, outcome_class=result.infra_class, message=result.infra_error)
        fields["errors"].append(
            {"stage": "agent", "error": result.infra_error, "traceback": result.traceback}
        )
    elif (cls := patch_class(result)) is not None:
        text = result.message or f"{PATCH_CLASS_TEXT[cls]} (agent exit: {result.exit_status})"
        fields.update(outcome=Outcome.UNRESOLVED, outcome_class=cls, message=text)
    else:
        fields.update(grade_patch(ctx, case, row, result.patch))
    if result.patch:
        write_text_atomic(task.artifacts_dir / "patch.diff", result.patch)  # redacted before it is written
    return save_record(ctx, case, model, row, result, fields, started=phase.started, t0=phase.t0)


def save_record(
    ctx: RunContext,
    case: Case,
    model: ModelEntry,
    row: dict,
    result: AgentResult,
    fields: dict,
    *,
    started: str,
    t0: float,
    infra_retries: int = 0,
) -> CaseRecord:
    """Build the CaseRecord, redact it and its artifacts, write it atomically, clear the running marker."""
    namespace = "localhost" if case.split == FIXTURES_SLICE else ctx.namespace
    settle_removal(result)  # the agent's container, removed while the case was classified and graded
    case_wall = time.monotonic() - t0
    server_wait = result.server_wait_s + fields.pop("server_start_wait_s", 0.0)  # the run's servers' load
    inside = result.wall_s + sum(
        fields.get(k, 0.0) for k in ("handoff_wait_s", "eval_queue_wait_s", "eval_wall_s")
    )
    record = CaseRecord(
        run_id=ctx.run_id,
        case_id=case.case_id,
        model_id=model.id,
        provider=model.provider,
        litellm_id=model.litellm_id,
        instance_id=case.instance_id,
        repo=row["repo"],
        split=case.split,
        attempt=case.attempt,
        agent_backend=runner_for(model, ctx.backend).name,
        patch=result.patch,
        patch_sha256=sha256_text(result.patch),
        agent_exit_status=result.exit_status,
        steps=result.steps,
        agent_wall_s=round(result.wall_s, 3),
        case_wall_s=round(case_wall, 3),
        overhead_s=round(max(case_wall - inside, 0.0), 3),
        container_start_s=_rounded(result.container_start_s),
        container_remove_s=_rounded(result.container_remove_s),
        server_start_wait_s=round(server_wait, 3),
        started_at=started,
        finished_at=_now(),
        telemetry=result.telemetry,
        versions=ctx.versions,
        dataset={
            **ctx.dataset_info.get(case.split, {}),
            "image": instance_image_name(case.instance_id, namespace),
        },
        image_digest=_image_digest(ctx, case, model, namespace, fields),
        config_hash=ctx.config_hash,
        model_settings=dict(model.model_kwargs),
        infra_retries=infra_retries,
        artifacts=_artifacts(ctx, case, result, fields.pop("log_dir", None)),
        **fields,
    )
    artifacts = ctx.paths.case_artifacts(case.case_id)
    if artifacts.is_dir():
        redact_tree(artifacts)  # trajectories, call logs and evaluator logs, before the record lands
    record = CaseRecord.model_validate(redact_json(record.model_dump(mode="json")))
    write_record(ctx.paths, record)
    return record


def execute_case(
    ctx: RunContext,
    case: Case,
    *,
    infra_retries: int = 0,
    agent: Future[AgentPhase] | None = None,
    after_agent: Callable[[], None] | None = None,
) -> CaseRecord:
    """run_case with resume (a finished model outcome is kept), a running marker, and in-run infra retries.

    An infra error is re-run up to `infra_retries` times; the earlier tries' artifacts are set aside
    (artifacts/<case_id>.infra-<n>) and their errors kept in the final record. The attempt number never changes.
    `agent` and `after_agent` (harness.run.prefetch) apply to the first try.
    """
    if (previous := previous_record(ctx.paths, case.case_id)) is not None:
        return previous
    errors: list[dict[str, str]] = []
    for tries in range(infra_retries + 1):
        if tries:
            _remove_leftovers(ctx, case)
        mark_running(ctx.paths, case.case_id)
        record = run_case(ctx, case, agent, after_agent) if tries == 0 else run_case(ctx, case)
        if record.outcome != Outcome.ERROR or tries == infra_retries:
            break
        errors += record.errors
        set_aside(ctx.paths.case_artifacts(case.case_id), f"infra-{tries + 1}")
    if tries:
        record = record.model_copy(update={"infra_retries": tries, "errors": errors + record.errors})
        write_record(ctx.paths, record)
    return record


def _remove_leftovers(ctx: RunContext, case: Case) -> None:
    """Before a retry: the containers a crashed try left (an evaluation's process killed after it made its
    container leaves one whose name the retry's evaluation would need)."""
    from harness.infra.containers import remove_labelled_containers

    # No runtime: the retry itself says so.
    with contextlib.suppress(HarnessError, OSError, subprocess.SubprocessError):
        remove_labelled_containers(ctx.runtime, ctx.paths.run_label, case.case_id)


def timeout_record(ctx: RunContext, case: Case, message: str, *, started: str, t0: float) -> CaseRecord:
    """The record of a case that pytest-timeout stopped (whole-case limit): an infra error, re-run by --resume."""
    model = ctx.cfg.catalog.get(case.model_id)
    row = ctx.row(case.split, case.instance_id)
    result = AgentResult(
        patch="", exit_status="CaseTimeout", infra_error=message, infra_class=OutcomeClass.CASE_TIMEOUT
    )
    fields = {
        "outcome": Outcome.ERROR,
        "outcome_class": OutcomeClass.CASE_TIMEOUT,
        "message": message,
        "errors": [{"stage": "case", "error": message, "traceback": ""}],
    }
    return save_record(ctx, case, model, row, result, fields, started=started, t0=t0)


def set_aside(path, suffix: str) -> None:
    """Keep an earlier try's files next to the case's (nothing recorded is deleted)."""
    if path.exists():
        path.rename(path.with_name(f"{path.name}.{suffix}-{time.time_ns()}"))


def _image_digest(ctx: RunContext, case: Case, model: ModelEntry, namespace: str, fields: dict) -> str | None:
    """The digest of the instance image the case ran on (None when it started no container, or was skipped)."""
    from harness.infra.images import needs_image

    if fields.get("outcome") == Outcome.SKIPPED or not needs_image(model.kind, ctx.backend):
        return None
    try:
        return ctx.image_digest(instance_image_name(case.instance_id, namespace))
    except (HarnessError, OSError, subprocess.SubprocessError):  # no runtime any more: the record still lands
        return None


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _artifacts(ctx: RunContext, case: Case, result: AgentResult, log_dir) -> dict[str, str]:
    base = ctx.paths.root
    found: dict[str, str] = {}
    if result.trajectory:
        found["trajectory"] = str(result.trajectory.relative_to(base))
    patch = ctx.paths.case_artifacts(case.case_id) / "patch.diff"
    if patch.exists():
        found["patch"] = str(patch.relative_to(base))
    if log_dir is not None:
        for name in ("report.json", "test_output.txt", "run_instance.log"):
            if (log_dir / name).exists():
                found[name.split(".")[0]] = str((log_dir / name).relative_to(base))
    return found


def previous_record(paths, case_id: str) -> CaseRecord | None:
    """A finished model outcome already on disk (a resumed run keeps it); infra errors are re-run."""
    path = paths.record(case_id)
    if not path.is_file():
        return None
    try:
        record = CaseRecord.model_validate_json(path.read_text())
    except ValueError:  # a torn or foreign file: keep it aside, the case runs again
        path.rename(path.with_name(f"{path.name}.corrupt-{time.time_ns()}"))
        return None
    return record if record.completed else None
