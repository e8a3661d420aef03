"""The harness's LLM model over real HTTP (scripted server, litellm): retries, telemetry, prices, keys, budget."""

from __future__ import annotations

import hashlib
import json
import math

import pytest

from harness.config import ModelEntry, RetryPolicy
from harness.demo.llm_server import Fault, Script, ScriptedLLMServer

TASK = "Fix the frobnicator in widget.py"
SCRIPT = Script(match="frobnicator", steps=["cat widget.py", "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT"])
FAST = RetryPolicy(
    max_attempts=4, base_delay_s=0.01, max_delay_s=5, max_total_s=30, jitter=0.0, request_timeout_s=1.0
)


@pytest.fixture(scope="module")
def litellm_loaded():
    import litellm  # noqa: F401 - slow import, once per module

    from harness.agents import llm

    return llm


def _entry(**over) -> ModelEntry:
    fields = dict(
        id="m",
        kind="litellm",
        provider="openai-compatible",
        litellm_id="openai/scripted-test",
        api_base="http://127.0.0.1:1",
    )
    fields.update(over)
    return ModelEntry(**fields)


def _model(llm, server, tmp_path, *, entry=None, policy=FAST, api_key_env=None, sleeps=None, **hooks):
    entry = entry or _entry()
    return llm.HarnessLitellmModel(
        entry=entry,
        policy=policy,
        api_key_env=api_key_env,
        calls_path=tmp_path / "llm_calls.jsonl",
        sleep=(sleeps.append if sleeps is not None else lambda s: None),
        model_name=entry.litellm_id,
        cost_tracking="ignore_errors",
        model_kwargs={"api_base": server.url, "max_retries": 0, "timeout": policy.request_timeout_s},
        **hooks,
    )


MESSAGES = [{"role": "system", "content": "You are a shell agent."}, {"role": "user", "content": TASK}]


@pytest.fixture(autouse=True)
def _placeholder_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "placeholder-not-a-secret")


def test_a_429_storm_honours_retry_after_then_succeeds(litellm_loaded, tmp_path):
    sleeps: list[float] = []
    with ScriptedLLMServer([SCRIPT]) as server:
        server.add_faults(*[Fault("429", retry_after=0.7)] * 3)
        model = _model(litellm_loaded, server, tmp_path, sleeps=sleeps)
        message = model.query(MESSAGES)
    assert message["extra"]["actions"][0]["command"] == "cat widget.py"
    assert sleeps == [0.7, 0.7, 0.7]
    statuses = [c.status for c in model.calls]
    assert statuses == ["429", "429", "429", "ok"]
    summary = litellm_loaded.summarize_calls(model.calls)
    assert (summary["calls"], summary["failed_calls"], summary["retries"]) == (4, 3, 3)
    assert len(summary["latencies_s"]) == 1 and summary["retry_wait_s"] == pytest.approx(2.1)
    lines = [json.loads(x) for x in (tmp_path / "llm_calls.jsonl").read_text().splitlines()]
    assert [x["status"] for x in lines] == statuses


def test_5xx_and_malformed_bodies_back_off_exponentially(litellm_loaded, tmp_path):
    sleeps: list[float] = []
    policy = FAST.model_copy(update={"base_delay_s": 0.5})
    with ScriptedLLMServer([SCRIPT]) as server:
        server.add_faults(Fault("500"), Fault("503"), Fault("malformed"))
        model = _model(litellm_loaded, server, tmp_path, policy=policy, sleeps=sleeps)
        model.query(MESSAGES)
    assert sleeps == [0.5, 1.0, 2.0]
    assert [c.status for c in model.calls][-1] == "ok" and len(model.calls) == 4


def test_a_hanging_server_times_out_and_is_retried(litellm_loaded, tmp_path):
    with ScriptedLLMServer([SCRIPT]) as server:
        server.add_faults(Fault("timeout", delay_s=3))
        model = _model(litellm_loaded, server, tmp_path)
        model.query(MESSAGES)
    first, second = model.calls
    assert first.status != "ok" and "Timeout" in first.error
    assert 0.9 < first.latency_s < 2.5
    assert second.status == "ok" and second.attempt == 2


def test_exhausted_retries_raise_a_provider_error(litellm_loaded, tmp_path):
    with ScriptedLLMServer([SCRIPT]) as server:
        server.add_faults(*[Fault("429", retry_after=0.01)] * 10)
        model = _model(litellm_loaded, server, tmp_path)
        with pytest.raises(litellm_loaded.ProviderRetriesExhausted, match="gave up after 4 attempt"):
            model.query(MESSAGES)
        assert len(server.requests) == 4


