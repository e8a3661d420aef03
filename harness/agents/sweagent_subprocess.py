"""Runs inside SWE-agent's subprocess: `python -m harness.agents.sweagent_subprocess run-batch ...`.

The same CLI as `sweagent run-batch`, plus, installed before SWE-agent starts:

- the budget ledger (harness.infra.budget, the same SQLite file every worker shares): a litellm pre-call
  rule reserves each request before it is sent, and the success/failure events settle it with its catalog
  cost. litellm's `CustomLogger.log_pre_api_call` cannot stop a call (litellm swallows what it raises) and
  `async_pre_call_hook` runs only in litellm's proxy; `litellm.pre_call_rules` run in `function_setup` of
  every sync `completion()` and what they raise propagates. A refusal stops SWE-agent the way its own cost
  limits do (InstanceCostLimitExceededError for the case's cap: exit_cost; TotalCostLimitExceededError for
  the run's cap and the daily quota: the batch stops) and is written to `budget-refusal.json`;
- a litellm callback that appends one CallRecord per HTTP request to the case's llm_calls.jsonl (provider
  usage, latency, status, catalog cost), as the mini-swe-agent backend does;
- redaction at the source: the key variables the harness names are registered, log records are redacted
  when they are made, and SWE-agent's trajectory data is redacted before it is written.

Imports nothing from the harness side of the backend (harness.agents.sweagent), as xdist's remote.py
imports nothing of xdist: the harness side starts this module and reads what it wrote. No key value ever
travels in these variables: the ledger spec has a path, ids and limits; the secrets list has names.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.errors import BudgetExhausted
from harness.results.records import append_text, write_json_atomic

CALLS_ENV = "HARNESS_SWEAGENT_CALLS"
"""Where the subprocess's litellm callback appends CallRecords (llm_calls.jsonl of the case)."""
MODEL_ENV = "HARNESS_SWEAGENT_MODEL"
"""The catalog entry (JSON, no secrets: model_kwargs refuse them) for provider, id and prices of each call."""
LEDGER_ENV = "HARNESS_SWEAGENT_LEDGER"
"""JSON: ledger path, run id, limits, case id, provider, refusal file (budget_spec on the harness side)."""
SECRET_NAMES_ENV = "HARNESS_SWEAGENT_SECRET_NAMES"
"""JSON list of the variables whose values the harness redacts (names only; the values are in the env)."""


def _stop(refusal: BudgetExhausted) -> Exception:
    """The exception that stops SWE-agent as its own limits would; still a BudgetExhausted (scope kept)."""
    try:
        from sweagent.exceptions import InstanceCostLimitExceededError, TotalCostLimitExceededError
    except ImportError:  # not inside SWE-agent (the unit tests call the hook directly)
        return refusal
    base = InstanceCostLimitExceededError if refusal.scope == "usd-per-case" else TotalCostLimitExceededError
    stop = type("HarnessBudgetStop", (base, BudgetExhausted), {})
    return stop(refusal.scope, str(refusal))


