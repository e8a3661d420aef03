"""Container runtime: docker or podman detection, the Docker API socket, and the fixture instance images.

Real instances use the official `swebench/sweb.eval.x86_64.*` images (or a mirror, `--image-namespace`).
The bundled fixture instances get local images, built here on a base image that comes from
`debootstrap` (no registry needed: this project's CI) or from a registry where one is reachable.
The base carries SWE-ReX (`swerex-remote` on PATH, in its own venv at /opt/swerex) and an offline pip,
so both agent backends share the same images: containers cannot reach PyPI, so the wheels are
downloaded on the host once (cached) and installed in the image with `pip install --no-index`. The
packages of the image's own python that the evaluator's tests use (pytest) are never touched.
"""

from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError

LABEL_RUN = "swebench-harness.run"
LABEL_CASE = "swebench-harness.case"
FIXTURE_ROOT_IMAGE = "localhost/swebench-harness/fixture-base:bookworm"
"""Debian bookworm with python3 (3.11), pytest 7.2.1, git, procps, patch: from debootstrap or a registry."""
SWEREX_VERSION = "1.4.0"
"""SWE-ReX inside fixture images: the server half of what SWE-agent's host-side swe-rex (>=1.2) talks to."""
IMAGE_WHEELS = (f"swe-rex=={SWEREX_VERSION}", "pip", "tree-sitter==0.21.3", "tree-sitter-languages==1.10.2")
"""Wheels baked into fixture images (/opt/harness-wheels): swe-rex and its deps, pip, and what SWE-agent's
edit_anthropic tool pip-installs at startup (its install.sh), so that install works offline."""
FIXTURE_BASE_IMAGE = f"localhost/swebench-harness/fixture-base:bookworm-swerex{SWEREX_VERSION}-r1"
"""FIXTURE_ROOT_IMAGE + swerex-remote on PATH + offline pip: what fixture images build on. Bump the
suffix whenever the recipe (_add_agent_tools) changes, so stale bases and fixture images are rebuilt."""
IMAGE_PYTHON = "3.11"
"""The python of both root images (Debian bookworm's python3, python:3.11-slim): the wheels' target."""
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
    """The Docker API at `url` (unix://) answers GET /_ping with 200. Plain HTTP over the socket: every worker
    asks once, and the docker SDK would be one more import (~25 MB) in each."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(5)
            conn.connect(url.removeprefix("unix://"))
            conn.sendall(b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
            status_line = conn.recv(256).split(b"\r\n", 1)[0]
    except OSError:
        return False
    return status_line.split()[1:2] == [b"200"]


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
    """Make the base image of fixture images (python3, pytest, git, procps, swerex-remote) unless it exists."""
    if image_exists(runtime, FIXTURE_BASE_IMAGE):
        return FIXTURE_BASE_IMAGE
    if not image_exists(runtime, FIXTURE_ROOT_IMAGE):
        if source == "auto":
            source = "debootstrap" if shutil.which("debootstrap") and os.geteuid() == 0 else "registry"
        if source == "debootstrap":
            _base_from_debootstrap(runtime)
        else:
            _base_from_registry(runtime)
    _add_agent_tools(runtime, FIXTURE_ROOT_IMAGE, FIXTURE_BASE_IMAGE)
    return FIXTURE_BASE_IMAGE


def wheel_cache_dir() -> Path:
    """Where host-downloaded wheels for images are kept: $HARNESS_WHEEL_CACHE, else ~/.cache/swebench-harness/wheels."""
    if env := os.environ.get("HARNESS_WHEEL_CACHE"):
        return Path(env)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "swebench-harness" / "wheels"


def image_wheels_command(dest: Path, arch: str | None = None) -> list[str]:
    """`pip download` on the host of IMAGE_WHEELS (+ dependencies) as wheels for the images' python."""
    arch = arch or platform.machine()
    py = IMAGE_PYTHON.replace(".", "")
    return [
        sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--quiet",
        "--only-binary=:all:", "--implementation", "cp", "--python-version", IMAGE_PYTHON,
        "--abi", f"cp{py}", "--abi", "abi3", "--abi", "none",
        "--platform", f"manylinux_2_28_{arch}", "--platform", f"manylinux2014_{arch}",
        "--dest", str(dest), *IMAGE_WHEELS,
    ]  # fmt: skip


