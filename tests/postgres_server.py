"""A throwaway PostgreSQL server for the shared-ledger tests: Debian's postgresql package (installed by
tools/ensure_postgres.sh when missing), a fresh cluster in a temp dir, listening on a unix socket only.

As root the server runs as the `postgres` user (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class ServerUnavailable(Exception):
    """The server cannot be installed or started here (the tests skip with this one line)."""


def _server_bin() -> Path:
    done = subprocess.run(
        ["bash", str(ROOT / "tools" / "ensure_postgres.sh")], capture_output=True, text=True, timeout=600
    )
    if done.returncode != 0 or not done.stdout.strip():
        last = (done.stderr.strip().splitlines() or ["tools/ensure_postgres.sh failed"])[-1]
        raise ServerUnavailable(f"PostgreSQL server cannot be installed here: {last}")
    return Path(done.stdout.strip().splitlines()[-1])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_server_user(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise ServerUnavailable("running as root and there is no `postgres` user to run the server") from None
    return ["runuser", "-u", "postgres", "--", *argv]


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a server; yield its URL (postgresql://postgres@/postgres?host=SOCKET_DIR&port=PORT); stop it."""
    bin_dir = _server_bin()
    work = Path(tempfile.mkdtemp(prefix="harness-pg-"))
    data, port = work / "data", _free_port()
    if os.geteuid() == 0:
        shutil.chown(work, "postgres", "postgres")
    server = None
    try:
        init = subprocess.run(
            _as_server_user(
                [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]
            ),
            capture_output=True,
            text=True,
            timeout=300,
        )
        if init.returncode != 0:
            raise ServerUnavailable(f"initdb failed: {(init.stderr.strip().splitlines() or ['?'])[-1]}")
        server = subprocess.Popen(
            _as_server_user(
                [
                    str(bin_dir / "postgres"),
                    "-D",
                    str(data),
                    "-k",
                    str(work),
                    "-p",
                    str(port),
                    "-c",
                    "listen_addresses=",
                ]
            ),
            stdout=subprocess.DEVNULL,
            stderr=open(work / "server.log", "w"),  # noqa: SIM115 - the server writes it until it stops
        )
        url = f"postgresql://postgres@/postgres?host={work}&port={port}"
        _wait_ready(url, work, server)
        yield url
    finally:
        _stop(data, server)
        shutil.rmtree(work, ignore_errors=True)


def _wait_ready(url: str, work: Path, server: subprocess.Popen, timeout_s: float = 60) -> None:
    import psycopg

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            log = (work / "server.log").read_text(errors="replace").strip().splitlines()
            raise ServerUnavailable(f"postgres exited: {(log or ['no log'])[-1]}")
        try:
            psycopg.connect(url, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            time.sleep(0.2)
    raise ServerUnavailable(f"postgres did not accept connections in {timeout_s:.0f} s")


def _stop(data: Path, server: subprocess.Popen | None) -> None:
    """Fast shutdown of the postmaster we started (its pid from postmaster.pid), then reap runuser."""
    pid_file = data / "postmaster.pid"
    if pid_file.is_file():
        with suppress(ProcessLookupError, ValueError):
            os.kill(int(pid_file.read_text().splitlines()[0]), signal.SIGINT)
    if server is not None:
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
