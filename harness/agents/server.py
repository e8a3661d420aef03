"""The run's agent server: litellm and mini-swe-agent imported once per run, one forked child per agent.

litellm's import costs about 6 s of CPU and 190 MB. In every xdist worker that is one import per worker, all
at once when the workers start: on 2 cores with 6 workers, ~17 s more in every worker's first case. Instead
the controller starts this server with the run (harness.run.lifecycle, when mini-swe-agent runs LLM cases;
a harness.infra.fork_server); it imports at once, while pytest collects and the workers start, and forks one
child per agent. Workers then import neither.

A child takes the worker's environment and the secrets the worker registered for redaction, rebuilds the
budget hooks on the run's ledger (harness.infra.budget: the same file or server), and runs `MiniRunner` on
the task exactly as the worker would. It sends the worker every log record (the worker's handlers keep and
redact them: captured per test, --log-file), then the `AgentResult`, then (after removing the agent's container,
which the worker need not wait for: RemoteMiniRunner's `remove_in_background`) the removal's seconds. Its files (trajectory, llm_calls.jsonl)
are written where the worker would have written them, redacted the same way.

The worker's connection is the agent's lifeline: when it closes (the worker was killed, its case timed out,
the session was interrupted) the child interrupts its agent, removes the container, and exits.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import signal
import socketserver
import struct
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, BinaryIO

from harness.agents import AgentResult, AgentTask, in_background, with_budget_hooks
from harness.errors import one_line
from harness.infra.fork_server import ServerProcess, connect, load_wait, serve, why_unreachable
from harness.outcomes import OutcomeClass

_HEADER = struct.Struct(">Q")
_LOG_FIELDS = ("name", "levelno", "levelname", "pathname", "filename", "module", "lineno", "funcName",
               "created", "msecs", "thread", "threadName", "process")  # fmt: skip


class AgentServer(ServerProcess):
    """The controller's handle on its agent server process."""

    module = "harness.agents.server"
    prefix = "harness-agent-"


class RemoteMiniRunner:
    """`MiniRunner`, run by the run's agent server: the same task in, the same result out."""

    name = "mini-swe-agent"

    def __init__(self, socket_path: Path, *, remove_in_background: bool = False) -> None:
        self.socket_path = socket_path
        self.remove_in_background = remove_in_background
        """Return at the fork's result, while it removes the container (AgentResult.removal, read from the
        same connection by a thread); otherwise return once the container is gone, as MiniRunner does."""

    def run(self, task: AgentTask) -> AgentResult:
        from harness.infra.secrets import known_secrets, secret_name

        request = {
            "task": replace(task, reserve_call=None, settle_call=None),  # rebuilt there, on task.ledger
            "env": dict(os.environ),
            "secrets": [(value, secret_name(value)) for value in known_secrets()],
            "log_level": logging.getLogger().getEffectiveLevel(),
        }
        try:
            conn = connect(self.socket_path)
        except OSError as e:
            return _failed(f"the run's agent server did not answer ({why_unreachable(self.socket_path, e)})")
        conn.settimeout(2 * task.agent_timeout_s + 900)  # the container's start and removal, the loop
        stream = conn.makefile("rwb")
        try:
            _send(stream, "task", {**request, "sent_at": time.time()})
            frame = _next_frame(stream)
        except (OSError, pickle.PickleError) as e:
            _close(conn, stream)
            return _failed(one_line(f"the agent server stopped answering ({type(e).__name__}: {e})"))
        except BaseException:  # a case timeout, Ctrl-C: the closed connection stops the fork's agent
            _close(conn, stream)
            raise
        if frame is None or frame[0] != "result":
            _close(conn, stream)
            return _failed(frame[1] if frame else "the agent ended without a result (its process died)")
        result: AgentResult = frame[1]
        if self.remove_in_background:
            result.removal = in_background(
                lambda: _removal_seconds(conn, stream), f"harness-removal-{task.case_id}"
            )
        else:
            result.container_remove_s = _removal_seconds(conn, stream)
        return result


def _next_frame(stream: BinaryIO) -> tuple[str, Any] | None:
    """The fork's next frame that is not a log record (those go to this process's logging), or None at its end."""
    while (frame := _receive(stream)) is not None:
        if frame[0] != "log":
            return frame
        record = logging.makeLogRecord(frame[1])
        logging.getLogger(record.name).handle(record)
    return None