def image_wheels(cache: Path | None = None) -> Path:
    """A directory of IMAGE_WHEELS for `pip install --no-index` (downloaded once, then reused offline)."""
    arch = platform.machine()
    name = f"fixture-wheels-{FIXTURE_BASE_IMAGE.rsplit(':', 1)[1]}-cp{IMAGE_PYTHON.replace('.', '')}-{arch}"
    target = (cache or wheel_cache_dir()) / name
    if (target / ".complete").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download-", dir=target.parent) as tmp:
        done = subprocess.run(
            image_wheels_command(Path(tmp), arch), capture_output=True, text=True, timeout=900
        )
        if done.returncode != 0 or not list(Path(tmp).glob("pip-*.whl")):
            tail = " ".join((done.stdout + done.stderr).strip().splitlines()[-1:])
            raise HarnessError(
                f"could not download the fixture images' wheels (swe-rex {SWEREX_VERSION}; {tail}); they come "
                f"from PyPI (or PIP_INDEX_URL) once, then from {target.parent} (HARNESS_WHEEL_CACHE)"
            )
        (Path(tmp) / ".complete").write_text("\n".join(IMAGE_WHEELS) + "\n")
        try:
            Path(tmp).rename(target)
        except OSError:  # another process finished the same download first
            if not (target / ".complete").is_file():
                raise
    return target


def agent_tools_dockerfile(root: str, pip_wheel: str) -> str:
    """The layer that makes a root image usable by both agent backends (see _add_agent_tools)."""
    wheels = "/opt/harness-wheels"
    pip = f"{wheels}/{pip_wheel}/pip"  # pip runs from its own wheel: the Debian root has no pip, no ensurepip
    return (
        f"FROM {root}\n"
        f"COPY wheels {wheels}\n"
        "ENV PIP_NO_INDEX=1 PIP_FIND_LINKS=/opt/harness-wheels PIP_DISABLE_PIP_VERSION_CHECK=1 "
        "PIP_BREAK_SYSTEM_PACKAGES=1 PIP_ROOT_USER_ACTION=ignore PIP_NO_CACHE_DIR=1\n"
        f"RUN python3 -m venv --without-pip /opt/swerex && /opt/swerex/bin/python3 {pip} install --quiet"
        f" 'swe-rex=={SWEREX_VERSION}' && ln -sf /opt/swerex/bin/swerex-remote /usr/local/bin/swerex-remote"
        f" && (python3 -m pip --version >/dev/null 2>&1 || python3 {pip} install --quiet pip)"
        " && swerex-remote --version && pip --version\n"
        f'LABEL swebench-harness.swerex="{SWEREX_VERSION}"\n'
    )


def _add_agent_tools(runtime: Runtime, root: str, tag: str) -> None:
    """Build `tag` from `root`: `swerex-remote` on PATH (SWE-agent's runtime) and a pip that works offline.

    swe-rex lives in its own venv (/opt/swerex), so nothing it needs reaches the image's python. That python
    gets pip only when it has none (SWE-bench images have one; SWE-agent's edit tool runs `pip install
    tree-sitter...` at startup), and PIP_NO_INDEX/PIP_FIND_LINKS point it at the baked wheels: containers
    cannot reach PyPI. pytest and everything else the evaluator's tests use stay as the root has them.
    """
    wheels = image_wheels()
    pip_wheel = sorted(wheels.glob("pip-*.whl"))[-1].name
    with tempfile.TemporaryDirectory(prefix="harness-agent-tools-") as tmp:
        ctx = Path(tmp)
        shutil.copytree(wheels, ctx / "wheels", ignore=shutil.ignore_patterns(".complete"))
        (ctx / "Dockerfile").write_text(agent_tools_dockerfile(root, pip_wheel))
        done = runtime.run("build", "-t", tag, str(ctx), check=False, timeout=900)
        if done.returncode != 0:
            tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
            raise HarnessError(f"building {tag} (swe-rex and pip on {root}) failed: {' | '.join(tail)}")


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
        import_rootfs(runtime, rootfs, FIXTURE_ROOT_IMAGE)


