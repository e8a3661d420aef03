"""The agent server's warm-up (harness.agents.warm_up): after it, an agent's fork makes its first litellm request
without importing modules or building pydantic models, and the server has no thread to fork with."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.helpers import ROOT

PROBE = textwrap.dedent(
    """
    import json, os, sys, threading
    from harness.agents.server import _load_agent
    from harness.agents.warm_up import _unbuilt_models
    import harness.agents.warm_up as warm_up_module

    if sys.argv[1] == "off":
        warm_up_module.warm_up = lambda: []
    _load_agent()
    threads = threading.active_count()
    import litellm
    from harness.demo.llm_server import ScriptedLLMServer
    from harness.demo.scripts import FIXTURE_SCRIPTS

    with ScriptedLLMServer(list(FIXTURE_SCRIPTS)) as server:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # an agent's fork: its first request
            before, unbuilt = set(sys.modules), _unbuilt_models()
            litellm.completion(model="openai/scripted-fixture-solver", api_base=server.url, api_key="k",
                               messages=[{"role": "system", "content": "You fix bugs."},
                                         {"role": "user", "content": "<pr_description>x</pr_description>"}])
            report = {"modules": sorted(set(sys.modules) - before),
                      "built": sorted(m.__qualname__ for m in unbuilt - _unbuilt_models())}
            os.write(write_end, json.dumps(report).encode())
            os._exit(0)
        os.close(write_end)
        report = json.loads(os.read(read_end, 1 << 20))
        os.waitpid(pid, 0)
    print(json.dumps({"threads": threads, **report}))
    """
)


def _probe(mode: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode], cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**__import__("os").environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_after_the_warm_up_a_forks_first_request_imports_and_builds_nothing_heavy():
    warm = _probe("on")
    assert warm["threads"] == 1, "the agent server must not fork with a thread running"
    heavy = [m for m in warm["modules"] if m.split(".")[0] in ("httpcore", "h11", "h2")]
    assert heavy == [] and warm["built"] == [], warm
    assert len([m for m in warm["modules"] if m.startswith("litellm.")]) <= 3, warm  # at most a stray one


def test_without_the_warm_up_every_fork_would_import_and_build_them():
    """The guard above can fail: without the warm-up the same fork imports the HTTP stack and builds models."""
    cold = _probe("off")
    assert cold["threads"] == 1
    assert any(m.startswith("httpcore") for m in cold["modules"]) and cold["built"], cold
