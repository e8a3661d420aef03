"""Container runtime: docker or podman detection, the Docker API socket, and the fixture instance images.

Real instances use the official `swebench/sweb.eval.x86_64.*` images (or a mirror, `--image-namespace`).
The bundled fixture instances get local images, built here on a base image that comes from
`debootstrap` (no registry needed: this project's CI) or from a registry where one is reachable.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness import HarnessError

LABEL_RUN = "swebench-harness.run"
LABEL_CASE = "swebench-harness.case"
FIXTURE_BASE_IMAGE = "localhost/swebench-harness/fixture-base:bookworm"
DEBOOTSTRAP_PACKAGES = "python3,python3-pytest,python-is-python3,git,procps,patch"
REGISTRY_BASE_IMAGE = "docker.io/library/python:3.11-slim-bookworm"

_ACTIVATE_SHIM = """\
# swebench-harness fixture image. The official eval script runs `source /opt/miniconda3/bin/activate`
# and `conda activate testbed`; fixture images use Debian's python3 directly, so conda is a no-op here.
conda() { :; }
"""


@dataclass(frozen=True)
class Runtime:
    """A container CLI plus the Docker API endpoint that docker-py (and so swebench) uses."""

    executable: str
    docker_host: str | None

    @property
    def name(self) -> str:
        return Path(self.executable).name

    def run(self, *args: str, timeout: float = 600, check: bool = True, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(
            [self.executable, *args], capture_output=True, text=True, timeout=timeout, check=check, **kw
        )

    def export_env(self) -> None:
        """Point docker-py at this runtime's API and mini-swe-agent at its CLI."""
        if self.docker_host:
            os.environ["DOCKER_HOST"] = self.docker_host
        os.environ["MSWEA_DOCKER_EXECUTABLE"] = self.executable


def _docker_daemon_up() -> bool:
    docker = shutil.which("docker")
    if not docker:
        return False
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
    try:
        return subprocess.run([docker, "info"], capture_output=True, timeout=15, env=env).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _podman_socket_path() -> Path:
    if os.geteuid() == 0:
        return Path("/run/podman/podman.sock")
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR", f"/run/user/{os.getuid()}")
    return Path(runtime_dir) / "podman" / "podman.sock"


