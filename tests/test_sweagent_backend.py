"""The SWE-agent backend: what it writes and runs (everywhere), and SWE-agent 1.1.0 in the fixture images.

Unit tests need neither SWE-agent nor containers: the command line, the instances file and per-case
config (no secret value in argv or files), the exit-status mapping through AgentResult, telemetry, and
the timeout path (a stand-in process tree is killed as a group). Tests marked `containers` use podman
or Docker and the fixture images; those that run SWE-agent skip where it is not installed (CI has no
GitHub access, and SWE-agent is only on GitHub).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

from harness.agents import AgentResult, AgentTask, runner_for
from harness.agents import sweagent as sw
from harness.agents import sweagent_inputs as swin
from harness.agents import sweagent_subprocess as swsub
from harness.agents.sweagent import SweAgentRunner
from harness.config import ModelEntry
from harness.demo.llm_server import Script, ScriptedLLMServer
from harness.demo.scripts import FIXTURE_SCRIPTS
from harness.infra.containers import LABEL_CASE, LABEL_RUN, agent_tools_dockerfile, fixture_image_name
from harness.run.case import patch_class
from tests.helpers import ROOT, labelled_containers, run_evals

SKIP_REASON = "SWE-agent not installed: pip install -e '.[sweagent]'"
SCRIPTED = ModelEntry(
    id="scripted",
    kind="scripted",
    litellm_id="openai/scripted-fixture-solver",
    model_kwargs={"temperature": 0.0},
)
EMPTY = ModelEntry(id="empty", kind="empty")
SECRET = "sk-test-" + uuid.uuid4().hex
PRICED = ModelEntry(
    id="priced",
    kind="litellm",
    provider="openai-compatible",
    litellm_id="openai/some-model",
    api_base="http://vllm.local:8000/v1",
    api_key_env="HARNESS_TEST_SWEAGENT_KEY",
    context_window=32768,
    price_in_per_mtok=1.0,
    price_out_per_mtok=2.0,
    model_kwargs={"temperature": 0.2, "top_p": 0.9, "max_tokens": 512},
)
DIFF = "diff --git a/f.py b/f.py\n--- a/f.py\n+++ b/f.py\n@@ -1 +1 @@\n-a\n+b\n"
ROW = {
    "instance_id": "fixtures__calc-1",
    "problem_statement": "mean() of an empty list raises ZeroDivisionError",
    "base_commit": "0123456789abcdef0123456789abcdef01234567",
    "repo": "fixtures/calc",
}


needs_sweagent = pytest.mark.skipif(swin.sweagent_problem() is not None, reason=SKIP_REASON)


def _task(tmp_path: Path, model: ModelEntry = SCRIPTED, **over) -> AgentTask:
    fields = dict(
        run_id="test-run",
        case_id=f"{model.id}-fixtures__calc-1-{uuid.uuid4().hex[:6]}",
        row=dict(ROW),
        image=fixture_image_name("fixtures__calc-1"),
        model=model,
        step_limit=7,
        command_timeout_s=30,
        agent_timeout_s=90,
        artifacts_dir=tmp_path,
        container_executable="/usr/bin/podman",
        api_base="http://127.0.0.1:9/v1" if model.kind == "scripted" else None,
    )
    fields.update(over)
    return AgentTask(**fields)


# ----- what the runner writes and runs --------------------------------------------------------------


def test_runner_for_sweagent_covers_empty_but_not_gold():
    assert runner_for(SCRIPTED, "sweagent").name == "swe-agent"
    assert runner_for(EMPTY, "sweagent").name == "swe-agent"  # SWE-agent's instant_empty_submit
    assert runner_for(ModelEntry(id="gold", kind="gold"), "sweagent").name != "swe-agent"


def test_command_line_and_instances_file(tmp_path):
    task = _task(tmp_path)
    argv, out = swin.prepare(task, "/usr/bin/podman")
    assert argv[:4] == [sys.executable, "-m", "harness.agents.sweagent_subprocess", "run-batch"]
    assert argv[4:8] == [
        "--config",
        str(ROOT / "config" / "sweagent_tool.yaml"),
        "--config",
        str(tmp_path / "sweagent" / "case_config.yaml"),
    ]
    assert argv[8] == f"--output_dir={out}" and out == tmp_path / "sweagent" / "output" and out.is_dir()
    rows = yaml.safe_load((tmp_path / "sweagent" / "instances.yaml").read_text())
    assert rows == [
        {
            "instance_id": "fixtures__calc-1",
            "problem_statement": ROW["problem_statement"],
            "image_name": "localhost/sweb.eval.x86_64.fixtures_1776_calc-1:latest",
            "repo_name": "testbed",
            "base_commit": ROW["base_commit"],
        }
    ]
    config = yaml.safe_load((tmp_path / "sweagent" / "case_config.yaml").read_text())
    assert config["instances"]["type"] == "file"
    assert config["instances"]["path"] == str(tmp_path / "sweagent" / "instances.yaml")
    deployment = config["instances"]["deployment"]
    assert deployment == {
        "type": "docker",
        "container_runtime": "podman",
        "pull": "never",
        "python_standalone_dir": "",  # not None: SWE-agent turns None into "/root" and builds from Docker Hub
        "docker_args": ["--label", f"{LABEL_RUN}=test-run", "--label", f"{LABEL_CASE}={task.case_id}"],
    }
    model = config["agent"]["model"]
    assert model["name"] == "openai/scripted-fixture-solver" and model["api_base"] == "http://127.0.0.1:9/v1"
    assert (
        model["per_instance_cost_limit"],
        model["total_cost_limit"],
        model["per_instance_call_limit"],
    ) == (0, 0, 7)
    assert "api_key" not in model
    tools = config["agent"]["tools"]
    assert (tools["execution_timeout"], tools["total_execution_timeout"]) == (30, 90)
    assert config["redo_existing"] is True


def test_docker_runtime_name():
    assert swin.runtime_name("/usr/local/bin/docker") == "docker"
    assert swin.runtime_name("podman") == "podman"


def test_scripted_model_gets_the_mini_submit_bundle_and_a_placeholder_key(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)  # a real key must not reach the test server
    task = _task(tmp_path)
    swin.prepare(task, "podman")
    bundles = yaml.safe_load((tmp_path / "sweagent" / "case_config.yaml").read_text())["agent"]["tools"][
        "bundles"
    ]
    assert bundles[:3] == [
        {"path": "tools/registry"},
        {"path": "tools/edit_anthropic"},
        {"path": "tools/review_on_submit_m"},
    ]
    bundle = Path(bundles[3]["path"])
    assert (bundle / "config.yaml").read_text() == "tools: {}\n"
    assert "COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT" in (bundle / "install.sh").read_text()
    assert os.access(bundle / "bin" / "_mini_submit", os.X_OK)
    env = swin.subprocess_env(task)
    assert env["OPENAI_API_KEY"] == swin.SCRIPTED_KEY
    assert env["LITELLM_LOCAL_MODEL_COST_MAP"] and env[swsub.CALLS_ENV] == str(tmp_path / "llm_calls.jsonl")
    assert ModelEntry.model_validate_json(env[swsub.MODEL_ENV]) == SCRIPTED


def test_empty_model_is_instant_empty_submit_with_thought_action(tmp_path):
    argv, _ = swin.prepare(_task(tmp_path, EMPTY, api_base=None), "podman")
    assert argv[5] == str(ROOT / "config" / "sweagent_thought_action.yaml")
    config = yaml.safe_load((tmp_path / "sweagent" / "case_config.yaml").read_text())
    assert config["agent"]["model"] == {
        "name": "instant_empty_submit",
        "per_instance_cost_limit": 0,
        "total_cost_limit": 0,
        "per_instance_call_limit": 7,
    }
    assert config["agent"]["tools"]["filter"] == {"blocklist_standalone": ["touch reproduce.py"]}
    assert "bundles" not in config["agent"]["tools"]


def test_catalog_model_names_its_key_variable_and_never_the_key(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_TEST_SWEAGENT_KEY", SECRET)
    task = _task(
        tmp_path, PRICED, api_key_env="HARNESS_TEST_SWEAGENT_KEY", api_base="http://vllm.local:8000/v1"
    )
    argv, _ = swin.prepare(task, "docker")
    assert not any(SECRET in arg for arg in argv)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(errors="replace"), path
    model = yaml.safe_load((tmp_path / "sweagent" / "case_config.yaml").read_text())["agent"]["model"]
    assert model["api_key"] == "$HARNESS_TEST_SWEAGENT_KEY"  # SWE-agent reads the variable itself
    assert (model["temperature"], model["top_p"], model["max_input_tokens"]) == (0.2, 0.9, 32768)
    assert model["completion_kwargs"] == {
        "drop_params": True,
        "max_retries": 0,
        "timeout": 90,
        "max_tokens": 512,
    }
    assert model["retry"] == {"retries": 6, "min_wait": 1.0, "max_wait": 60.0}
    env = swin.subprocess_env(task)
    assert env["HARNESS_TEST_SWEAGENT_KEY"] == SECRET  # the key only travels in the environment
    assert SECRET not in env[swsub.MODEL_ENV]


def test_the_agent_configs_are_valid_sweagent_configs():
    tool = yaml.safe_load((ROOT / "config" / "sweagent_tool.yaml").read_text())["agent"]
    thought = yaml.safe_load((ROOT / "config" / "sweagent_thought_action.yaml").read_text())["agent"]
    assert tool["tools"]["parse_function"] == {"type": "function_calling"}
    assert thought["tools"]["parse_function"] == {"type": "thought_action"}
    assert "{{command_docs}}" in thought["templates"]["system_template"]
    for agent in (tool, thought):
        assert "model" not in agent  # the model, limits and keys come per case
        assert [b["path"] for b in agent["tools"]["bundles"]] == [
            "tools/registry",
            "tools/edit_anthropic",
            "tools/review_on_submit_m",
        ]


@needs_sweagent
def test_sweagent_accepts_the_configs_it_is_given(tmp_path):
    """SWE-agent's own validation (pydantic) of agent config + per-case layer, without running anything."""
    for model in (SCRIPTED, EMPTY, PRICED):
        task = _task(tmp_path / model.id, model, api_key_env=model.api_key_env)
        argv, _ = swin.prepare(task, "podman")
        done = subprocess.run(
            [*argv, "--print_config"],
            capture_output=True,
            text=True,
            timeout=120,
            env=swin.subprocess_env(task),
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        assert "python_standalone_dir: ''" in done.stdout and "pull: never" in done.stdout


def test_install_check_names_what_is_missing(tmp_path, monkeypatch):
    import importlib.machinery
    import importlib.util

    for var in (
        "SWE_AGENT_CONFIG_ROOT",
        "SWE_AGENT_CONFIG_DIR",
        "SWE_AGENT_TOOLS_DIR",
        "SWE_AGENT_TRAJECTORY_DIR",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert swin.sweagent_problem() == "SWE-agent is not installed"
    # a wheel install from the git tag: the package without config/, tools/, trajectories/ beside it
    pkg = tmp_path / "site-packages" / "sweagent" / "__init__.py"
    pkg.parent.mkdir(parents=True)
    pkg.touch()
    spec = importlib.machinery.ModuleSpec("sweagent", None, origin=str(pkg))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: spec)
    problem = swin.sweagent_problem()
    assert "non-editable" in problem and str(tmp_path / "site-packages" / "config") in problem
    # ... which works once SWE_AGENT_CONFIG_ROOT points at a checkout
    checkout = tmp_path / "checkout"
    for sub in ("config", "tools/registry", "trajectories"):
        (checkout / sub).mkdir(parents=True)
    monkeypatch.setenv("SWE_AGENT_CONFIG_ROOT", str(checkout))
    assert swin.sweagent_problem() is None
    env = swin.subprocess_env(_task(tmp_path))
    assert env["SWE_AGENT_TOOLS_DIR"] == str(checkout / "tools")  # what SWE-agent asserts at import
    assert env["SWE_AGENT_CONFIG_DIR"] == str(checkout / "config")


# ----- exit statuses through AgentResult ------------------------------------------------------------


def _outputs(out: Path, status: str, submission: str | None, *, api_calls: int = 3, call_limit: int = 7,
             message: str = "", preds: bool = True) -> None:  # fmt: skip
    iid = ROW["instance_id"]
    (out / iid).mkdir(parents=True, exist_ok=True)
    steps = [
        {"action": "ls", "observation": "", "thought": "", "execution_time": 0.1}
        for _ in range(api_calls - 1)
    ]
    steps.append({"action": "", "observation": "", "thought": message, "execution_time": 0.0})
    traj = {
        "trajectory": steps,
        "history": [],
        "info": {
            "exit_status": status,
            "submission": submission,
            "model_stats": {
                "instance_cost": 0,
                "tokens_sent": 900,
                "tokens_received": 40,
                "api_calls": api_calls,
            },
        },
        "replay_config": json.dumps(
            {"agent": {"model": {"name": "openai/x", "per_instance_call_limit": call_limit}}}
        ),
    }
    (out / iid / f"{iid}.traj").write_text(json.dumps(traj))
    if preds:
        pred = {"model_name_or_path": "x", "instance_id": iid, "model_patch": submission}
        (out / "preds.json").write_text(json.dumps({iid: pred}))


@pytest.mark.parametrize(
    ("status", "submission", "kw", "infra_class", "runner_class"),
    [
        ("submitted", DIFF, {}, "", None),  # evaluated
        ("submitted (exit_cost)", DIFF, {}, "", None),  # autosubmitted diff: evaluated
        ("submitted", None, {}, "", "empty-patch"),
        ("submitted", "not a diff", {}, "", "malformed-patch"),
        (
            "exit_cost",
            None,
            {"api_calls": 8, "call_limit": 7},
            "",
            "step-limit",
        ),  # 1.1.0: call limit = exit_cost
        ("exit_cost", None, {"api_calls": 3, "call_limit": 7}, "", "cost-limit"),
        ("exit_format", None, {}, "", "format-errors"),
        ("exit_context", None, {}, "", "context-limit"),
        ("exit_total_execution_time", None, {}, "", "agent-timeout"),
        ("exit_api", None, {}, "provider-error", None),
        ("exit_environment_error", None, {}, "container-error", None),
        (
            "exit_error",
            None,
            {"message": "Exit due to unknown error: litellm.RateLimitError: 429"},
            "provider-error",
            None,
        ),
        (
            "exit_error",
            None,
            {"message": "Exit due to unknown error: litellm.NotFoundError: model does not exist"},
            "unavailable",
            None,
        ),
        ("exit_error", None, {"message": "Exit due to unknown error: KeyError 'x'"}, "agent-crash", None),
    ],
)
def test_exit_status_mapping_through_agent_result(
    tmp_path, status, submission, kw, infra_class, runner_class
):
    out = tmp_path / "out"
    _outputs(out, status, submission, **kw)
    result = sw.result_from_outputs(_task(tmp_path), out, wall_s=1.5)
    assert isinstance(result, AgentResult)
    assert result.exit_status == status and result.wall_s == 1.5
    assert result.patch == (submission or "")
    assert result.infra_class == infra_class
    assert (result.infra_error is not None) == bool(infra_class)
    if infra_class:
        assert status in result.infra_error
    else:
        assert (
            patch_class(result) == runner_class
        )  # SWE-agent's own classes pass through AgentResult.outcome_class
        assert result.trajectory == out / "fixtures__calc-1" / "fixtures__calc-1.traj"
        assert result.steps == kw.get("api_calls", 3)
        assert result.telemetry.calls == kw.get("api_calls", 3)
        assert result.telemetry.token_source == "sweagent-local-tokenizer"  # no call log: model_stats


def test_outcome_class_is_passed_on_through_agent_result(tmp_path):
    out = tmp_path / "out"
    _outputs(out, "exit_cost", None, api_calls=8, call_limit=7)
    result = sw.result_from_outputs(_task(tmp_path), out, wall_s=1.0)
    assert (result.outcome_class, result.infra_class, result.patch) == ("step-limit", "", "")
    _outputs(out, "exit_context", None)
    assert sw.result_from_outputs(_task(tmp_path), out, wall_s=1.0).outcome_class == "context-limit"


def test_preds_json_wins_over_the_trajectory_submission(tmp_path):
    out = tmp_path / "out"
    _outputs(out, "submitted", DIFF)
    (out / "preds.json").write_text(json.dumps({ROW["instance_id"]: {"model_patch": DIFF + "\n"}}))
    assert sw.result_from_outputs(_task(tmp_path), out, wall_s=0).patch == DIFF + "\n"


def test_empty_model_reports_no_llm_calls(tmp_path):
    out = tmp_path / "out"
    _outputs(out, "submitted", None, api_calls=4)
    result = sw.result_from_outputs(_task(tmp_path, EMPTY), out, wall_s=0)
    assert result.telemetry.calls == 0 and patch_class(result) == "empty-patch"


def test_no_trajectory_before_the_container_answered_is_a_container_error(tmp_path):
    out = tmp_path / "out"
    (out / "fixtures__calc-1").mkdir(parents=True)
    (out / "run_batch_exit_statuses.yaml").write_text(
        "instances_by_exit_status:\n  Uncaught RuntimeError:\n  - fixtures__calc-1\ntotal_cost: 0\n"
    )
    (out / "fixtures__calc-1" / "fixtures__calc-1.info.log").write_text(
        "INFO - rex-deploy - Starting container x with image localhost/nope:latest\n"
        "RuntimeError: Container process terminated.\n"
        "Error: localhost/nope:latest: image not known\n"
    )
    result = sw.result_from_outputs(_task(tmp_path), out, wall_s=2.0, output="", returncode=0)
    assert (result.exit_status, result.infra_class) == ("Uncaught RuntimeError", "container-error")
    assert "image not known" in result.infra_error


def test_no_output_at_all_is_an_infra_error(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    result = sw.result_from_outputs(
        _task(tmp_path), out, wall_s=0, output="Traceback\nValueError: x", returncode=1
    )
    assert (
        result.exit_status == "exit code 1" and result.infra_error and result.infra_class == "container-error"
    )


# ----- telemetry -------------------------------------------------------------------------------------


def test_call_log_is_the_telemetry_when_complete(tmp_path):
    from harness.agents.llm import CallRecord

    out = tmp_path / "out"
    _outputs(out, "submitted", DIFF, api_calls=2)
    with (tmp_path / "llm_calls.jsonl").open("w") as f:
        for latency in (0.5, 0.25):
            f.write(
                json.dumps(
                    CallRecord(1.0, "p", "priced", 1, "ok", latency, 100, 10, 0, "provider", 0.00012).__dict__
                )
                + "\n"
            )
        f.write('{"torn": ')  # a killed process leaves at most a torn last line
    result = sw.result_from_outputs(_task(tmp_path, PRICED), out, wall_s=0)
    t = result.telemetry
    assert (t.calls, t.prompt_tokens, t.completion_tokens, t.token_source) == (2, 200, 20, "provider")
    assert (
        t.latencies_s == [0.5, 0.25] and t.cost_usd == pytest.approx(0.00024) and t.price_source == "catalog"
    )
    # fewer logged calls than SWE-agent counted: its model_stats are the telemetry
    _outputs(out, "submitted", DIFF, api_calls=5)
    assert (
        sw.result_from_outputs(_task(tmp_path, PRICED), out, wall_s=0).telemetry.token_source
        == "sweagent-local-tokenizer"
    )


def test_call_logger_records_each_request_with_provider_usage(tmp_path):
    import litellm

    calls = tmp_path / "calls.jsonl"
    uninstall = swsub.install_call_logger(calls, PRICED)
    try:
        with ScriptedLLMServer([Script(match="hello", steps=["ls"])]) as server:
            litellm.completion(
                model="openai/some-model",
                messages=[{"role": "user", "content": "hello there"}],
                api_base=server.url,
                api_key="not-a-secret",
                max_retries=0,
            )
        for _ in range(50):  # litellm runs success callbacks in a thread
            if calls.is_file() and calls.read_text().strip():
                break
            time.sleep(0.1)
    finally:
        uninstall()  # from every list litellm copied it into, not only litellm.callbacks
    records = sw.read_calls(calls)
    assert len(records) == 1
    call = records[0]
    assert (call.status, call.model, call.token_source, call.attempt) == ("ok", "priced", "provider", 1)
    assert call.prompt_tokens > 0 and call.completion_tokens > 0 and call.cost_usd > 0 and call.latency_s > 0


# ----- timeouts --------------------------------------------------------------------------------------

_TREE = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
open(sys.argv[1], "w").write(str(child.pid))
time.sleep(300)
"""


def test_timeout_kills_the_whole_process_group(tmp_path, monkeypatch):
    pidfile = tmp_path / "child.pid"
    script = tmp_path / "tree.py"
    script.write_text(_TREE)
    monkeypatch.setattr(sw, "STARTUP_MARGIN_S", 0)
    monkeypatch.setattr(
        sw, "prepare", lambda task, exe: ([sys.executable, str(script), str(pidfile)], tmp_path / "out")
    )
    t0 = time.monotonic()
    result = SweAgentRunner().run(_task(tmp_path, agent_timeout_s=2, container_executable="true"))
    assert time.monotonic() - t0 < 30
    assert (result.exit_status, result.patch, result.infra_error) == ("TimeExceeded", "", None)
    assert patch_class(result) == "agent-timeout"  # like mini-swe-agent's wall-time limit: a model outcome
    child = int(pidfile.read_text())
    for _ in range(50):
        if not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2]:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the child of the killed process survived")


# ----- fixture images ---------------------------------------------------------------------------------


def test_agent_tools_layer_leaves_the_images_python_alone():
    dockerfile = agent_tools_dockerfile("localhost/root:tag", "pip-26.3-py3-none-any.whl")
    assert dockerfile.startswith("FROM localhost/root:tag\n")
    assert "python3 -m venv --without-pip /opt/swerex" in dockerfile
    assert "ln -sf /opt/swerex/bin/swerex-remote /usr/local/bin/swerex-remote" in dockerfile
    assert "PIP_NO_INDEX=1" in dockerfile  # containers cannot reach PyPI: fail fast, use the baked wheels
    # the image's python only gets pip when it has none; pytest is never named, so never upgraded
    assert "python3 -m pip --version >/dev/null 2>&1 || python3" in dockerfile and "pytest" not in dockerfile


@pytest.mark.containers
def test_fixture_images_carry_swerex_remote_and_keep_their_pytest(runtime, fixture_images):
    done = runtime.run(
        "run", "--rm", fixture_image_name("fixtures__calc-1"), "sh", "-c",
        "swerex-remote --version && python3 -m pytest --version 2>&1 && pip --version && "
        "pip install -q 'tree-sitter==0.21.3' tree-sitter-languages && python3 -c 'import tree_sitter_languages'",
        timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[0].strip() == "1.4.0"
    assert "pytest 7.2.1" in done.stdout


# ----- SWE-agent 1.1.0 in the fixture containers ------------------------------------------------------


@needs_sweagent
@pytest.mark.containers
def test_scripted_server_drives_sweagent_to_the_fix(runtime, fixture_images, tmp_path):
    with ScriptedLLMServer(list(FIXTURE_SCRIPTS)) as server:
        task = _task(
            tmp_path,
            row=fixture_images["fixtures__calc-1"],
            container_executable=runtime.executable,
            api_base=server.url,
        )
        result = SweAgentRunner().run(task)
        requests = [r["body"] for r in server.requests]
    assert result.infra_error is None, result.infra_error
    assert result.exit_status == "submitted" and result.steps == 5
    assert result.patch.startswith("diff --git a/calc/stats.py")
    assert 'raise ValueError("mean() of empty sequence")' in result.patch
    assert len(requests) == 5 and all(r.get("tools") for r in requests)  # the tool-calling config
    t = result.telemetry
    assert (t.calls, t.token_source) == (5, "provider") and t.prompt_tokens > 0 and len(t.latencies_s) == 5
    assert result.trajectory and result.trajectory.is_file()
    assert labelled_containers(runtime, case_id=task.case_id) == [], "the agent container must be removed"


@needs_sweagent
@pytest.mark.containers
def test_instant_empty_submit_submits_no_patch(runtime, fixture_images, tmp_path):
    task = _task(
        tmp_path, EMPTY, row=fixture_images["fixtures__calc-1"], container_executable=runtime.executable
    )
    result = SweAgentRunner().run(task)
    assert result.infra_error is None, result.infra_error
    assert (result.exit_status, result.patch) == ("submitted", "")
    assert patch_class(result) == "empty-patch" and result.telemetry.calls == 0
    assert labelled_containers(runtime, case_id=task.case_id) == []


@needs_sweagent
@pytest.mark.containers
def test_step_limit_without_submission_is_a_model_outcome(runtime, fixture_images, tmp_path):
    script = Script(match="mean() of an empty list", steps=["ls"] * 10)
    with ScriptedLLMServer([script]) as server:
        task = _task(
            tmp_path, row=fixture_images["fixtures__calc-1"], container_executable=runtime.executable,
            api_base=server.url, step_limit=2,
        )  # fmt: skip
        result = SweAgentRunner().run(task)
    assert result.infra_error is None and result.patch == ""
    assert result.exit_status == "exit_cost"  # SWE-agent 1.1.0 reports its call limit as exit_cost
    assert (
        sw.exit_status_class(result.exit_status, "", api_calls=result.telemetry.calls, call_limit=2)[0]
        == "step-limit"
    )


@needs_sweagent
@pytest.mark.containers
def test_missing_image_is_a_container_error(runtime, fixture_rows, tmp_path):
    task = _task(
        tmp_path, EMPTY, row=fixture_rows["fixtures__calc-1"], container_executable=runtime.executable,
        image="localhost/no-such-image-harness:latest",
    )  # fmt: skip
    result = SweAgentRunner().run(task)
    assert result.infra_class == "container-error", result.infra_error
    assert "no-such-image-harness" in result.infra_error
    assert labelled_containers(runtime, case_id=task.case_id) == []


@needs_sweagent
@pytest.mark.containers
def test_demo_with_sweagent_backend(fixture_images, tmp_path):
    """`pytest evals -m demo --agent sweagent`: gold 3/3, scripted 2/3, instant_empty_submit 0/3."""
    done = run_evals(
        "-m", "demo", "--agent", "sweagent", "-n", "2", "--runs-dir", str(tmp_path), "--run-id", "sweagent-demo",
        env={"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}, timeout=900,
    )  # fmt: skip
    assert "swebench-harness leaderboard (run sweagent-demo)" in done.stdout, (
        done.stdout[-3000:] + done.stderr[-2000:]
    )
    assert done.returncode == 0, done.stdout[-3000:]
    records = [json.loads(p.read_text()) for p in (tmp_path / "sweagent-demo" / "cases").glob("*.json")]
    resolved = {
        m: sum(r["outcome"] == "resolved" for r in records if r["model_id"] == m)
        for m in ("gold", "scripted", "empty")
    }
    assert resolved == {"gold": 3, "scripted": 2, "empty": 0}
    for r in records:
        if r["model_id"] != "gold":
            assert r["agent_backend"] == "swe-agent" and r["outcome"] != "error", r["message"]
    assert all(r["outcome_class"] == "empty-patch" for r in records if r["model_id"] == "empty")
    calc = next(r for r in records if r["case_id"] == "scripted-fixtures__calc-1-a1")
    assert (
        calc["steps"] == 5
        and calc["telemetry"]["calls"] == 5
        and calc["telemetry"]["token_source"] == "provider"
    )
    assert (tmp_path / "sweagent-demo" / calc["artifacts"]["trajectory"]).is_file()
