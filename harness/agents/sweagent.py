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
SWE-agent runs as `python -m harness.agents.sweagent run-batch ...`: the same CLI, with a litellm callback
that writes one CallRecord per HTTP request to llm_calls.jsonl (provider usage, latency, status, catalog
cost), as the mini-swe-agent backend does. When that log is complete it is the case's telemetry; else
SWE-agent's model_stats are (tokens from its local tokenizer).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import yaml

from harness.agents import AgentResult, AgentTask
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
from harness.infra.containers import LABEL_CASE, LABEL_RUN
from harness.results.records import Telemetry

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
TOOL_CONFIG = "sweagent_tool.yaml"
THOUGHT_ACTION_CONFIG = "sweagent_thought_action.yaml"
STARTUP_MARGIN_S = 90
"""Beyond agent_timeout_s: SWE-agent's imports, container start, tool install, writing outputs."""
SCRIPTED_KEY = "scripted-server-needs-no-key"
"""litellm's openai client insists on a key; the scripted server ignores it. Not a secret."""
CALLS_ENV = "HARNESS_SWEAGENT_CALLS"
"""Where the subprocess's litellm callback appends CallRecords (llm_calls.jsonl of the case)."""
MODEL_ENV = "HARNESS_SWEAGENT_MODEL"
"""The catalog entry (JSON, no secrets: model_kwargs refuse them) for provider, id and prices of each call."""
_SAMPLING_FIELDS = ("temperature", "top_p")
"""model_kwargs that are fields of SWE-agent's model config; the rest go to litellm as completion_kwargs."""

MINI_SUBMIT_INSTALL = """\
# mini-swe-agent's submit protocol for SWE-agent (only the scripted test model speaks it): the model wrote
# its diff to patch.txt and runs `echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && cat patch.txt`.
echo() {
  if [ "$*" = COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT ]; then _mini_submit; else builtin echo "$@"; fi
}
"""
MINI_SUBMIT_BIN = """\
#!/bin/sh
# patch.txt (mini-swe-agent's convention) becomes SWE-agent's submission; without it, the repo's diff.
if [ -f patch.txt ]; then
  cp patch.txt /root/model.patch
else
  (cd "${ROOT:-/testbed}" && git add -A && git diff --cached > /root/model.patch)
fi
printf '%s\\n' '<<SWE_AGENT_SUBMISSION>>'
"""


_SWEAGENT_DIRS = {
    "SWE_AGENT_CONFIG_DIR": "config",
    "SWE_AGENT_TOOLS_DIR": "tools",
    "SWE_AGENT_TRAJECTORY_DIR": "trajectories",
}


def sweagent_checkout_env(environ: dict[str, str] | os._Environ = os.environ) -> dict[str, str]:
    """With SWE_AGENT_CONFIG_ROOT (a v1.1.0 checkout) set, the other directories SWE-agent asserts at import."""
    root = environ.get("SWE_AGENT_CONFIG_ROOT")
    if not root:
        return {}
    return {var: str(Path(root) / sub) for var, sub in _SWEAGENT_DIRS.items() if not environ.get(var)}


def sweagent_problem() -> str | None:
    """Why SWE-agent cannot run here (one line), else None; without importing it (that takes seconds).

    SWE-agent 1.1.0 asserts at import that config/, tools/ and trajectories/ sit next to its package, and
    our agent configs name its tool bundles relative to that root: a plain (non-editable) install from the
    git tag has none of them, unless SWE_AGENT_CONFIG_ROOT points at a checkout.
    """
    spec = importlib.util.find_spec("sweagent")
    if spec is None or not spec.origin:
        return "SWE-agent is not installed"
    package_root = Path(spec.origin).resolve().parents[1]
    env = {**os.environ, **sweagent_checkout_env()}
    dirs = [Path(env.get(var) or package_root / sub) for var, sub in _SWEAGENT_DIRS.items()]
    bundles = Path(env.get("SWE_AGENT_CONFIG_ROOT") or package_root) / "tools" / "registry"
    missing = [str(d) for d in [*dirs, bundles] if not d.is_dir()]
    if missing:
        return (
            f"SWE-agent lacks {', '.join(missing)} (a non-editable install?); install it editable, "
            "or set SWE_AGENT_CONFIG_ROOT to a SWE-agent v1.1.0 checkout"
        )
    return None


