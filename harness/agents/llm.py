"""The LLM model the agent talks to: mini-swe-agent's LitellmModel with one retry policy, per-call
telemetry, catalog prices, the budget ledger, and keys injected per request (never stored in config).

Every HTTP request is one CallRecord: status, latency (request to last byte, waits excluded), tokens
with the source of each count (provider usage, else the tokenizer, else chars/4), cost from the
catalog price (unknown stays unknown) and the provider's own cost where it reports one.
"""

from __future__ import annotations

import email.utils
import json
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from minisweagent.models.litellm_model import LitellmModel

from harness.config import ModelEntry, RetryPolicy
from harness.errors import ModelUnavailable, ProviderRetriesExhausted
from harness.results.records import append_text


def _litellm_logs_through_logging() -> None:
    """litellm's own handler writes its records to whatever sys.stdout / sys.stderr is at that moment. From an
    agent started ahead of its test (harness.run.prefetch) that can be the terminal itself, between two tests
    while pytest's capture is suspended, unredacted. Without the handler, litellm's records reach the root
    logger's handlers, which pytest owns (captured per test, --log-file, live logs) and the harness redacts."""
    from litellm import _logging

    for logger in (_logging.verbose_logger, _logging.verbose_router_logger, _logging.verbose_proxy_logger):
        logger.removeHandler(_logging.handler)


_litellm_logs_through_logging()


@dataclass
class CallRecord:
    started_at: float
    provider: str
    model: str
    attempt: int
    status: str
    latency_s: float
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    token_source: str = "none"
    cost_usd: float | None = None
    provider_cost_usd: float | None = None
    retry_wait_s: float = 0.0
    error: str = ""


def _retryable() -> tuple[type[BaseException], ...]:
    import litellm

    return (
        litellm.RateLimitError,
        litellm.InternalServerError,
        litellm.ServiceUnavailableError,
        litellm.Timeout,
        litellm.APIConnectionError,
        litellm.BadGatewayError,
    )


def retry_after_s(exc: BaseException) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date) on the exception's response."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    value = headers.get("retry-after") if hasattr(headers, "get") else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def backoff_s(policy: RetryPolicy, attempt: int, retry_after: float | None, rng: random.Random) -> float:
    """Retry-After when the provider sends one, else exponential backoff with jitter; capped."""
    if retry_after is not None:
        return min(policy.max_delay_s, retry_after)
    delay = policy.base_delay_s * (2 ** (attempt - 1))
    return min(policy.max_delay_s, delay * (1 + rng.uniform(-policy.jitter, policy.jitter)))


def count_tokens(
    model_name: str, messages: list[dict], completion_text: str, usage: Any
) -> tuple[int, int, int, str]:
    """(prompt, completion, cached, source): provider usage first, then litellm's tokenizer, then chars/4."""
    prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
    completion = int(getattr(usage, "completion_tokens", 0) or 0)
    details = getattr(usage, "prompt_tokens_details", None)
    cached = int(getattr(details, "cached_tokens", 0) or 0) if details else 0
    if prompt or completion:
        return prompt, completion, cached, "provider"
    try:
        import litellm

        prompt = litellm.token_counter(model=model_name, messages=messages)
        completion = litellm.token_counter(model=model_name, text=completion_text) if completion_text else 0
        return prompt, completion, 0, "tokenizer"
    except Exception:
        chars = sum(len(str(m.get("content") or "")) for m in messages)
        return math.ceil(chars / 4), math.ceil(len(completion_text) / 4), 0, "approx-chars/4"


def price_call(entry: ModelEntry, prompt: int, completion: int) -> float | None:
    """Catalog price x tokens (cached tokens are billed at the input price here); None when unpriced."""
    if not entry.price_known:
        return None
    return prompt * entry.price_in_per_mtok / 1e6 + completion * entry.price_out_per_mtok / 1e6  # type: ignore[operator]


