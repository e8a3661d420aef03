"""The budget ledger in PostgreSQL: one ledger for every machine of a sharded run (HARNESS_LEDGER_URL).

Same table, same SQL and same rules as the SQLite ledger (harness.infra.budget.LedgerRules); only the
store differs. A write transaction first takes one transaction-scoped advisory lock, the counterpart of
SQLite's BEGIN IMMEDIATE: writers of the ledger queue behind each other, readers never wait. Under
READ COMMITTED (PostgreSQL's default, kept on purpose) every statement after the lock sees all
reservations committed before it, so the quota check and the insert are one step and a daily quota
is never overshot, whichever machine asks.

Driver: psycopg 3 (the `postgres` extra; docs/decisions.md says why). Connections open lazily per
process and thread and never cross fork, as in the SQLite store, so the ledger object is picklable.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from harness.errors import HarnessError, one_line
from harness.infra.budget import LEDGER_URL_ENV, LedgerRules, Limits, _utc_now

LOCK_KEY = 0x68_61_72_6E_65_73_73  # "harness": the ledger's one writer lock
CONNECT_TIMEOUT_S = 10
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS calls (
    id BIGSERIAL PRIMARY KEY, provider TEXT NOT NULL, day TEXT NOT NULL,
    run_id TEXT NOT NULL, case_id TEXT NOT NULL, reserved_at TEXT NOT NULL, settled_at TEXT,
    status TEXT NOT NULL DEFAULT 'reserved', cost_usd DOUBLE PRECISION  -- status: reserved | ok | error
)""",
    "CREATE INDEX IF NOT EXISTS calls_provider_day ON calls (provider, day)",
    "CREATE INDEX IF NOT EXISTS calls_run_case ON calls (run_id, case_id, cost_usd)",
)
_CONNECTIONS: dict[tuple[int, int, str], Any] = {}


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def check_url(url: str) -> str:
    """A postgresql:// URL, or one HarnessError line; its password is registered for redaction."""
    if not url.startswith(("postgresql://", "postgres://")):
        raise HarnessError(
            f"{LEDGER_URL_ENV}={safe_url(url)!s}: use postgresql://USER[:PASSWORD]@HOST[:PORT]/DB "
            "(unset it for the SQLite ledger under runs/)"
        )
    password = urlsplit(url).password
    if password:
        from harness.infra.secrets import register_secret

        register_secret(password, LEDGER_URL_ENV)
    return url


class _Conn:
    """psycopg's connection behind the SQLite-style `execute(sql, args)` the ledger rules use."""

    def __init__(self, conn: Any):
        self._conn = conn

    def execute(self, sql: str, args: tuple = ()) -> Any:
        return self._conn.execute(sql.replace("?", "%s"), args)


class PostgresLedger(LedgerRules):
    """The budget ledger of one run in a PostgreSQL database shared by every machine."""

    def __init__(self, url: str, run_id: str, limits: Limits, *, now: Callable[[], datetime] = _utc_now):
        self.url = check_url(url)
        self._open(safe_url(url), run_id, limits, now, _SCHEMA)

    def _connect(self) -> Any:
        try:
            import psycopg
        except ImportError:
            raise HarnessError(
                f"{LEDGER_URL_ENV} is set but psycopg is not installed; pip install -e '.[postgres]'"
            ) from None
        try:
            return psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
        except psycopg.Error as exc:
            detail = one_line(exc, 300)
            raise HarnessError(
                f"cannot reach the budget ledger {self.location} ({detail}); check {LEDGER_URL_ENV} and the server"
            ) from None

    def _conn(self) -> Any:
        key = (os.getpid(), threading.get_ident(), self.url)
        conn = _CONNECTIONS.get(key)
        if conn is None or conn.closed:
            conn = _CONNECTIONS[key] = self._connect()
        return conn

    @contextmanager
    def _tx(self, write: bool = False) -> Iterator[_Conn]:
        """A short transaction; writers take the ledger's advisory lock first (released at commit or rollback)."""
        conn = self._conn()
        with conn.transaction():
            if write:
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            yield _Conn(conn)
