"""The run's evaluation server: the official evaluator in one long-lived process, so agent workers never load it.

swebench's evaluator pulls in `datasets`, pyarrow and docker (about 150 MB and 1.5 s of imports); litellm is
another 190 MB. Loaded in every xdist worker, the two put each worker over 340 MB. Instead the controller
starts this server when the run starts (`EvalServer.start`): it imports the evaluator once, on the first
request (a run whose patches are all cache hits, empty or skipped never does), and forks one child per
request, so concurrent evaluations share nothing (swebench keeps its log folder in a module global), start
without import cost, and a crashing evaluation takes only itself down.

Workers keep the evaluation slots and the CPU governor (harness.infra.evaluation.eval_slot): a worker holds
its slot, sends one JSON request over a Unix socket in a private (0700) temp folder, and waits for the
`EvalResult`. The server exits when the process that started it is gone (a controller killed with SIGKILL
leaves no server behind). Its only file is `start-error.txt` in that folder when it cannot bind; an
evaluation's errors come back in its result.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import shutil
import socket
import socketserver
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness.infra.evaluation import EvalResult

SOCKET_NAME = "eval.sock"
START_ERROR = "start-error.txt"
CONNECT_WAIT_S = 60.0
"""How long a worker waits for the server's socket (it is bound before the evaluator is imported)."""


class EvalServer:
    """The controller's handle on its evaluation server process."""

    def __init__(self, proc: subprocess.Popen, socket_path: Path):
        self.proc = proc
        self.socket_path = socket_path

    @classmethod
    def start(cls) -> EvalServer:
        folder = Path(tempfile.mkdtemp(prefix="harness-eval-"))  # 0700: only this user may connect
        socket_path = folder / SOCKET_NAME
        proc = subprocess.Popen(
            [sys.executable, "-m", "harness.infra.eval_server", str(socket_path), str(os.getpid())],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return cls(proc, socket_path)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.socket_path.parent, ignore_errors=True)


def evaluate_remote(socket_path: Path, row: dict, patch: str, **kwargs: Any) -> EvalResult:
    """`evaluate_patch` (same arguments and result), done by the run's evaluation server at `socket_path`."""
    timeout_s = int(kwargs["timeout_s"])
    request = {
        "row": row,
        "patch": patch,
        **{k: str(v) if isinstance(v, Path) else v for k, v in kwargs.items()},
        "docker_host": os.environ.get("DOCKER_HOST", ""),
    }
    log_dir = _log_dir(row, kwargs)
    start = time.monotonic()
    try:
        conn = _connect(socket_path)
    except OSError as e:
        return _infra(log_dir, start, f"the run's evaluation server did not answer ({_why(socket_path, e)})")
    with conn:
        conn.settimeout(2 * timeout_s + 600)  # image and container set-up, tests, teardown
        try:
            conn.sendall(json.dumps(request).encode() + b"\n")
            line = conn.makefile("rb").readline()
        except OSError as e:
            return _infra(log_dir, start, f"the evaluation server stopped answering ({e})")
    if not line:
        return _infra(log_dir, start, "the evaluation ended without a result (its process died)")
    return result_from_json(json.loads(line))


def result_to_json(result: EvalResult) -> dict[str, Any]:
    return {**asdict(result), "log_dir": str(result.log_dir)}


def result_from_json(data: dict[str, Any]) -> EvalResult:
    return EvalResult(**{**data, "log_dir": Path(data["log_dir"])})


def _log_dir(row: dict, kwargs: dict[str, Any]) -> Path:
    from harness.infra.evaluation import eval_log_dir

    return eval_log_dir(
        Path(kwargs["log_root"]), kwargs["eval_run_id"], kwargs["model_id"], row["instance_id"]
    )


def _infra(log_dir: Path, start: float, message: str) -> EvalResult:
    return EvalResult("evaluator-error", False, True, time.monotonic() - start, log_dir, None, message)


def _connect(socket_path: Path) -> socket.socket:
    deadline = time.monotonic() + CONNECT_WAIT_S
    while True:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(str(socket_path))
            return conn
        except OSError:
            conn.close()
            gone = not socket_path.parent.is_dir() or (socket_path.parent / START_ERROR).is_file()
            if gone or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _why(socket_path: Path, error: OSError) -> str:
    failed = socket_path.parent / START_ERROR
    if failed.is_file():
        return f"it could not start: {failed.read_text().strip()}"
    if not socket_path.parent.is_dir():
        return "it has stopped; resume the run with --resume to grade what is left"
    return f"{socket_path}: {error.strerror or error}"


# --- the server process ----------------------------------------------------------------------------------


class _Handler(socketserver.StreamRequestHandler):
    """One request, in a forked child of the server: evaluate, answer with the EvalResult as JSON."""

    def handle(self) -> None:
        from harness.infra.evaluation import evaluate_patch

        start = time.monotonic()
        request = json.loads(self.rfile.readline())
        if docker_host := request.pop("docker_host", ""):
            os.environ["DOCKER_HOST"] = docker_host  # the runtime the worker's run detected
        row, patch = request.pop("row"), request.pop("patch")
        request["log_root"] = Path(request["log_root"])
        if load_error := getattr(self.server, "load_error", None):
            message = _one_line(f"the evaluation server could not load the evaluator: {load_error}")
            result = _infra(_log_dir(row, request), start, message)
        else:
            try:
                result = evaluate_patch(row, patch, **request)
            except Exception as e:  # the evaluator failed: an infra error of this case, not of the server
                result = _infra(
                    _log_dir(row, request), start, _one_line(f"evaluator failed: {type(e).__name__}: {e}")
                )
        self.wfile.write(json.dumps(result_to_json(result)).encode() + b"\n")


def _one_line(text: str) -> str:
    return " ".join(text.split())[:400]


class _Server(socketserver.ForkingMixIn, socketserver.UnixStreamServer):
    max_children = 64
    timeout = 1.0  # handle_request returns every second, so the parent check below runs
    loaded = False
    load_error: str | None = None

    def process_request(self, request, client_address) -> None:
        """Import the evaluator once, before the first fork: a run that grades nothing never pays for it."""
        if not self.loaded:
            self.loaded = True
            try:
                _load_evaluator()
            except Exception as e:  # every request is answered with it (an infra result), none is lost
                self.load_error = f"{type(e).__name__}: {e}"
        super().process_request(request, client_address)


def _load_evaluator() -> None:
    import docker  # noqa: F401
    import swebench.harness.run_evaluation  # noqa: F401

    from harness.demo.fixtures import register_fixture_repos

    register_fixture_repos()
    gc.freeze()  # the imports live as long as the server: forks neither collect nor copy their pages


def serve(socket_path: Path, parent_pid: int) -> None:
    """Bind, then serve; the evaluator is imported on the first request (`_Server.process_request`)."""
    try:
        server = _Server(str(socket_path), _Handler)
    except Exception as e:
        (socket_path.parent / START_ERROR).write_text(f"{type(e).__name__}: {e}\n")
        raise SystemExit(1) from None
    with server:
        while os.getppid() == parent_pid and socket_path.exists():
            server.handle_request()
            server.collect_children(blocking=False)
    shutil.rmtree(socket_path.parent, ignore_errors=True)  # its starter died without stopping it


def main(argv: list[str]) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        serve(Path(argv[0]), int(argv[1]))


if __name__ == "__main__":
    main(sys.argv[1:])
