"""A run's forking server: a heavy import done once, in one process the controller owns, and one forked child
per request, reached over a Unix socket in a private (0700) temp folder.

Two servers use it: the evaluation server (harness.infra.eval_server: swebench and docker) and the agent
server (harness.agents.server: litellm and mini-swe-agent). Loaded in every xdist worker instead, those
imports cost each worker seconds of CPU and hundreds of MB, all at once when the workers start.

The server exits when the process that started it is gone (a controller killed with SIGKILL leaves no
server behind); a SIGKILL of the whole process group kills the server too, and the next server's start
removes the folder it left. Its only file is `start-error.txt` in that folder when it cannot bind.
"""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import socket
import socketserver
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

SOCKET_NAME = "server.sock"
START_ERROR = "start-error.txt"
CONNECT_WAIT_S = 60.0
"""How long a client waits for the server's socket (it is bound before the heavy import)."""
STALE_AFTER_S = 60.0
"""A server folder this old whose socket nobody listens on is left over (its server was killed with SIGKILL)."""


class ServerProcess:
    """The controller's handle on one server process; subclasses name its module and folder prefix."""

    module: ClassVar[str]
    """Run as `python -m <module> <socket> <starter pid>`; its main calls `serve`."""
    prefix: ClassVar[str]
    """Its temp folder's name prefix (harness-eval-, harness-agent-)."""

    def __init__(self, proc: subprocess.Popen, socket_path: Path):
        self.proc = proc
        self.socket_path = socket_path

    @classmethod
    def start(cls):
        remove_stale_folders(Path(tempfile.gettempdir()), cls.prefix)
        folder = Path(tempfile.mkdtemp(prefix=cls.prefix))  # 0700: only this user may connect
        socket_path = folder / SOCKET_NAME
        proc = subprocess.Popen(
            [sys.executable, "-m", cls.module, str(socket_path), str(os.getpid())],
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


def remove_stale_folders(tmp: Path, prefix: str) -> list[Path]:
    """Remove this user's `prefix` folders under `tmp` that outlived their server. A folder is stale when it is
    older than STALE_AFTER_S (a starting server binds within a second) and no process listens on its socket
    (Linux's /proc/net/unix: probing by connecting would make a live server fork). Elsewhere nothing is removed."""
    listening = listening_unix_paths()
    if listening is None:
        return []
    removed = []
    for folder in tmp.glob(f"{prefix}*"):
        try:
            info = folder.lstat()
        except OSError:
            continue
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            continue
        if time.time() - info.st_mtime < STALE_AFTER_S or str(folder / SOCKET_NAME) in listening:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def listening_unix_paths() -> set[str] | None:
    """The paths of the Unix sockets bound in this network namespace, or None where /proc does not list them."""
    try:
        lines = Path("/proc/net/unix").read_text().splitlines()[1:]
    except OSError:
        return None
    return {fields[7] for line in lines if len(fields := line.split(None, 7)) == 8}


def connect(socket_path: Path) -> socket.socket:
    """A connection to the server, waiting up to CONNECT_WAIT_S for it to bind; OSError when it cannot come."""
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


def load_wait(sent_at: float, loaded_at: float | None) -> float:
    """Seconds a request sent at `sent_at` (time.time()) waited for its server's load, which ended at `loaded_at`
    (ForkingServer.loaded_at, as the server answers it): a run's start-up, not the case's own time."""
    return round(max(0.0, (loaded_at or 0.0) - sent_at), 3)


def why_unreachable(socket_path: Path, error: OSError) -> str:
    failed = socket_path.parent / START_ERROR
    if failed.is_file():
        return f"it could not start: {failed.read_text().strip()}"
    if not socket_path.parent.is_dir():
        return "it has stopped; resume the run with --resume to finish what is left"
    return f"{socket_path}: {error.strerror or error}"


class ForkingServer(socketserver.ForkingMixIn, socketserver.UnixStreamServer):
    """Forks a child per request; `load` (the heavy import) runs before the first fork, or at once (`eager`)."""

    max_children = 64
    request_queue_size = 64  # every worker may connect while an eager server is still importing
    timeout = 1.0  # handle_request returns every second, so the parent check in `serve` runs
    load_error: str | None = None
    loaded_at: float = 0.0
    """time.time() when the load ended (0.0 before): a request sent earlier waited for it (load_wait)."""

    def __init__(self, path: str, handler: type, load: Callable[[], None]) -> None:
        super().__init__(path, handler)
        self._load: Callable[[], None] | None = load

    def ensure_loaded(self) -> None:
        if self._load is not None:
            load, self._load = self._load, None
            # What the import makes lives as long as the server: collecting while importing costs ~15 % of
            # litellm's import CPU and finds ~2000 objects of garbage.
            gc.disable()
            try:
                load()
            except Exception as e:  # every request is answered with it, none is lost
                self.load_error = f"{type(e).__name__}: {e}"
            finally:
                gc.freeze()  # forks neither collect nor copy (by touching) the imports' pages
                gc.enable()
                self.loaded_at = time.time()

    def process_request(self, request, client_address) -> None:
        self.ensure_loaded()
        super().process_request(request, client_address)


def serve(argv: list[str], handler: type, load: Callable[[], None], *, eager: bool = False) -> None:
    """A server's main: bind `argv[0]`, then serve until the process `argv[1]` is gone or the folder removed.
    `load` runs on the first request, or right after binding when `eager` (clients queue meanwhile)."""
    socket_path, parent_pid = Path(argv[0]), int(argv[1])
    with contextlib.suppress(KeyboardInterrupt):
        try:
            server = ForkingServer(str(socket_path), handler, load)
        except Exception as e:
            (socket_path.parent / START_ERROR).write_text(f"{type(e).__name__}: {e}\n")
            raise SystemExit(1) from None
        with server:
            if eager:
                server.ensure_loaded()
            while os.getppid() == parent_pid and socket_path.exists():
                server.handle_request()
                server.collect_children(blocking=False)
        shutil.rmtree(socket_path.parent, ignore_errors=True)  # its starter died without stopping it
