"""Tests for the scripted OpenAI-compatible LLM server, driven over real HTTP by litellm and urllib."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from harness.demo.llm_server import (
    NO_COMMANDS_CONTENT,
    NO_TOOL_CALL_CONTENT,
    Fault,
    Script,
    ScriptedLLMServer,
)

MODEL = "openai/scripted-test"
API_KEY = "sk-test-not-secret"
TASK = "Fix the bug in parse_date so that it accepts ISO week dates."
SCRIPTS = [
    Script(
        match="parse_date", steps=["grep -rn parse_date .", "sed -n 1,40p dates.py"], thought="Look first."
    ),
    Script(match="tokenizer", steps=["ls tokenizer/"]),
]


@pytest.fixture(scope="module")
def litellm() -> ModuleType:
    """litellm is slow to import; import it once, with the bundled cost map (no network)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm as _litellm

    return _litellm


@pytest.fixture(scope="module")
def bash_tool() -> dict[str, Any]:
    from minisweagent.models.utils.actions_toolcall import BASH_TOOL

    return BASH_TOOL


@pytest.fixture
def server() -> Iterator[ScriptedLLMServer]:
    with ScriptedLLMServer(SCRIPTS) as srv:
        yield srv


def _messages(task: str = TASK, prior_turns: int = 0) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a helpful assistant that runs bash commands."},
        {"role": "user", "content": task},
    ]
    for i in range(prior_turns):
        messages.append({"role": "assistant", "content": f"THOUGHT: turn {i}\n\n```bash\necho {i}\n```"})
        messages.append({"role": "user", "content": f"<output>{i}</output>"})
    return messages


def _complete(
    litellm: ModuleType, srv: ScriptedLLMServer, tools: list[dict[str, Any]] | None, **kw: Any
) -> Any:
    kwargs: dict[str, Any] = {
        "model": kw.pop("model", MODEL),
        "api_base": srv.url,
        "api_key": API_KEY,
        "messages": kw.pop("messages", None) or _messages(),
        "max_retries": 0,
        "timeout": kw.pop("timeout", 10),
    }
    if tools:
        kwargs["tools"] = tools
    return litellm.completion(**kwargs, **kw)


def _command_of(response: Any) -> str:
    call = response.choices[0].message.tool_calls[0]
    return json.loads(call.function.arguments)["command"]


# ----- scripted answers ----------------------------------------------------------------------------


def test_tool_call_step0(litellm: ModuleType, bash_tool: dict[str, Any], server: ScriptedLLMServer) -> None:
    response = _complete(litellm, server, [bash_tool])
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Look first."
    call = choice.message.tool_calls[0]
    assert call.function.name == "bash"
    assert call.id.startswith("call_")
    assert _command_of(response) == "grep -rn parse_date ."
    assert response.model.endswith("scripted-test")


def test_tool_call_step1(litellm: ModuleType, bash_tool: dict[str, Any], server: ScriptedLLMServer) -> None:
    response = _complete(litellm, server, [bash_tool], messages=_messages(prior_turns=1))
    assert _command_of(response) == "sed -n 1,40p dates.py"
    assert server.requests[-1]["body"]["model"] == "scripted-test"  # litellm strips the "openai/" prefix


def test_text_mode_without_tools(litellm: ModuleType, server: ScriptedLLMServer) -> None:
    response = _complete(litellm, server, None)
    message = response.choices[0].message
    assert response.choices[0].finish_reason == "stop"
    assert not message.tool_calls
    assert message.content == "Look first.\n\n```bash\ngrep -rn parse_date .\n```"


def test_text_mode_no_thought_custom_fence(litellm: ModuleType) -> None:
    script = Script(match="x", steps=["pwd"], fence="mswea_bash_command")
    with ScriptedLLMServer([script]) as srv:
        response = _complete(litellm, srv, None, messages=_messages("do x"))
    assert response.choices[0].message.content == "```mswea_bash_command\npwd\n```"


def test_script_selection_by_match_with_content_parts(
    litellm: ModuleType, bash_tool: dict[str, Any], server: ScriptedLLMServer
) -> None:
    parts = [{"type": "text", "text": "Please look at the "}, {"type": "text", "text": "tokenizer module."}]
    messages = [
        {"role": "system", "content": "parse_date is mentioned only here"},
        {"role": "user", "content": parts},
    ]
    response = _complete(litellm, server, [bash_tool], messages=messages)
    assert _command_of(response) == "ls tokenizer/"


