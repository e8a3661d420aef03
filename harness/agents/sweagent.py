"""SWE-agent 1.1.0 backend: one `sweagent run-batch` subprocess per case, in the instance's image.

The case becomes two files in its artifacts folder: a one-row instances file (`instances.type: file`:
instance_id, problem_statement, image_name, repo_name `testbed`, base_commit) and a per-case config
layered over the agent config (config/sweagent_tool.yaml or sweagent_thought_action.yaml): the model,
the limits, and SWE-ReX's docker deployment of the instance image (`container_runtime` docker or podman,
`pull: never`, `python_standalone_dir: ""` so SWE-ReX runs the image's `swerex-remote` instead of
building an image from Docker Hub, run/case labels on the container). SWE-agent never runs with its
local deployment (it would copy the repo to the host's `/`).

Keys only travel in the environment: the config names the variable (`api_key: $CHUTES_API_KEY`, which
SWE-agent resolves itself), never the value, because SWE-agent copies its config into every trajectory.

Models: `empty` is SWE-agent's `instant_empty_submit` (thought_action config; its one `touch
reproduce.py` is blocked so the submission really is empty); `scripted` is SWE-agent over litellm against
the scripted server, which speaks mini-swe-agent's submit protocol (`echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT
&& cat patch.txt`): a small tool bundle, written per case, turns that line into SWE-agent's submission;
catalog models go through litellm with the tool-calling config.

Outputs (preds.json, <iid>.traj, run_batch_exit_statuses.yaml) are read with harness.agents.sweagent_outputs.
SWE-agent runs as `python -m harness.agents.sweagent_subprocess run-batch ...` (the code that runs inside
that process lives there; the case's input files in harness.agents.sweagent_inputs): the same CLI, with a litellm callback
that writes one CallRecord per HTTP request to llm_calls.jsonl (provider usage, latency, status, catalog
cost), as the mini-swe-agent backend does, and the run's budget ledger: every request is reserved before it
is sent and settled after, exactly as under mini-swe-agent (a refusal: `apply_refusal`). When that log is
complete it is the case's telemetry; else SWE-agent's model_stats are (tokens from its local tokenizer).
Its console output reaches sweagent.log through a pipe, redacted line by line before it is written.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import IO

import yaml

from harness.agents import AgentResult, AgentTask
from harness.agents.sweagent_inputs import REFUSAL_FILE, STARTUP_MARGIN_S, prepare, subprocess_env
from harness.agents.sweagent_outputs import (
    SweAgentOutputError,
    SweAgentRun,
    exit_status_class,
    parse_trajectory,
    read_preds,
    run_class,
    telemetry_from_run,
    trajectory_path,
)
from harness.errors import one_line
from harness.infra.containers import LABEL_CASE
from harness.outcomes import OutcomeClass as C
from harness.results.records import Telemetry


def _kill_group(proc: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue


def remove_case_containers(executable: str, case_id: str) -> int:
    """Remove containers labelled with this case (left behind by a killed or crashed SWE-agent)."""
    try:
        done = subprocess.run(
            [executable, "ps", "-aq", "--filter", f"label={LABEL_CASE}={case_id}"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        ids = done.stdout.split()
        if ids:
            subprocess.run([executable, "rm", "-f", *ids], capture_output=True, timeout=120)
        return len(ids)
    except (OSError, subprocess.TimeoutExpired):
        return 0


def _uncaught(out: Path, instance_id: str) -> str:
    """SWE-agent's status for an instance that raised past the agent ("Uncaught RuntimeError"), if any."""
    path = out / "run_batch_exit_statuses.yaml"
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return ""
    for status, ids in (data.get("instances_by_exit_status") or {}).items():
        if instance_id in (ids or []):
            return str(status)
    return ""


def _log_lines(out: Path, instance_id: str, output: str) -> list[str]:
    """The instance's own log (unwrapped, with the container's stderr) and then the CLI output."""
    lines: list[str] = []
    with contextlib.suppress(OSError):
        lines = (out / instance_id / f"{instance_id}.info.log").read_text(errors="replace").splitlines()
    return lines + output.splitlines()


