"""The agent server imports, once, what litellm imports lazily on an agent's first request.

litellm defers part of its imports to the first request (the HTTP stack: httpcore, h11, h2; the proxy's
file-id helpers, which pull in much of `litellm.proxy`; its service logger...). In the agent server every
agent is a fresh fork, so every agent paid them again: ~0.6 s of CPU idle, ~0.9 s under load, on each case's
first request (measured with py-spy on the pipeline benchmark: a third of the forks' CPU); and pydantic
builds the schemas of the models a request validates on first use (litellm's router params: ~0.4 s more).

A request cannot simply be made in the server: it starts litellm's logging thread, and a process that forks
must have no threads (a fork gets a copy of the executor without its thread, and the logging callbacks, our
telemetry among them, would never run). So a throwaway fork makes one request to the bundled scripted server
(harness.demo.llm_server, the same openai-compatible path the agents use), reports the modules the request
imported and the models it built, and exits; the server imports those modules and builds those models,
which starts no thread. Nothing here can fail the server: whatever goes wrong, the forks import lazily as
before. Other providers' own lazy modules (e.g. OpenRouter's) are still imported by each fork on its first
request.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import select
import signal
import sys
import threading
import time

WARM_UP_TIMEOUT_S = 30.0


def warm_up() -> list[str]:
    """Import what a first litellm request imports and build the pydantic models it builds (learnt in a
    throwaway fork); returns what was done, as `module` and `module:Model` names."""
    if threading.active_count() > 1:  # a fork of a threaded process is not safe to run litellm in
        return []
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe and never returns
        os.close(read_end)
        code = 1
        with contextlib.suppress(BaseException):
            os.write(write_end, "\n".join(_modules_a_request_imports()).encode())
            code = 0
        os._exit(code)
    os.close(write_end)
    names = _read_all(read_end, pid).decode(errors="replace").split()
    done = []
    for name in names:  # modules first (sorted: "a" < "a:Model"), then the models they define
        with contextlib.suppress(Exception):
            module, _, qualname = name.partition(":")
            target = importlib.import_module(module)
            if qualname:
                for part in qualname.split("."):
                    target = getattr(target, part)
                target.model_rebuild()
            done.append(name)
    return done


def _modules_a_request_imports() -> list[str]:
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        os.environ.pop(proxy, None)  # this throwaway fork talks to 127.0.0.1 only
    import litellm

    from harness.demo.llm_server import ScriptedLLMServer
    from harness.demo.scripts import FIXTURE_SCRIPTS

    with ScriptedLLMServer(list(FIXTURE_SCRIPTS)) as server:
        before, unbuilt = set(sys.modules), _unbuilt_models()
        litellm.completion(
            model="openai/scripted-fixture-solver",
            api_base=server.url,
            api_key="warm-up",
            messages=[
                {"role": "system", "content": "You fix bugs."},
                {"role": "user", "content": "<pr_description>\nwarm up\n</pr_description>"},
            ],
            num_retries=0,
            timeout=10,
        )
        built = unbuilt - _unbuilt_models()
        return sorted(set(sys.modules) - before) + sorted(
            f"{m.__module__}:{m.__qualname__}" for m in built if "<" not in m.__qualname__
        )


def _unbuilt_models() -> set[type]:
    """The pydantic models whose schema is not built yet (pydantic builds it on first use: in litellm's
    request path ~0.4 s of CPU, in every fork)."""
    from pydantic import BaseModel

    found, stack = set(), [BaseModel]
    while stack:
        for sub in stack.pop().__subclasses__():
            if sub not in found:
                found.add(sub)
                stack.append(sub)
    return {m for m in found if not getattr(m, "__pydantic_complete__", True)}


def _read_all(fd: int, pid: int) -> bytes:
    """The child's report, or nothing after WARM_UP_TIMEOUT_S (the child is then killed); the child is reaped."""
    chunks, deadline = [], time.monotonic() + WARM_UP_TIMEOUT_S
    try:
        while (left := deadline - time.monotonic()) > 0 and select.select([fd], [], [], left)[0]:
            if not (chunk := os.read(fd, 65536)):
                break
            chunks.append(chunk)
        else:
            chunks = []
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    finally:
        os.close(fd)
        _, status = os.waitpid(pid, 0)
    return b"".join(chunks) if os.waitstatus_to_exitcode(status) == 0 else b""
