"""mini-swe-agent backend: DefaultAgent + LitellmModel + DockerEnvironment inside the instance's image.

Every command the model issues runs in the instance container (docker or podman CLI), never on the
host. The container carries run and case labels so leftovers can be found, and is removed by us when the
agent ends (mini-swe-agent's own cleanup runs in the background and may outlive the process): after the
result with `remove_in_background` (the run's cases), before it otherwise, and at once when interrupted.
"""

from __future__ import annotations

import errno
import importlib.util
import os
import subprocess
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import yaml

from harness.agents import AgentResult, AgentTask, in_background
from harness.config.schema import DEFAULT_MINI_CONFIG
from harness.errors import BudgetExhausted, CaseStopped, HarnessError
from harness.infra.containers import LABEL_CASE, LABEL_RUN
from harness.outcomes import OutcomeClass
from harness.results.records import Telemetry, disk_error, write_json_atomic


def mini_config_path(name: str, config_dir: Path) -> Path:
    """agent.mini_config as a file: a path (relative to the config dir) or a mini-swe-agent benchmark config.

    Raises HarnessError (one line) when neither exists; found without importing mini-swe-agent.
    """
    own = Path(name) if Path(name).is_absolute() else config_dir / name
    if own.is_file():
        return own
    spec = importlib.util.find_spec("minisweagent")
    benchmarks = Path(spec.origin).parent / "config" / "benchmarks" if spec and spec.origin else None
    if benchmarks is not None and (benchmarks / name).is_file():
        return benchmarks / name
    known = sorted(p.name for p in benchmarks.glob("*.yaml")) if benchmarks and benchmarks.is_dir() else []
    raise HarnessError(
        f"{config_dir / 'sweagent.yaml'}: agent.mini_config {name!r} is neither a file in {config_dir} nor a "
        f"mini-swe-agent benchmark config ({', '.join(known) or 'mini-swe-agent not installed'}); fix the name"
    )


def mini_benchmark_config(path: Path) -> dict[str, Any]:
    """The prompts and templates of a mini-swe-agent benchmark config (agent, environment, model sections)."""
    return yaml.safe_load(path.read_text())


OUTPUT_CAP_CHARS = 100_000


def cap_output(text: str, cap: int = OUTPUT_CAP_CHARS) -> str:
    """Keep the head and tail of a huge command output (the model's prompt and the trajectory stay bounded)."""
    if len(text) <= cap:
        return text
    half = cap // 2
    return f"{text[:half]}\n[swebench-harness: {len(text) - cap} characters elided]\n{text[-half:]}"


def capped_environment_class():
    from minisweagent.environments.docker import DockerEnvironment

    class CappedDockerEnvironment(DockerEnvironment):
        """mini-swe-agent's DockerEnvironment whose command outputs are capped before anything keeps them, and
        whose container starts in the background: the agent's first LLM request (which needs no container) is
        out meanwhile, and the first command waits for what is left (`start_wait_s`). A failed start is raised
        by that command, as the constructor would have."""

        start_wait_s = 0.0

        def _start_container(self) -> None:
            self._start_error: BaseException | None = None
            self._starting = threading.Thread(target=self._start_in_background, name="agent-container-start")
            self._starting.start()

        def _start_in_background(self) -> None:
            try:
                super()._start_container()
            except BaseException as e:  # handed to the first command (or dropped when none runs)
                self._start_error = e

        def wait_started(self) -> None:
            """Block until the container's start is over (its id set, or its error kept)."""
            if self._starting.is_alive():
                t0 = time.monotonic()
                self._starting.join()
                self.start_wait_s += time.monotonic() - t0

        def execute(self, action: dict, cwd: str = "", *, timeout: int | None = None) -> dict[str, Any]:
            self.wait_started()
            if self._start_error is not None:
                raise self._start_error
            output = super().execute(action, cwd, timeout=timeout)
            output["output"] = cap_output(output.get("output", ""))
            return output

    return CappedDockerEnvironment


