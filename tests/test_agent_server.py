"""The run's agent server (harness.agents.server): mini-swe-agent in a fork of one process that imported litellm,
driven over real HTTP by the scripted server, in the fixture containers. A remote agent gives what the
in-process one gives; the fork uses the worker's environment, secrets and budget ledger and sends its logs
back; failures are one-line infra results."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import threading
import time
import uuid
from dataclasses import replace

import psutil
import pytest

from harness.agents import settle_removal, with_budget_hooks
from harness.agents.mini import MiniRunner
from harness.agents.server import AgentServer, RemoteMiniRunner
from harness.config import ModelEntry
from harness.demo.llm_server import Fault, ScriptedLLMServer
from harness.demo.scripts import FIXTURE_SCRIPTS
from harness.infra.budget import Ledger, Limits
from harness.infra.containers import remove_labelled_containers
from harness.run.start import COORDINATOR_NICE
from tests.helpers import labelled_containers, run_evals, shadow_with_broken_package
from tests.test_mini_agent import _task, slow_runtime

pytestmark = pytest.mark.containers


@pytest.fixture(scope="module")
def server():
    srv = AgentServer.start()
    yield srv
    srv.stop()


def test_a_remote_agent_equals_the_in_process_one(runtime, fixture_images, server, tmp_path):
    with ScriptedLLMServer(list(FIXTURE_SCRIPTS)) as llm:
        local_task = _task(runtime, fixture_images, tmp_path / "local", "fixtures__calc-1", llm.url)
        remote_task = replace(
            local_task, case_id=f"remote-{uuid.uuid4().hex[:6]}", artifacts_dir=tmp_path / "r"
        )
        for task in (local_task, remote_task):
            task.artifacts_dir.mkdir()
        local = MiniRunner().run(local_task)
        remote = RemoteMiniRunner(server.socket_path).run(remote_task)
    assert remote.infra_error is None, remote.traceback
    assert (remote.exit_status, remote.patch, remote.steps) == (local.exit_status, local.patch, local.steps)
    assert remote.exit_status == "Submitted" and remote.steps == 5
    assert remote.telemetry.calls == local.telemetry.calls == 5
    assert remote.telemetry.prompt_tokens == local.telemetry.prompt_tokens > 0
    assert remote.trajectory == tmp_path / "r" / "trajectory.json" and remote.trajectory.is_file()
    assert len((tmp_path / "r" / "llm_calls.jsonl").read_text().splitlines()) == 5
    assert remote.container_start_s > 0 and remote.container_remove_s > 0
    assert labelled_containers(runtime, case_id=remote_task.case_id) == []


def test_an_agent_sent_while_the_server_loads_says_how_long_it_waited(runtime, fixture_images, tmp_path):
    """The server imports litellm and mini-swe-agent as it starts; an agent sent meanwhile waits, and says so
    (the run's start-up, kept out of the case's own time). The next one does not wait."""
    srv = AgentServer.start()
    try:
        with ScriptedLLMServer(list(FIXTURE_SCRIPTS)) as llm:
            results = []
            for k in (1, 2):
                task = _task(runtime, fixture_images, tmp_path / str(k), "fixtures__calc-1", llm.url)
                task.artifacts_dir.mkdir(parents=True)
                results.append(RemoteMiniRunner(srv.socket_path).run(task))
    finally:
        srv.stop()
    assert [r.exit_status for r in results] == ["Submitted", "Submitted"], results[0].traceback
    assert results[0].server_wait_s > 0.5 and results[1].server_wait_s == 0.0
    assert results[0].wall_s < results[1].wall_s + results[0].server_wait_s / 2  # the wait is not in wall_s


def test_with_remove_in_background_the_fork_answers_before_it_removes_the_container(
    runtime, fixture_images, server, tmp_path
):
    """The worker gets the result while the fork removes the container (`rm` 2 s slower here), then the
    removal's seconds over the same connection; the synchronous runner waits for them (test above)."""
    slow = slow_runtime(runtime, tmp_path / "bin", "rm", 2)
    with ScriptedLLMServer(list(FIXTURE_SCRIPTS)) as llm:
        task = _task(
            runtime, fixture_images, tmp_path, "fixtures__calc-1", llm.url, container_executable=str(slow)
        )
        result = RemoteMiniRunner(server.socket_path, remove_in_background=True).run(task)
    assert result.infra_error is None and result.exit_status == "Submitted", result.traceback
    assert result.removal is not None and not result.removal.done()
    assert len(labelled_containers(runtime, case_id=task.case_id)) == 1  # the fork's `rm` is asleep
    settle_removal(result)
    assert result.container_remove_s >= 2
    assert labelled_containers(runtime, case_id=task.case_id) == []


