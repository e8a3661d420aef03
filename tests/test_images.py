"""Instance images before a run: which images a grid needs, the registry's sizes (a local registry double
stands in for Docker Hub, unreachable here), pull/check with digests, prune, and a run whose images are
missing and cannot be pulled stopping before its first case with one line."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from harness.config import HarnessConfig
from harness.infra.containers import Runtime, fixture_image_name
from harness.infra.images import (
    ImageNeed,
    add_image_ids,
    check_before_run,
    images_for,
    normal_name,
    prune_candidates,
    pull_name,
    read_image_ids,
)
from harness.infra.registry import DOCKER_HUB, RegistryClient, download_bytes, parse_ref
from harness.run.grid import build_grid, cases_selected_by, keyword_selected
from tests.conftest import ROOT

UNREACHABLE = "localhost:1/swebench"
"""A registry nobody serves (connection refused at once): no network needed, nothing pulled anywhere."""


def test_names_and_pull_names():
    assert normal_name("docker.io/swebench/x") == "swebench/x:latest"
    assert normal_name("docker.io/library/python:3.11") == "python:3.11"
    assert normal_name("localhost:5000/a/b:v1") == "localhost:5000/a/b:v1"
    podman, docker = Runtime("/usr/bin/podman", None), Runtime("/usr/bin/docker", None)
    assert pull_name(podman, "swebench/x:latest") == "docker.io/swebench/x:latest"
    assert pull_name(podman, "localhost/x:latest") == "localhost/x:latest"
    assert pull_name(podman, "ghcr.io/o/x:latest") == "ghcr.io/o/x:latest"
    assert pull_name(docker, "swebench/x:latest") == "swebench/x:latest"
    assert parse_ref("swebench/x:latest") == parse_ref("docker.io/swebench/x")
    assert parse_ref("python").repo == "library/python" and parse_ref("python").host == DOCKER_HUB
    assert parse_ref("127.0.0.1:5000/ns/x:v2").base_url == "http://127.0.0.1:5000"
    assert parse_ref("ghcr.io/ns/x").base_url == "https://ghcr.io"


def test_images_of_a_grid_leave_out_the_no_patch_baseline():
    cfg = HarnessConfig(ROOT / "config")
    cases = cases_selected_by("i1", build_grid(cfg, models=["gold", "empty"]))
    kind = lambda m: cfg.catalog.get(m).kind  # noqa: E731
    needs = images_for(cases, "swebench", kind, "mini")
    assert len(needs) == 8 and all(n.image.startswith("swebench/sweb.eval.x86_64.") for n in needs)
    assert all(len(n.case_ids) == 2 and all(c.startswith("gold-") for c in n.case_ids) for n in needs)
    assert len(images_for(cases, "swebench", kind, "sweagent")) == 8  # SWE-agent's empty runs a container
    assert {n.case_ids[0].split("-")[0] for n in images_for(cases, "swebench", kind, "sweagent")} == {"gold"}
    demo = images_for(cases_selected_by("demo", build_grid(cfg)), "swebench", kind, "mini")
    assert all(n.fixture and n.image.startswith("localhost/") for n in demo) and len(demo) == 3


def test_prune_candidates_keep_the_grid_and_other_namespaces():
    local = {"swebench/sweb.eval.x86_64.a:latest", "swebench/sweb.eval.x86_64.b:latest",
             "swebench/other:latest", "mirror/sweb.eval.x86_64.a:latest", "localhost/sweb.eval.x86_64.c:latest"}  # fmt: skip
    assert prune_candidates(local, {"docker.io/swebench/sweb.eval.x86_64.a"}, "swebench") == [
        "swebench/sweb.eval.x86_64.b:latest"
    ]
    assert prune_candidates(local, set(), "localhost") == ["localhost/sweb.eval.x86_64.c:latest"]


def test_keyword_selection_matches_pytest():
    cfg = HarnessConfig(ROOT / "config")
    cases = cases_selected_by("i1", build_grid(cfg))
    for expr in ("kimi and sqlfluff", "a2", "not empty", "pvlib or Marshmallow"):
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "evals", "-m", "i1", "-k", expr, "--collect-only", "-q", "-p", "no:cacheprovider"],
            cwd=ROOT, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        collected = set(re.findall(r"test_swebench\[(.+?)\]", done.stdout))
        assert collected, done.stdout[-2000:] + done.stderr[-2000:]
        assert {c.case_id for c in keyword_selected(expr, cases)} == collected, expr


class _Registry(BaseHTTPRequestHandler):
    """Docker Registry v2 double: bearer tokens from /token, an index for ns/a, plain manifests otherwise."""

    blobs = {
        "ns/a": [("sha256:l1", 100), ("sha256:l2", 200)],
        "ns/b": [("sha256:l1", 100), ("sha256:l3", 50)],
    }

    def log_message(self, *args) -> None:
        pass

    def _json(self, code: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path == "/token":
            scope = parse_qs(url.query)["scope"][0]
            return self._json(200, {"token": f"tok:{scope}"})
        m = re.match(r"/v2/(.+)/manifests/(.+)$", url.path)
        repo, ref = m.group(1), m.group(2)
        if self.headers.get("Authorization") != f"Bearer tok:repository:{repo}:pull":
            realm = f'Bearer realm="http://{self.headers["Host"]}/token",service="double",scope="repository:{repo}:pull"'
            return self._json(401, {"errors": []}, {"WWW-Authenticate": realm})
        if repo not in self.blobs:
            return self._json(404, {"errors": [{"code": "MANIFEST_UNKNOWN"}]})
        if repo == "ns/a" and ref == "latest":
            manifests = [{"digest": "sha256:arm", "platform": {"os": "linux", "architecture": "arm64"}},
                         {"digest": "sha256:amd", "platform": {"os": "linux", "architecture": "amd64"}}]  # fmt: skip
            return self._json(200, {"manifests": manifests})
        if repo == "ns/a" and ref == "sha256:arm":
            return self._json(500, {})
        layers = [{"digest": d, "size": n} for d, n in self.blobs[repo]]
        return self._json(200, {"layers": layers, "config": {"digest": f"sha256:cfg-{repo[-1]}", "size": 7}})


@pytest.fixture
def registry():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Registry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_registry_sizes_with_token_auth_platform_and_shared_layers(registry):
    client = RegistryClient(arch="x86_64")
    assert client.layers(f"{registry}/ns/a:latest") == {"sha256:l1": 100, "sha256:l2": 200, "sha256:cfg-a": 7}
    total, errors = download_bytes([f"{registry}/ns/a", f"{registry}/ns/b:latest"], client)
    assert errors == {} and total == 100 + 200 + 50 + 7 + 7  # the shared layer l1 once
    total, errors = download_bytes([f"{registry}/ns/a", f"{registry}/ns/missing"], client)
    assert total is None and "HTTP 404" in errors[f"{registry}/ns/missing"]


def test_an_unreachable_registry_is_asked_once():
    total, errors = download_bytes([f"{UNREACHABLE}/a", f"{UNREACHABLE}/b"], RegistryClient(timeout=5))
    assert total is None and len(errors) == 2 and "unreachable" in errors[f"{UNREACHABLE}/a"]
    assert errors[f"{UNREACHABLE}/a"] == errors[f"{UNREACHABLE}/b"]


def _run(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.mark.containers
def test_a_run_whose_images_cannot_be_pulled_stops_before_the_first_case(tmp_path):
    done = _run("-m", "pytest", "evals", "-m", "i1", "--models", "gold,empty", "--image-namespace", UNREACHABLE,
                "--dataset-source", "snapshot", "--runs-dir", str(tmp_path), "--run-id", "stop", "-p", "no:cacheprovider")  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == 4, out[-3000:]
    assert "Traceback" not in out and "test_swebench[" not in out
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ERROR: 8 instance image(s) missing and not pullable"), out
    assert (
        "python -m harness images pull -m i1" in lines[0] and f"{UNREACHABLE}/sweb.eval.x86_64." in lines[0]
    )
    assert not (tmp_path / "stop").exists()  # no run folder, no record: nothing started
    # -k leaves out the cases that need images: that run starts (and its empty cases need no container)
    ok = _run("-m", "pytest", "evals", "-m", "i1", "--models", "gold,empty", "-k", "empty and sqlfluff-1625",
              "--image-namespace", UNREACHABLE, "--dataset-source", "snapshot", "--runs-dir", str(tmp_path),
              "--run-id", "ok", "--no-gates", "-p", "no:cacheprovider")  # fmt: skip
    assert ok.returncode == 0, ok.stdout[-3000:] + ok.stderr[-2000:]
    assert len(list((tmp_path / "ok" / "cases").glob("*.json"))) == 2


@pytest.mark.containers
def test_images_pull_checks_fixtures_records_digests_and_reports_failures(runtime, fixture_images, tmp_path):
    done = _run("-m", "harness", "images", "pull", "-m", "demo", "--runs-dir", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "grid demo: 3 instance image(s) for 9 case(s); 3 present, 0 missing" in done.stdout
    assert re.search(r"disk: nothing to download; [\d.]+ GB free in /", done.stdout)
    recorded = json.loads((tmp_path / "images.json").read_text())["images"]
    for instance_id in fixture_images:
        image = fixture_image_name(instance_id)
        inspected = runtime.run("image", "inspect", "--format", "{{.Id}}", image).stdout.strip()
        assert recorded[image]["id"] == inspected and recorded[image]["size_bytes"] > 1e6
    failed = _run("-m", "harness", "images", "pull", "-m", "i1", "--models", "gold",
                  "--image-namespace", UNREACHABLE, "--runs-dir", str(tmp_path))  # fmt: skip
    assert failed.returncode == 1
    assert "8 missing" in failed.stdout and failed.stdout.count("failed localhost:1/swebench/sweb.eval") == 8
    assert "disk: 8 image(s) to download, size unknown (localhost:1 unreachable" in failed.stdout
    assert "8/8 pulled 0, failed 8" in failed.stderr  # the progress bar (plain lines: not a terminal)


@pytest.mark.containers
def test_the_start_check_gives_the_ids_of_pulled_images_for_the_workers(runtime, fixture_images, tmp_path):
    """What the controller checks before a run (present or pulled) it also reads the id of, once: the workers
    take it from the run's image-ids file instead of each asking the runtime for every instance."""
    namespace = f"localhost/harness-ids-test-{os.getpid()}"
    source = fixture_image_name(next(iter(fixture_images)))
    image = f"{namespace}/sweb.eval.x86_64.some_1776_thing-1:latest"
    runtime.run("tag", source, image)
    try:
        ids: dict[str, str] = {}
        notes = check_before_run(lambda: runtime, [ImageNeed(image, fixture=False)], "-m demo", ids)
        assert notes == ["images: 1 present"]
        assert ids == {image: runtime.run("image", "inspect", "--format", "{{.Id}}", image).stdout.strip()}
        path = tmp_path / ".slots" / "image-ids.json"
        add_image_ids(path, ids)
        add_image_ids(path, {"other:latest": "sha256:0"})
        assert read_image_ids(path) == {**ids, "other:latest": "sha256:0"}
        path.write_text('{"torn": ')  # a torn file is ignored: the workers ask the runtime themselves
        assert read_image_ids(path) == {}
    finally:
        runtime.run("rmi", image, check=False)


