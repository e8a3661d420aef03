"""The run's evaluation server (harness.infra.eval_server): the official evaluator in one forking process,
reached over its Unix socket. Real containers and the real evaluator; failures come back as one-line infra
results, and the server never outlives the process that started it."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from pathlib import Path

import psutil
import pytest

from harness.infra import fork_server
from harness.infra.eval_server import EvalServer, evaluate_remote, spec_hash_remote
from harness.infra.evaluation import evaluate_patch
from tests.helpers import ROOT, shadow_with_broken_package

pytestmark = pytest.mark.containers


def _kwargs(tmp_path, model: str) -> dict:
    return {
        "model_id": model,
        "eval_run_id": f"srv-{model}",
        "namespace": "localhost",
        "log_root": tmp_path / "eval",
        "timeout_s": 300,
    }


@pytest.fixture
def server():
    srv = EvalServer.start()
    yield srv
    srv.stop()


def test_a_remote_evaluation_equals_the_in_process_one(fixture_images, server, tmp_path):
    folder = server.socket_path.parent
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700  # only this user may connect
    row = fixture_images["fixtures__textkit-2"]
    remote = evaluate_remote(server.socket_path, row, row["patch"], **_kwargs(tmp_path, "remote"))
    local = evaluate_patch(row, row["patch"], **_kwargs(tmp_path, "local"))
    assert remote.outcome_class == local.outcome_class == "resolved", remote.message
    assert remote.tests_status == local.tests_status
    assert (remote.log_dir / "report.json").is_file()
    assert remote.log_dir == tmp_path / "eval" / "srv-remote" / "remote" / "fixtures__textkit-2"
    # the server's first request: it waited for the evaluator's import, which is not the evaluation's wall
    assert remote.server_wait_s > 0.2 and remote.wall_s < 60


def test_concurrent_requests_are_served_side_by_side(fixture_images, server, tmp_path):
    rows = list(fixture_images.values())
    results: dict[str, object] = {}

    def grade(row):
        kwargs = _kwargs(tmp_path, "both")
        results[row["instance_id"]] = evaluate_remote(server.socket_path, row, row["patch"], **kwargs)

    threads = [threading.Thread(target=grade, args=(row,)) for row in rows]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {k: r.outcome_class for k, r in results.items()} == {r["instance_id"]: "resolved" for r in rows}


def test_an_evaluation_whose_process_dies_is_an_infra_result(runtime, fixture_images, server, tmp_path):
    row = fixture_images["fixtures__calc-1"]
    model = f"k{uuid.uuid4().hex[:6]}"
    got = {}
    worker = threading.Thread(
        target=lambda: got.update(
            r=evaluate_remote(server.socket_path, row, row["patch"], **_kwargs(tmp_path, model))
        )
    )
    worker.start()
    deadline = time.monotonic() + 60
    children = []
    while not children and time.monotonic() < deadline:
        children = psutil.Process(server.proc.pid).children()
        time.sleep(0.05)
    assert children, "the server never forked a child for the request"
    children[0].send_signal(signal.SIGKILL)
    worker.join(120)
    runtime.run("rm", "-f", f"sweb.eval.fixtures__calc-1.srv-{model}", check=False)  # if it got that far
    result = got["r"]
    assert result.infra and result.outcome_class == "evaluator-error"
    assert "ended without a result" in result.message


def test_a_stopped_server_is_a_one_line_infra_result_at_once(tmp_path):
    srv = EvalServer.start()
    srv.stop()
    start = time.monotonic()
    result = evaluate_remote(srv.socket_path, {"instance_id": "o__r-1"}, "diff", **_kwargs(tmp_path, "m"))
    assert time.monotonic() - start < 5  # no minute-long wait for a socket that cannot come back
    assert result.infra and "\n" not in result.message
    assert "it has stopped; resume the run with --resume" in result.message


def test_a_server_that_cannot_load_the_evaluator_says_why(tmp_path, monkeypatch):
    shadow_with_broken_package(tmp_path, monkeypatch, "docker", "docker SDK is broken here")
    srv = EvalServer.start()
    try:
        result = evaluate_remote(srv.socket_path, {"instance_id": "o__r-1"}, "diff", **_kwargs(tmp_path, "m"))
    finally:
        srv.stop()
    assert result.infra and "\n" not in result.message
    assert "could not load the evaluator: ImportError: docker SDK is broken here" in result.message


def test_the_server_exits_when_the_process_that_started_it_is_killed(tmp_path):
    starter = textwrap.dedent(
        """
        import sys, time
        from harness.infra.eval_server import EvalServer
        srv = EvalServer.start()
        print(srv.proc.pid, srv.socket_path, flush=True)
        time.sleep(600)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", starter], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    pid, socket_path = parent.stdout.readline().split()
    server = psutil.Process(int(pid))
    deadline = time.monotonic() + 60
    while not os.path.exists(socket_path) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert os.path.exists(socket_path)
    parent.kill()
    parent.wait()
    try:
        server.wait(timeout=30)  # it notices its parent is gone within a second of its next poll
    except psutil.TimeoutExpired:
        server.kill()
        pytest.fail("the evaluation server outlived the process that started it")
    assert not os.path.exists(os.path.dirname(socket_path))  # and took its socket folder with it


def _listening(socket_path) -> bool:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if str(socket_path) in (fork_server.listening_unix_paths() or set()):
            return True
        time.sleep(0.1)
    return False


def test_a_folder_left_by_a_killed_server_is_removed_when_the_next_one_starts(monkeypatch):
    tmp = tempfile.mkdtemp(prefix="hs-")  # short: a Unix socket path has ~100 characters
    monkeypatch.setattr(tempfile, "tempdir", tmp)
    killed, live = EvalServer.start(), EvalServer.start()
    try:
        assert _listening(killed.socket_path) and _listening(live.socket_path)
        killed.proc.kill()  # as a SIGKILL of the whole process group does: no clean-up runs
        killed.proc.wait()
        assert killed.socket_path.exists()
        young_dead = Path(tempfile.mkdtemp(prefix=EvalServer.prefix))
        old = time.time() - 2 * fork_server.STALE_AFTER_S
        for folder in (killed.socket_path.parent, live.socket_path.parent):
            os.utime(folder, (old, old))
        new = EvalServer.start()
        new.stop()
        assert not killed.socket_path.parent.exists()  # left over: removed
        assert live.socket_path.parent.exists() and _listening(live.socket_path)  # in use: kept
        assert young_dead.exists()  # may be a server that has not bound yet: kept
    finally:
        live.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def test_the_cache_spec_hash_is_the_servers_and_equals_the_local_one(fixture_rows, server):
    from harness.infra.eval_cache import spec_hash

    waits = []
    for row in fixture_rows.values():
        found, waited = spec_hash_remote(server.socket_path, row)
        assert found == spec_hash(row)
        waits.append(waited)
    assert waits[0] > 0.2 and waits[1:] == [0.0] * (len(waits) - 1)  # only the first waited for the load
    stopped = EvalServer.start()
    stopped.stop()
    assert spec_hash_remote(stopped.socket_path, next(iter(fixture_rows.values()))) == (None, 0.0)