def test_total_retry_time_is_bounded(litellm_loaded, tmp_path):
    policy = FAST.model_copy(update={"max_attempts": 50, "max_total_s": 5})
    with ScriptedLLMServer([SCRIPT]) as server:
        server.add_faults(*[Fault("429", retry_after=2)] * 10)
        model = _model(litellm_loaded, server, tmp_path, policy=policy)
        with pytest.raises(litellm_loaded.ProviderRetriesExhausted):
            model.query(MESSAGES)
    assert len(model.calls) == 3  # waits of 2 s: the third would pass 5 s


def test_missing_usage_falls_back_to_the_tokenizer(litellm_loaded, tmp_path):
    with ScriptedLLMServer([SCRIPT], usage_mode="none") as server:
        model = _model(litellm_loaded, server, tmp_path)
        model.query(MESSAGES)
    call = model.calls[-1]
    assert call.token_source == "tokenizer"
    assert call.prompt_tokens > 5 and call.completion_tokens > 0


def test_provider_usage_is_used_when_present(litellm_loaded, tmp_path):
    with ScriptedLLMServer([SCRIPT]) as server:
        model = _model(litellm_loaded, server, tmp_path)
        model.query(MESSAGES)
    chars = sum(len(m["content"]) for m in MESSAGES)
    assert model.calls[-1].token_source == "provider"
    assert model.calls[-1].prompt_tokens == -(-chars // 4)


def test_openrouter_cost_is_recorded_next_to_the_catalog_price(litellm_loaded, tmp_path):
    entry = _entry(price_in_per_mtok=2.0, price_out_per_mtok=4.0)
    with ScriptedLLMServer([SCRIPT], usage_mode="openrouter") as server:
        model = _model(litellm_loaded, server, tmp_path, entry=entry)
        model.query(MESSAGES)
    call = model.calls[-1]
    ours = call.prompt_tokens * 2e-6 + call.completion_tokens * 4e-6
    theirs = call.prompt_tokens * 1e-6 + call.completion_tokens * 2e-6
    assert call.cost_usd == pytest.approx(ours)
    assert call.provider_cost_usd == pytest.approx(theirs)
    summary = litellm_loaded.summarize_calls(model.calls)
    assert summary["cost_difference_usd"] == pytest.approx(theirs - ours)
    assert summary["price_source"] == "catalog"


def test_an_unknown_price_stays_unknown(litellm_loaded, tmp_path):
    with ScriptedLLMServer([SCRIPT]) as server:
        model = _model(litellm_loaded, server, tmp_path)
        message = model.query(MESSAGES)
    assert model.calls[-1].cost_usd is None
    summary = litellm_loaded.summarize_calls(model.calls)
    assert summary["cost_usd"] is None and summary["price_source"] == "unknown"
    assert message["extra"]["cost"] == 0.0  # mini-swe-agent's own counter; the record keeps None


def test_an_unknown_model_is_unavailable(litellm_loaded, tmp_path):
    with ScriptedLLMServer([SCRIPT], models=["another-model"]) as server:
        model = _model(litellm_loaded, server, tmp_path)
        with pytest.raises(litellm_loaded.ModelUnavailable):
            model.query(MESSAGES)
        assert len(server.requests) == 1  # a 404 is not retried


def test_the_key_travels_per_request_and_never_into_the_config(litellm_loaded, tmp_path, monkeypatch):
    key = "sk-test-key-for-injection-0123456789"
    monkeypatch.setenv("SELFHOSTED_KEY", key)
    with ScriptedLLMServer([SCRIPT]) as server:
        model = _model(litellm_loaded, server, tmp_path, api_key_env="SELFHOSTED_KEY")
        model.query(MESSAGES)
    assert server.requests[-1]["auth_sha256"] == hashlib.sha256(key.encode()).hexdigest()
    assert key not in json.dumps(model.serialize())
    assert key not in (tmp_path / "llm_calls.jsonl").read_text()


def test_the_budget_is_asked_before_every_request(litellm_loaded, tmp_path):
    from harness.errors import BudgetExhausted

    reserved, settled = [], []

    def reserve():
        if len(reserved) == 2:
            raise BudgetExhausted("calls-per-day:openai-compatible", "quota reached")
        reserved.append(len(reserved) + 1)
        return reserved[-1]

    with ScriptedLLMServer([SCRIPT]) as server:
        server.add_faults(Fault("500"))
        model = _model(
            litellm_loaded,
            server,
            tmp_path,
            reserve=reserve,
            settle=lambda i, cost, status: settled.append((i, status)),
        )
        model.query(MESSAGES)
        assert settled == [(1, "error"), (2, "ok")]
        with pytest.raises(BudgetExhausted):
            model.query(MESSAGES)
        assert len(server.requests) == 2


def test_backoff_has_jitter_within_its_bounds(litellm_loaded):
    """Without Retry-After: base x 2^(attempt-1), times a factor drawn uniformly from [1 - jitter, 1 + jitter]."""
    import random

    policy = FAST.model_copy(update={"base_delay_s": 1.0, "max_delay_s": 60, "jitter": 0.25})
    rng = random.Random(7)
    for attempt, base in ((1, 1.0), (3, 4.0)):
        waits = [litellm_loaded.backoff_s(policy, attempt, None, rng) for _ in range(4000)]
        assert all(0.75 * base <= w <= 1.25 * base for w in waits)
        assert min(waits) < 0.76 * base and max(waits) > 1.24 * base  # the whole band is used
        assert sum(waits) / len(waits) == pytest.approx(base, rel=0.02)
        assert len(set(waits)) == len(waits)  # no two retries of different cases wait in lockstep
    capped = policy.model_copy(update={"max_delay_s": 3.0})
    assert litellm_loaded.backoff_s(capped, 6, None, rng) == 3.0
    assert litellm_loaded.backoff_s(policy, 3, 0.7, rng) == 0.7  # Retry-After wins, no jitter on it


def test_retries_through_the_model_wait_with_jitter(litellm_loaded, tmp_path):
    sleeps: list[float] = []
    policy = FAST.model_copy(update={"base_delay_s": 0.5, "jitter": 0.5})
    with ScriptedLLMServer([SCRIPT]) as server:
        server.add_faults(Fault("500"), Fault("503"), Fault("500"))
        model = _model(litellm_loaded, server, tmp_path, policy=policy, sleeps=sleeps)
        model.query(MESSAGES)
    assert len(sleeps) == 3
    for wait, base in zip(sleeps, (0.5, 1.0, 2.0), strict=True):
        assert 0.5 * base <= wait <= 1.5 * base
    assert sleeps != [0.5, 1.0, 2.0]


def test_without_usage_and_tokenizer_tokens_are_characters_over_four(litellm_loaded, tmp_path, monkeypatch):
    import litellm

    def no_tokenizer(*args, **kwargs):
        raise ValueError("no tokenizer for this model")

    monkeypatch.setattr(litellm, "token_counter", no_tokenizer)
    with ScriptedLLMServer([SCRIPT], usage_mode="none") as server:
        model = _model(litellm_loaded, server, tmp_path)
        message = model.query(MESSAGES)
        sent = server.requests[-1]["body"]["messages"]
    call = model.calls[-1]
    # the completion is what the model wrote: its text plus its tool calls' arguments
    answer = (message["content"] or "") + "".join(t["function"]["arguments"] for t in message["tool_calls"])
    assert answer == '{"command": "cat widget.py"}'
    prompt_chars = sum(len(m["content"] or "") for m in sent)
    assert call.token_source == "approx-chars/4"
    assert (call.prompt_tokens, call.completion_tokens) == (
        math.ceil(prompt_chars / 4),
        math.ceil(len(answer) / 4),
    )
    assert call.prompt_tokens > 0 and call.completion_tokens > 0


def test_mixed_token_sources_are_joined_with_plus(litellm_loaded, tmp_path):
    with ScriptedLLMServer([SCRIPT]) as server:
        model = _model(litellm_loaded, server, tmp_path)
        model.query(MESSAGES)
        server.usage_mode = "none"  # the provider stops reporting usage: litellm's tokenizer counts
        model.query(MESSAGES)
    assert [c.token_source for c in model.calls] == ["provider", "tokenizer"]
    summary = litellm_loaded.summarize_calls(model.calls)
    assert summary["token_source"] == "provider+tokenizer"
    assert summary["prompt_tokens"] == sum(c.prompt_tokens for c in model.calls)
    assert litellm_loaded.summarize_calls(model.calls[:1])["token_source"] == "provider"
    assert litellm_loaded.summarize_calls([])["token_source"] == "none"
