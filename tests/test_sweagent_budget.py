"""Budgets under both agent backends: every LLM request is reserved in the run's ledger before it is sent
and settled after, and a case over its own cap ends as `cost-limit`.

SWE-agent makes its requests in its own process (harness.agents.sweagent_subprocess). Its hook is tested
here directly, in-process, with litellm against the scripted server over real HTTP and a real SQLite
ledger; the end-to-end SWE-agent case is skipped where SWE-agent is not installed, like the other
SWE-agent tests. The mini-swe-agent side (a case over its cap is cost-limit) is
tests/test_bad_inputs.py::test_a_case_over_its_usd_cap_is_cost_limit.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from harness.agents import AgentResult, AgentTask
from harness.agents import sweagent as sw
from harness.agents import sweagent_inputs as swin
from harness.agents import sweagent_subprocess as swsub
from harness.config import ModelEntry
from harness.demo.llm_server import Fault, Script, ScriptedLLMServer
from harness.demo.scripts import FIXTURE_SCRIPTS
from harness.errors import BudgetExhausted
from harness.infra.budget import Ledger, Limits
from harness.infra.containers import fixture_image_name
from tests.conftest import ROOT

PRICED = ModelEntry(
    id="priced",
    kind="litellm",
    provider="openai-compatible",
    litellm_id="openai/some-model",
    api_base="http://127.0.0.1:1/v1",
    price_in_per_mtok=1.0,
    price_out_per_mtok=2.0,
)
MESSAGES = [{"role": "user", "content": "hello there"}]
needs_sweagent = pytest.mark.skipif(swin.sweagent_problem() is not None, reason="SWE-agent not installed")


def _spec(tmp_path: Path, limits: Limits, case_id: str = "priced-x-a1") -> dict:
    return {
        "path": str(tmp_path / "ledger.sqlite"),
        "run_id": "budget-run",
        "limits": {"calls_per_day": limits.calls_per_day, "usd_per_run": limits.usd_per_run,
                   "usd_per_case": limits.usd_per_case},
        "case_id": case_id,
        "provider": "openai-compatible",
        "refusal": str(tmp_path / "budget-refusal.json"),
    }  # fmt: skip


def _ledger_rows(tmp_path: Path) -> list[tuple]:
    with sqlite3.connect(tmp_path / "ledger.sqlite") as conn:
        return conn.execute("SELECT case_id, status, cost_usd FROM calls ORDER BY id").fetchall()


@pytest.fixture
def hooked(tmp_path):
    """The subprocess side's hooks installed in this process (removed after the test)."""
    import litellm

    installed = []

    def install(limits: Limits):
        hook = swsub.BudgetHook(_spec(tmp_path, limits))
        installed.append(swsub.install_call_logger(tmp_path / "llm_calls.jsonl", PRICED, hook))
        return hook

    yield install, litellm
    for uninstall in installed:
        uninstall()


def _complete(litellm, server) -> None:
    litellm.completion(
        model="openai/some-model",
        messages=MESSAGES,
        api_base=server.url,
        api_key="not-a-secret",
        max_retries=0,
    )


def _settled(tmp_path: Path, n: int) -> list[tuple]:
    for _ in range(100):  # litellm runs success callbacks in a thread
        rows = _ledger_rows(tmp_path)
        if len(rows) >= n and all(status != "reserved" for _, status, _ in rows):
            return rows
        time.sleep(0.05)
    return _ledger_rows(tmp_path)


def _ok_500_ok(litellm) -> int:
    """Three requests to the scripted server, the second answered 500; how many requests it served."""
    with ScriptedLLMServer([Script(match="hello", steps=["ls", "ls", "ls"])]) as server:
        _complete(litellm, server)
        server.add_faults(Fault("500"))
        with pytest.raises(litellm.InternalServerError):
            _complete(litellm, server)
        _complete(litellm, server)
        return len(server.requests)


class _LateExecutor:
    """litellm's logging executor with every job started 0.5 s late: its success events run in this pool
    while failure events run inline, so on a busy machine a success was logged after the next request's
    failure (the full suite once logged ["500", "ok", "ok"] for ok, 500, ok)."""

    def __init__(self, executor) -> None:
        self._executor = executor

    def submit(self, fn, *args, **kwargs):
        def late():
            time.sleep(0.5)
            return fn(*args, **kwargs)

        return self._executor.submit(late)

    def __getattr__(self, name):
        return getattr(self._executor, name)


def test_call_records_follow_the_requests_when_success_events_lag(hooked, tmp_path, monkeypatch):
    install, litellm = hooked
    install(Limits())
    monkeypatch.setattr(litellm.utils, "executor", _LateExecutor(litellm.utils.executor))
    _ok_500_ok(litellm)
    rows = _settled(tmp_path, 3)
    assert [status for _, status, _ in rows] == ["ok", "error", "ok"]
    logged = [json.loads(line) for line in (tmp_path / "llm_calls.jsonl").read_text().splitlines()]
    assert [(c["status"], c["attempt"]) for c in logged] == [("ok", 1), ("500", 1), ("ok", 2)]
    assert logged[0]["retry_wait_s"] == 0.0 and logged[2]["retry_wait_s"] > 0.0


def test_every_request_in_the_subprocess_is_reserved_and_settled(hooked, tmp_path):
    install, litellm = hooked
    install(Limits())
    served = _ok_500_ok(litellm)
    rows = _settled(tmp_path, 3)
    assert served == 3 and [status for _, status, _ in rows] == ["ok", "error", "ok"]
    logged = [json.loads(line) for line in (tmp_path / "llm_calls.jsonl").read_text().splitlines()]
    assert [c["status"] for c in logged] == ["ok", "500", "ok"]
    ok_costs = [c["cost_usd"] for c in logged if c["status"] == "ok"]
    assert [cost for _, status, cost in rows if status == "ok"] == pytest.approx(ok_costs)
    assert all(cost > 0 for cost in ok_costs)


