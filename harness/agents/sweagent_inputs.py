"""SWE-agent backend, the case's inputs: the one-row instances file, the per-case config layered over the
agent config, the environment of the subprocess, and whether SWE-agent can run here at all.

Keys only travel in the environment: the config names the variable (`api_key: $CHUTES_API_KEY`, which
SWE-agent resolves itself), never the value, because SWE-agent copies its config into every trajectory.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

from harness.agents import AgentTask
from harness.agents.sweagent_subprocess import CALLS_ENV, LEDGER_ENV, MODEL_ENV, SECRET_NAMES_ENV
from harness.infra.containers import LABEL_CASE, LABEL_RUN

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
TOOL_CONFIG = "sweagent_tool.yaml"
THOUGHT_ACTION_CONFIG = "sweagent_thought_action.yaml"
STARTUP_MARGIN_S = 90
"""Beyond agent_timeout_s: SWE-agent's imports, container start, tool install, writing outputs."""
SCRIPTED_KEY = "scripted-server-needs-no-key"
"""litellm's openai client insists on a key; the scripted server ignores it. Not a secret."""
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
        # Off (0): the harness's ledger enforces usd_per_case / usd_per_run / calls_per_day with catalog prices
        # inside SWE-agent's process, before every request, and stops it with these same limits' exceptions
        # (exit_cost). SWE-agent's own limits would price with litellm's map instead (another number) and
        # refuse unpriced models outright (ModelConfigurationError).
        "per_instance_cost_limit": 0,
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
        "timeout": min(task.retry.request_timeout_s, task.agent_timeout_s),
        **kwargs,
        "max_retries": 0,  # one retry layer: SWE-agent's own (agent.model.retry, from the harness policy)
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


def deployment(task: AgentTask, executable: str) -> dict[str, Any]:
    """SWE-ReX's deployment of the instance image: local docker/podman, or Modal (--agent-env modal)."""
    if task.agent_env == "modal":
        from harness.infra.modal import sweagent_modal_deployment

        return sweagent_modal_deployment(image=task.image, agent_timeout_s=task.agent_timeout_s)
    return {
        "type": "docker",
        "container_runtime": runtime_name(executable),
        "pull": "never",
        "python_standalone_dir": "",  # "" = use the image's swerex-remote (None becomes "/root")
        "docker_args": [
            "--label",
            f"{LABEL_RUN}={task.run_label}",
            "--label",
            f"{LABEL_CASE}={task.case_id}",
        ],
    }


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
            "deployment": deployment(task, executable),
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
    env[SECRET_NAMES_ENV] = json.dumps(secret_names())
    if (spec := budget_spec(task)) is not None:
        env[LEDGER_ENV] = json.dumps(spec)
    if task.model.kind == "scripted":
        env["OPENAI_API_KEY"] = SCRIPTED_KEY  # never send a real key to the test server
    return env


REFUSAL_FILE = "budget-refusal.json"
"""Written by the subprocess when the ledger refuses a request: {"scope", "message"}."""


def budget_spec(task: AgentTask) -> dict | None:
    """What the subprocess needs to open the run's ledger itself: path, ids, limits (no secrets)."""
    if task.ledger is None:
        return None
    return {
        "path": str(task.ledger.path),
        "run_id": task.ledger.run_id,
        "limits": dataclasses.asdict(task.ledger.limits),
        "case_id": task.case_id,
        "provider": task.model.provider or task.model.id,
        "refusal": str(task.artifacts_dir / REFUSAL_FILE),
    }


def secret_names() -> list[str]:
    """Variables whose registered values are in the environment (the subprocess registers them again)."""
    from harness.infra.secrets import known_secrets, secret_name

    return sorted({n for v in known_secrets() if (n := secret_name(v)) and os.environ.get(n) == v})


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
    (task.artifacts_dir / REFUSAL_FILE).unlink(missing_ok=True)
    instances = work / "instances.yaml"
    instances.write_text(yaml.safe_dump([instance_row(task)], sort_keys=False))
    bundle = write_mini_submit_bundle(work) if task.model.kind == "scripted" else None
    config = work / "case_config.yaml"
    config.write_text(yaml.safe_dump(case_config(task, instances, executable, bundle), sort_keys=False))
    argv = [
        sys.executable,
        "-m",
        "harness.agents.sweagent_subprocess",  # = the `sweagent` CLI + the per-call telemetry callback
        "run-batch",
        "--config",
        str(CONFIG_DIR / agent_config_name(task)),
        "--config",
        str(config),
        f"--output_dir={out}",
    ]
    return argv, out
