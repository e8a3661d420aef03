"""pytest plugin used by benchmarks/resume.py: note the time the first case starts, then stop at once."""

from __future__ import annotations

import os
import time


def pytest_runtest_setup(item) -> None:
    with open(os.environ["HARNESS_PROBE_FILE"], "w") as f:
        f.write(f"{time.time()} {item.nodeid}")
    os._exit(0)