def test_the_fork_spends_the_workers_budget_with_the_workers_key(
    runtime, fixture_images, server, tmp_path, monkeypatch, caplog
):
    """A litellm model: the key comes from the worker's environment (set after the server started), the
    calls are reserved in the worker's ledger file (a quota of 2 stops the agent at its third request), and
    the fork's log records reach the worker's logging."""
    key = f"sk-agent-server-{uuid.uuid4().hex}"
    monkeypatch.setenv("AGENTSRV_KEY", key)
    model = ModelEntry(
        id="srv", kind="litellm", litellm_id="openai/scripted-fixture-solver", provider="simprov"
    )
    ledger = Ledger(tmp_path / "ledger.sqlite", "srv-run", Limits(calls_per_day={"simprov": 2}))
    with ScriptedLLMServer(list(FIXTURE_SCRIPTS)) as llm:
        task = _task(runtime, fixture_images, tmp_path, "fixtures__calc-1", llm.url, model=model)
        task = with_budget_hooks(replace(task, api_key_env="AGENTSRV_KEY", ledger=ledger))
        with caplog.at_level(logging.DEBUG):
            result = RemoteMiniRunner(server.socket_path).run(task)
        auths = {r["auth_sha256"] for r in llm.requests}
    assert len(llm.requests) == 2 and auths == {hashlib.sha256(key.encode()).hexdigest()}
    assert result.infra_class == "budget", result.infra_error
    assert ledger.summary()["run_calls"] == 2
    assert [r for r in caplog.records if r.process != os.getpid()], "the fork's log records reach the worker"


def test_a_stopped_agent_server_is_a_one_line_infra_result(runtime, fixture_rows, tmp_path):
    srv = AgentServer.start()
    srv.stop()
    task = _task(runtime, fixture_rows, tmp_path, "fixtures__calc-1", "http://127.0.0.1:9")
    start = time.monotonic()
    result = RemoteMiniRunner(srv.socket_path).run(task)
    assert time.monotonic() - start < 5
    assert result.infra_class == "agent-crash" and "\n" not in result.infra_error
    assert "agent server did not answer (it has stopped; resume the run with --resume" in result.infra_error


def test_a_fork_that_dies_is_a_one_line_infra_result(runtime, fixture_images, server, tmp_path):
    with ScriptedLLMServer(list(FIXTURE_SCRIPTS)) as llm:
        llm.add_faults(Fault("latency", delay_s=60))
        task = _task(runtime, fixture_images, tmp_path, "fixtures__calc-1", llm.url)
        results = []
        runner = threading.Thread(
            target=lambda: results.append(RemoteMiniRunner(server.socket_path).run(task))
        )
        runner.start()
        deadline = time.monotonic() + 120
        while not llm.requests and time.monotonic() < deadline:
            time.sleep(0.2)
        forks = psutil.Process(server.proc.pid).children()
        assert len(forks) == 1
        forks[0].kill()
        runner.join(timeout=60)
    remove_labelled_containers(runtime, task.run_id, task.case_id)  # what the run's finish would remove
    assert results and results[0].infra_class == "agent-crash"
    assert results[0].infra_error == "the agent ended without a result (its process died)"


