"""Instance images ready before a run: which a grid needs, pull (or check) them, disk space, digests, prune.

- `python -m harness images pull -m GRID` pulls every missing instance image of the grid's cases with a
  progress bar, says how much it downloads (harness.infra.registry, shared layers once) against the free
  space of the runtime's image store, and records each image's id (content digest) and repo digest in
  runs/images.json. Fixture instances (the demo) have local images, built instead of pulled.
- `check_before_run` runs when a run starts: missing images are pulled; when one cannot be, the run stops
  before any case with one line naming the images and how to get them.
- `python -m harness images prune --keep-grid GRID` removes the namespace's instance images
  (`<namespace>/sweb.eval.x86_64.*`) that no case of the grid needs; other images are never touched.

Cases that need no image: the no-patch baseline under mini-swe-agent (no container, nothing evaluated).
The run check also leaves out cases that will be skipped anyway (quarantined, no credentials).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from harness.errors import HarnessError
from harness.infra.containers import Runtime, instance_image_name

INSTANCE_PREFIX = "sweb.eval.x86_64."
IMAGES_FILE = "images.json"


def needs_image(model_kind: str, backend: str) -> bool:
    """The no-patch baseline under mini-swe-agent starts no container and is never evaluated."""
    return not (model_kind == "empty" and backend == "mini")


def normal_name(image: str) -> str:
    """One spelling per image: docker.io/ and docker.io/library/ dropped, ':latest' when no tag."""
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/"):
        if image.startswith(prefix):
            image = image[len(prefix) :]
            break
    return image if ":" in image.rsplit("/", 1)[-1] or "@" in image else f"{image}:latest"


def pull_name(runtime: Runtime, image: str) -> str:
    """podman needs a registry in the name (no unqualified-search default); Docker Hub is what swebench means."""
    first = image.split("/", 1)[0]
    if (
        runtime.name == "podman"
        and "/" in image
        and not ("." in first or ":" in first or first == "localhost")
    ):
        return f"docker.io/{image}"
    return image


@dataclass
class ImageNeed:
    image: str
    fixture: bool
    """Built locally (`python -m harness images fixtures`), never pulled."""
    case_ids: list[str] = field(default_factory=list)


def images_for(
    cases: Iterable, namespace: str, kind_of: Callable[[str], str], backend: str
) -> list[ImageNeed]:
    """The instance images the cases need, in case order (`kind_of`: model id -> catalog kind)."""
    found: dict[str, ImageNeed] = {}
    for case in cases:
        if not needs_image(kind_of(case.model_id), backend):
            continue
        fixture = case.split == "fixtures"
        image = instance_image_name(case.instance_id, "localhost" if fixture else namespace)
        found.setdefault(image, ImageNeed(image, fixture)).case_ids.append(case.case_id)
    return list(found.values())


def local_images(runtime: Runtime) -> set[str]:
    """Names (normal_name) of every image in the runtime's store."""
    done = runtime.run("images", "--format", "{{.Repository}}:{{.Tag}}", check=False, timeout=120)
    if done.returncode != 0:
        raise HarnessError(
            f"`{runtime.name} images` failed: {done.stderr.strip()[:200]}; is the runtime working?"
        )
    return {
        normal_name(line.strip())
        for line in done.stdout.splitlines()
        if line.strip() and "<none>" not in line
    }


def inspect(runtime: Runtime, image: str) -> dict[str, object] | None:
    """{id, repo_digest, size_bytes} of a local image (id as RunContext.image_digest records it); None if absent."""
    fmt = "{{.Id}}\t{{.Size}}\t{{json .RepoDigests}}"
    done = runtime.run(
        "image", "inspect", "--format", fmt, pull_name(runtime, image), check=False, timeout=60
    )
    if done.returncode != 0 or not done.stdout.strip():
        return None
    image_id, size, digests = done.stdout.strip().split("\t", 2)
    repo_digests = json.loads(digests) if digests.startswith("[") else []
    repo_digest = repo_digests[0].split("@", 1)[-1] if repo_digests else None
    return {"id": image_id, "repo_digest": repo_digest, "size_bytes": int(size) if size.isdigit() else None}


