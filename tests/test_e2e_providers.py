"""Real-model runs, end to end with a provider stand-in: credentials, redaction, quotas, USD caps, models the
provider does not serve (skipped as `unavailable`), and the pre-flight cost estimate in the run header.

`pytest evals` runs in a subprocess against the fixture instances; the "provider" is the project's
scripted OpenAI-compatible server in this process, reached over real HTTP through litellm.
"""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from harness.demo.llm_server import Script, ScriptedLLMServer
from harness.demo.scripts import FIXTURE_SCRIPTS
from tests.helpers import ROOT, run_evals

pytestmark = pytest.mark.containers
SENTINEL = "sk-sentinel-9f8e7d6c5b4a39281706"


def _config(tmp_path, catalog_edit=None, agent_edit=None):
    cfg = tmp_path / "config"
    shutil.copytree(ROOT / "config", cfg)
    for name, edit in (("model_catalog.yaml", catalog_edit), ("sweagent.yaml", agent_edit)):
        if edit:
            data = yaml.safe_load((cfg / name).read_text())
            edit(data)
            (cfg / name).write_text(yaml.safe_dump(data))
    return cfg


def _records(run_dir) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((run_dir / "cases").glob("*.json"))]


def test_a_sentinel_key_never_lands_in_any_file(fixture_images, tmp_path):
    creds = tmp_path / "credentials.txt"
    creds.write_text(f"# test credentials\nexport SIM_API_KEY='{SENTINEL}'\n")
    leaky = [
        Script(match=s.match, thought=f"my key is {SENTINEL}", steps=[f"echo {SENTINEL}", *s.steps])
        for s in FIXTURE_SCRIPTS
    ]
    junit = tmp_path / "junit.xml"
    with ScriptedLLMServer(leaky) as server:
        done = run_evals(
            "-m",
            "demo",
            "--models",
            "sim",
            "--runs-dir",
            str(tmp_path / "runs"),
            "--run-id",
            "leak",
            "--credentials",
            str(creds),
            "--junitxml",
            str(junit),
            "--model-spec",
            f"id=sim,litellm=openai/sim,api_base={server.url},api_key_env=SIM_API_KEY",
            env={"SIM_API_KEY": ""},
        )
        assert any(r["auth_sha256"] for r in server.requests), "the key must reach the provider"
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    records = _records(tmp_path / "runs" / "leak")
    assert len(records) == 3 and sum(r["outcome"] == "resolved" for r in records) == 2
    files = [p for p in (tmp_path / "runs").rglob("*") if p.is_file()] + [junit]
    assert len(files) > 20
    leaks = [str(p) for p in files if SENTINEL.encode() in p.read_bytes()]
    assert leaks == []
    trajectory = tmp_path / "runs" / "leak" / "artifacts" / "sim-fixtures__calc-1-a1" / "trajectory.json"
    assert "[REDACTED:SIM_API_KEY]" in trajectory.read_text()  # the model echoed it: redacted, not dropped


def test_a_daily_call_quota_hit_mid_run_skips_the_rest(fixture_images, tmp_path):
    quota = 20  # 4 workers start 4 cases at once (at most 5 calls each): those finish, the rest hit the quota

    def catalog(data):
        data["providers"] = {"openai-compatible": {"calls_per_day": quota}}

    cfg = _config(tmp_path, catalog_edit=catalog)
    with ScriptedLLMServer(list(FIXTURE_SCRIPTS)) as server:
        done = run_evals(
            "-m",
            "demo",
            "--models",
            "sim",
            "--attempts",
            "3",
            "-n",
            "4",
            "--runs-dir",
            str(tmp_path / "runs"),
            "--run-id",
            "quota",
            "--harness-config",
            str(cfg),
            "--model-spec",
            f"id=sim,litellm=openai/sim,api_base={server.url}",
        )
        served = len(server.requests)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    records = _records(tmp_path / "runs" / "quota")
    assert len(records) == 9
    skipped = [r for r in records if r["outcome"] == "skipped"]
    assert skipped and all(r["outcome_class"] == "budget" for r in skipped)
    assert any(r["outcome"] in ("resolved", "unresolved") for r in records)
    assert served <= quota  # reservations make the overshoot zero (the issue allows one call per worker)
    assert sum(r["telemetry"]["calls"] for r in records) == served
    assert "case(s) skipped: budget" in done.stdout


def test_a_usd_cap_hit_mid_run_stops_spending(fixture_images, tmp_path):
    cap = 0.05

    def agent(data):
        data["budgets"] = {"usd_per_run": cap}

    cfg = _config(tmp_path, agent_edit=agent)
    with ScriptedLLMServer(list(FIXTURE_SCRIPTS)) as server:
        done = run_evals(
            "-m",
            "demo",
            "--models",
            "sim",
            "--attempts",
            "2",
            "-n",
            "2",
            "--runs-dir",
            str(tmp_path / "runs"),
            "--run-id",
            "usd",
            "--harness-config",
            str(cfg),
            "--model-spec",
            f"id=sim,litellm=openai/sim,api_base={server.url},price_in=10,price_out=10",
        )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    records = _records(tmp_path / "runs" / "usd")
    spent = sum(r["telemetry"]["cost_usd"] or 0 for r in records)
    per_call = [
        c["cost_usd"]
        for p in (tmp_path / "runs" / "usd" / "artifacts").rglob("llm_calls.jsonl")
        for c in map(json.loads, p.read_text().splitlines())
        if c["cost_usd"]
    ]
    assert per_call and spent >= cap
    assert spent <= cap + 2 * max(per_call)  # at most one in-flight call per worker past the cap
    assert any(r["outcome_class"] == "budget" for r in records)
    manifest = json.loads((tmp_path / "runs" / "usd" / "manifest.json").read_text())
    assert manifest["budget"]["spent_usd"] == pytest.approx(spent, rel=1e-6)