def runtime_name(executable: str) -> str:
    """SWE-ReX's `container_runtime` for a container CLI path (podman, else docker)."""
    return "podman" if Path(executable).name.startswith("podman") else "docker"


def instance_row(task: AgentTask) -> dict[str, Any]:
    """The instances-file row (SWE-agent's SimpleBatchInstance) of the case."""
    return {
        "instance_id": task.row["instance_id"],
        "problem_statement": task.row["problem_statement"],
        "image_name": task.image,
        "repo_name": "testbed",
        "base_commit": task.row.get("base_commit") or "HEAD",
    }


def agent_config_name(task: AgentTask) -> str:
    return THOUGHT_ACTION_CONFIG if task.model.kind == "empty" else TOOL_CONFIG


def model_config(task: AgentTask) -> dict[str, Any]:
    """agent.model of the per-case config: names and limits only, never a key value."""
    limits = {
        "per_instance_cost_limit": 0,  # SWE-agent prices with litellm's map; caps are the harness's ledger
        "total_cost_limit": 0,
        "per_instance_call_limit": task.step_limit,
    }
    if task.model.kind == "empty":
        return {"name": "instant_empty_submit", **limits}
    kwargs = dict(task.model.model_kwargs)
    model: dict[str, Any] = {"name": task.model.litellm_id, **limits}
    model.update({k: kwargs.pop(k) for k in _SAMPLING_FIELDS if k in kwargs})
    model["completion_kwargs"] = {
        "drop_params": True,
        "max_retries": 0,  # one retry layer: SWE-agent's own (agent.model.retry, from the harness policy)
        "timeout": min(task.retry.request_timeout_s, task.agent_timeout_s),
        **kwargs,
    }
    model["retry"] = {
        "retries": task.retry.max_attempts,
        "min_wait": task.retry.base_delay_s,
        "max_wait": task.retry.max_delay_s,
    }
    if task.api_base:
        model["api_base"] = task.api_base
    if task.model.kind == "litellm" and task.api_key_env:
        # `$VAR`: SWE-agent reads the variable at request time; the value never lands in a file
        model["api_key"] = f"${task.api_key_env}"
    if task.model.context_window:
        model["max_input_tokens"] = task.model.context_window
    return model


def case_config(task: AgentTask, instances: Path, executable: str, bundle: Path | None) -> dict[str, Any]:
    """The per-case layer over the agent config: instances + deployment, model, limits, outputs."""
    tools: dict[str, Any] = {
        "execution_timeout": task.command_timeout_s,
        "total_execution_timeout": task.agent_timeout_s,
    }
    if task.model.kind == "empty":
        # instant_empty_submit runs `touch reproduce.py` before `submit`: block it, so the no-patch
        # baseline submits no patch (not a diff adding an empty file).
        tools["filter"] = {"blocklist_standalone": ["touch reproduce.py"]}
    if bundle is not None:
        base = yaml.safe_load((CONFIG_DIR / agent_config_name(task)).read_text())
        tools["bundles"] = [*base["agent"]["tools"]["bundles"], {"path": str(bundle)}]
    return {
        "instances": {
            "type": "file",
            "path": str(instances),
            "deployment": {
                "type": "docker",
                "container_runtime": runtime_name(executable),
                "pull": "never",
                "python_standalone_dir": "",  # "" = use the image's swerex-remote (None becomes "/root")
                "docker_args": [
                    "--label",
                    f"{LABEL_RUN}={task.run_id}",
                    "--label",
                    f"{LABEL_CASE}={task.case_id}",
                ],
            },
        },
        "agent": {"model": model_config(task), "tools": tools},
        "redo_existing": True,
        "progress_bar": False,
        "num_workers": 1,
    }