class BudgetHook:
    """Reserve before each request (a litellm pre-call rule), settle after it (success / failure events)."""

    def __init__(self, spec: dict[str, Any]):
        from harness.infra.budget import Ledger, Limits

        self.ledger = Ledger(Path(spec["path"]), spec["run_id"], Limits(**spec["limits"]))
        self.case_id, self.provider = spec["case_id"], spec["provider"]
        self.refusal_path = Path(spec["refusal"])
        self._lock = threading.Lock()
        self._pending: int | None = None  # reserved, not yet bound to a request id
        self._by_request: dict[str, int] = {}

    def reserve(self, _prompt: str = "") -> bool:
        """litellm pre_call rule: reserve one call or raise the refusal (the request is never sent)."""
        self.settle_unbound("error")  # a reservation whose request never started
        try:
            call_id = self.ledger.reserve_call(self.provider, self.case_id)
        except BudgetExhausted as refusal:
            write_json_atomic(self.refusal_path, {"scope": refusal.scope, "message": str(refusal)})
            raise _stop(refusal) from None
        with self._lock:
            self._pending = call_id
        return True

    def bind(self, request_id: str | None) -> None:
        """The request is being sent (log_pre_api_call): its events will name it by litellm_call_id."""
        with self._lock:
            if request_id and self._pending is not None:
                self._by_request[request_id] = self._pending
                self._pending = None

    def settle(self, request_id: str | None, cost_usd: float | None, status: str) -> None:
        with self._lock:
            call_id = self._by_request.pop(request_id or "", None)
            if call_id is None:
                call_id, self._pending = self._pending, None
        if call_id is not None:
            self.ledger.settle_call(call_id, cost_usd=cost_usd, status=status)

    def settle_unbound(self, status: str) -> None:
        with self._lock:
            stale, self._pending = self._pending, None
        if stale is not None:
            self.ledger.settle_call(stale, cost_usd=None, status=status)

    def settle_all(self, status: str) -> None:
        """At exit: whatever is still reserved ended without an event (the quota counted it anyway)."""
        with self._lock:
            left = [*self._by_request.values(), *([self._pending] if self._pending is not None else [])]
            self._by_request, self._pending = {}, None
        for call_id in left:
            self.ledger.settle_call(call_id, cost_usd=None, status=status)


class _EventOrder:
    """litellm handles a request's success event in its logging thread pool but its failure event inline, so a
    success could be handled after the next request's failure: its record then came later in llm_calls.jsonl
    and took the wrong attempt number and retry wait (both follow the outcomes before it). Each request now
    waits, before it is sent, until every earlier request's event has been handled (at most EVENT_WAIT_S: an
    event that never comes is then given up on). In the usual case the wait is the logging thread's few ms."""

    EVENT_WAIT_S = 5.0

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._sent = self._handled = 0

    def wait_for_earlier(self) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: self._handled >= self._sent, timeout=self.EVENT_WAIT_S):
                self._handled = self._sent
            self._sent += 1

    @contextlib.contextmanager
    def handled(self) -> Iterator[None]:
        try:
            yield
        finally:
            with self._cond:
                # an event without a sent request (refused before it was sent) counts for none
                self._handled = min(self._handled + 1, self._sent)
                self._cond.notify_all()


