"""Runs inside SWE-agent's subprocess: `python -m harness.agents.sweagent_subprocess run-batch ...`.

The same CLI as `sweagent run-batch`, plus a litellm callback that appends one CallRecord per HTTP
request SWE-agent makes to the case's llm_calls.jsonl (provider usage, latency, status, catalog cost).
Imports nothing from the harness side of the backend (harness.agents.sweagent), as xdist's remote.py
imports nothing of xdist: the harness side starts this module and reads what it wrote.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

CALLS_ENV = "HARNESS_SWEAGENT_CALLS"
"""Where the subprocess's litellm callback appends CallRecords (llm_calls.jsonl of the case)."""
MODEL_ENV = "HARNESS_SWEAGENT_MODEL"
"""The catalog entry (JSON, no secrets: model_kwargs refuse them) for provider, id and prices of each call."""


def install_call_logger(calls_path: Path, entry) -> None:
    """A litellm callback appending one CallRecord per request SWE-agent makes (litellm retries are off)."""
    import litellm
    from litellm.integrations.custom_logger import CustomLogger

    from harness.agents.llm import CallRecord, count_tokens, price_call

    state = {"failed": 0, "failed_at": 0.0}

    def write(call: CallRecord) -> None:
        calls_path.parent.mkdir(parents=True, exist_ok=True)
        with calls_path.open("a") as f:
            f.write(json.dumps(call.__dict__) + "\n")

    def timing(start_time, end_time) -> tuple[float, float, float]:
        started, ended = start_time.timestamp(), end_time.timestamp()
        waited = started - state["failed_at"] if state["failed"] else 0.0
        return started, round(ended - started, 4), round(max(waited, 0.0), 3)

    class CallLog(CustomLogger):
        def log_success_event(self, kwargs, response_obj, start_time, end_time):
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
            write(
                CallRecord(
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
            )
            state["failed"] = 0

        def log_failure_event(self, kwargs, response_obj, start_time, end_time):
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

    litellm.callbacks.append(CallLog())


def _main(argv: list[str]) -> None:
    if os.environ.get(CALLS_ENV) and os.environ.get(MODEL_ENV):
        from harness.config import ModelEntry

        install_call_logger(
            Path(os.environ[CALLS_ENV]), ModelEntry.model_validate_json(os.environ[MODEL_ENV])
        )
    from sweagent.run.run import main

    main(argv)


if __name__ == "__main__":
    _main(sys.argv[1:])
