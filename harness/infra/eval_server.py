"""The run's evaluation server: the official evaluator in one long-lived process, so agent workers never load it.

swebench's evaluator pulls in `datasets`, pyarrow and docker (about 150 MB and 1.5 s of imports). Instead of
every xdist worker, the controller starts this server when the run starts (`EvalServer.start`, a
harness.infra.fork_server): it imports the evaluator once, on the first request (a run whose patches are all
cache hits, empty or skipped never does), and forks one child per request, so concurrent evaluations share
nothing (swebench keeps its log folder in a module global), start without import cost, and a crashing
evaluation takes only itself down.

Workers keep the evaluation slots and the CPU governor (harness.infra.eval_slots.eval_slot): a worker holds
its slot, sends one JSON request over the server's Unix socket, and waits for the `EvalResult`. An
evaluation's errors come back in its result.
"""

from __future__ import annotations

import json
import os
import socketserver
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness.errors import one_line
from harness.infra.evaluation import EvalResult
from harness.infra.fork_server import ServerProcess, connect, load_wait, serve, why_unreachable


class EvalServer(ServerProcess):
    """The controller's handle on its evaluation server process."""

    module = "harness.infra.eval_server"
    prefix = "harness-eval-"


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
        conn = connect(socket_path)
    except OSError as e:
        return _infra(
            log_dir, start, f"the run's evaluation server did not answer ({why_unreachable(socket_path, e)})"
        )
    with conn:
        conn.settimeout(2 * timeout_s + 600)  # image and container set-up, tests, teardown
        try:
            sent_at = time.time()
            conn.sendall(json.dumps(request).encode() + b"\n")
            line = conn.makefile("rb").readline()
        except OSError as e:
            return _infra(log_dir, start, f"the evaluation server stopped answering ({e})")
    if not line:
        return _infra(log_dir, start, "the evaluation ended without a result (its process died)")
    answer = json.loads(line)
    loaded_at = answer.pop("loaded_at", None)
    result = result_from_json(answer)
    result.server_wait_s = load_wait(sent_at, loaded_at)
    return result


def spec_hash_remote(socket_path: Path, row: dict) -> tuple[str | None, float]:
    """(`eval_cache.spec_hash(row)`, seconds waited for the server's load), computed by the server (it needs
    swebench's specs, which a worker does not load); None when the server cannot answer (the case is then
    graded without the cache)."""
    sent_at = time.time()
    try:
        with connect(socket_path) as conn:
            conn.settimeout(120)
            conn.sendall(json.dumps({"op": "spec_hash", "row": row}).encode() + b"\n")
            answer = json.loads(conn.makefile("rb").readline() or b"{}")
    except (OSError, ValueError):
        return None, 0.0
    return answer.get("spec_hash"), load_wait(sent_at, answer.get("loaded_at"))


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


# --- the server process ----------------------------------------------------------------------------------


class _Handler(socketserver.StreamRequestHandler):
    """One request, in a forked child of the server: evaluate, answer with the EvalResult as JSON."""

    def handle(self) -> None:
        from harness.infra.evaluation import evaluate_patch

        start = time.monotonic()
        request = json.loads(self.rfile.readline())
        if request.get("op") == "spec_hash":
            self._spec_hash(request["row"])
            return
        if docker_host := request.pop("docker_host", ""):
            os.environ["DOCKER_HOST"] = docker_host  # the runtime the worker's run detected
        row, patch = request.pop("row"), request.pop("patch")
        request["log_root"] = Path(request["log_root"])
        if load_error := self.server.load_error:
            message = one_line(f"the evaluation server could not load the evaluator: {load_error}")
            result = _infra(_log_dir(row, request), start, message)
        else:
            try:
                result = evaluate_patch(row, patch, **request)
            except Exception as e:  # the evaluator failed: an infra error of this case, not of the server
                result = _infra(
                    _log_dir(row, request), start, one_line(f"evaluator failed: {type(e).__name__}: {e}")
                )
        answer = {**result_to_json(result), "loaded_at": self.server.loaded_at}
        self.wfile.write(json.dumps(answer).encode() + b"\n")

    def _spec_hash(self, row: dict) -> None:
        from harness.infra.eval_cache import spec_hash

        answer = {} if self.server.load_error else {"spec_hash": spec_hash(row)}
        answer["loaded_at"] = self.server.loaded_at
        self.wfile.write(json.dumps(answer).encode() + b"\n")


def _load_evaluator() -> None:
    import docker  # noqa: F401
    import swebench.harness.run_evaluation  # noqa: F401

    from harness.demo.fixtures import register_fixture_repos

    register_fixture_repos()


def main(argv: list[str]) -> None:
    serve(argv, _Handler, _load_evaluator)


if __name__ == "__main__":
    main(sys.argv[1:])