def pull(runtime: Runtime, image: str, timeout: float = 7200) -> str | None:
    """Pull one image; None when it worked, else why: the registry host and the end of the runtime's error."""
    from harness.infra.registry import parse_ref

    done = runtime.run("pull", "--quiet", pull_name(runtime, image), check=False, timeout=timeout)
    if done.returncode == 0:
        return None
    lines = [ln.strip() for ln in (done.stderr or done.stdout).splitlines() if ln.strip()]
    last = lines[-1] if lines else f"exit status {done.returncode}"
    return f"{parse_ref(image).host}: {last.rsplit(': ', 1)[-1][:160]}"


def store_path(runtime: Runtime) -> Path:
    """Where the runtime keeps images (for the free space), else '/'."""
    fmt = "{{.Store.GraphRoot}}" if runtime.name == "podman" else "{{.DockerRootDir}}"
    done = runtime.run("info", "--format", fmt, check=False, timeout=60)
    path = Path(done.stdout.strip()) if done.returncode == 0 and done.stdout.strip() else Path("/")
    return path if path.exists() else Path("/")


def gb(n: int | None) -> str:
    return "unknown" if n is None else f"{n / 1e9:.2f} GB"


class Bar:
    """One updating line on a terminal, plain lines otherwise: `[#####-----] 3/8 <what>`."""

    def __init__(self, total: int, out: TextIO | None = None, width: int = 24):
        self.total, self.out, self.width = total, out or sys.stderr, width
        self.tty = self.out.isatty() and os.environ.get("TERM") != "dumb"

    def show(self, done: int, what: str) -> None:
        filled = self.width * done // max(self.total, 1)
        line = f"[{'#' * filled}{'-' * (self.width - filled)}] {done}/{self.total} {what}"
        self.out.write(f"\r{line[:160]}\x1b[K" if self.tty else line + "\n")
        self.out.flush()

    def clear(self) -> None:
        if self.tty:
            self.out.write("\r\x1b[K")
            self.out.flush()

    def close(self) -> None:
        if self.tty:
            self.out.write("\n")
            self.out.flush()


@dataclass
class PullReport:
    present: list[str] = field(default_factory=list)
    pulled: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    not_tried: list[str] = field(default_factory=list)
    details: dict[str, dict] = field(default_factory=dict)


def make_ready(
    runtime: Runtime, needs: list[ImageNeed], *, stop_at_failure: bool, out: TextIO | None = None
) -> PullReport:
    """Check every image, pull the missing ones (bar on `out`); fixture images are left to the fixture build."""
    report = PullReport()
    have = local_images(runtime)
    missing = [n.image for n in needs if not n.fixture and normal_name(n.image) not in have]
    report.present = [n.image for n in needs if normal_name(n.image) in have]
    bar = Bar(len(missing), out) if missing else None
    for i, image in enumerate(missing):
        if stop_at_failure and report.failed:
            report.not_tried.append(image)
            continue
        if bar and (bar.tty or report.pulled or not stop_at_failure):  # a run stopping offline: one line
            bar.show(i, f"pulling {image}")
        error = pull(runtime, image)
        if error is None:
            report.pulled.append(image)
        else:
            report.failed[image] = error
    if bar and stop_at_failure and report.failed:
        bar.clear()  # the run's error line says it all
    elif bar:
        bar.show(
            len(report.pulled) + len(report.failed),
            f"pulled {len(report.pulled)}, failed {len(report.failed)}",
        )
        bar.close()
    for image in report.present + report.pulled:
        if (info := inspect(runtime, image)) is not None:
            report.details[image] = info
    return report


def read_image_ids(path: Path) -> dict[str, str]:
    """A run's image -> id file (RunPaths.image_ids); empty when it is absent or not whole."""
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in found.items() if isinstance(v, str) and v} if isinstance(found, dict) else {}


def add_image_ids(path: Path, ids: dict[str, str]) -> None:
    """Merge `ids` into a run's image -> id file, atomically (callers hold the run's fixture lock or are the
    controller before any worker starts)."""
    from harness.results.records import write_json_atomic

    if ids:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, read_image_ids(path) | ids)


def image_ids(runtime: Runtime, images: list[str]) -> dict[str, str]:
    """image -> id of local images, in one call to the runtime; empty when it fails (callers ask one by one)."""
    if not images:
        return {}
    done = runtime.run("image", "inspect", "--format", "{{.Id}}", *images, check=False)
    found = done.stdout.split()
    return dict(zip(images, found, strict=True)) if done.returncode == 0 and len(found) == len(images) else {}


