"""Modal wiring, tested at the boundary (Modal itself cannot be reached from here): what the harness hands
to swebench's Modal evaluation and to SWE-ReX's ModalDeployment, how Modal's answers become outcomes,
and the one-line usage error when the `modal` package or its credentials are missing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.infra import modal as hm
from harness.infra.dataset import load_lock, read_snapshot
from harness.run.grid import Case

ROOT = Path(__file__).resolve().parents[1]
INSTANCE = "marshmallow-code__marshmallow-1359"


def _no_modal_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODAL_")}
    return env | {"HOME": str(home)}


@pytest.mark.parametrize("flag", ["--eval-backend", "--agent-env"])
def test_modal_without_credentials_exits_4_with_one_error_line_naming_modal(tmp_path, flag):
    creds = tmp_path / "credentials.txt"
    creds.write_text("")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "evals", "-m", "i1", flag, "modal", "--credentials", str(creds),
         "--runs-dir", str(tmp_path / "runs"), "--check-models", "no", "-p", "no:cacheprovider"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env=_no_modal_env(tmp_path),
    )  # fmt: skip
    errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR:")]
    assert done.returncode == 4, done.stdout[-2000:] + done.stderr[-2000:]
    assert len(errors) == 1 and "Traceback" not in done.stdout + done.stderr
    assert f"{flag} modal" in errors[0] and "Modal credentials" in errors[0] and "MODAL_TOKEN_ID" in errors[0]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_modal_problem_reads_env_tokens_or_the_config_file(tmp_path):
    assert "no Modal credentials" in hm.modal_problem({}, home=tmp_path)
    assert hm.modal_problem({"MODAL_TOKEN_ID": "ak-1", "MODAL_TOKEN_SECRET": "as-2"}, home=tmp_path) is None
    assert "no Modal credentials" in hm.modal_problem({"MODAL_TOKEN_ID": "ak-1"}, home=tmp_path)
    (tmp_path / ".modal.toml").write_text('[default]\ntoken_id = "ak-1"\ntoken_secret = "as-2"\n')
    assert hm.modal_problem({}, home=tmp_path) is None
    other = tmp_path / "elsewhere.toml"
    assert "elsewhere.toml" in hm.modal_problem({"MODAL_CONFIG_PATH": str(other)}, home=tmp_path)
    other.write_text("")
    assert hm.modal_problem({"MODAL_CONFIG_PATH": str(other)}, home=tmp_path) is None


def test_modal_options_refuse_what_modal_cannot_reach(monkeypatch):
    monkeypatch.setenv("MODAL_TOKEN_ID", "ak-test")
    monkeypatch.setenv("MODAL_TOKEN_SECRET", "as-test")
    real = [Case("kimi-k2-0905", INSTANCE, 1, "dev", ("i1",), (45,))]
    fixture = [Case("scripted", "fixtures__calc-1", 1, "fixtures", ("demo",), (120,))]
    hm.check_modal_options("modal", "modal", "mini", real)  # credentials and SWE-ReX present: fine
    hm.check_modal_options("docker", "docker", "mini", fixture)  # no Modal: nothing to check
    with pytest.raises(HarnessError, match="Modal cannot reach the bundled fixture instances"):
        hm.check_modal_options("modal", "docker", "mini", fixture)
    with pytest.raises(HarnessError, match="--agent-env modal: Modal pulls instance images from a registry"):
        hm.check_modal_options("docker", "modal", "mini", real, namespace="localhost")


@pytest.fixture(scope="module")
def row() -> dict:
    lock = load_lock(ROOT / "config" / "dataset.lock")
    return next(r for r in read_snapshot(lock, "dev", ROOT) if r["instance_id"] == INSTANCE)


def test_the_evaluation_call_handed_to_modal(row):
    call = hm.modal_eval_call(
        row, "diff --git a/x b/x\n", model_id="kimi", eval_run_id="run.kimi.a1", timeout_s=900
    )
    assert call.pred == {
        "instance_id": INSTANCE,
        "model_name_or_path": "kimi",
        "model_patch": "diff --git a/x b/x\n",
    }
    assert (call.run_id, call.timeout) == ("run.kimi.a1", 900)
    assert call.test_spec.instance_id == INSTANCE and call.test_spec.repo == "marshmallow-code/marshmallow"
    assert "pytest -rA tests/test_fields.py" in call.test_spec.eval_script
    assert "setup_env_script" in dir(call.test_spec)  # Modal builds its sandbox image from these scripts


def _fake_modal(test_lines: list[str], *, apply_failed: bool = False):
    """Stands in for `run_instance_modal.remote`: answers with swebench's own TestOutput, graded by swebench's
    own get_eval_report on a test log (the sandbox is what cannot run here)."""
    from swebench.harness.constants import APPLY_PATCH_FAIL, END_TEST_OUTPUT, START_TEST_OUTPUT
    from swebench.harness.grading import get_eval_report
    from swebench.harness.modal_eval.run_evaluation_modal import TestOutput

    seen = []

    def remote(call):
        seen.append(call)
        log_dir = Path("logs/run_evaluation") / call.run_id / "kimi" / call.pred["instance_id"]
        if apply_failed:
            log = f"{APPLY_PATCH_FAIL}:\nerror: patch failed: src/marshmallow/fields.py:1\n"
            return TestOutput(call.pred["instance_id"], "", "", log, call.pred["model_patch"], log_dir, True)
        output = "\n".join([START_TEST_OUTPUT, *test_lines, END_TEST_OUTPUT]) + "\n"
        path = Path(os.environ["FAKE_MODAL_TMP"]) / "test_output.txt"
        path.write_text(output)
        report = get_eval_report(call.test_spec, call.pred, str(path), include_tests_status=True)
        log = "Result: graded\n"
        return TestOutput(
            call.pred["instance_id"],
            output,
            json.dumps(report),
            log,
            call.pred["model_patch"],
            log_dir,
            False,
        )

    return remote, seen


def _evaluate(row, tmp_path, remote):
    return hm.evaluate_patch_modal(
        row, "diff --git a/f b/f\n", model_id="kimi", eval_run_id="r.kimi.a1", namespace="swebench",
        log_root=tmp_path / "evaluation", timeout_s=600, remote=remote,
    )  # fmt: skip


def test_modal_answers_become_the_same_outcomes_as_local_evaluation(row, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_MODAL_TMP", str(tmp_path))
    tests = json.loads(row["FAIL_TO_PASS"]) + json.loads(row["PASS_TO_PASS"])
    remote, seen = _fake_modal([f"PASSED {t}" for t in tests])
    ev = _evaluate(row, tmp_path, remote)
    assert (ev.outcome_class, ev.resolved, ev.infra) == ("resolved", True, False)
    assert ev.log_dir == tmp_path / "evaluation" / "r.kimi.a1" / "kimi" / INSTANCE
    assert {p.name for p in ev.log_dir.iterdir()} == {
        "report.json",
        "test_output.txt",
        "run_instance.log",
        "patch.diff",
    }
    assert seen[0].timeout == 600 and seen[0].pred["model_patch"] == "diff --git a/f b/f\n"

    failing = [f"FAILED {t}" if t in json.loads(row["FAIL_TO_PASS"]) else f"PASSED {t}" for t in tests]
    ev = _evaluate(row, tmp_path / "2", _fake_modal(failing)[0])
    assert (ev.outcome_class, ev.infra) == ("unresolved", False)
    assert (
        "FAIL_TO_PASS failing: tests/test_fields.py::TestParentAndName::test_datetime_list_inner_format"
        in ev.message
    )

    ev = _evaluate(row, tmp_path / "3", _fake_modal([], apply_failed=True)[0])
    assert (ev.outcome_class, ev.infra) == ("patch-apply-failed", False)


@pytest.mark.parametrize(
    ("error", "cls"),
    [
        (RuntimeError("Test timed out after 600 seconds."), "eval-timeout"),
        (ConnectionError("could not connect to api.modal.com"), "evaluator-error"),
    ],
)
def test_modal_failures_are_infra_errors_of_the_case(row, tmp_path, error, cls):
    def remote(call):
        raise error

    ev = _evaluate(row, tmp_path, remote)
    assert (ev.outcome_class, ev.infra, ev.resolved) == (cls, True, False)
    assert "Modal evaluation failed" in (ev.log_dir / "run_instance.log").read_text()
    if cls == "evaluator-error":
        assert "ConnectionError" in ev.message and "\n" not in ev.message


def test_mini_swe_agent_modal_environment_gets_the_instance_image_and_limits():
    from minisweagent.environments.extra.swerex_modal import SwerexModalEnvironmentConfig

    kwargs = hm.mini_modal_environment_kwargs(
        image="swebench/sweb.eval.x86_64.marshmallow-code_1776_marshmallow-1359:latest",
        command_timeout_s=60, agent_timeout_s=45, env={"PAGER": "cat"},
    )  # fmt: skip
    config = SwerexModalEnvironmentConfig(**kwargs)  # mini-swe-agent's own schema accepts every key
    assert config.image.endswith("marshmallow-1359:latest") and config.cwd == "/testbed"
    assert (config.timeout, config.runtime_timeout, config.deployment_timeout) == (60, 120.0, 645.0)
    assert config.install_pipx and config.env == {"PAGER": "cat"}


class RecordingDeployment:
    """Stands in for SWE-ReX's ModalDeployment (which contacts Modal when built): records what it is given."""

    made: list[dict] = []

    def __init__(self, **kwargs):
        RecordingDeployment.made.append(kwargs)
        self.stopped = False
        self.runtime = self

    async def start(self):
        pass

    async def execute(self, command):
        from swerex.runtime.abstract import CommandResponse

        return CommandResponse(stdout="x" * 300_000, exit_code=0)

    async def stop(self):
        self.stopped = True