@pytest.mark.parametrize(("task", "prior_turns"), [("parse_date again", 2), ("something unrelated", 0)])
def test_exhausted_or_unmatched_script(
    litellm: ModuleType, bash_tool: dict[str, Any], server: ScriptedLLMServer, task: str, prior_turns: int
) -> None:
    response = _complete(litellm, server, [bash_tool], messages=_messages(task, prior_turns))
    choice = response.choices[0]
    assert choice.message.content == NO_COMMANDS_CONTENT
    assert not choice.message.tool_calls
    assert choice.finish_reason == "stop"


# ----- faults --------------------------------------------------------------------------------------


def test_429_with_retry_after(
    litellm: ModuleType, bash_tool: dict[str, Any], server: ScriptedLLMServer
) -> None:
    server.add_faults(Fault("429", retry_after=7))
    with pytest.raises(litellm.RateLimitError) as excinfo:
        _complete(litellm, server, [bash_tool])
    assert excinfo.value.status_code == 429
    assert excinfo.value.response.headers.get("retry-after") == "7"
    assert len(server.requests) == 1 and server.faults_served == 1
    assert _command_of(_complete(litellm, server, [bash_tool])) == "grep -rn parse_date ."  # queue drained


def test_500(litellm: ModuleType, bash_tool: dict[str, Any], server: ScriptedLLMServer) -> None:
    server.add_faults(Fault("500"))
    with pytest.raises(litellm.InternalServerError) as excinfo:
        _complete(litellm, server, [bash_tool])
    assert excinfo.value.status_code == 500


def test_503_retry_after(litellm: ModuleType, bash_tool: dict[str, Any], server: ScriptedLLMServer) -> None:
    server.add_faults(Fault("503", retry_after=0.5))
    with pytest.raises(litellm.ServiceUnavailableError) as excinfo:
        _complete(litellm, server, [bash_tool])
    assert excinfo.value.response.headers.get("retry-after") == "0.5"


def test_malformed_json(litellm: ModuleType, bash_tool: dict[str, Any], server: ScriptedLLMServer) -> None:
    server.add_faults(Fault("malformed"))
    # litellm reads an unparseable 200 body as a server error: one of the classes the harness retries
    # (harness.agents.llm._retryable), which is how "malformed bodies back off" (README) works
    with pytest.raises(litellm.InternalServerError, match="Expecting value"):
        _complete(litellm, server, [bash_tool])
    server.add_faults(Fault("malformed"))
    request = urllib.request.Request(server.url + "/chat/completions", data=b'{"model": "m", "messages": []}')
    with urllib.request.urlopen(request, timeout=5) as resp:
        assert resp.status == 200
        with pytest.raises(json.JSONDecodeError):
            json.loads(resp.read())
    assert server.faults_served == 2


def test_timeout(litellm: ModuleType, bash_tool: dict[str, Any], server: ScriptedLLMServer) -> None:
    server.add_faults(Fault("timeout", delay_s=3))
    start = time.monotonic()
    with pytest.raises(litellm.Timeout):
        _complete(litellm, server, [bash_tool], timeout=1)
    assert time.monotonic() - start < 2.5


def test_latency_then_answer(
    litellm: ModuleType, bash_tool: dict[str, Any], server: ScriptedLLMServer
) -> None:
    server.add_faults(Fault("latency", delay_s=0.3))
    start = time.monotonic()
    response = _complete(litellm, server, [bash_tool])
    assert time.monotonic() - start >= 0.3
    assert _command_of(response) == "grep -rn parse_date ."


def test_no_tool_call_fault(
    litellm: ModuleType, bash_tool: dict[str, Any], server: ScriptedLLMServer
) -> None:
    server.add_faults(Fault("no_tool_call"))
    response = _complete(litellm, server, [bash_tool])
    assert response.choices[0].message.content == NO_TOOL_CALL_CONTENT
    assert not response.choices[0].message.tool_calls


def test_faults_are_fifo_one_per_request(
    litellm: ModuleType, bash_tool: dict[str, Any], server: ScriptedLLMServer
) -> None:
    server.add_faults(Fault("500"), Fault("429"))
    with pytest.raises(litellm.InternalServerError):
        _complete(litellm, server, [bash_tool])
    with pytest.raises(litellm.RateLimitError):
        _complete(litellm, server, [bash_tool])
    assert _command_of(_complete(litellm, server, [bash_tool])) == "grep -rn parse_date ."
    assert server.faults_served == 2 and len(server.requests) == 3


