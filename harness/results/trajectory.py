"""Read either agent's trajectory into one list of steps, with the LLM calls of llm_calls.jsonl attached.

- mini-swe-agent (artifacts/<case>/trajectory.json): `messages`; each assistant message is a step (thought,
  the commands of its actions or tool calls, or of its ```bash blocks), and the tool/user messages after
  it are its observations (`extra.raw_output`, `extra.returncode`, else `<returncode>` in the text).
  The `exit` message carries the exit status and the submission.
- SWE-agent (<iid>.traj, 0.x and 1.x, read as harness.agents.sweagent_outputs reads it): `trajectory`
  steps (thought, action, observation, execution_time); a retry-loop file's last attempt is read.

llm_calls.jsonl holds one line per HTTP request, in order. The n-th successful request produced the
n-th step; requests that failed before it (errors, then the retry) are shown with that step.
Views only: nothing here calls an agent or a provider.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_RETURNCODE = re.compile(r"<returncode>\s*(-?\d+)\s*</returncode>")
_OUTPUT = re.compile(r"<output>\n?(.*?)</output>", re.S)
_PR_DESCRIPTION = re.compile(r"<pr_description>(.*?)</pr_description>", re.S)
_BASH_BLOCK = re.compile(r"```(?:bash|sh)?\s*\n(.*?)```", re.S)


@dataclass
class Observation:
    text: str
    returncode: int | None = None


@dataclass
class Step:
    number: int
    thought: str = ""
    commands: list[str] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    exec_s: float | None = None
    """Command execution time where the agent records it (SWE-agent's execution_time)."""
    call: dict[str, Any] | None = None
    """The successful LLM request that produced this step (a line of llm_calls.jsonl)."""
    failed_calls: list[dict[str, Any]] = field(default_factory=list)
    """Requests that failed before it (retried)."""


@dataclass
class Trajectory:
    agent: str
    steps: list[Step]
    exit_status: str = ""
    submission: str = ""
    preamble: list[tuple[str, str]] = field(default_factory=list)
    """(role, text) of the messages before the first step: system prompt, task."""
    unmatched_calls: int = 0
    """Successful LLM requests beyond the steps (or steps beyond the requests: negative)."""
    problem: str = ""
    """Unreadable file: why (the page says so and links the raw file)."""


def _text(content: Any) -> str:
    """Message content as text (a string, or a list of {type: text, text} parts)."""
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) if isinstance(p, dict) else str(p) for p in content)
    return "" if content is None else str(content)


def _mini_commands(message: dict[str, Any], thought: str) -> tuple[list[str], str]:
    """The commands of an assistant message and its thought (without the bash blocks it ran)."""
    actions = (message.get("extra") or {}).get("actions")
    if isinstance(actions, list) and actions:
        return [str(a.get("command", "")) for a in actions if isinstance(a, dict)], thought
    commands = []
    for call in message.get("tool_calls") or []:
        args = (call.get("function") or {}).get("arguments", "") if isinstance(call, dict) else ""
        try:
            parsed = json.loads(args) if isinstance(args, str) else args
        except json.JSONDecodeError:
            parsed = None
        commands.append(str(parsed.get("command", args)) if isinstance(parsed, dict) else str(args))
    if commands:
        return commands, thought
    blocks = _BASH_BLOCK.findall(thought)
    return [b.strip("\n") for b in blocks], _BASH_BLOCK.sub("", thought).strip() if blocks else thought


def _mini_observation(message: dict[str, Any]) -> Observation:
    extra = message.get("extra") or {}
    content = _text(message.get("content"))
    code = extra.get("returncode")
    if not isinstance(code, int):
        found = _RETURNCODE.search(content)
        code = int(found.group(1)) if found else None
    raw = extra.get("raw_output")
    if not isinstance(raw, str):
        found = _OUTPUT.search(content) if code is not None else None
        raw = found.group(1) if found else content
    note = extra.get("exception_info")
    return Observation(f"{raw}\n{note}" if note else raw, code)