def subprocess_env(task: AgentTask) -> dict[str, str]:
    """os.environ plus what SWE-agent needs; keys stay in the variables they are already in."""
    env = dict(os.environ)
    env.update(sweagent_checkout_env(env))
    env.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no fetch of litellm's price map per case
    env["PYTHONUNBUFFERED"] = "1"
    env["COLUMNS"] = "200"  # rich wraps SWE-agent's console log at 80 columns when it is not a terminal
    env[CALLS_ENV] = str(task.artifacts_dir / "llm_calls.jsonl")
    env[MODEL_ENV] = task.model.model_dump_json()
    if task.model.kind == "scripted":
        env["OPENAI_API_KEY"] = SCRIPTED_KEY  # never send a real key to the test server
    return env


def write_mini_submit_bundle(root: Path) -> Path:
    """A SWE-agent tool bundle that understands mini-swe-agent's submit line (for the scripted model)."""
    bundle = root / "mini_submit"
    (bundle / "bin").mkdir(parents=True, exist_ok=True)
    (bundle / "config.yaml").write_text("tools: {}\n")
    (bundle / "install.sh").write_text(MINI_SUBMIT_INSTALL)
    (bundle / "bin" / "_mini_submit").write_text(MINI_SUBMIT_BIN)
    (bundle / "bin" / "_mini_submit").chmod(0o755)
    return bundle


def prepare(task: AgentTask, executable: str) -> tuple[list[str], Path]:
    """Write the case's SWE-agent inputs under artifacts_dir/sweagent; return (argv, output dir)."""
    work = task.artifacts_dir / "sweagent"
    out = work / "output"
    shutil.rmtree(out, ignore_errors=True)  # a resumed case starts clean (run-batch skips existing .traj)
    out.mkdir(parents=True)
    (task.artifacts_dir / "llm_calls.jsonl").unlink(missing_ok=True)
    instances = work / "instances.yaml"
    instances.write_text(yaml.safe_dump([instance_row(task)], sort_keys=False))
    bundle = write_mini_submit_bundle(work) if task.model.kind == "scripted" else None
    config = work / "case_config.yaml"
    config.write_text(yaml.safe_dump(case_config(task, instances, executable, bundle), sort_keys=False))
    argv = [
        sys.executable,
        "-m",
        "harness.agents.sweagent",  # = the `sweagent` CLI + the per-call telemetry callback
        "run-batch",
        "--config",
        str(CONFIG_DIR / agent_config_name(task)),
        "--config",
        str(config),
        f"--output_dir={out}",
    ]
    return argv, out


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
        return " ".join(cli[-1].split())[:400]
    for needle in ("Failed on", "ERROR", "Error", "Traceback"):
        hits = [line for line in lines if needle in line]
        if hits:
            return " ".join(hits[-1].split())[:400]
    return " ".join(lines[-1].split())[:400] if lines else ""


def _runtime_started(lines: list[str]) -> bool:
    """SWE-ReX logs "Runtime started in ..." once the container answers; before that, failures are the container's."""
    return any("Runtime started" in line for line in lines)


