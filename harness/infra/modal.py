"""Modal (modal.com) for containers beyond this machine.

- `--eval-backend modal`: swebench 4.1.0's own Modal evaluation (`swebench.harness.modal_eval`: its
  `run_instance_modal` function in its `swebench-evaluation` app) grades each patch in a Modal sandbox
  built from the instance's setup scripts; the outputs land in the case's artifacts in the layout of a
  local evaluation and are classified by the same code (harness.infra.evaluation.classify_evaluation).
- `--agent-env modal`: the agent's instance container is a SWE-ReX `ModalDeployment` of the official
  instance image (mini-swe-agent's `swerex_modal` environment; SWE-agent's `deployment.type: modal`).

What is handed to Modal is built by pure functions here (`modal_eval_call`, `mini_modal_environment_kwargs`,
`sweagent_modal_deployment`) that tests check without Modal; `run_on_modal` is the one call that needs it.
Missing package or credentials are one HarnessError line before any case starts (`check_modal_options`).
"""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.config import FIXTURES_SLICE
from harness.errors import HarnessError
from harness.infra import integrity
from harness.infra.evaluation import EvalResult, check_integrity, classify_evaluation, eval_log_dir

SETUP = "README: Modal"
STARTUP_TIMEOUT_S = 180.0
"""SWE-ReX's own default for a Modal sandbox to come up (image pull included)."""
KILL_MARGIN_S = 600
"""A sandbox is killed by Modal this long after the agent's time limit (as the docker container's timeout)."""


def modal_problem(environ: Mapping[str, str] = os.environ, home: Path | None = None) -> str | None:
    """Why Modal cannot be used from here (package or credentials missing), else None. Never contacts Modal."""
    if importlib.util.find_spec("modal") is None:
        return "the `modal` package is not installed; pip install -e '.[modal]'"
    if environ.get("MODAL_TOKEN_ID") and environ.get("MODAL_TOKEN_SECRET"):
        return None
    config = Path(environ.get("MODAL_CONFIG_PATH") or (home or Path.home()) / ".modal.toml")
    if config.is_file():
        return None
    return (
        "no Modal credentials: set MODAL_TOKEN_ID and MODAL_TOKEN_SECRET (e.g. in secrets/credentials.txt) "
        f"or run `modal token new` (writes {config})"
    )


def check_modal_options(
    eval_backend: str, agent_env: str, agent_backend: str, cases: list, namespace: str = "swebench"
) -> None:
    """One HarnessError line naming Modal when a Modal option cannot work for this run."""
    flags = [
        f"--{name} modal"
        for name, v in (("eval-backend", eval_backend), ("agent-env", agent_env))
        if v == "modal"
    ]
    if not flags:
        return
    flag = " and ".join(flags)
    if (problem := modal_problem()) is not None:
        raise HarnessError(f"{flag}: {problem} ({SETUP})")
    if agent_env == "modal" and agent_backend == "mini" and importlib.util.find_spec("swerex") is None:
        raise HarnessError(
            "--agent-env modal: SWE-ReX (swe-rex[modal]) is not installed; pip install -e '.[modal]'"
        )
    fixtures = sorted({c.instance_id for c in cases if c.split == FIXTURES_SLICE})
    if fixtures:
        raise HarnessError(
            f"{flag}: Modal cannot reach the bundled fixture instances ({', '.join(fixtures)}: local images and "
            "repos); select SWE-bench instances (e.g. -m i1) or run them without Modal"
        )
    if agent_env == "modal" and namespace == "localhost":
        raise HarnessError(
            "--agent-env modal: Modal pulls instance images from a registry, not from this machine's "
            "localhost/ images; use --image-namespace swebench (Docker Hub) or your registry"
        )


# -- evaluation (--eval-backend modal) --------------------------------------------------------------


@dataclass(frozen=True)
class ModalEvalCall:
    """The arguments of swebench's `run_instance_modal(test_spec, pred, run_id, timeout)`."""

    test_spec: Any
    pred: dict[str, str]
    run_id: str
    timeout: int
    nonce: str = ""
    """The integrity probe's nonce in the eval script (the test command's exit status, as locally)."""


