"""Shared by the benchmarks: the machine line and section replacement in docs/performance.md."""

from __future__ import annotations

import os
import platform
import re
from datetime import UTC, datetime
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "performance.md"


def machine_line() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{datetime.now(UTC):%Y-%m-%d}, nproc {os.cpu_count()}, {cpu}, Python {platform.python_version()}"


def replace_section(heading: str, section: str) -> None:
    """Replace the section that starts with `heading` (up to the next '## ') or append it."""
    text = DOC.read_text() if DOC.exists() else "# Performance\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    new = (
        pattern.sub(lambda _: section.rstrip() + "\n\n", text)
        if pattern.search(text)
        else text.rstrip() + "\n\n" + section
    )
    DOC.write_text(new.rstrip() + "\n")