def _infra_class(cls: str, detail: str) -> str:
    """Refine exit_status_class for the runner: a model the provider does not serve is `unavailable` (a skip)."""
    if cls == "provider-error" and ("NotFoundError" in detail or "does not exist" in detail):
        return "unavailable"
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
            cls = "container-error"  # the instance container never answered (image, runtime, swerex-remote)
        return AgentResult(
            patch="",
            exit_status=status,
            wall_s=wall_s,
            telemetry=case_telemetry(task, None),
            infra_error=f"SWE-agent produced no trajectory ({status}): {detail}"[:500],
            infra_class=_infra_class(cls if cls != "empty-patch" else "agent-crash", detail),
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
    elif cls not in ("evaluate", "malformed-patch"):
        result.outcome_class = cls  # step-limit, cost-limit, context-limit, ...
    return result


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
            with (
                tempfile.TemporaryDirectory(prefix="harness-sweagent-") as cwd,
                open(work / "sweagent.log", "w") as log,
            ):
                proc = subprocess.Popen(
                    argv,
                    cwd=cwd,  # no stray .env or relative paths from the caller's directory
                    env=subprocess_env(task),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: a timeout kills SWE-agent and its children
                )
                try:
                    returncode = proc.wait(timeout=task.agent_timeout_s + STARTUP_MARGIN_S)
                except subprocess.TimeoutExpired:
                    _kill_group(proc)
                    return self._timed_out(task, out, time.monotonic() - start)
            output = (work / "sweagent.log").read_text(errors="replace")
            return result_from_outputs(
                task, out, wall_s=time.monotonic() - start, output=output[-20000:], returncode=returncode
            )
        except (SweAgentOutputError, OSError, yaml.YAMLError) as exc:
            return AgentResult(
                patch="",
                exit_status=type(exc).__name__,
                wall_s=time.monotonic() - start,
                infra_error=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:500],
                infra_class="agent-crash",
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


# ----- inside the SWE-agent subprocess: `python -m harness.agents.sweagent run-batch ...` -----------------


def install_call_logger(calls_path: Path, entry) -> None:
    """A litellm callback appending one CallRecord per request SWE-agent makes (litellm retries are off)."""
    import litellm
    from litellm.integrations.custom_logger import CustomLogger

    from harness.agents.llm import CallRecord, count_tokens, price_call

    state = {"failed": 0, "failed_at": 0.0}

    def write(call: CallRecord) -> None:
        calls_path.parent.mkdir(parents=True, exist_ok=True)
        with calls_path.open("a") as f:
            f.write(json.dumps(call.__dict__) + "\n")

    def timing(start_time, end_time) -> tuple[float, float, float]:
        started, ended = start_time.timestamp(), end_time.timestamp()
        waited = started - state["failed_at"] if state["failed"] else 0.0
        return started, round(ended - started, 4), round(max(waited, 0.0), 3)

    class CallLog(CustomLogger):
        def log_success_event(self, kwargs, response_obj, start_time, end_time):
            started, latency, waited = timing(start_time, end_time)
            message = response_obj.choices[0].message
            text = (message.content or "") + "".join(
                tc.function.arguments or "" for tc in (getattr(message, "tool_calls", None) or [])
            )
            usage = getattr(response_obj, "usage", None)
            prompt, completion, cached, source = count_tokens(
                kwargs.get("model", ""), kwargs.get("messages") or [], text, usage
            )
            provider_cost = getattr(usage, "cost", None) if usage else None
            write(
                CallRecord(
                    started,
                    entry.provider or "",
                    entry.id,
                    state["failed"] + 1,
                    "ok",
                    latency,
                    prompt,
                    completion,
                    cached,
                    source,
                    price_call(entry, prompt, completion),
                    float(provider_cost) if provider_cost is not None else None,
                    waited,
                )
            )
            state["failed"] = 0

        def log_failure_event(self, kwargs, response_obj, start_time, end_time):
            started, latency, waited = timing(start_time, end_time)
            exc = kwargs.get("exception")
            status = str(getattr(exc, "status_code", "") or type(exc).__name__)
            write(
                CallRecord(
                    started,
                    entry.provider or "",
                    entry.id,
                    state["failed"] + 1,
                    status,
                    latency,
                    retry_wait_s=waited,
                    error=f"{type(exc).__name__}: {str(exc)[:300]}",
                )
            )
            state["failed"] += 1
            state["failed_at"] = end_time.timestamp()

    litellm.callbacks.append(CallLog())


def _main(argv: list[str]) -> None:
    if os.environ.get(CALLS_ENV) and os.environ.get(MODEL_ENV):
        from harness.config import ModelEntry

        install_call_logger(
            Path(os.environ[CALLS_ENV]), ModelEntry.model_validate_json(os.environ[MODEL_ENV])
        )
    from sweagent.run.run import main

    main(argv)


if __name__ == "__main__":
    _main(sys.argv[1:])