def test_unknown_model_404(litellm: ModuleType, bash_tool: dict[str, Any]) -> None:
    with ScriptedLLMServer(SCRIPTS, models=["scripted-test"]) as srv:
        assert _command_of(_complete(litellm, srv, [bash_tool])) == "grep -rn parse_date ."
        with pytest.raises(litellm.NotFoundError) as excinfo:
            _complete(litellm, srv, [bash_tool], model="openai/gpt-nonexistent")
    assert "gpt-nonexistent" in str(excinfo.value)


def test_404_fault(litellm: ModuleType, bash_tool: dict[str, Any], server: ScriptedLLMServer) -> None:
    server.add_faults(Fault("404"))
    with pytest.raises(litellm.NotFoundError):
        _complete(litellm, server, [bash_tool])


# ----- usage ---------------------------------------------------------------------------------------


def test_usage_openai(litellm: ModuleType, bash_tool: dict[str, Any], server: ScriptedLLMServer) -> None:
    messages = _messages()
    response = _complete(litellm, server, [bash_tool], messages=messages)
    prompt_chars = sum(len(m["content"]) for m in messages)
    arguments = response.choices[0].message.tool_calls[0].function.arguments
    assert response.usage.prompt_tokens == -(-prompt_chars // 4)
    assert response.usage.completion_tokens == -(-(len("Look first.") + len(arguments)) // 4)
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens
    assert response.usage.prompt_tokens_details.cached_tokens == 0


def test_usage_none(litellm: ModuleType, bash_tool: dict[str, Any]) -> None:
    with ScriptedLLMServer(SCRIPTS, usage_mode="none") as srv:
        response = _complete(litellm, srv, [bash_tool])
        raw = _post_chat(srv, {"model": "m", "messages": _messages()})
    assert "usage" not in raw
    # litellm fills in a zero usage object when the provider sends none
    usage = getattr(response, "usage", None)
    assert usage is None or not usage.total_tokens


def test_usage_openrouter(litellm: ModuleType, bash_tool: dict[str, Any]) -> None:
    with ScriptedLLMServer(SCRIPTS, usage_mode="openrouter") as srv:
        response = _complete(litellm, srv, [bash_tool])
    usage = response.usage
    expected = usage.prompt_tokens * 1e-6 + usage.completion_tokens * 2e-6
    cost = getattr(usage, "cost", None)
    if cost is None:
        cost = (usage.model_extra or {}).get("cost")
    assert cost == pytest.approx(expected) and cost > 0
    details = getattr(usage, "cost_details", None) or (usage.model_extra or {}).get("cost_details")
    assert details["upstream_inference_cost"] == pytest.approx(expected)


# ----- plain HTTP ----------------------------------------------------------------------------------


def _post_chat(
    srv: ScriptedLLMServer, body: dict[str, Any], path: str = "/chat/completions"
) -> dict[str, Any]:
    request = urllib.request.Request(
        srv.url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as resp:
        return json.loads(resp.read())


def test_models_listing() -> None:
    with ScriptedLLMServer(models=["a", "b"]) as srv:
        for url in (srv.url + "/models", srv.url.removesuffix("/v1") + "/models"):
            with urllib.request.urlopen(url, timeout=5) as resp:
                listing = json.loads(resp.read())
            assert listing["object"] == "list"
            assert [m["id"] for m in listing["data"]] == ["a", "b"]
            assert all(m["object"] == "model" and m["owned_by"] == "scripted" for m in listing["data"])
    with ScriptedLLMServer() as srv, urllib.request.urlopen(srv.url + "/models", timeout=5) as resp:
        assert json.loads(resp.read())["data"] == []


def test_unprefixed_path_and_stream_rejected(server: ScriptedLLMServer) -> None:
    base = server.url.removesuffix("/v1")
    request = urllib.request.Request(
        base + "/chat/completions",
        data=json.dumps({"model": "m", "messages": _messages()}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as resp:
        assert json.loads(resp.read())["choices"][0]["message"]["content"].endswith("```")
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        _post_chat(server, {"model": "m", "messages": _messages(), "stream": True})
    assert excinfo.value.code == 400
    assert "stream" in json.loads(excinfo.value.read())["error"]["message"].lower()


def test_authorization_redacted(
    litellm: ModuleType, bash_tool: dict[str, Any], server: ScriptedLLMServer
) -> None:
    _complete(litellm, server, [bash_tool])
    entry = server.requests[-1]
    assert entry["headers"]["authorization"] == "<redacted>"
    assert API_KEY not in json.dumps(entry)
    assert entry["body"]["messages"][1]["content"] == TASK
    assert isinstance(entry["time"], float)
