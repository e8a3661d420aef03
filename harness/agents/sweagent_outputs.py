"""Read SWE-agent outputs (trajectories, predictions); map them onto harness outcome classes and Telemetry.

SWE-agent 1.1.0 `run-batch` writes (sweagent/run/run_batch.py, run/common.py, run/merge_predictions.py):
`<out>/<iid>/<iid>.traj` (JSON), `<out>/<iid>/<iid>.pred` ({model_name_or_path, instance_id, model_patch},
model_patch may be null) and at the end `<out>/preds.json` = {iid: pred}. SWE-agent 0.x wrote
`all_preds.jsonl`, one pred per line. An instance that raised past the agent leaves no .traj and no .pred,
only "Uncaught <Exception>" in `<out>/run_batch_exit_statuses.yaml`.

`trajectory_format` is "v1" when the file has any SWE-agent 1.x marker: a top-level `replay_config` or
`attempts`, a step with `execution_time`, `query` or `extra_info`, or a history item with `message_type`;
else "v0" (0.x steps: action/observation/response/state/thought only). `replay_config` is a JSON string in
1.1.0 and an object in earlier 1.0 files: both are read. Retry-loop files list every attempt in `attempts`
and copy the chosen one to the top level; without one the last attempt is read.

`exit_status_class` ("evaluate": the evaluator decides resolved/unresolved). "submitted (<status>)" is the
autosubmission after <status> with a diff in hand; with an empty patch the inner <status> is classified.

    exit_status                                     patch      class             infra
    any                                             diff       evaluate          no (a patch is evaluated)
    any                                             not diff   malformed-patch   no
    submitted, exit_forfeit, exit_command           empty      empty-patch       no
    exit_cost                                       empty      cost-limit        no
    exit_cost and 0 < call_limit < api_calls        empty      step-limit        no (1.1.0 reports its
                                                                                    call limit as exit_cost)
    exit_context                                    empty      context-limit     no
    exit_format                                     empty      format-errors     no
    exit_total_execution_time, exit_command_timeout empty      agent-timeout     no
    exit_api                                        empty      provider-error    yes
    exit_environment_error                          empty      container-error   yes
    exit_error/Uncaught X + docker/container words  empty      container-error   yes
    exit_error/Uncaught X + API/provider words      empty      provider-error    yes
    exit_error, early_exit, "", anything else       empty      agent-crash       yes
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from harness.agents import looks_like_diff
from harness.errors import SweAgentOutputError, one_line
from harness.outcomes import OutcomeClass as C
from harness.results.records import Telemetry

TOKEN_SOURCE = "sweagent-local-tokenizer"
"""SWE-agent counts tokens with litellm's local tokenizer (token_counter), not the provider's usage."""
PRICE_SOURCE = "sweagent-litellm"

_TIMEOUTS = {"exit_total_execution_time", "exit_command_timeout"}
_MODEL_CLASSES = {"exit_cost": C.COST_LIMIT, "exit_context": C.CONTEXT_LIMIT, "exit_format": C.FORMAT_ERRORS}
_GAVE_UP = {"submitted", "exit_forfeit", "exit_command"}
_CONTAINER_WORDS = ("exit_environment_error", "environment error", "docker", "podman", "container",
                    "deployment", "swerex", "swe-rex", "environment died", "no longer alive")  # fmt: skip
_PROVIDER_WORDS = ("exit_api", "retryerror", "ratelimit", "rate limit", "apierror", "api error",
                   "apiconnection", "apitimeout", "serviceunavailable", "internalserver", "authentication",
                   "litellm", "openai", "anthropic", "overloaded", "provider")  # fmt: skip


class _ModelStats(BaseModel):
    instance_cost: float = 0.0
    tokens_sent: int = 0
    tokens_received: int = 0
    api_calls: int = 0


@dataclass
class SweAgentRun:
    instance_id: str
    exit_status: str
    """Raw info.exit_status ("" when missing)."""
    submission: str
    """info.submission as written (may start with a newline); "" when none."""
    steps: int
    api_calls: int
    tokens_sent: int
    tokens_received: int
    instance_cost: float
    execution_time_s: float | None
    trajectory_format: str
    swe_agent_version: str | None = None
    model_name: str | None = None
    call_limit: int = 0
    """replay_config agent.model.per_instance_call_limit (0: none/unknown)."""
    exit_message: str = ""
    """The last step's thought when it is SWE-agent's exit message ("Exit due to ...")."""

    @property
    def patch(self) -> str:
        return self.submission


def _fail(path: Path, reason: object) -> SweAgentOutputError:
    return SweAgentOutputError(f"{path}: unreadable SWE-agent output: {one_line(reason, 300)}")


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _fail(path, e) from None


def _detect_format(data: dict[str, Any], trajectory: list[Any], history: list[Any]) -> str:
    step_keys = {"execution_time", "query", "extra_info"}
    if "replay_config" in data or "attempts" in data:
        return "v1"
    if any(isinstance(s, dict) and step_keys & s.keys() for s in trajectory):
        return "v1"
    return "v1" if any(isinstance(h, dict) and "message_type" in h for h in history) else "v0"


def _replay_config(data: dict[str, Any]) -> dict[str, Any]:
    rc = data.get("replay_config")
    if isinstance(rc, str):
        try:
            rc = json.loads(rc)
        except json.JSONDecodeError:
            return {}
    return rc if isinstance(rc, dict) else {}


def parse_trajectory(path: Path, instance_id: str | None = None) -> SweAgentRun:
    """One SWE-agent .traj (0.x or 1.x). instance_id defaults to replay_config's problem id, else the stem."""
    data = _load_json(path)
    if isinstance(data, dict) and "trajectory" not in data and data.get("attempts"):
        data = data["attempts"][-1]
    if not isinstance(data, dict) or not isinstance(data.get("info"), dict):
        raise _fail(path, "no info object")
    trajectory, history, info = data.get("trajectory"), data.get("history", []), data["info"]
    if not isinstance(trajectory, list) or not isinstance(history, list):
        raise _fail(path, "trajectory/history is not a list")
    try:
        stats = _ModelStats.model_validate(info.get("model_stats") or {})
    except ValidationError as e:
        raise _fail(path, f"bad model_stats: {e.errors()[0]['msg']}") from None
    steps = [s for s in trajectory if isinstance(s, dict)]
    times = [s["execution_time"] for s in steps if isinstance(s.get("execution_time"), int | float)]
    rc = _replay_config(data)
    agent_model = (rc.get("agent") or {}).get("model") or {}
    last_thought = str(steps[-1].get("thought") or "") if steps else ""
    return SweAgentRun(
        instance_id=instance_id or (rc.get("problem_statement") or {}).get("id") or path.stem,
        exit_status=str(info.get("exit_status") or ""),
        submission=str(info.get("submission") or ""),
        steps=len(trajectory),
        api_calls=stats.api_calls,
        tokens_sent=stats.tokens_sent,
        tokens_received=stats.tokens_received,
        instance_cost=stats.instance_cost,
        execution_time_s=sum(times) if times else None,
        trajectory_format=_detect_format(data, trajectory, history),
        swe_agent_version=info.get("swe_agent_version"),
        model_name=agent_model.get("name"),
        call_limit=int(agent_model.get("per_instance_call_limit") or 0),
        exit_message=last_thought if last_thought.startswith("Exit") else "",
    )


