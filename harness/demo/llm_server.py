"""Scripted OpenAI-compatible chat-completions server: a test double for LLM providers.

Clients (litellm, the openai SDK, mini-swe-agent) talk to it over real HTTP. Each ``Script`` maps a
substring of the task (user messages) to a list of bash commands, one per assistant turn; the turn is
the number of assistant messages in the request, so the server itself is stateless per conversation.
``Fault`` objects queued with ``add_faults`` are applied one per chat request (FIFO) to simulate rate
limits, server errors, timeouts, malformed bodies, unknown models, missing tool calls, and a provider
that repeats the caller's key in its error body (``echo_key``, in one of ``ECHO_FORMS``: raw, base64,
Basic-auth, URL-encoded, JSON-escaped, a half...), which is how keys leak into logs in real life.

Manual use: ``python -m harness.demo.llm_server --port 8000`` (Ctrl-C to stop).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from harness.demo.llm_wire import (
    _SECRET_HEADERS,
    ECHO_FORMS,
    NO_COMMANDS_CONTENT,
    NO_TOOL_CALL_CONTENT,
    REDACTED,
    Fault,
    FaultKind,
    Script,
    UsageMode,
    _error,
    _key_digest,
    _Reply,
    _text_of,
    _tokens,
)

__all__ = [
    "ECHO_FORMS",
    "NO_COMMANDS_CONTENT",
    "NO_TOOL_CALL_CONTENT",
    "REDACTED",
    "Fault",
    "FaultKind",
    "Script",
    "ScriptedLLMServer",
    "UsageMode",
]


class ScriptedLLMServer:
    """OpenAI-compatible server answering from scripts; use as a context manager or start()/stop()."""

    def __init__(
        self,
        scripts: list[Script] | None = None,
        *,
        models: list[str] | None = None,
        usage_mode: UsageMode = "openai",
        host: str = "127.0.0.1",
        port: int = 0,
        latency_s: float = 0.0,
    ) -> None:
        self.scripts: list[Script] = list(scripts or [])
        self.models: list[str] | None = list(models) if models is not None else None
        self.usage_mode: UsageMode = usage_mode
        self.host = host
        self.port = port
        self.latency_s = latency_s
        """Added to every chat request, as a real provider's think time (benchmarks/pipeline.py)."""
        self.requests: list[dict[str, Any]] = []
        """Chat-completions requests, in order (body, headers without secrets, path, digest of the key)."""
        self.model_list_requests: list[dict[str, Any]] = []
        """GET /models requests, in order (path, time, digest of the key): how often a client asked."""
        self.faults_served = 0
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._call_counter = 0
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind and serve in a daemon thread; returns self."""
        if self._httpd is not None:
            return self
        httpd = ThreadingHTTPServer((self.host, self.port), _Handler)
        httpd.daemon_threads = True
        httpd.block_on_close = False  # a sleeping "timeout" fault must not block stop()
        httpd.owner = self  # type: ignore[attr-defined]
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._stopping.clear()
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="scripted-llm-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; wakes handlers sleeping in a fault."""
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL for clients, e.g. ``http://127.0.0.1:PORT/v1``."""
        if self._httpd is None:
            raise RuntimeError("ScriptedLLMServer is not started")
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}/v1"

    # ----- faults and log --------------------------------------------------------------------------

    def add_faults(self, *faults: Fault) -> None:
        """Queue faults; each chat-completions request pops and applies one (FIFO)."""
        with self._lock:
            self._faults.extend(faults)

    def _pop_fault(self) -> Fault | None:
        with self._lock:
            if not self._faults:
                return None
            self.faults_served += 1
            return self._faults.popleft()

    def _log(self, body: Any, headers: dict[str, str], path: str) -> None:
        safe = {k.lower(): (REDACTED if k.lower() in _SECRET_HEADERS else v) for k, v in headers.items()}
        entry = {
            "body": body,
            "headers": safe,
            "time": time.time(),
            "path": path,
            "auth_sha256": _key_digest(headers),
        }
        with self._lock:
            self.requests.append(entry)

    def log_model_list(self, headers: dict[str, str], path: str) -> None:
        entry = {"path": path, "time": time.time(), "auth_sha256": _key_digest(headers)}
        with self._lock:
            self.model_list_requests.append(entry)

    def _next_call_id(self) -> str:
        with self._lock:
            self._call_counter += 1
            return f"call_{self._call_counter}"

    # ----- request handling ------------------------------------------------------------------------

    def models_reply(self) -> _Reply:
        data = [{"id": m, "object": "model", "owned_by": "scripted"} for m in self.models or []]
        return _Reply(200, json.dumps({"object": "list", "data": data}).encode())

    def chat_reply(self, raw: bytes, headers: dict[str, str], path: str) -> _Reply | None:
        """Reply to one chat request; None means close the connection without answering."""
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            body = None
        self._log(body, headers, path)
        if not isinstance(body, dict):
            return _error(400, "Request body is not a JSON object.", "invalid_request_error", None)
        if self.latency_s:
            self._stopping.wait(self.latency_s)
        fault = self._pop_fault()
        if fault is not None and fault.kind == "echo_key":
            return self._echo_key(fault.form, headers)
        if fault is not None:
            early = self._apply_fault(fault, body)
            if early is not None or fault.kind == "timeout":
                return early
        if body.get("stream"):
            return _error(
                400, "Streaming is not supported by the scripted server.", "invalid_request_error", None
            )
        model = str(body.get("model", ""))
        if self.models is not None and model not in self.models:
            return self._model_not_found(model)
        plain = fault is not None and fault.kind == "no_tool_call"
        return _Reply(200, json.dumps(self._completion(body, plain_content=plain)).encode())

    def _echo_key(self, form: str, headers: dict[str, str]) -> _Reply:
        """A 401 whose message repeats the caller's bearer token in `form` (as careless providers do)."""
        auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        echoed = ECHO_FORMS[form](auth.removeprefix("Bearer ").strip())
        msg = f"Incorrect API key provided: {echoed}. You can find your API key in your account settings."
        return _error(401, msg, "invalid_request_error", "invalid_api_key")

    def _model_not_found(self, model: str) -> _Reply:
        msg = f"The model `{model}` does not exist"
        return _error(404, msg, "invalid_request_error", "model_not_found")

    def _apply_fault(self, fault: Fault, body: dict[str, Any]) -> _Reply | None:
        """Return an error reply, or None to continue normally (latency, no_tool_call, timeout-close)."""
        retry = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
        if fault.kind == "429":
            return _error(
                429, "Rate limit reached (scripted fault).", "requests", "rate_limit_exceeded", retry
            )
        if fault.kind == "500":
            return _error(500, "The server had an error (scripted fault).", "server_error", None)
        if fault.kind == "503":
            return _error(503, "The server is overloaded (scripted fault).", "server_error", None, retry)
        if fault.kind == "404":
            return self._model_not_found(str(body.get("model", "")))
        if fault.kind == "malformed":
            return _Reply(200, b'{"id": "chatcmpl-broken", "choices": [ this is not json')
        if fault.kind in ("timeout", "latency"):
            self._stopping.wait(fault.delay_s)
        return None

    def _pick(self, messages: list[Any]) -> tuple[Script | None, str | None]:
        """The matching script and this turn's command (None if no script matches or steps are exhausted)."""
        dicts = [m for m in messages if isinstance(m, dict)]
        user_text = [_text_of(m.get("content")) for m in dicts if m.get("role") == "user"]
        step = sum(1 for m in dicts if m.get("role") == "assistant")
        for script in self.scripts:
            if any(script.match in text for text in user_text):
                return script, (script.steps[step] if step < len(script.steps) else None)
        return None, None

    def _completion(self, body: dict[str, Any], *, plain_content: bool) -> dict[str, Any]:
        messages = body.get("messages") if isinstance(body.get("messages"), list) else []
        tools = body.get("tools") if isinstance(body.get("tools"), list) else []
        script, cmd = self._pick(messages)
        message: dict[str, Any] = {"role": "assistant", "content": None}
        finish, arguments = "stop", ""
        if plain_content:
            message["content"] = NO_TOOL_CALL_CONTENT
        elif script is None or cmd is None:
            message["content"] = NO_COMMANDS_CONTENT
        elif tools:
            name = (
                (tools[0].get("function") or {}).get("name", "bash") if isinstance(tools[0], dict) else "bash"
            )
            arguments = json.dumps({"command": cmd})
            call = {
                "id": self._next_call_id(),
                "type": "function",
                "function": {"name": name, "arguments": arguments},
            }
            message["content"] = script.thought or None
            message["tool_calls"] = [call]
            finish = "tool_calls"
        else:
            message["content"] = f"{script.thought}\n\n```{script.fence}\n{cmd}\n```".lstrip("\n")
        response: dict[str, Any] = {
            "id": f"chatcmpl-scripted-{time.time_ns()}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", ""),
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        }
        usage = self._usage(messages, (message["content"] or "") + arguments)
        if usage is not None:
            response["usage"] = usage
        return response

    def _usage(self, messages: list[Any], completion_text: str) -> dict[str, Any] | None:
        if self.usage_mode == "none":
            return None
        prompt_chars = sum(len(_text_of(m.get("content"))) for m in messages if isinstance(m, dict))
        prompt, completion = _tokens(prompt_chars), _tokens(len(completion_text))
        usage: dict[str, Any] = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": 0},
        }
        if self.usage_mode == "openrouter":
            cost = prompt * 1e-6 + completion * 2e-6
            usage["cost"] = cost
            usage["cost_details"] = {"upstream_inference_cost": cost}
        return usage


