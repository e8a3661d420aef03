"""The run's evaluation server (harness.infra.eval_server): the official evaluator in one forking process,
reached over its Unix socket. Real containers and the real evaluator; failures come back as one-line infra
results, and the server never outlives the process that started it."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time

import psutil
import pytest

from harness.infra.eval_server import EvalServer, evaluate_remote
from harness.infra.evaluation import evaluate_patch
from tests.helpers import ROOT

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


def test_an_evaluation_whose_process_dies_is_an_infra_result(fixture_images, server, tmp_path):
    row = fixture_images["fixtures__calc-1"]
    got = {}
    worker = threading.Thread(
        target=lambda: got.update(
            r=evaluate_remote(server.socket_path, row, row["patch"], **_kwargs(tmp_path, "k"))
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
    broken = tmp_path / "site"
    (broken / "docker").mkdir(parents=True)
    (broken / "docker" / "__init__.py").write_text("raise ImportError('docker SDK is broken here')\n")
    monkeypatch.setenv("PYTHONPATH", f"{broken}{os.pathsep}{ROOT}")
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