def _removal_seconds(conn, stream: BinaryIO) -> float | None:
    """After the result: the seconds the fork's container removal took (None if it failed or the fork died)."""
    try:
        frame = _next_frame(stream)
    except (OSError, pickle.PickleError):
        frame = None
    finally:
        _close(conn, stream)
    return frame[1] if frame is not None and frame[0] == "removed" else None


def _close(conn, stream: BinaryIO) -> None:
    with contextlib.suppress(OSError):
        stream.close()
    with contextlib.suppress(OSError):
        conn.close()


def _failed(message: str) -> AgentResult:
    return AgentResult(
        patch="",
        exit_status="AgentServerError",
        infra_error=message,
        infra_class=OutcomeClass.AGENT_CRASH,
    )


def _send(stream: BinaryIO, kind: str, payload: Any) -> None:
    data = pickle.dumps((kind, payload), protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _receive(stream: BinaryIO) -> tuple[str, Any] | None:
    """One frame, or None when the other side closed the connection."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    data = stream.read(size)
    return pickle.loads(data) if len(data) == size else None


# --- the server process ----------------------------------------------------------------------------------


class _Handler(socketserver.StreamRequestHandler):
    """One agent, in a forked child of the server."""

    def handle(self) -> None:
        frame = _receive(self.rfile)
        if frame is None:
            return
        request = frame[1]
        lock, finished = threading.Lock(), threading.Event()

        def send(kind: str, payload: Any) -> None:
            with lock:
                _send(self.wfile, kind, payload)

        if load_error := self.server.load_error:
            send("error", one_line(f"the agent server could not load mini-swe-agent: {load_error}"))
            return
        _take_worker_state(request, send)
        threading.Thread(target=_watch, args=(self.connection, finished), daemon=True).start()
        from harness.agents.mini import MiniRunner

        try:
            result = MiniRunner(remove_in_background=True).run(with_budget_hooks(request["task"]))
        except KeyboardInterrupt:  # the worker is gone: MiniRunner removed the container before it re-raised
            return
        finished.set()
        result.server_wait_s = load_wait(request["sent_at"], self.server.loaded_at)
        removal, result.removal = result.removal, None
        try:
            send("result", result)  # the worker goes on (its next agent, this patch's evaluation) ...
        finally:
            seconds = removal.result() if removal is not None else None  # ... while this fork removes
            with contextlib.suppress(OSError):
                send("removed", seconds)


def _take_worker_state(request: dict, send) -> None:
    """The worker's environment (over the server's own: mini-swe-agent's global .env is loaded at its import),
    the secrets it hides, and its log level; log records go to the worker."""
    from harness.infra.secrets import register_secret

    os.environ.update(request["env"])
    for value, name in request["secrets"]:
        register_secret(value, name)
    root = logging.getLogger()
    root.handlers[:] = [_Forward(send)]
    root.setLevel(request["log_level"])


class _Forward(logging.Handler):
    """A log record, formatted here, re-emitted by the worker's logging (whose handlers redact)."""

    def __init__(self, send) -> None:
        super().__init__()
        self._send = send

    def emit(self, record: logging.LogRecord) -> None:
        try:
            payload = {field: getattr(record, field, None) for field in _LOG_FIELDS}
            payload["msg"], payload["args"] = record.getMessage(), None
            if record.exc_info:
                payload["exc_text"] = logging.Formatter().formatException(record.exc_info)
            self._send("log", payload)
        except Exception:
            self.handleError(record)


def _watch(connection, finished: threading.Event) -> None:
    """Interrupt the agent when the worker closes the connection (nothing else is ever sent on it)."""
    with contextlib.suppress(OSError):
        connection.recv(1)
    if not finished.is_set():
        os.kill(os.getpid(), signal.SIGINT)  # KeyboardInterrupt in the agent loop, even in a blocking call


def _load_agent() -> None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # as harness.run.context: no price fetch
    from harness.agents import llm, mini  # noqa: F401  (litellm, mini-swe-agent's model)

    mini.redacting_agent_class(), mini.capped_environment_class()  # the agent and its environment
    from harness.agents.warm_up import warm_up

    warm_up()  # what litellm imports on a first request, once here instead of in every agent's fork


def main(argv: list[str]) -> None:
    serve(argv, _Handler, _load_agent, eager=True)


if __name__ == "__main__":
    main(sys.argv[1:])