def modal_eval_call(
    row: dict, patch: str, *, model_id: str, eval_run_id: str, timeout_s: int
) -> ModalEvalCall:
    """What one case hands to Modal: the instance's test spec (with the same exit-status probe as a local
    evaluation), the prediction, the evaluation run id, the limit."""
    from swebench.harness.constants import START_TEST_OUTPUT
    from swebench.harness.test_spec.test_spec import make_test_spec

    from harness.demo.fixtures import register_fixture_repos

    register_fixture_repos()
    spec, nonce = make_test_spec(row), integrity.new_nonce()
    spec.eval_script_list = integrity.add_exit_status_probe(spec.eval_script_list, nonce, START_TEST_OUTPUT)
    pred = {"instance_id": row["instance_id"], "model_name_or_path": model_id, "model_patch": patch}
    return ModalEvalCall(spec, pred, eval_run_id, timeout_s, nonce)


def run_on_modal(call: ModalEvalCall) -> Any:
    """Run swebench's Modal evaluation of one prediction (needs Modal credentials and network)."""
    from swebench.harness.modal_eval import run_evaluation_modal as modal_eval

    with modal_eval.app.run():
        return modal_eval.run_instance_modal.remote(call.test_spec, call.pred, call.run_id, call.timeout)


def write_modal_output(output: Any, log_dir: Path) -> None:
    """swebench's TestOutput as files, as its `run_instances_modal` saves them (report.json only when graded)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    (log_dir / "run_instance.log").write_text(output.run_instance_log)
    (log_dir / "test_output.txt").write_text(output.test_output)
    (log_dir / "patch.diff").write_text(output.patch_diff)
    if output.report_json_str:
        (log_dir / "report.json").write_text(output.report_json_str)


def evaluate_patch_modal(
    row: dict,
    patch: str,
    *,
    model_id: str,
    eval_run_id: str,
    namespace: str,
    log_root: Path,
    timeout_s: int,
    labels: dict[str, str] | None = None,
    remote: Callable[[ModalEvalCall], Any] = run_on_modal,
) -> EvalResult:
    """`evaluate_patch`'s signature and result, graded on Modal (namespace and labels concern local images and
    containers only). A failure to reach Modal or to build the sandbox is an infra error of the case."""
    log_dir = eval_log_dir(log_root, eval_run_id, model_id, row["instance_id"])
    start = time.monotonic()
    try:
        call = modal_eval_call(row, patch, model_id=model_id, eval_run_id=eval_run_id, timeout_s=timeout_s)
        output = remote(call)
    except Exception as e:  # Modal unreachable, sandbox build failed, or swebench's "Test timed out" raised
        log_dir.mkdir(parents=True, exist_ok=True)
        (log_dir / "run_instance.log").write_text(f"Modal evaluation failed: {type(e).__name__}: {e}\n")
        return classify_evaluation(row["instance_id"], log_dir, time.monotonic() - start)
    write_modal_output(output, log_dir)
    result = classify_evaluation(row["instance_id"], log_dir, time.monotonic() - start)
    return check_integrity(result, call.test_spec, row, patch, call.nonce)


# -- the agent's container (--agent-env modal) ---------------------------------------------------------


def mini_modal_environment_kwargs(
    *, image: str, command_timeout_s: int, agent_timeout_s: int, env: dict[str, str]
) -> dict[str, Any]:
    """Keyword arguments of mini-swe-agent's SwerexModalEnvironment for one case's instance image."""
    return {
        "image": image,
        "cwd": "/testbed",
        "timeout": command_timeout_s,
        "env": dict(env),
        "startup_timeout": STARTUP_TIMEOUT_S,
        "runtime_timeout": float(command_timeout_s + 60),  # one request to swerex-remote outlives its command
        "deployment_timeout": float(agent_timeout_s + KILL_MARGIN_S),
        "install_pipx": True,  # official images lack swerex-remote; Modal sandboxes reach PyPI
        "modal_sandbox_kwargs": {},
    }


def sweagent_modal_deployment(*, image: str, agent_timeout_s: int) -> dict[str, Any]:
    """SWE-agent's `instances.deployment` (SWE-ReX ModalDeploymentConfig) for one case's instance image."""
    return {
        "type": "modal",
        "image": image,
        "startup_timeout": STARTUP_TIMEOUT_S,
        "deployment_timeout": float(agent_timeout_s + KILL_MARGIN_S),
        "install_pipx": True,
    }