def record_digests(runs_dir: Path, runtime: Runtime, details: dict[str, dict]) -> Path:
    """Merge image -> {id, repo_digest, size_bytes, checked_at} into runs/images.json (atomically)."""
    from harness.results.records import write_json_atomic

    path = runs_dir / IMAGES_FILE
    try:
        known = json.loads(path.read_text()).get("images", {}) if path.is_file() else {}
    except (OSError, ValueError):
        known = {}
    now = datetime.now(UTC).isoformat(timespec="seconds")
    known |= {image: {**info, "checked_at": now} for image, info in details.items()}
    write_json_atomic(
        path, {"runtime": runtime.name, "updated_at": now, "images": dict(sorted(known.items()))}
    )
    return path


def space_lines(runtime: Runtime, needs: list[ImageNeed], have: set[str]) -> list[str]:
    """Download size of the missing images (registry) against the free space of the image store."""
    from harness.infra.registry import download_bytes

    missing = [n.image for n in needs if not n.fixture and normal_name(n.image) not in have]
    store = store_path(runtime)
    free = shutil.disk_usage(store).free
    if not missing:
        return [f"disk: nothing to download; {gb(free)} free in {store}"]
    need, errors = download_bytes(missing)
    if errors:
        size = f"size unknown ({next(iter(errors.values()))})"
    else:
        size = f"{gb(need)} compressed, about 2-3x that unpacked"
    line = f"disk: {len(missing)} image(s) to download, {size}; {gb(free)} free in {store}"
    if need is not None and 2.5 * need > free:
        line += " - likely NOT enough: free space (`python -m harness images prune --keep-grid GRID`)"
    return [line]


def check_before_run(
    runtime_factory: Callable[[], Runtime],
    needs: list[ImageNeed],
    grid_hint: str,
    ids: dict[str, str] | None = None,
) -> list[str]:
    """Header notes; raises HarnessError (one line) when an image is missing and cannot be pulled. `ids`
    receives image -> id of the images checked (harness.results.records.RunPaths.image_ids)."""
    pulled = [n for n in needs if not n.fixture]
    if not pulled:
        return []
    runtime = runtime_factory()
    started = time.monotonic()
    report = make_ready(runtime, pulled, stop_at_failure=True)
    if report.failed or report.not_tried:
        missing = [*report.failed, *report.not_tried]
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise HarnessError(
            f"{len(missing)} instance image(s) missing and not pullable ({next(iter(report.failed.values()))}): "
            f"{shown}; get them with `python -m harness images pull {grid_hint}` where the registry is "
            "reachable, or point --image-namespace at a mirror that has them"
        )
    if ids is not None:
        ids.update({image: str(info["id"]) for image, info in report.details.items() if info.get("id")})
    note = f"images: {len(report.present)} present"
    if report.pulled:
        note += f", {len(report.pulled)} pulled in {time.monotonic() - started:.0f}s"
    return [note]


def prune_candidates(local: set[str], keep: set[str], namespace: str) -> list[str]:
    """Local `<namespace>/sweb.eval.x86_64.*` images (normal names) that are not in `keep`."""
    prefix = normal_name(f"{namespace}/{INSTANCE_PREFIX}").rsplit(":", 1)[0]
    keep_normal = {normal_name(k) for k in keep}
    return sorted(i for i in local if i.startswith(prefix) and i not in keep_normal)


def prune(
    runtime: Runtime, keep: set[str], namespace: str, *, dry_run: bool = False
) -> tuple[list[str], int]:
    """Remove the namespace's instance images not in `keep`; (removed names, bytes they listed). An image a
    container still uses is left alone. Untagging an image that has other names frees nothing."""
    freed = 0
    removed = []
    for image in prune_candidates(local_images(runtime), keep, namespace):
        info = inspect(runtime, image) or {}
        if not dry_run:
            done = runtime.run("rmi", pull_name(runtime, image), check=False, timeout=300)
            if done.returncode != 0:
                continue
        removed.append(image)
        freed += int(info.get("size_bytes") or 0)  # type: ignore[call-overload]
    return removed, freed