def _ensure_podman_service(podman: str) -> str:
    """Return a unix:// URL of a running podman API service, starting one if none answers."""
    sock = _podman_socket_path()
    url = f"unix://{sock}"
    if _api_answers(url):
        return url
    sock.parent.mkdir(parents=True, exist_ok=True)
    subprocess.Popen(
        [podman, "system", "service", "--time=0", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    import time

    for _ in range(100):
        if _api_answers(url):
            return url
        time.sleep(0.1)
    raise HarnessError(
        f"podman's Docker API did not come up at {url}; start it with `podman system service --time=0 {url} &`"
    )


def _api_answers(url: str) -> bool:
    import docker

    try:
        client = docker.DockerClient(base_url=url, timeout=5)
        client.ping()
        client.close()
        return True
    except Exception:
        return False


def detect_runtime() -> Runtime:
    """Docker when its daemon answers, else podman (serving the Docker API), else a one-line error."""
    forced = os.environ.get("HARNESS_CONTAINER_RUNTIME", "").strip()
    if forced not in ("", "docker", "podman"):
        raise HarnessError(f"HARNESS_CONTAINER_RUNTIME={forced!r}: use 'docker' or 'podman'")
    if forced in ("", "docker") and _docker_daemon_up():
        return Runtime(shutil.which("docker") or "docker", os.environ.get("DOCKER_HOST"))
    podman = shutil.which("podman")
    if forced in ("", "podman") and podman:
        return Runtime(podman, _ensure_podman_service(podman))
    raise HarnessError(
        "no container runtime: start Docker, or install podman (apt-get install podman runc) and retry; see README"
    )


def image_exists(runtime: Runtime, image: str) -> bool:
    return runtime.run("image", "inspect", image, check=False, timeout=60).returncode == 0


def build_fixture_base(runtime: Runtime, *, source: str = "auto") -> str:
    """Make the base image of fixture images (python3, pytest, git, procps) unless it exists."""
    if image_exists(runtime, FIXTURE_BASE_IMAGE):
        return FIXTURE_BASE_IMAGE
    if source == "auto":
        source = "debootstrap" if shutil.which("debootstrap") and os.geteuid() == 0 else "registry"
    if source == "debootstrap":
        _base_from_debootstrap(runtime)
    else:
        _base_from_registry(runtime)
    return FIXTURE_BASE_IMAGE


def _base_from_debootstrap(runtime: Runtime) -> None:
    with tempfile.TemporaryDirectory(prefix="harness-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        cmd = [
            "debootstrap",
            "--variant=minbase",
            f"--include={DEBOOTSTRAP_PACKAGES}",
            "bookworm",
            str(rootfs),
        ]
        mirror = os.environ.get("HARNESS_DEBIAN_MIRROR")
        cmd += [mirror] if mirror else []
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
        if done.returncode != 0:
            tail = (done.stdout + done.stderr).strip().splitlines()[-1:]
            raise HarnessError(
                f"debootstrap failed ({' '.join(tail)}); set HARNESS_DEBIAN_MIRROR or use Docker"
            )
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        runtime.run("import", "-", FIXTURE_BASE_IMAGE, stdin=tar.stdout, timeout=600)
        tar.wait()


def _base_from_registry(runtime: Runtime) -> None:
    with tempfile.TemporaryDirectory(prefix="harness-base-") as tmp:
        (Path(tmp) / "Dockerfile").write_text(
            f"FROM {REGISTRY_BASE_IMAGE}\n"
            "RUN apt-get update && apt-get install -y --no-install-recommends git procps patch "
            "&& rm -rf /var/lib/apt/lists/* && pip install --no-cache-dir 'pytest==7.2.1'\n"
        )
        done = runtime.run("build", "-t", FIXTURE_BASE_IMAGE, tmp, check=False, timeout=1200)
        if done.returncode != 0:
            raise HarnessError(
                f"could not build {FIXTURE_BASE_IMAGE} from {REGISTRY_BASE_IMAGE}; check registry access"
            )


def instance_image_name(instance_id: str, namespace: str) -> str:
    """The tag swebench 4.1.0 uses for an instance image in `namespace` (`__` becomes `_1776_`)."""
    return f"{namespace}/sweb.eval.x86_64.{instance_id.lower()}:latest".replace("__", "_1776_")


def fixture_image_name(instance_id: str) -> str:
    """Fixture images are built here, so they live in the `localhost` namespace."""
    return instance_image_name(instance_id, "localhost")


def build_fixture_images(
    runtime: Runtime, rows: dict[str, dict], repos_dir: Path, *, force: bool = False
) -> list[str]:
    """Build one instance image per fixture row (repo at /testbed at its base commit). Returns the tags built."""
    base = build_fixture_base(runtime)
    built = []
    for instance_id, row in rows.items():
        tag = fixture_image_name(instance_id)
        if not force and image_exists(runtime, tag) and _image_commit(runtime, tag) == row["base_commit"]:
            continue
        with tempfile.TemporaryDirectory(prefix="harness-img-") as tmp:
            ctx = Path(tmp)
            shutil.copytree(repos_dir / instance_id, ctx / "testbed", symlinks=True)
            (ctx / "activate").write_text(_ACTIVATE_SHIM)
            (ctx / "bashrc").write_text("source /opt/miniconda3/bin/activate\n")
            (ctx / "Dockerfile").write_text(
                f"FROM {base}\n"
                "COPY testbed /testbed\n"
                "COPY activate /opt/miniconda3/bin/activate\n"
                "COPY bashrc /root/.bashrc\n"
                "WORKDIR /testbed\n"
                "STOPSIGNAL SIGKILL\n"
                f'LABEL swebench-harness.fixture="{instance_id}" swebench-harness.base-commit="{row["base_commit"]}"\n'
            )
            done = runtime.run("build", "-t", tag, str(ctx), check=False, timeout=600)
            if done.returncode != 0:
                raise HarnessError(f"building {tag} failed: {done.stderr.strip().splitlines()[-1:]}")
        built.append(tag)
    return built


def _image_commit(runtime: Runtime, tag: str) -> str:
    done = runtime.run(
        "image",
        "inspect",
        "--format",
        '{{ index .Config.Labels "swebench-harness.base-commit" }}',
        tag,
        check=False,
    )
    return done.stdout.strip()


def remove_labelled_containers(runtime: Runtime, run_id: str) -> int:
    """Remove every container labelled with this run id (agent containers left by a crash)."""
    done = runtime.run("ps", "-aq", "--filter", f"label={LABEL_RUN}={run_id}", check=False, timeout=60)
    ids = done.stdout.split()
    if ids:
        runtime.run("rm", "-f", *ids, check=False, timeout=120)
    return len(ids)
