"""A pytest plugin the tests load into an eval session (`-p tests.module_probe`): at the end of the session
each process (controller, xdist worker) writes which heavy packages it imported and its CPU priority (nice),
the controller also its servers' (before it stops them), to $HARNESS_TEST_MODULE_PROBE/<controller|worker>-<pid>.json."""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path

import pytest

HEAVY = ("litellm", "minisweagent", "swebench", "datasets", "docker")
SERVERS = {"harness.agents.server": "agent_server", "harness.infra.eval_server": "eval_server"}


@pytest.hookimpl(wrapper=True)  # around the harness's own sessionfinish, which stops the servers
def pytest_sessionfinish(session):
    folder = os.environ.get("HARNESS_TEST_MODULE_PROBE")
    if folder:
        role = "worker" if hasattr(session.config, "workerinput") else "controller"
        for thread in threading.enumerate():  # what the process loads, not how far its background import got
            if (
                thread.name == "harness-warm-imports"
            ):  # (--agent-in-process: a worker that ran only baselines)
                thread.join(timeout=120)
        found: dict = {name: name in sys.modules for name in HEAVY} | {
            "nice": os.getpriority(os.PRIO_PROCESS, 0)
        }
        if role == "controller":
            import psutil

            for child in psutil.Process().children():
                for module, key in SERVERS.items():
                    if module in child.cmdline():
                        found[key + "_nice"] = child.nice()
        (Path(folder) / f"{role}-{os.getpid()}.json").write_text(json.dumps(found))
    return (yield)