def redacting_agent_class():
    from minisweagent.agents.default import DefaultAgent

    class RedactingAgent(DefaultAgent):
        """mini-swe-agent's DefaultAgent whose trajectory is redacted before it is written, atomically: a key
        the model or a provider echoed never reaches the disk, and a full disk keeps the last whole file."""

        def save(self, path: Path | None, *extra_dicts) -> dict:
            data = self.serialize(*extra_dicts)
            if path:
                write_json_atomic(Path(path), data)
            return data

    return RedactingAgent


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def modal_environment(task: AgentTask, bench: dict[str, Any]) -> Any:
    """--agent-env modal: the instance image as a SWE-ReX ModalDeployment (mini-swe-agent's swerex_modal)."""
    from minisweagent.environments.extra.swerex_modal import SwerexModalEnvironment

    from harness.infra.modal import mini_modal_environment_kwargs

    class CappedSwerexModalEnvironment(SwerexModalEnvironment):
        def execute(self, action: dict, cwd: str = "", *, timeout: int | None = None) -> dict[str, Any]:
            output = super().execute(action, cwd, timeout=timeout)
            output["output"] = cap_output(output.get("output", ""))
            return output

    kwargs = mini_modal_environment_kwargs(
        image=task.image,
        command_timeout_s=task.command_timeout_s,
        agent_timeout_s=task.agent_timeout_s,
        env=bench["environment"].get("env", {}),
    )
    return CappedSwerexModalEnvironment(**kwargs)


def _infra_class(exc: BaseException) -> OutcomeClass:
    """The class of an exception that ended the agent loop: ours carry it; the rest by where they come from."""
    if isinstance(exc, CaseStopped):
        return exc.outcome_class
    if type(exc).__module__.startswith(("litellm", "openai", "httpx")):
        return OutcomeClass.PROVIDER_ERROR
    if isinstance(exc, subprocess.CalledProcessError | subprocess.TimeoutExpired):
        return OutcomeClass.CONTAINER_ERROR
    return OutcomeClass.AGENT_CRASH