def _error_line(lines: list[str]) -> str:
    """The most telling error line: the container CLI's own `Error:`, else SWE-agent's last error."""
    cli = [line for line in lines if line.strip().startswith("Error:")]
    if cli:
        return one_line(cli[-1])
    for needle in ("Failed on", "ERROR", "Error", "Traceback"):
        hits = [line for line in lines if needle in line]
        if hits:
            return one_line(hits[-1])
    return one_line(lines[-1]) if lines else ""


def _runtime_started(lines: list[str]) -> bool:
    """SWE-ReX logs "Runtime started in ..." once the container answers; before that, failures are the container's."""
    return any("Runtime started" in line for line in lines)


def _infra_class(cls: str, detail: str) -> str:
    """Refine exit_status_class for the runner: a model the provider does not serve is `unavailable` (a skip)."""
    if cls == C.PROVIDER_ERROR and ("NotFoundError" in detail or "does not exist" in detail):
        return C.UNAVAILABLE
    return cls


def read_calls(path: Path) -> list:
    """CallRecords the subprocess logged (a torn last line, from a killed process, is skipped)."""
    from harness.agents.llm import CallRecord

    calls = []
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            with contextlib.suppress(ValueError, TypeError):
                calls.append(CallRecord(**json.loads(line)))
    return calls


def case_telemetry(task: AgentTask, run: SweAgentRun | None) -> Telemetry:
    """Per-call records when the callback saw every call SWE-agent counted; else SWE-agent's model_stats."""
    if task.model.kind == "empty":
        return Telemetry()  # instant_empty_submit calls no LLM
    from harness.agents.llm import summarize_calls

    calls = read_calls(task.artifacts_dir / "llm_calls.jsonl")
    ok = sum(1 for c in calls if c.status == "ok")
    if calls and (run is None or ok >= run.api_calls):
        return Telemetry(**summarize_calls(calls))
    return telemetry_from_run(run) if run is not None else Telemetry()


def result_from_outputs(
    task: AgentTask, out: Path, *, wall_s: float, output: str = "", returncode: int | None = 0
) -> AgentResult:
    """AgentResult from what run-batch left in `out` (preds.json, the .traj, the exit-status report)."""
    iid = task.row["instance_id"]
    traj = trajectory_path(out, iid)
    lines = _log_lines(out, iid, output)
    if not traj.is_file():
        status = _uncaught(out, iid) or (f"exit code {returncode}" if returncode else "no trajectory")
        detail = _error_line(lines)
        cls, _ = exit_status_class(status, "", message=detail)
        if not _runtime_started(lines):
            cls = C.CONTAINER_ERROR  # the instance container never answered (image, runtime, swerex-remote)
        return AgentResult(
            patch="",
            exit_status=status,
            wall_s=wall_s,
            telemetry=case_telemetry(task, None),
            infra_error=f"SWE-agent produced no trajectory ({status}): {detail}"[:500],
            infra_class=_infra_class(cls if cls != C.EMPTY_PATCH else C.AGENT_CRASH, detail),
        )
    run = parse_trajectory(traj, iid)
    patch = run.patch
    preds = out / "preds.json"
    if preds.is_file():
        patch = read_preds(preds).get(iid, patch)
    cls, infra = run_class(run, patch)
    result = AgentResult(
        patch=patch,
        exit_status=run.exit_status,
        steps=run.steps,
        wall_s=wall_s,
        trajectory=traj,
        telemetry=case_telemetry(task, run),
    )
    if infra:
        detail = run.exit_message or _error_line(lines)
        result.infra_error = f"SWE-agent exit status {run.exit_status or '(none)'}: {detail}"[:500]
        result.infra_class = _infra_class(cls, detail)
    elif cls not in ("evaluate", C.MALFORMED_PATCH):
        result.outcome_class = cls  # step-limit, cost-limit, context-limit, ...
    return result


