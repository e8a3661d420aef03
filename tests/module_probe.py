"""A pytest plugin the tests load into an eval session (`-p tests.module_probe`): at the end of the session
each process (controller, xdist worker) writes which heavy packages it imported, to
$HARNESS_TEST_MODULE_PROBE/<controller|worker>-<pid>.json."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

HEAVY = ("litellm", "minisweagent", "swebench", "datasets", "docker")


def pytest_sessionfinish(session) -> None:
    folder = os.environ.get("HARNESS_TEST_MODULE_PROBE")
    if folder:
        role = "worker" if hasattr(session.config, "workerinput") else "controller"
        imported = {name: name in sys.modules for name in HEAVY}
        (Path(folder) / f"{role}-{os.getpid()}.json").write_text(json.dumps(imported))
