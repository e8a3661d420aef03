"""Fixture instance images on demand: the first process of a run that needs them builds them, the others wait."""

from __future__ import annotations

import fcntl

from harness.containers import build_fixture_images
from harness.session import RunContext


def ensure_fixture_images(ctx: RunContext) -> None:
    """Build (or reuse) the fixture images once per run, under a lock shared by the run's workers."""
    if getattr(ctx, "_fixture_images_ready", False):
        return
    from pathlib import Path

    from harness.testing.fixtures import FIXTURE_IDS, fixture_rows

    ctx.paths.slots.mkdir(parents=True, exist_ok=True)
    with open(ctx.paths.slots / "fixture-images.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        repos = Path(ctx._tmp.name) / "image-repos"
        rows = fixture_rows(repos)
        build_fixture_images(ctx.runtime, {i: rows[i] for i in FIXTURE_IDS}, repos)
    ctx._fixture_images_ready = True  # type: ignore[attr-defined]