def test_a_worker_interrupted_while_it_waits_stops_the_forks_agent(runtime, fixture_images, server, tmp_path):
    """A case timeout or Ctrl-C raised in the worker while it waits for the fork: the connection is closed at
    once (not when the traceback, which pytest keeps in its report, lets it go), so the fork interrupts its
    agent, which removes its container, well before its 60 s LLM request would have come back."""

    class CaseTimeout(BaseException):  # as pytest-timeout's pytest.fail.Exception: not an OSError
        pass

    def interrupt(signum, frame):
        raise CaseTimeout("the case's time is up")

    with ScriptedLLMServer(list(FIXTURE_SCRIPTS)) as llm:
        llm.add_faults(Fault("latency", delay_s=60))
        task = _task(runtime, fixture_images, tmp_path, "fixtures__calc-1", llm.url)
        previous = signal.signal(signal.SIGALRM, interrupt)
        signal.alarm(4)
        try:
            with pytest.raises(CaseTimeout) as interrupted:  # holds the traceback, and so the runner's frame
                RemoteMiniRunner(server.socket_path).run(task)
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
        assert llm.requests, "the agent was waiting for its first answer"
        deadline = time.monotonic() + 20
        while labelled_containers(runtime, case_id=task.case_id) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert labelled_containers(runtime, case_id=task.case_id) == [], interrupted


def test_a_server_that_cannot_load_the_agent_says_why(runtime, fixture_rows, tmp_path, monkeypatch):
    shadow_with_broken_package(tmp_path, monkeypatch, "litellm", "litellm is broken here")
    srv = AgentServer.start()
    try:
        task = _task(runtime, fixture_rows, tmp_path, "fixtures__calc-1", "http://127.0.0.1:9")
        result = RemoteMiniRunner(srv.socket_path).run(task)
    finally:
        srv.stop()
    assert result.infra_class == "agent-crash" and "\n" not in result.infra_error
    assert "could not load mini-swe-agent: ImportError: litellm is broken here" in result.infra_error


@pytest.mark.parametrize("agent_in_process", [False, True], ids=["agent-server", "in-process"])
def test_workers_import_neither_the_agent_nor_the_evaluator(fixture_images, tmp_path, agent_in_process):
    """The demo with 2 workers and the evaluation cache on: litellm and mini-swe-agent are loaded by the agent
    server, swebench by the evaluation server (the cache's spec hash included), never by a worker; with
    --agent-in-process each worker loads the agent itself."""
    probe = tmp_path / "probe"
    probe.mkdir()
    done = run_evals(
        "-m", "demo", "-k", "calc", "-n", "2", "--runs-dir", str(tmp_path / "runs"), "--run-id", "probe",
        "-p", "tests.module_probe", *(["--agent-in-process"] if agent_in_process else []),
        env={"HARNESS_EVAL_CACHE": str(tmp_path / "cache"), "HARNESS_TEST_MODULE_PROBE": str(probe)},
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-3000:]
    records = [json.loads(p.read_text()) for p in (tmp_path / "runs" / "probe" / "cases").glob("*.json")]
    assert any(r["agent_wall_s"] > 0 for r in records) and any(r["eval_cache"] == "miss" for r in records)
    workers = [json.loads(p.read_text()) for p in probe.glob("worker-*.json")]
    assert len(workers) == 2
    for imported in workers:
        assert not imported["swebench"] and not imported["datasets"] and not imported["docker"], imported
        assert imported["litellm"] == imported["minisweagent"] == agent_in_process, imported
    # the workers only coordinate when an agent server runs: they (and the controller) yield the CPU to the
    # servers, which start before them at this process's priority; in-process agents keep it
    base = os.getpriority(os.PRIO_PROCESS, 0)
    (controller,) = [json.loads(p.read_text()) for p in probe.glob("controller-*.json")]
    assert controller["eval_server_nice"] == base, controller
    lowered = min(base + COORDINATOR_NICE, 19)
    expected = base if agent_in_process else lowered
    assert {w["nice"] for w in workers} == {controller["nice"]} == {expected}, (workers, controller)
    assert controller.get("agent_server_nice") == (None if agent_in_process else base), controller
    if not agent_in_process:
        assert f"controller and workers at nice {lowered}" in done.stdout
