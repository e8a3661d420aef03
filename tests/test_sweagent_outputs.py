"""SWE-agent output parsing against real SWE-agent trajectories and predictions (read in place)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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

SAMPLES = Path(__file__).parent / "samples" / "sweagent-traj"
V0 = SAMPLES / "sweagent_v0_pydicom__pydicom-1458.traj"
V1 = SAMPLES / "sweagent_v1_marshmallow-code__marshmallow-1867.traj"
PREDS_JSONL = SAMPLES / "sweagent_v0_all_preds.jsonl"
PYDICOM_DIFF = (
    "diff --git a/pydicom/pixel_data_handlers/numpy_handler.py b/pydicom/pixel_data_handlers/numpy_handler.py"
)
DIFF = "diff --git a/f.py b/f.py\n--- a/f.py\n+++ b/f.py\n@@ -1 +1 @@\n-a\n+b\n"


def _write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_v0_trajectory_from_swe_agent_0x():
    run = parse_trajectory(V0)
    assert run.trajectory_format == "v0"
    assert run.instance_id == V0.stem  # 0.x files carry no instance id
    assert run.exit_status == "submitted"
    assert run.steps == 12
    assert (run.api_calls, run.tokens_sent, run.tokens_received) == (12, 122612, 1369)
    assert run.instance_cost == pytest.approx(1.26719)
    assert run.execution_time_s is None
    assert run.swe_agent_version is None and run.model_name is None
    assert run.submission.startswith("\ndiff --git") and run.patch == run.submission
    assert run.submission.lstrip().splitlines()[0] == PYDICOM_DIFF
    assert run_class(run) == ("evaluate", False)


def test_v1_trajectory_with_replay_config_and_execution_time():
    run = parse_trajectory(V1)
    assert run.trajectory_format == "v1"
    assert run.instance_id == "marshmallow-code__marshmallow-1867"  # replay_config.problem_statement.id
    assert run.exit_status == "submitted"
    assert run.steps == 11
    assert (run.api_calls, run.tokens_sent, run.tokens_received, run.instance_cost) == (11, 0, 0, 0.0)
    assert run.execution_time_s == pytest.approx(3.99912708899501)
    assert run.model_name == "gpt-4o" and run.call_limit == 0
    assert run.submission.startswith("\r\ndiff --git a/src/marshmallow/fields.py")
    assert run.exit_message == ""
    assert parse_trajectory(V1, instance_id="x").instance_id == "x"


def test_swe_agent_1_1_layout_replay_config_string_version_and_call_limit(tmp_path):
    data = json.loads(V1.read_text())
    data["replay_config"]["agent"]["model"]["per_instance_call_limit"] = 10
    data["replay_config"] = json.dumps(data["replay_config"])  # 1.1.0 stores model_dump_json()
    data["info"] |= {"swe_agent_version": "1.1.0", "exit_status": "exit_cost", "submission": None}
    data["trajectory"][-1]["thought"] = "Exit due to cost limit"
    iid = "marshmallow-code__marshmallow-1867"
    path = trajectory_path(tmp_path, iid)
    assert path == tmp_path / iid / f"{iid}.traj"
    path.parent.mkdir()
    run = parse_trajectory(_write(path, data))
    assert (run.swe_agent_version, run.model_name, run.call_limit) == ("1.1.0", "gpt-4o", 10)
    assert run.submission == "" and run.exit_message == "Exit due to cost limit"
    assert run_class(run) == ("step-limit", False)  # 11 calls > call limit 10
    assert run_class(run, patch=DIFF) == ("evaluate", False)


def test_retry_loop_file_without_chosen_attempt_reads_last_attempt(tmp_path):
    first, last = json.loads(V1.read_text()), json.loads(V1.read_text())
    first["info"]["exit_status"], last["info"]["exit_status"] = "exit_format", "submitted"
    run = parse_trajectory(_write(tmp_path / "r.traj", {"attempts": [first, last]}))
    assert run.exit_status == "submitted" and run.trajectory_format == "v1"


def _minimal(**step: object) -> dict:
    base = {"action": "ls", "observation": "", "response": "", "thought": "", "state": "{}"}
    return {"trajectory": [base | step], "history": [], "info": {"exit_status": "submitted"}}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (_minimal(), "v0"),
        (_minimal(execution_time=0.5), "v1"),
        (_minimal(query=[]), "v1"),
        (_minimal() | {"replay_config": None}, "v1"),
        (_minimal() | {"history": [{"role": "user", "content": "", "message_type": "observation"}]}, "v1"),
    ],
)
def test_format_detection_rule(tmp_path, data, expected):
    run = parse_trajectory(_write(tmp_path / "t.traj", data))
    assert run.trajectory_format == expected
    assert (run.steps, run.api_calls, run.instance_cost) == (1, 0, 0.0)


def _one_line_error(path: Path) -> str:
    with pytest.raises(SweAgentOutputError) as info:
        parse_trajectory(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def test_torn_and_malformed_trajectories_raise_one_line(tmp_path):
    torn = tmp_path / "torn.traj"
    torn.write_bytes(V0.read_bytes()[: V0.stat().st_size // 2])
    assert "Unterminated string" in _one_line_error(torn)
    assert "No such file" in _one_line_error(tmp_path / "missing.traj")
    assert "no info object" in _one_line_error(_write(tmp_path / "list.traj", [1, 2]))
    bad_steps = _write(tmp_path / "steps.traj", {"info": {}, "trajectory": "x"})
    assert "not a list" in _one_line_error(bad_steps)
    bad_stats = _write(tmp_path / "s.traj", _minimal() | {"info": {"model_stats": {"api_calls": "many"}}})
    assert "bad model_stats" in _one_line_error(bad_stats)
    assert isinstance(SweAgentOutputError("x"), ValueError)


def test_read_preds_all_preds_jsonl_sample():
    preds = read_preds(PREDS_JSONL)
    assert list(preds) == ["pydicom__pydicom-1458"]
    assert preds["pydicom__pydicom-1458"].lstrip().splitlines()[0] == PYDICOM_DIFF
    assert preds["pydicom__pydicom-1458"] == parse_trajectory(V0).submission


def test_read_preds_forms(tmp_path):
    entry = {"model_name_or_path": "m", "instance_id": "a__a-1", "model_patch": DIFF}
    merged = {"a__a-1": entry, "b__b-2": entry | {"instance_id": "b__b-2", "model_patch": None}}
    assert read_preds(_write(tmp_path / "preds.json", merged)) == {"a__a-1": DIFF, "b__b-2": ""}
    assert read_preds(_write(tmp_path / "a__a-1.pred", entry)) == {"a__a-1": DIFF}
    assert read_preds(_write(tmp_path / "list.json", [entry])) == {"a__a-1": DIFF}
    lines = [json.dumps(entry | {"model_patch": "old"}), "", json.dumps(entry), json.dumps(merged["b__b-2"])]
    (tmp_path / "all_preds.jsonl").write_text("\n".join(lines) + "\n")
    assert read_preds(tmp_path / "all_preds.jsonl") == {"a__a-1": DIFF, "b__b-2": ""}


def test_read_preds_errors_are_one_line(tmp_path):
    torn = tmp_path / "all_preds.jsonl"
    torn.write_text(PREDS_JSONL.read_text().strip() + "\n" + PREDS_JSONL.read_text()[:50] + "\n")
    cases = [
        (torn, "line 2"),
        (_write(tmp_path / "bad.json", {"a": "not an object"}), "key 'a'"),
        (_write(tmp_path / "n.json", 3), "not a predictions file"),
        (tmp_path / "missing.json", "No such file"),
    ]
    for path, words in cases:
        with pytest.raises(SweAgentOutputError, match=words) as info:
            read_preds(path)
        assert "\n" not in str(info.value) and str(path) in str(info.value)


@pytest.mark.parametrize(
    ("status", "patch", "kwargs", "expected"),
    [
        ("submitted", DIFF, {}, ("evaluate", False)),
        ("submitted (exit_cost)", DIFF, {}, ("evaluate", False)),
        ("submitted (exit_api)", DIFF, {}, ("evaluate", False)),
        ("exit_context", DIFF, {}, ("evaluate", False)),
        ("submitted", "I fixed it", {}, ("malformed-patch", False)),
        ("submitted", "", {}, ("empty-patch", False)),
        ("submitted", " \n", {}, ("empty-patch", False)),
        ("exit_forfeit", "", {}, ("empty-patch", False)),
        ("exit_command", "", {}, ("empty-patch", False)),
        ("exit_cost", "", {}, ("cost-limit", False)),
        ("submitted (exit_cost)", "", {}, ("cost-limit", False)),
        ("exit_cost", "", {"api_calls": 51, "call_limit": 50}, ("step-limit", False)),
        ("exit_cost", "", {"api_calls": 50, "call_limit": 50}, ("cost-limit", False)),
        ("exit_context", "", {}, ("context-limit", False)),
        ("submitted (exit_context)", "", {}, ("context-limit", False)),
        ("exit_format", "", {}, ("format-errors", False)),
        ("exit_total_execution_time", "", {}, ("agent-timeout", False)),
        ("exit_command_timeout", "", {}, ("agent-timeout", False)),
        ("exit_api", "", {}, ("provider-error", True)),
        ("submitted (exit_api)", "", {}, ("provider-error", True)),
        ("exit_error", "", {"message": "Exit due to unknown error: litellm.RateLimitError: 429"}, ("provider-error", True)),
        ("Uncaught RetryError", "", {}, ("provider-error", True)),
        ("exit_environment_error", "", {}, ("container-error", True)),
        ("exit_error", "", {"message": "Exit due to runtime error: docker: no such container"}, ("container-error", True)),
        ("Uncaught DockerPullError", "", {}, ("container-error", True)),
        ("exit_error", "", {}, ("agent-crash", True)),
        ("exit_error", "", {"message": "Exit due to unknown error: KeyError: 'x'"}, ("agent-crash", True)),
        ("early_exit", "", {}, ("agent-crash", True)),
        ("", "", {}, ("agent-crash", True)),
        ("something_new", "", {}, ("agent-crash", True)),
    ],
)  # fmt: skip
def test_exit_status_class_table(status, patch, kwargs, expected):
    assert exit_status_class(status, patch, **kwargs) == expected


def test_telemetry_from_run_with_cost_and_tokens():
    telemetry = telemetry_from_run(parse_trajectory(V0))
    assert (telemetry.calls, telemetry.prompt_tokens, telemetry.completion_tokens) == (12, 122612, 1369)
    assert telemetry.token_source == "sweagent-local-tokenizer"
    assert telemetry.cost_usd == pytest.approx(1.26719) and telemetry.price_source == "sweagent-litellm"


def test_telemetry_from_run_without_cost_or_token_counts():
    telemetry = telemetry_from_run(parse_trajectory(V1))
    assert telemetry.calls == 11 and telemetry.prompt_tokens == 0
    assert telemetry.cost_usd is None and telemetry.price_source == "unknown"
    assert telemetry.token_source == "none"  # 0 tokens over 11 calls: SWE-agent did not count them
    run = SweAgentRun("i", "submitted", "", 1, 1, 10, 2, 0.0, None, "v1")
    assert telemetry_from_run(run).token_source == "sweagent-local-tokenizer"
    assert telemetry_from_run(run).cost_usd is None
