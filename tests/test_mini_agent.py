"""mini-swe-agent in the fixture containers, driven over real HTTP by the scripted server through litellm."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from harness.agents import AgentTask, settle_removal
from harness.agents.mini import MiniRunner
from harness.config import ModelEntry
from harness.demo.llm_server import Script, ScriptedLLMServer
from harness.demo.scripts import FIXTURE_SCRIPTS
from harness.infra.containers import fixture_image_name
from tests.helpers import labelled_containers

pytestmark = pytest.mark.containers

SCRIPTED = ModelEntry(id="scripted", kind="scripted", litellm_id="openai/scripted-fixture-solver")


def _task(runtime, rows, tmp_path: Path, instance_id: str, url: str, **over) -> AgentTask:
    fields = dict(
        run_id="test-run",
        case_id=f"scripted-{instance_id}-{uuid.uuid4().hex[:6]}",
        row=rows[instance_id],
        image=fixture_image_name(instance_id),
        model=SCRIPTED,
        step_limit=10,
        command_timeout_s=30,
        agent_timeout_s=60,
        artifacts_dir=tmp_path,
        container_executable=runtime.executable,
        api_base=url,
    )
    fields.update(over)
    return AgentTask(**fields)


def test_scripted_model_fixes_calc_inside_the_container(runtime, fixture_images, tmp_path):
    with ScriptedLLMServer(list(FIXTURE_SCRIPTS)) as server:
        task = _task(runtime, fixture_images, tmp_path, "fixtures__calc-1", server.url)
        result = MiniRunner().run(task)
        assert result.infra_error is None, result.traceback
        assert result.exit_status == "Submitted"
        assert 'raise ValueError("mean() of empty sequence")' in result.patch
        assert result.patch.startswith("diff --git a/calc/stats.py")
        assert result.steps == 5 and result.telemetry.calls == 5
        assert result.telemetry.prompt_tokens > 0 and result.telemetry.token_source == "provider"
        assert result.trajectory and result.trajectory.is_file()
        assert len(server.requests) == 5
    assert labelled_containers(runtime, case_id=task.case_id) == [], "the agent container must be removed"


def test_agent_commands_never_touch_the_host(runtime, fixture_images, tmp_path):
    canary = Path("/tmp") / f"harness-canary-{uuid.uuid4().hex}"
    script = Script(match="mean() of an empty list", steps=[f"touch {canary} && ls {canary}", "exit 0"])
    with ScriptedLLMServer([script]) as server:
        task = _task(runtime, fixture_images, tmp_path, "fixtures__calc-1", server.url, step_limit=2)
        result = MiniRunner().run(task)
    assert result.exit_status == "LimitsExceeded"
    observation = str(result.trajectory.read_text())
    assert str(canary) in observation
    assert not canary.exists(), "a command of the agent ran on the host"


def test_the_container_starts_while_the_first_request_is_out(runtime, fixture_images, tmp_path):
    """The agent's first LLM request needs no container: the container starts meanwhile, and the record's
    container_start_s is only what the first command still waited. A runtime whose `run` takes 1 s more
    (a wrapper around the real one) under 2 s requests: the start is hidden, the loop keeps its 5 requests."""
    slow = slow_runtime(runtime, tmp_path / "bin", "run", 1)
    with ScriptedLLMServer(list(FIXTURE_SCRIPTS), latency_s=2.0) as server:
        task = _task(
            runtime, fixture_images, tmp_path, "fixtures__calc-1", server.url, container_executable=str(slow)
        )
        result = MiniRunner().run(task)
    assert result.infra_error is None and result.exit_status == "Submitted", result.traceback
    assert result.container_start_s < 0.5, result.container_start_s  # it took > 1 s, behind a 2 s request
    assert result.wall_s >= 5 * 2.0
    assert labelled_containers(runtime, case_id=task.case_id) == []


def slow_runtime(runtime, folder: Path, verb: str, seconds: float) -> Path:
    """A wrapper around the real runtime whose `verb` (run, rm) takes `seconds` more; named as the real one
    (mini-swe-agent's removal passes podman's `-t 0` by the executable's name)."""
    folder.mkdir(parents=True, exist_ok=True)
    wrapper = folder / Path(runtime.executable).name
    wrapper.write_text(f'#!/bin/sh\n[ "$1" = {verb} ] && sleep {seconds}\nexec {runtime.executable} "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def test_with_remove_in_background_the_result_comes_before_the_container_is_gone(
    runtime, fixture_images, tmp_path
):
    """The removal is off the case's critical path: the result is back while `rm` (2 s slower here) runs, and
    settle_removal waits for it and records its seconds."""
    slow = slow_runtime(runtime, tmp_path / "bin", "rm", 2)
    with ScriptedLLMServer(list(FIXTURE_SCRIPTS)) as server:
        task = _task(
            runtime, fixture_images, tmp_path, "fixtures__calc-1", server.url, container_executable=str(slow)
        )
        result = MiniRunner(remove_in_background=True).run(task)
    assert result.infra_error is None and result.exit_status == "Submitted", result.traceback
    assert result.removal is not None and not result.removal.done()
    assert result.container_remove_s is None
    assert len(labelled_containers(runtime, case_id=task.case_id)) == 1  # still there: `rm` is asleep
    settle_removal(result)
    assert result.removal is None and result.container_remove_s >= 2
    assert labelled_containers(runtime, case_id=task.case_id) == []


def test_step_limit_without_submission_is_a_model_outcome(runtime, fixture_images, tmp_path):
    script = Script(match="slugify keeps upper-case", steps=["ls", "ls", "ls"])
    with ScriptedLLMServer([script]) as server:
        task = _task(runtime, fixture_images, tmp_path, "fixtures__textkit-2", server.url, step_limit=2)
        result = MiniRunner().run(task)
    assert result.infra_error is None
    assert (result.exit_status, result.patch, result.steps) == ("LimitsExceeded", "", 2)


def test_unknown_model_at_the_provider_is_unavailable(runtime, fixture_images, tmp_path):
    with ScriptedLLMServer(list(FIXTURE_SCRIPTS), models=["some-other-model"]) as server:
        task = _task(runtime, fixture_images, tmp_path, "fixtures__calc-1", server.url)
        result = MiniRunner().run(task)
    assert result.infra_class == "unavailable"
    assert "does not serve openai/scripted-fixture-solver" in result.infra_error
    assert labelled_containers(runtime, case_id=task.case_id) == []


def test_missing_image_is_a_container_error(runtime, tmp_path, fixture_rows):
    with ScriptedLLMServer(list(FIXTURE_SCRIPTS)) as server:
        task = _task(
            runtime,
            fixture_rows,
            tmp_path,
            "fixtures__calc-1",
            server.url,
            image="localhost/no-such-image-harness:latest",
        )
        result = MiniRunner().run(task)
    assert result.infra_class == "container-error"
    assert "CalledProcessError" in result.infra_error


def test_agent_mini_config_is_the_prompt_the_model_gets(runtime, fixture_images, tmp_path):
    """agent.mini_config names the mini-swe-agent config whose templates reach the model."""
    import yaml

    from harness.agents.mini import mini_config_path

    own = yaml.safe_load(mini_config_path("swebench.yaml", tmp_path).read_text())
    own["agent"]["system_template"] = "MARKER-OWN-MINI-CONFIG " + own["agent"]["system_template"]
    (tmp_path / "my_mini.yaml").write_text(yaml.safe_dump(own))
    path = mini_config_path("my_mini.yaml", tmp_path)
    assert path == tmp_path / "my_mini.yaml"
    with ScriptedLLMServer(list(FIXTURE_SCRIPTS)) as server:
        task = _task(runtime, fixture_images, tmp_path, "fixtures__calc-1", server.url, mini_config=str(path))
        MiniRunner().run(task)
        first = server.requests[0]["body"]["messages"][0]
    assert first["role"] == "system" and first["content"].startswith("MARKER-OWN-MINI-CONFIG ")
