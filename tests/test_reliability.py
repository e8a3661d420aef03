"""Reliability: in-run infra retries, the whole-case timeout, stale markers, leftover containers."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from harness.demo.llm_server import Fault, ScriptedLLMServer
from harness.demo.scripts import FIXTURE_SCRIPTS
from harness.results.records import RunPaths, mark_running, stale_markers, write_json_atomic
from harness.run.start import recover_interrupted
from tests.helpers import ROOT, labelled_containers, run_evals


def _config(tmp_path, edit):
    cfg = tmp_path / "config"
    shutil.copytree(ROOT / "config", cfg)
    data = yaml.safe_load((cfg / "sweagent.yaml").read_text())
    edit(data)
    (cfg / "sweagent.yaml").write_text(yaml.safe_dump(data))
    return cfg


def test_stale_markers_are_found_and_their_artifacts_kept(tmp_path):
    paths = RunPaths(tmp_path, "r")
    mark_running(paths, "a-x-a1")
    mark_running(paths, "b-x-a1")
    write_json_atomic(paths.record("b-x-a1"), {"outcome": "resolved"})
    (paths.case_artifacts("a-x-a1") / "trajectory.json").parent.mkdir(parents=True)
    (paths.case_artifacts("a-x-a1") / "trajectory.json").write_text("partial")
    assert stale_markers(paths) == ["a-x-a1"]
    assert recover_interrupted(paths) == ["a-x-a1"]
    assert stale_markers(paths) == [] and not (paths.cases / "a-x-a1.running").exists()
    (kept,) = paths.artifacts.glob("a-x-a1.interrupted-*")
    assert (kept / "trajectory.json").read_text() == "partial"


@pytest.mark.containers
def test_infra_retries_rerun_within_the_run_and_keep_every_error(fixture_images, tmp_path):
    cfg = _config(tmp_path, lambda d: d.update(retries={"max_attempts": 1, "request_timeout_s": 5}))
    done = run_evals(
        "-m",
        "demo",
        "--models",
        "dead",
        "-k",
        "calc",
        "--runs-dir",
        str(tmp_path / "runs"),
        "--run-id",
        "r",
        "--harness-config",
        str(cfg),
        "--infra-retries",
        "2",
        "--check-models",
        "no",
        "--model-spec",
        "id=dead,litellm=openai/x,api_base=http://127.0.0.1:9/v1",
    )
    assert done.returncode == 1, done.stdout[-2000:]
    assert "1 case(s) hit infrastructure errors" in done.stdout and "--resume r" in done.stdout
    record = json.loads((tmp_path / "runs" / "r" / "cases" / "dead-fixtures__calc-1-a1.json").read_text())
    assert (record["outcome"], record["outcome_class"], record["attempt"]) == ("error", "provider-error", 1)
    assert record["infra_retries"] == 2 and len(record["errors"]) == 3
    assert len(list((tmp_path / "runs" / "r" / "artifacts").glob("dead-fixtures__calc-1-a1.infra-*"))) == 2


@pytest.mark.containers
def test_a_case_over_its_time_limit_is_an_infra_error_and_leaves_no_container(
    runtime, fixture_images, tmp_path
):
    cfg = _config(tmp_path, lambda d: d["agent"].update(case_timeout_s=8))
    with ScriptedLLMServer(list(FIXTURE_SCRIPTS)) as server:
        server.add_faults(Fault("latency", delay_s=30))
        done = run_evals(
            "-m",
            "demo",
            "--models",
            "slow",
            "-k",
            "calc",
            "--runs-dir",
            str(tmp_path / "runs"),
            "--run-id",
            "t",
            "--harness-config",
            str(cfg),
            "--check-models",
            "no",
            "--model-spec",
            f"id=slow,litellm=openai/x,api_base={server.url}",
        )
    assert done.returncode == 1, done.stdout[-2000:]
    record = json.loads((tmp_path / "runs" / "t" / "cases" / "slow-fixtures__calc-1-a1.json").read_text())
    assert (record["outcome"], record["outcome_class"]) == ("error", "case-timeout")
    assert 7 < record["case_wall_s"] < 20
    assert labelled_containers(runtime, run_label=RunPaths(tmp_path / "runs", "t").run_label) == []


@pytest.mark.containers
def test_a_retry_first_removes_the_containers_its_crashed_try_left(runtime, fixture_images, tmp_path):
    """An evaluation whose process dies after making its container leaves it behind, under the name the next
    try's evaluation needs (sweb.eval.<instance>.<run label>.<model>.a<k>). Here such a container, labelled with
    the run and the case, appears while the case's agent runs: the first evaluation fails on the name, and
    the in-run retry removes the leftover before it runs the case again."""
    import threading
    import time

    from harness.infra.containers import instance_image_name

    label = RunPaths(tmp_path / "runs", "lo").run_label
    name = f"sweb.eval.fixtures__calc-1.{label}.slowfix.a1"
    labels = [
        "--label",
        f"swebench-harness.run={label}",
        "--label",
        "swebench-harness.case=slowfix-fixtures__calc-1-a1",
    ]
    done = {}
    with ScriptedLLMServer(list(FIXTURE_SCRIPTS)) as server:
        server.add_faults(*[Fault("latency", delay_s=2)] * 3)  # the first try's agent runs for 6 s or more
        args = ["-m", "demo", "--models", "slowfix", "-k", "calc", "--runs-dir", str(tmp_path / "runs")]
        args += ["--run-id", "lo", "--infra-retries", "1", "--check-models", "no"]
        args += ["--model-spec", f"id=slowfix,litellm=openai/scripted-fixture-solver,api_base={server.url}"]
        run = threading.Thread(target=lambda: done.update(p=run_evals(*args)))
        run.start()
        try:
            deadline = time.monotonic() + 120
            while not server.requests and time.monotonic() < deadline:  # the agent has started
                time.sleep(0.1)
            assert server.requests, "the agent never asked the model"
            image = instance_image_name("fixtures__calc-1", "localhost")
            runtime.run("run", "-d", "--name", name, *labels, image, "sleep", "300")
            run.join(300)
        finally:
            runtime.run("rm", "-f", name, check=False)
    proc = done["p"]
    assert proc.returncode == 0, proc.stdout[-2000:]
    record = json.loads((tmp_path / "runs" / "lo" / "cases" / "slowfix-fixtures__calc-1-a1.json").read_text())
    assert (record["outcome"], record["infra_retries"]) == ("resolved", 1), record["errors"]
    assert "already in use" in record["errors"][0]["error"]