def import_rootfs(runtime: Runtime, rootfs: Path, tag: str, timeout_s: float = 600) -> None:
    """`tar -c rootfs | <runtime> import - tag`, without hanging when either side fails.

    Our copy of the pipe's read end is closed as soon as the importer has its own, so a tar whose reader
    died gets SIGPIPE instead of blocking on a full pipe; both exit statuses are checked.
    """
    with subprocess.Popen(
        ["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as tar:
        assert tar.stdout is not None
        try:
            done = runtime.run("import", "-", tag, stdin=tar.stdout, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            done = None
        finally:
            tar.stdout.close()
        try:
            tar_status = tar.wait(timeout=60)
        except subprocess.TimeoutExpired:
            tar.kill()
            tar_status = tar.wait()
    if done is None or done.returncode != 0:
        why = (
            "timed out" if done is None else " ".join((done.stderr or done.stdout).strip().splitlines()[-1:])
        )
        raise HarnessError(f"{runtime.name} import of {rootfs} as {tag} failed ({why}); check the runtime")
    if tar_status != 0:
        raise HarnessError(f"tar of {rootfs} failed (exit {tar_status}); check free space and permissions")


def _base_from_registry(runtime: Runtime) -> None:
    with tempfile.TemporaryDirectory(prefix="harness-base-") as tmp:
        (Path(tmp) / "Dockerfile").write_text(
            f"FROM {REGISTRY_BASE_IMAGE}\n"
            "RUN apt-get update && apt-get install -y --no-install-recommends git procps patch "
            "&& rm -rf /var/lib/apt/lists/* && pip install --no-cache-dir 'pytest==7.2.1'\n"
        )
        done = runtime.run("build", "-t", FIXTURE_ROOT_IMAGE, tmp, check=False, timeout=1200)
        if done.returncode != 0:
            raise HarnessError(
                f"could not build {FIXTURE_ROOT_IMAGE} from {REGISTRY_BASE_IMAGE}; check registry access"
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
        if (
            not force
            and image_exists(runtime, tag)
            and _image_labels(runtime, tag) == (row["base_commit"], base)
        ):
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
                f'LABEL swebench-harness.fixture="{instance_id}" swebench-harness.base-commit="{row["base_commit"]}"'
                f' swebench-harness.base-image="{base}"\n'
            )
            done = runtime.run("build", "-t", tag, str(ctx), check=False, timeout=600)
            if done.returncode != 0:
                raise HarnessError(f"building {tag} failed: {done.stderr.strip().splitlines()[-1:]}")
        built.append(tag)
    return built


def _image_labels(runtime: Runtime, tag: str) -> tuple[str, str]:
    """(base commit, base image) an image was built from; a stale fixture image (older base) is rebuilt."""
    done = runtime.run(
        "image",
        "inspect",
        "--format",
        '{{ index .Config.Labels "swebench-harness.base-commit" }}|'
        '{{ index .Config.Labels "swebench-harness.base-image" }}',
        tag,
        check=False,
    )
    commit, _, base = done.stdout.strip().partition("|")
    return commit, base.replace("<no value>", "")


def remove_labelled_containers(runtime: Runtime, run_label: str, case_id: str | None = None) -> int:
    """Remove every container labelled with this run label (RunPaths.run_label), or only this case's (agent and
    evaluation containers left by a crash)."""
    filters = ["--filter", f"label={LABEL_RUN}={run_label}"]
    if case_id is not None:
        filters += ["--filter", f"label={LABEL_CASE}={case_id}"]
    done = runtime.run("ps", "-aq", *filters, check=False, timeout=60)
    removed = 0
    for container in done.stdout.split():  # one by one: podman 4.3 removes none of a batch if one is gone
        grace = ["-t", "0"] if runtime.name == "podman" else []
        if runtime.run("rm", "-f", *grace, container, check=False, timeout=120).returncode == 0:
            removed += 1
    return removed