class MiniRunner:
    name = "mini-swe-agent"

    def __init__(self, *, remove_in_background: bool = False) -> None:
        self.remove_in_background = remove_in_background
        """Return the result while the container is removed (AgentResult.removal): the removal is then off
        the case's critical path (the next agent and the evaluation start meanwhile)."""

    def run(self, task: AgentTask) -> AgentResult:
        """The agent loop in the instance container; `wall_s` is the loop alone, the container's start and
        removal are timed apart (container_start_s: what the agent waited for its container, which starts
        during the first LLM request; container_remove_s, or AgentResult.removal while it runs on)."""
        bench = mini_benchmark_config(Path(task.mini_config or mini_config_path(DEFAULT_MINI_CONFIG, Path())))
        traj = task.artifacts_dir / "trajectory.json"
        env = agent = model = None
        t0 = time.monotonic()
        started_s = 0.0
        try:
            env = self._environment(task, bench)
            started_s = time.monotonic() - t0
            agent, model = self._agent(task, bench, env, traj)
            info = agent.run(task.row["problem_statement"])
            result = AgentResult(
                patch=info.get("submission", "") or "",
                exit_status=info.get("exit_status", ""),
                steps=agent.n_calls,
                trajectory=traj if traj.exists() else None,
                telemetry=_telemetry(model),
            )
        except Exception as exc:  # the agent loop re-raises what it cannot handle: not the model's outcome
            result = _failed(task, exc, agent, model, traj)
        except BaseException:  # interrupted (the worker is gone, a timeout): remove now, the process may end
            self._remove(task, env)
            raise
        waited_s = getattr(env, "start_wait_s", 0.0)  # inside the loop, for the container's start
        result.wall_s = time.monotonic() - t0 - started_s - waited_s
        result.container_start_s = started_s + waited_s
        if self.remove_in_background:
            # a failed `rm` gives None: the run's end removes its labelled leftovers
            result.removal = in_background(lambda: self._remove(task, env), f"harness-remove-{task.case_id}")
        else:
            result.container_remove_s = self._remove(task, env)
        return result

    @staticmethod
    def _environment(task: AgentTask, bench: dict[str, Any]):
        if task.agent_env == "modal":
            return modal_environment(task, bench)
        return capped_environment_class()(
            image=task.image,
            cwd="/testbed",
            executable=task.container_executable,
            timeout=task.command_timeout_s,
            env=bench["environment"].get("env", {}),
            interpreter=["bash", "-c"],
            run_args=[
                "--rm",
                "--label",
                f"{LABEL_RUN}={task.run_label}",
                "--label",
                f"{LABEL_CASE}={task.case_id}",
            ],
            container_timeout=f"{task.agent_timeout_s + 600}s",
        )

    def _agent(self, task: AgentTask, bench: dict[str, Any], env, traj: Path):
        from harness.agents.llm import HarnessLitellmModel

        model = HarnessLitellmModel(**self._model_config(task, bench))
        agent = redacting_agent_class()(
            model,
            env,
            system_template=bench["agent"]["system_template"],
            instance_template=bench["agent"]["instance_template"],
            step_limit=task.step_limit,
            cost_limit=0,
            wall_time_limit_seconds=task.agent_timeout_s,
            output_path=traj,
        )
        return agent, model

    @staticmethod
    def _remove(task: AgentTask, env) -> float:
        """Remove the agent's container now (mini-swe-agent's own cleanup runs in the background and may
        outlive the process); `-t 0` spares podman's 10 s stop grace. Returns the seconds it took."""
        if env is not None and task.agent_env == "modal":
            t0 = time.monotonic()
            env.stop()  # the Modal sandbox (SWE-ReX ModalDeployment)
            return time.monotonic() - t0
        if env is not None and hasattr(env, "wait_started"):
            env.wait_started()  # an agent that ended before its first command: its container may be starting
        if env is None or not env.container_id:
            return 0.0
        t0 = time.monotonic()
        podman = Path(task.container_executable).name.startswith("podman")
        grace = ["-t", "0"] if podman else []
        subprocess.run(
            [task.container_executable, "rm", "-f", *grace, env.container_id],
            capture_output=True,
            timeout=120,
        )
        env.container_id = None
        return time.monotonic() - t0

    @staticmethod
    def _model_config(task: AgentTask, bench: dict[str, Any]) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "drop_params": True,
            "timeout": min(task.retry.request_timeout_s, task.agent_timeout_s),
        }
        kwargs.update(task.model.model_kwargs)
        kwargs["max_retries"] = 0  # one retry policy (ours): nothing in model_kwargs turns the SDK's back on
        if task.api_base:
            kwargs["api_base"] = task.api_base
        if task.model.kind == "scripted":
            # litellm's openai client insists on a key; the scripted server ignores it. Not a secret.
            os.environ.setdefault("OPENAI_API_KEY", "scripted-server-needs-no-key")
        return {
            "entry": task.model,
            "policy": task.retry,
            "api_key_env": task.api_key_env,
            "calls_path": task.artifacts_dir / "llm_calls.jsonl",
            "reserve": task.reserve_call,
            "settle": task.settle_call,
            "model_name": task.model.litellm_id,
            "model_kwargs": kwargs,
            "cost_tracking": "ignore_errors",
            "observation_template": bench["model"]["observation_template"],
            "format_error_template": bench["model"]["format_error_template"],
        }


def _telemetry(model) -> Telemetry:
    from harness.agents.llm import summarize_calls

    return Telemetry(**summarize_calls(model.calls)) if model else Telemetry()


def _failed(task: AgentTask, exc: Exception, agent, model, traj: Path) -> AgentResult:
    """The result of an agent loop that raised: a cost limit is the model's outcome, the rest infra errors."""
    result = AgentResult(
        patch="",
        exit_status=type(exc).__name__,
        steps=agent.n_calls if agent else 0,
        trajectory=traj if traj.exists() else None,
        telemetry=_telemetry(model),
    )
    if isinstance(exc, BudgetExhausted) and exc.scope == "usd-per-case":
        result.outcome_class = OutcomeClass.COST_LIMIT  # the case spent its own budget: a model outcome
        return result
    result.infra_error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:500]
    if isinstance(exc, OSError) and exc.errno in DISK_FULL:
        result.infra_error = disk_error(Path(exc.filename or traj), exc, task.run_id)
    result.infra_class, result.traceback = _infra_class(exc), traceback.format_exc()
    return result