@pytest.mark.containers
def test_prune_removes_only_the_namespaces_images_the_grid_does_not_need(runtime, fixture_images):
    namespace = f"localhost/harness-prune-test-{os.getpid()}"
    source = fixture_image_name(next(iter(fixture_images)))
    mine = [f"{namespace}/sweb.eval.x86_64.stale_1776_x-{n}:latest" for n in (1, 2)]
    bystander = f"{namespace}-other/sweb.eval.x86_64.stale_1776_x-1:latest"
    for tag in [*mine, bystander]:
        runtime.run("tag", source, tag)
    try:
        dry = _run(
            "-m",
            "harness",
            "images",
            "prune",
            "--keep-grid",
            "demo",
            "--image-namespace",
            namespace,
            "--dry-run",
        )
        assert dry.returncode == 0 and f"would remove 2 {namespace}/ instance image(s)" in dry.stdout, (
            dry.stderr
        )
        assert all(runtime.run("image", "exists", t, check=False).returncode == 0 for t in mine)
        done = _run("-m", "harness", "images", "prune", "--keep-grid", "demo", "--image-namespace", namespace)
        assert done.returncode == 0 and f"removed 2 {namespace}/" in done.stdout, done.stderr
        assert all(runtime.run("image", "exists", t, check=False).returncode != 0 for t in mine)
        assert runtime.run("image", "exists", bystander, check=False).returncode == 0
        assert runtime.run("image", "exists", source, check=False).returncode == 0  # the grid's own image
    finally:
        runtime.run("rmi", *mine, bystander, check=False)