def test_the_mini_runner_builds_its_environment_on_modal(tmp_path, monkeypatch):
    import minisweagent.environments.extra.swerex_modal as swerex_modal

    from harness.agents import AgentTask
    from harness.agents.mini import MiniRunner, mini_benchmark_config, mini_config_path
    from harness.config import ModelEntry

    monkeypatch.setattr(swerex_modal, "ModalDeployment", RecordingDeployment)
    task = AgentTask(
        run_id="r", case_id="c", row={}, image="swebench/sweb.eval.x86_64.x_1776_y-1:latest",
        model=ModelEntry(id="m", kind="scripted", litellm_id="openai/m"), step_limit=5, command_timeout_s=30, agent_timeout_s=90,
        artifacts_dir=tmp_path, container_executable="", agent_env="modal",
    )  # fmt: skip
    bench = mini_benchmark_config(mini_config_path("swebench.yaml", ROOT / "config"))
    env = MiniRunner._environment(task, bench)  # what MiniRunner.run builds for --agent-env modal
    made = RecordingDeployment.made[-1]
    assert (
        made["image"] == task.image and made["deployment_timeout"] == 690.0 and made["install_pipx"] is True
    )
    out = env.execute({"command": "ls"})
    assert out["returncode"] == 0 and len(out["output"]) < 101_000  # capped like the docker environment's
    assert MiniRunner._remove(task, env) >= 0 and env.deployment.stopped


def test_swe_agent_gets_a_modal_deployment(tmp_path):
    from swerex.deployment.config import ModalDeploymentConfig

    from harness.agents import AgentTask
    from harness.agents.sweagent_inputs import case_config
    from harness.config import ModelEntry

    task = AgentTask(
        run_id="r", case_id="c", row={}, image="swebench/sweb.eval.x86_64.x_1776_y-1:latest",
        model=ModelEntry(id="m", kind="scripted", litellm_id="openai/m"), step_limit=5, command_timeout_s=30, agent_timeout_s=90,
        artifacts_dir=tmp_path, container_executable="podman", agent_env="modal",
    )  # fmt: skip
    deployment = case_config(task, tmp_path / "instances.yaml", "podman", None)["instances"]["deployment"]
    config = ModalDeploymentConfig(**deployment)  # SWE-ReX's schema (extra keys forbidden) accepts it
    assert config.image == task.image and config.deployment_timeout == 690.0
    task.agent_env = "docker"
    local = case_config(task, tmp_path / "instances.yaml", "podman", None)["instances"]["deployment"]
    assert local["type"] == "docker" and local["container_runtime"] == "podman"