@pytest.mark.parametrize(
    ("limits", "scope"),
    [
        (Limits(usd_per_case=1e-9), "usd-per-case"),
        (Limits(usd_per_run=1e-9), "usd-per-run"),
        (Limits(calls_per_day={"openai-compatible": 1}), "calls-per-day:openai-compatible"),
    ],
)
def test_a_refused_request_is_never_sent(hooked, tmp_path, limits, scope):
    install, litellm = hooked
    install(limits)
    with ScriptedLLMServer([Script(match="hello", steps=["ls", "ls"])]) as server:
        _complete(litellm, server)  # the first call is granted (nothing spent yet), then costs > the cap
        _settled(tmp_path, 1)
        with pytest.raises(BudgetExhausted) as refused:
            _complete(litellm, server)
        assert len(server.requests) == 1, "a refused request must not reach the provider"
    assert refused.value.scope == scope
    assert json.loads((tmp_path / "budget-refusal.json").read_text())["scope"] == scope
    assert [status for _, status, _ in _ledger_rows(tmp_path)] == ["ok"]


def _task(tmp_path: Path, ledger: Ledger | None) -> AgentTask:
    return AgentTask(
        run_id="budget-run",
        case_id="priced-fixtures__calc-1-a1",
        row={"instance_id": "fixtures__calc-1", "problem_statement": "p", "base_commit": "HEAD"},
        image=fixture_image_name("fixtures__calc-1"),
        model=PRICED.model_copy(update={"api_key_env": "HARNESS_BUDGET_TEST_KEY"}),
        step_limit=5,
        command_timeout_s=30,
        agent_timeout_s=60,
        artifacts_dir=tmp_path,
        container_executable="/usr/bin/podman",
        ledger=ledger,
    )


def test_the_subprocess_gets_the_ledger_and_key_names_never_key_values(tmp_path, monkeypatch):
    from harness.infra import secrets

    secret = "sk-budget-" + uuid.uuid4().hex
    monkeypatch.setenv("HARNESS_BUDGET_TEST_KEY", secret)
    secrets.register_named_secrets(["HARNESS_BUDGET_TEST_KEY"])
    ledger = Ledger(tmp_path / "ledger.sqlite", "budget-run", Limits(usd_per_case=0.5))
    env = swin.subprocess_env(_task(tmp_path, ledger))
    spec = json.loads(env[swsub.LEDGER_ENV])
    assert spec["path"] == str(ledger.path) and spec["limits"]["usd_per_case"] == 0.5
    assert spec["case_id"] == "priced-fixtures__calc-1-a1" and spec["provider"] == "openai-compatible"
    assert "HARNESS_BUDGET_TEST_KEY" in json.loads(env[swsub.SECRET_NAMES_ENV])
    assert secret not in env[swsub.LEDGER_ENV] + env[swsub.SECRET_NAMES_ENV] + env[swsub.MODEL_ENV]
    assert swsub.LEDGER_ENV not in swin.subprocess_env(_task(tmp_path, None))
    limits = swin.model_config(_task(tmp_path, ledger))
    assert (limits["per_instance_cost_limit"], limits["total_cost_limit"]) == (0, 0)  # the ledger enforces


@pytest.mark.parametrize(
    ("scope", "patch", "expected"),
    [
        ("usd-per-case", "", ("cost-limit", None, "")),
        ("usd-per-case", "diff --git a/f b/f\n", ("", None, "")),  # SWE-agent's exit_cost autosubmission
        ("usd-per-run", "", ("", "run 'x' has spent", "budget")),
        ("calls-per-day:chutes", "", ("", "run 'x' has spent", "budget")),
    ],
)
def test_a_refusal_ends_the_case_as_under_mini(tmp_path, scope, patch, expected):
    (tmp_path / swin.REFUSAL_FILE).write_text(json.dumps({"scope": scope, "message": "run 'x' has spent $1"}))
    result = sw.apply_refusal(_task(tmp_path, None), AgentResult(patch=patch, exit_status="exit_cost"))
    cls, error, infra = expected
    assert result.outcome_class == cls and result.infra_class == infra
    assert (result.infra_error is None) if error is None else error in result.infra_error


@needs_sweagent
@pytest.mark.containers
def test_a_sweagent_case_makes_its_calls_through_the_ledger(fixture_images, tmp_path):
    """`pytest evals --agent sweagent` with a catalog-style model: each request it made is a ledger row."""
    with ScriptedLLMServer(list(FIXTURE_SCRIPTS)) as server:
        done = _evals(tmp_path, "sweagent-budget", server.url, "--agent", "sweagent")
        served = len(server.requests)
    assert "swebench-harness leaderboard" in done.stdout, done.stdout[-3000:] + done.stderr[-2000:]
    rows = Ledger(tmp_path / "runs" / ".budget-ledger.sqlite", "sweagent-budget", Limits()).summary()
    assert served > 0 and rows["run_calls"] == served and rows["in_flight_calls"] == 0
    assert rows["spent_usd"] > 0


def _evals(tmp_path: Path, run_id: str, url: str, *args: str):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "evals", "-p", "no:cacheprovider", "-m", "demo", "--models", "sim",
         "-k", "calc", "--runs-dir", str(tmp_path / "runs"), "--run-id", run_id, "--check-models", "no",
         "--model-spec", f"id=sim,litellm=openai/sim,api_base={url},price_in=10,price_out=10",
         *args],
        cwd=ROOT, capture_output=True, text=True, timeout=900, env=env,
    )  # fmt: skip