def copy_redacted(stream: IO[bytes], path: Path) -> None:
    """SWE-agent's console output into `path`, line by line, redacted before it is written."""
    from harness.infra.secrets import redact_bytes

    with stream, open(path, "wb") as log:
        for line in iter(stream.readline, b""):
            log.write(redact_bytes(line)[0])
            log.flush()


def budget_refusal(task: AgentTask) -> dict | None:
    """The ledger's refusal the subprocess wrote ({"scope", "message"}), if it refused a request."""
    try:
        refusal = json.loads((task.artifacts_dir / REFUSAL_FILE).read_text())
    except (OSError, ValueError):
        return None
    return refusal if isinstance(refusal, dict) else None


def apply_refusal(task: AgentTask, result: AgentResult) -> AgentResult:
    """As under mini-swe-agent: the case's own cap is a model outcome (cost-limit) unless SWE-agent submitted a
    diff (its exit_cost autosubmission is evaluated); the run's cap and the daily quota skip the case (budget)."""
    refusal = budget_refusal(task)
    if refusal is None:
        return result
    message = str(refusal.get("message", ""))[:500]
    if refusal.get("scope") == "usd-per-case":
        if not result.patch.strip():
            result.outcome_class, result.infra_error, result.infra_class = C.COST_LIMIT, None, ""
        return result
    return AgentResult(
        patch="",
        exit_status="BudgetExhausted",
        steps=result.steps,
        wall_s=result.wall_s,
        trajectory=result.trajectory,
        telemetry=result.telemetry,
        infra_error=message,
        infra_class=C.BUDGET,
    )


class SweAgentRunner:
    name = "swe-agent"

    def run(self, task: AgentTask) -> AgentResult:
        executable = task.container_executable or os.environ.get("MSWEA_DOCKER_EXECUTABLE") or "docker"
        start = time.monotonic()
        proc: subprocess.Popen | None = None
        work = task.artifacts_dir / "sweagent"
        out = work / "output"
        try:
            argv, out = prepare(task, executable)
            work.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(prefix="harness-sweagent-") as cwd:
                proc = subprocess.Popen(
                    argv,
                    cwd=cwd,  # no stray .env or relative paths from the caller's directory
                    env=subprocess_env(task),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: a timeout kills SWE-agent and its children
                )
                assert proc.stdout is not None
                copier = threading.Thread(target=copy_redacted, args=(proc.stdout, work / "sweagent.log"))
                copier.start()
                try:
                    returncode = proc.wait(timeout=task.agent_timeout_s + STARTUP_MARGIN_S)
                except subprocess.TimeoutExpired:
                    _kill_group(proc)
                    copier.join(timeout=30)
                    return apply_refusal(task, self._timed_out(task, out, time.monotonic() - start))
                copier.join(timeout=30)
            output = (work / "sweagent.log").read_text(errors="replace")
            result = result_from_outputs(
                task, out, wall_s=time.monotonic() - start, output=output[-20000:], returncode=returncode
            )
            return apply_refusal(task, result)
        except (SweAgentOutputError, OSError, yaml.YAMLError) as exc:
            return AgentResult(
                patch="",
                exit_status=type(exc).__name__,
                wall_s=time.monotonic() - start,
                infra_error=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:500],
                infra_class=C.AGENT_CRASH,
                traceback=traceback.format_exc(),
            )
        finally:
            if proc is not None and proc.poll() is None:
                _kill_group(proc)
            remove_case_containers(executable, task.case_id)

    @staticmethod
    def _timed_out(task: AgentTask, out: Path, wall_s: float) -> AgentResult:
        """The harness's wall-time limit: a model outcome (as mini-swe-agent's TimeExceeded), partial trajectory kept."""
        traj = trajectory_path(out, task.row["instance_id"])
        run = None
        with contextlib.suppress(SweAgentOutputError):
            if traj.is_file():
                run = parse_trajectory(traj, task.row["instance_id"])
        return AgentResult(
            patch="",
            exit_status="TimeExceeded",
            steps=run.steps if run else 0,
            wall_s=wall_s,
            trajectory=traj if traj.is_file() else None,
            telemetry=case_telemetry(task, run),
        )
