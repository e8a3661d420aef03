"""The scripted server's wire vocabulary: scripts, faults, replies, error bodies, token counts, and the
forms in which a provider may repeat a caller's key (harness.demo.llm_server serves them)."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

NO_COMMANDS_CONTENT = "I have no further commands."
NO_TOOL_CALL_CONTENT = "Let me think about this before running anything."
REDACTED = "<redacted>"
_SECRET_HEADERS = frozenset({"authorization", "api-key", "x-api-key"})

FaultKind = Literal["429", "500", "503", "timeout", "malformed", "latency", "404", "no_tool_call", "echo_key"]


def _b64(text: str, *, urlsafe: bool = False) -> str:
    return (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(text.encode()).decode()


ECHO_FORMS: dict[str, Callable[[str], str]] = {
    "raw": lambda key: key,
    "json": lambda key: json.dumps(key)[1:-1],
    "url": lambda key: urllib.parse.quote(key, safe=""),
    "base64": _b64,
    "basic-api": lambda key: "Basic " + _b64(f"api:{key}"),
    "basic-user": lambda key: "Basic " + _b64(f"user:{key}"),
    "base64url-key-first": lambda key: _b64(f"{key}:", urlsafe=True),
    "first-half": lambda key: key[: len(key) // 2] + "...",
    "second-half": lambda key: "..." + key[len(key) // 2 :],
    "truncated": lambda key: key[: 3 * len(key) // 4] + "...",
}
"""How an `echo_key` fault repeats the bearer token it received (real providers echo keys in these ways)."""
UsageMode = Literal["openai", "none", "openrouter"]


@dataclass
class Script:
    """Answer conversations whose user messages contain ``match`` with ``steps``, one per turn."""

    match: str
    steps: list[str]
    thought: str = ""
    fence: str = "bash"


@dataclass
class Fault:
    """One injected failure, applied to the next chat-completions request."""

    kind: FaultKind
    retry_after: float | None = None
    delay_s: float = 0.0
    form: str = "raw"
    """For `echo_key`: which of ECHO_FORMS the 401 body repeats the key in."""


@dataclass
class _Reply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def _error(
    status: int, message: str, type_: str, code: str | None, headers: dict[str, str] | None = None
) -> _Reply:
    payload = {"error": {"message": message, "type": type_, "param": None, "code": code}}
    return _Reply(status, json.dumps(payload).encode(), headers or {})


def _text_of(content: Any) -> str:
    """Text of a message content: a string, a list of ``{"type": "text", "text": ...}`` parts, or None."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def _key_digest(headers: dict[str, str]) -> str:
    """sha256 of the bearer token: tests can check which key arrived without the server keeping it."""
    auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    token = auth.removeprefix("Bearer ").strip()
    return hashlib.sha256(token.encode()).hexdigest() if token else ""


def _tokens(chars: int) -> int:
    return math.ceil(chars / 4)