class _Handler(BaseHTTPRequestHandler):
    """HTTP glue: routes to the owning ScriptedLLMServer; silent, one response per connection."""

    server_version = "ScriptedLLM/1.0"

    @property
    def owner(self) -> ScriptedLLMServer:
        return self.server.owner  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return

    def do_GET(self) -> None:
        path = self.path.split("?")[0].rstrip("/")
        if path in ("/v1/models", "/models"):
            self.owner.log_model_list(dict(self.headers.items()), path)
            self._send(self.owner.models_reply())
        else:
            self._send(_error(404, f"Unknown path {self.path}", "invalid_request_error", "not_found"))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        path = self.path.split("?")[0].rstrip("/")
        if path not in ("/v1/chat/completions", "/chat/completions"):
            self._send(_error(404, f"Unknown path {self.path}", "invalid_request_error", "not_found"))
            return
        reply = self.owner.chat_reply(raw, dict(self.headers.items()), path)
        if reply is None:
            self.close_connection = True  # "timeout" fault: hang up without a response
            return
        self._send(reply)

    def _send(self, reply: _Reply) -> None:
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply.body)))
            for key, value in reply.headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (e.g. its own timeout); nothing to do


def main(argv: list[str] | None = None) -> None:
    """Serve with no scripts until Ctrl-C (for manual poking with curl or litellm)."""
    parser = argparse.ArgumentParser(description="Scripted OpenAI-compatible LLM server (test double).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--model", action="append", dest="models", help="accepted model id (repeatable)")
    parser.add_argument("--usage-mode", choices=["openai", "none", "openrouter"], default="openai")
    args = parser.parse_args(argv)
    server = ScriptedLLMServer(models=args.models, usage_mode=args.usage_mode, host=args.host, port=args.port)
    with server:
        print(f"scripted LLM server listening on {server.url} (Ctrl-C to stop)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