def install_call_logger(calls_path: Path, entry, budget: BudgetHook | None = None):
    """A litellm callback appending one CallRecord per request SWE-agent makes (litellm retries are off),
    settling `budget`'s reservations; returns a function that removes it (and the budget rule) again."""
    import litellm
    from litellm.integrations.custom_logger import CustomLogger

    from harness.agents.llm import CallRecord, count_tokens, price_call

    state = {"failed": 0, "failed_at": 0.0}
    order = _EventOrder()

    def write(call: CallRecord) -> None:
        append_text(calls_path, json.dumps(call.__dict__) + "\n")  # redacted before it is written

    def timing(start_time, end_time) -> tuple[float, float, float]:
        started, ended = start_time.timestamp(), end_time.timestamp()
        waited = started - state["failed_at"] if state["failed"] else 0.0
        return started, round(ended - started, 4), round(max(waited, 0.0), 3)

    class CallLog(CustomLogger):
        def log_pre_api_call(self, model, messages, kwargs):
            order.wait_for_earlier()
            if budget is not None:
                budget.bind(kwargs.get("litellm_call_id"))

        def log_success_event(self, kwargs, response_obj, start_time, end_time):
            with order.handled():
                self._success(kwargs, response_obj, start_time, end_time)

        def log_failure_event(self, kwargs, response_obj, start_time, end_time):
            with order.handled():
                self._failure(kwargs, start_time, end_time)

        def _success(self, kwargs, response_obj, start_time, end_time):
            started, latency, waited = timing(start_time, end_time)
            message = response_obj.choices[0].message
            text = (message.content or "") + "".join(
                tc.function.arguments or "" for tc in (getattr(message, "tool_calls", None) or [])
            )
            usage = getattr(response_obj, "usage", None)
            prompt, completion, cached, source = count_tokens(
                kwargs.get("model", ""), kwargs.get("messages") or [], text, usage
            )
            provider_cost = getattr(usage, "cost", None) if usage else None
            call = CallRecord(
                started,
                entry.provider or "",
                entry.id,
                state["failed"] + 1,
                "ok",
                latency,
                prompt,
                completion,
                cached,
                source,
                price_call(entry, prompt, completion),
                float(provider_cost) if provider_cost is not None else None,
                waited,
            )
            write(call)
            state["failed"] = 0
            if budget is not None:
                cost = call.cost_usd if call.cost_usd is not None else call.provider_cost_usd
                budget.settle(kwargs.get("litellm_call_id"), cost, "ok")

        def _failure(self, kwargs, start_time, end_time):
            started, latency, waited = timing(start_time, end_time)
            exc = kwargs.get("exception")
            status = str(getattr(exc, "status_code", "") or type(exc).__name__)
            write(
                CallRecord(
                    started,
                    entry.provider or "",
                    entry.id,
                    state["failed"] + 1,
                    status,
                    latency,
                    retry_wait_s=waited,
                    error=f"{type(exc).__name__}: {str(exc)[:300]}",
                )
            )
            state["failed"] += 1
            state["failed_at"] = end_time.timestamp()
            if budget is not None:
                budget.settle(kwargs.get("litellm_call_id"), None, "error")

    logger = CallLog()
    logger.calls_path = str(
        calls_path
    )  # litellm keeps one logger per class name + public fields: ours is per path
    litellm.callbacks.append(logger)
    if budget is not None:
        litellm.pre_call_rules.append(budget.reserve)

    def uninstall() -> None:
        for name in ("callbacks", "input_callback", "success_callback", "failure_callback",
                     "_async_success_callback", "_async_failure_callback", "pre_call_rules"):  # fmt: skip
            hooks = getattr(litellm, name, [])
            for hook in (logger, budget.reserve if budget is not None else None):
                while hook is not None and hook in hooks:
                    hooks.remove(hook)

    return uninstall


def redact_at_source() -> None:
    """Register the harness's key variables here too, and redact SWE-agent's log records and trajectories
    before they are written (harness.infra.secrets; the harness side redacts the folder again after)."""
    from harness.infra import secrets

    secrets.register_named_secrets(json.loads(os.environ.get(SECRET_NAMES_ENV) or "[]"))
    secrets.register_env_secrets()
    secrets.register_dotenv_secrets(secrets.agent_dotenv_files())
    make_record = logging.getLogRecordFactory()

    def redacted_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        record.msg, record.args = secrets.redact_text(record.getMessage()), None
        if record.exc_info:
            record.exc_text = secrets.redact_text(logging.Formatter().formatException(record.exc_info))
        return record

    logging.setLogRecordFactory(redacted_record)
    try:
        from sweagent.agent import agents
    except ImportError:
        return
    for cls in (agents.DefaultAgent, agents.RetryAgent):
        original = cls.get_trajectory_data

        def get_trajectory_data(self, *args: Any, _original=original, **kwargs: Any) -> dict[str, Any]:
            return secrets.redact_json(_original(self, *args, **kwargs))

        cls.get_trajectory_data = get_trajectory_data  # type: ignore[method-assign]


def _main(argv: list[str]) -> None:
    redact_at_source()
    budget = BudgetHook(json.loads(os.environ[LEDGER_ENV])) if os.environ.get(LEDGER_ENV) else None
    if budget is not None:
        atexit.register(budget.settle_all, "error")
    if os.environ.get(CALLS_ENV) and os.environ.get(MODEL_ENV):
        from harness.config import ModelEntry

        entry = ModelEntry.model_validate_json(os.environ[MODEL_ENV])
        install_call_logger(Path(os.environ[CALLS_ENV]), entry, budget)
    from sweagent.run.run import main

    main(argv)


if __name__ == "__main__":
    _main(sys.argv[1:])