class HarnessLitellmModel(LitellmModel):
    """LitellmModel whose query() owns retries, telemetry, pricing and budget checks."""

    def __init__(
        self,
        *,
        entry: ModelEntry,
        policy: RetryPolicy,
        api_key_env: str | None,
        calls_path: Path,
        reserve: Callable[[], int] | None = None,
        settle: Callable[[int, float | None, str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        **kwargs: Any,
    ):
        self.entry, self.policy, self.api_key_env = entry, policy, api_key_env
        self.calls_path, self.calls = calls_path, []  # type: ignore[var-annotated]
        self.reserve, self.settle, self.sleep = reserve, settle, sleep
        self.rng = random.Random()
        super().__init__(**kwargs)

    def _query(self, messages: list[dict[str, str]], **kwargs: Any):
        # The key goes into this request only: never into the model config, so never into a trajectory.
        if self.api_key_env and os.environ.get(self.api_key_env):
            kwargs["api_key"] = os.environ[self.api_key_env]
        elif self.entry.provider == "openai-compatible":
            kwargs.setdefault("api_key", "no-key-configured")  # keyless local servers; litellm insists on one
        return super()._query(messages, **kwargs)

    def _record(self, call: CallRecord) -> None:
        self.calls.append(call)
        append_text(self.calls_path, json.dumps(asdict(call)) + "\n")  # redacted before it is written

    def _request(self, messages: list[dict], **kwargs: Any):
        import litellm

        litellm.suppress_debug_info = True  # its "Give Feedback" banner on every handled exception
        prepared = self._prepare_messages_for_api(messages)
        spent, waited = 0.0, 0.0  # time in requests and in waits; bounded by max_total_s
        for attempt in range(1, self.policy.max_attempts + 1):
            call_id = self.reserve() if self.reserve else 0
            started, t0 = time.time(), time.monotonic()
            try:
                response = self._query(prepared, **kwargs)
            except _retryable() as exc:
                self._failed(call_id, started, t0, attempt, exc, waited)
                spent += time.monotonic() - t0 + waited
                wait = backoff_s(self.policy, attempt, retry_after_s(exc), self.rng)
                out_of_time = spent + wait > self.policy.max_total_s
                if attempt == self.policy.max_attempts or out_of_time:
                    raise ProviderRetriesExhausted(
                        f"{self.entry.id}: gave up after {attempt} attempt(s): {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:300] if str(exc) else ''}",
                        timed_out="Timeout" in type(exc).__name__,
                    ) from exc
                self.sleep(wait)
                waited = wait
                continue
            except litellm.NotFoundError as exc:
                self._failed(call_id, started, t0, attempt, exc, waited)
                raise ModelUnavailable(
                    f"{self.entry.id}: the provider does not serve {self.config.model_name}"
                ) from exc
            except Exception as exc:
                self._failed(call_id, started, t0, attempt, exc, waited)
                raise
            return self._succeeded(call_id, started, t0, attempt, waited, prepared, response)
        raise AssertionError("unreachable")

    def _failed(
        self, call_id: int, started: float, t0: float, attempt: int, exc: BaseException, waited: float
    ) -> None:
        status = str(getattr(exc, "status_code", "") or type(exc).__name__)
        self._record(
            CallRecord(
                started,
                self.entry.provider or "",
                self.entry.id,
                attempt,
                status,
                round(time.monotonic() - t0, 4),
                retry_wait_s=round(waited, 3),
                error=f"{type(exc).__name__}: {str(exc)[:300]}",
            )
        )
        if self.settle:
            self.settle(call_id, None, "error")

    def _succeeded(self, call_id, started, t0, attempt, waited, prepared, response):
        latency = time.monotonic() - t0
        message = response.choices[0].message
        text = (message.content or "") + "".join(
            tc.function.arguments or "" for tc in (message.tool_calls or [])
        )
        prompt, completion, cached, source = count_tokens(
            self.config.model_name, prepared, text, response.usage
        )
        provider_cost = getattr(response.usage, "cost", None) if response.usage else None
        call = CallRecord(
            started,
            self.entry.provider or "",
            self.entry.id,
            attempt,
            "ok",
            round(latency, 4),
            prompt,
            completion,
            cached,
            source,
            price_call(self.entry, prompt, completion),
            float(provider_cost) if provider_cost is not None else None,
            round(waited, 3),
        )
        self._record(call)
        if self.settle:
            self.settle(call_id, call.cost_usd if call.cost_usd is not None else call.provider_cost_usd, "ok")
        return response

    def query(self, messages: list[dict[str, str]], **kwargs: Any) -> dict:
        """mini-swe-agent's query(), with our request loop in place of its tenacity retries."""
        from minisweagent.exceptions import FormatError

        response = self._request(messages, **kwargs)
        cost = {"cost": self.calls[-1].cost_usd or 0.0}
        try:
            actions = self._parse_actions(response)
        except FormatError as e:
            e.messages[0]["extra"].update(cost)
            e.messages[0]["extra"]["response"] = response.model_dump(mode="json")
            raise
        message = response.choices[0].message.model_dump()
        message["extra"] = {
            "actions": actions,
            "response": response.model_dump(),
            **cost,
            "timestamp": time.time(),
        }
        return message


def summarize_calls(calls: list[CallRecord]) -> dict[str, Any]:
    """Fields of records.Telemetry from the case's call records."""
    ok = [c for c in calls if c.status == "ok"]
    sources = sorted({c.token_source for c in ok})
    costs = [c.cost_usd for c in ok]
    provider_costs = [c.provider_cost_usd for c in ok if c.provider_cost_usd is not None]
    cost = round(sum(costs), 8) if ok and all(c is not None for c in costs) else None  # type: ignore[arg-type]
    provider_cost = round(sum(provider_costs), 8) if provider_costs else None
    return {
        "calls": len(calls),
        "failed_calls": len(calls) - len(ok),
        "retries": sum(1 for c in calls if c.attempt > 1),
        "prompt_tokens": sum(c.prompt_tokens for c in ok),
        "completion_tokens": sum(c.completion_tokens for c in ok),
        "cached_tokens": sum(c.cached_tokens for c in ok),
        "token_source": "+".join(sources) if sources else "none",
        "cost_usd": cost,
        "price_source": "catalog" if cost is not None else "unknown",
        "provider_cost_usd": provider_cost,
        "cost_difference_usd": round(provider_cost - cost, 8)
        if cost is not None and provider_cost is not None
        else None,
        "retry_wait_s": round(sum(c.retry_wait_s for c in calls), 3),
        "latencies_s": [c.latency_s for c in ok],
    }