def parse_mini(data: dict[str, Any]) -> Trajectory:
    info = data.get("info") or {}
    traj = Trajectory(
        "mini-swe-agent", [], str(info.get("exit_status") or ""), str(info.get("submission") or "")
    )
    for message in data.get("messages") or []:
        if not isinstance(message, dict):
            continue
        role, content = str(message.get("role", "")), _text(message.get("content"))
        if role == "assistant":
            commands, thought = _mini_commands(message, content)
            traj.steps.append(Step(len(traj.steps) + 1, thought.strip(), commands))
        elif role == "exit":
            extra = message.get("extra") or {}
            traj.exit_status = str(extra.get("exit_status") or traj.exit_status)
            traj.submission = str(extra.get("submission") or content or traj.submission)
        elif traj.steps:
            traj.steps[-1].observations.append(_mini_observation(message))
        else:
            traj.preamble.append((role, content))
    return traj


def task_text(prompt: str) -> str:
    """The problem statement inside an agent's task prompt (mini-swe-agent's <pr_description>), else the prompt."""
    found = _PR_DESCRIPTION.search(prompt)
    if not found:
        return prompt
    return found.group(1).replace("Consider the following PR description:", "", 1).strip()


def _seconds(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def parse_sweagent(data: dict[str, Any]) -> Trajectory:
    if "trajectory" not in data and data.get("attempts"):
        data = data["attempts"][-1]
    info = data.get("info") or {}
    traj = Trajectory("SWE-agent", [], str(info.get("exit_status") or ""), str(info.get("submission") or ""))
    for item in data.get("history") or []:
        if not isinstance(item, dict) or item.get("role") == "assistant":
            break
        if not item.get("is_demo"):
            traj.preamble.append((str(item.get("role", "")), _text(item.get("content"))))
    for raw in data.get("trajectory") or []:
        if not isinstance(raw, dict):
            continue
        action = str(raw.get("action") or "")
        step = Step(len(traj.steps) + 1, str(raw.get("thought") or raw.get("response") or "").strip())
        step.commands = [action.rstrip("\n")] if action.strip() else []
        step.observations = [Observation(_text(raw.get("observation")))]
        step.exec_s = _seconds(raw.get("execution_time"))
        traj.steps.append(step)
    return traj


def read_calls(path: Path | None) -> list[dict[str, Any]]:
    """Lines of llm_calls.jsonl (a torn or foreign line is skipped); [] when there is no file."""
    if path is None or not path.is_file():
        return []
    calls = []
    with path.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                call = json.loads(line)
            except ValueError:
                continue
            if isinstance(call, dict):
                calls.append(call)
    return calls


def attach_calls(traj: Trajectory, calls: list[dict[str, Any]]) -> None:
    """The n-th successful request to the n-th step; failed requests to the step they were retried for."""
    pending: list[dict[str, Any]] = []
    n = 0
    for call in calls:
        if call.get("status") != "ok":
            pending.append(call)
            continue
        if n < len(traj.steps):
            traj.steps[n].call, traj.steps[n].failed_calls = call, pending
        n += 1
        pending = []
    if pending and n < len(traj.steps):
        traj.steps[n].failed_calls = pending
    traj.unmatched_calls = n - len(traj.steps) if calls else 0


def load_trajectory(path: Path, calls: list[dict[str, Any]] | None = None) -> Trajectory:
    """Either backend's trajectory, by its shape; an unreadable file gives an empty one saying why."""
    try:
        data = json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, ValueError) as e:
        return Trajectory("unknown", [], problem=f"cannot read {path.name}: {' '.join(str(e).split())[:200]}")
    if not isinstance(data, dict):
        return Trajectory("unknown", [], problem=f"{path.name} is not a trajectory object")
    if isinstance(data.get("messages"), list):
        traj = parse_mini(data)
    elif isinstance(data.get("trajectory"), list) or data.get("attempts"):
        traj = parse_sweagent(data)
    else:
        return Trajectory(
            "unknown", [], problem=f"{path.name}: neither a mini-swe-agent nor a SWE-agent trajectory"
        )
    attach_calls(traj, calls or [])
    return traj
