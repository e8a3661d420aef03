"""Shared fixtures of the harness's own tests: the container runtime and the fixture images, made once per session."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

# Tests never reach Hugging Face or GitHub; litellm must use its bundled price map.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def runtime():
    """The real container runtime (Docker or podman's Docker API); `make test` installs one."""
    from harness.infra.containers import detect_runtime

    rt = detect_runtime()
    rt.export_env()
    return rt


@pytest.fixture(scope="session")
def fixture_rows(tmp_path_factory) -> dict[str, dict]:
    from harness.demo.fixtures import fixture_rows as build_rows

    return build_rows(tmp_path_factory.mktemp("fixture-repos"))


@pytest.fixture(scope="session")
def fixture_images(runtime, tmp_path_factory) -> dict[str, dict]:
    """Fixture instance images, built (or reused when up to date) once per test session."""
    from harness.demo.fixtures import fixture_rows as build_rows
    from harness.infra.containers import build_fixture_images

    repos = tmp_path_factory.mktemp("image-repos")
    rows = build_rows(repos)
    build_fixture_images(runtime, rows, repos)
    return rows


@pytest.fixture
def tmpfs(tmp_path):
    """mount(name, size_kb, readonly=False): a small tmpfs under tmp_path, a real full disk or read-only folder
    (unmounted after the test); skips the test where this process may not mount one."""
    mounted: list[Path] = []

    def mount(name: str, size_kb: int, readonly: bool = False) -> Path:
        point = tmp_path / name
        point.mkdir(parents=True, exist_ok=True)
        options = f"size={size_kb}k,mode=0755" + (",ro" if readonly else "")
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", str(point)], capture_output=True)