def test_without_credentials_i1_skips_every_llm_case_and_exits_cleanly(tmp_path):
    env = {k: "" for k in ("CHUTES_API_KEY", "OPENROUTER_API_KEY")}
    empty = tmp_path / "credentials.txt"
    empty.write_text("CHUTES_API_KEY=\n")
    done = run_evals(
        "-m",
        "i1",
        "--runs-dir",
        str(tmp_path / "runs"),
        "--run-id",
        "nocreds",
        "--credentials",
        str(empty),
        "--no-gates",  # i1's cpu gate measures the (shared) host, not what this test is about
        env=env,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    records = _records(tmp_path / "runs" / "nocreds")
    assert len(records) == 112
    llm = [r for r in records if r["model_id"] != "empty"]
    assert len(llm) == 96 and {(r["outcome"], r["outcome_class"]) for r in llm} == {
        ("skipped", "no-credentials")
    }
    assert {r["outcome_class"] for r in records if r["model_id"] == "empty"} == {"empty-patch"}
    assert "no credentials: CHUTES_API_KEY is not set" in done.stdout
    assert "96 case(s) skipped: no-credentials" in done.stdout


def _unavailable_run(tmp_path, run_id: str, *check: str):
    """`pytest evals -m demo --models sim -k calc` against a provider that serves another model."""
    with ScriptedLLMServer(list(FIXTURE_SCRIPTS), models=["another-model"]) as server:
        done = run_evals(
            "-m", "demo", "--models", "sim", "-k", "calc", "--runs-dir", str(tmp_path / "runs"), "--run-id", run_id,
            "--model-spec", f"id=sim,litellm=openai/sim,api_base={server.url}", *check,
        )  # fmt: skip
        asked = (len(server.model_list_requests), len(server.requests))
        url = server.url
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    (record,) = _records(tmp_path / "runs" / run_id)
    assert (record["outcome"], record["outcome_class"]) == ("skipped", "unavailable"), record["message"]
    assert "1 case(s) skipped: unavailable" in done.stdout and "1 skipped" in done.stdout
    return done, record, asked, url


def test_a_model_the_provider_does_not_list_is_skipped_before_it_starts(fixture_images, tmp_path):
    done, record, (gets, chats), url = _unavailable_run(tmp_path, "unlisted")
    assert f"swebench-harness: model sim: unavailable (sim not listed by {url})" in done.stdout
    assert record["message"] == f"sim: sim not listed by {url}"
    assert (gets, chats) == (1, 0)  # asked once before the run; the case never called the model
    assert record["telemetry"]["calls"] == 0 and record["agent_exit_status"] == "NotStarted"


def test_a_model_that_answers_404_during_the_run_is_skipped_as_unavailable(fixture_images, tmp_path):
    done, record, (gets, chats), _ = _unavailable_run(tmp_path, "gone", "--check-models", "no")
    assert (gets, chats) == (0, 1)  # no pre-flight listing; one request, answered 404, never retried
    assert record["message"] == "ModelUnavailable: sim: the provider does not serve openai/sim"
    assert record["telemetry"]["calls"] == 1 and record["telemetry"]["failed_calls"] == 1


def test_the_run_header_shows_the_pre_flight_cost_estimate(tmp_path):
    """The estimate counts the cases pytest will run (-k applied) and is printed before the first one."""

    def agent(data):
        data["budgets"] = {
            "usd_per_run": 2.5, "usd_per_case": 0.25, "expected_calls_per_case": 10,
            "expected_tokens_in_per_call": 1000, "expected_tokens_out_per_call": 500,
        }  # fmt: skip

    def catalog(data):  # a quota of 0 calls: the priced cases are skipped as `budget`, nothing is called
        data.setdefault("providers", {})["openai-compatible"] = {"calls_per_day": 0}

    cfg = _config(tmp_path, catalog_edit=catalog, agent_edit=agent)
    dead = "api_base=http://127.0.0.1:9/v1"
    done = run_evals(
        "-m", "demo", "--models", "empty,priced,free", "-k", "calc", "--check-models", "no",
        "--harness-config", str(cfg), "--runs-dir", str(tmp_path / "runs"), "--run-id", "estimate",
        "--model-spec", f"id=priced,litellm=openai/p,{dead},price_in=2,price_out=8",
        "--model-spec", f"id=free,litellm=openai/f,{dead}",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    header = done.stdout.split("evals/test_swebench.py")[0]  # printed before the first case runs
    # -k calc: 1 case of each model x 10 calls x (1000 tokens x $2 + 500 tokens x $8) per million = $0.06
    assert "swebench-harness: estimate priced: 1 cases x 10 calls, cost ~$0.06" in header
    assert "swebench-harness: estimate free: 1 cases x 10 calls, cost unknown (no catalog price)" in header
    assert "swebench-harness: budget: USD 2.5 per run, 0.25 per case" in header
    assert "estimate empty" not in done.stdout  # offline baselines cost nothing and are not estimated
    records = _records(tmp_path / "runs" / "estimate")
    assert sorted((r["model_id"], r["outcome_class"]) for r in records) == [
        ("empty", "empty-patch"),
        ("free", "budget"),
        ("priced", "budget"),
    ]  # -k kept the calc cases; the quota meant nothing was called