def trajectory_path(output_dir: Path, instance_id: str) -> Path:
    """Where `sweagent run-batch --output_dir output_dir` writes the trajectory of instance_id."""
    return output_dir / instance_id / f"{instance_id}.traj"


def _pred_entry(path: Path, where: str, entry: Any, key: str | None = None) -> tuple[str, str]:
    if not isinstance(entry, dict) or not (key or entry.get("instance_id")):
        raise _fail(path, f"{where}: not a prediction object")
    return str(key or entry["instance_id"]), str(entry.get("model_patch") or "")


def read_preds(path: Path) -> dict[str, str]:
    """instance_id -> patch from preds.json ({iid: pred}), a single .pred, a JSON list, or all_preds.jsonl.

    A null model_patch reads as "". In JSONL a later line for the same instance wins (0.x appended).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise _fail(path, e) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        preds = {}
        for n, line in enumerate(text.splitlines(), 1):
            try:
                iid, patch = _pred_entry(path, f"line {n}", json.loads(line)) if line.strip() else ("", "")
            except json.JSONDecodeError as e:
                raise _fail(path, f"line {n}: {e}") from None
            preds.update({iid: patch} if iid else {})
        return preds
    if isinstance(data, dict) and "model_patch" in data:
        return dict([_pred_entry(path, "object", data)])
    if isinstance(data, dict):
        return dict(_pred_entry(path, f"key {k!r}", v, k) for k, v in data.items())
    if isinstance(data, list):
        return dict(_pred_entry(path, f"item {i}", v) for i, v in enumerate(data))
    raise _fail(path, "not a predictions file")


def exit_status_class(
    exit_status: str, patch: str, *, message: str = "", api_calls: int = 0, call_limit: int = 0
) -> tuple[str, bool]:
    """(harness class, is_infra) for a SWE-agent exit status and its patch; see the module table.

    `message` (SweAgentRun.exit_message) refines exit_error; api_calls/call_limit tell a call limit from
    a cost limit.
    """
    if patch.strip():
        return ("evaluate", False) if looks_like_diff(patch) else (C.MALFORMED_PATCH, False)
    status = exit_status.strip()
    if status.startswith("submitted (") and status.endswith(")"):
        status = status[len("submitted (") : -1].strip()
    if status in _GAVE_UP:
        return C.EMPTY_PATCH, False
    if status == "exit_cost" and 0 < call_limit < api_calls:
        return C.STEP_LIMIT, False
    if status in _MODEL_CLASSES:
        return _MODEL_CLASSES[status], False
    if status in _TIMEOUTS:
        return C.AGENT_TIMEOUT, False
    if status == "exit_api":
        return C.PROVIDER_ERROR, True
    text = f"{status} {message}".lower()
    if any(word in text for word in _CONTAINER_WORDS):
        return C.CONTAINER_ERROR, True
    if any(word in text for word in _PROVIDER_WORDS):
        return C.PROVIDER_ERROR, True
    return C.AGENT_CRASH, True


def run_class(run: SweAgentRun, patch: str | None = None) -> tuple[str, bool]:
    """exit_status_class for a parsed run; `patch` overrides the trajectory's submission (e.g. preds)."""
    return exit_status_class(
        run.exit_status,
        run.submission if patch is None else patch,
        message=run.exit_message,
        api_calls=run.api_calls,
        call_limit=run.call_limit,
    )


def telemetry_from_run(run: SweAgentRun) -> Telemetry:
    """SWE-agent's model_stats as harness Telemetry (no retries or latencies are recorded by SWE-agent)."""
    cost = run.instance_cost if run.instance_cost > 0 else None
    counted = run.tokens_sent > 0 or run.tokens_received > 0
    return Telemetry(
        calls=run.api_calls,
        prompt_tokens=run.tokens_sent,
        completion_tokens=run.tokens_received,
        token_source=TOKEN_SOURCE if counted else "none",
        cost_usd=cost,
        price_source=PRICE_SOURCE if cost is not None else "unknown",
    )
