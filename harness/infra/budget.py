"""Cross-process LLM budget ledger: daily call quotas per provider and USD caps per run and per case.

One SQLite file (WAL, busy_timeout 30 s, on a local disk: not NFS) is shared by the controller and
every pytest-xdist worker. Each operation is its own short transaction; `reserve_call` checks and
reserves under `BEGIN IMMEDIATE`, one atomic step across processes. Connections open lazily per
process (and thread) and never cross fork, so a `Ledger` built in the controller works in workers.
`HARNESS_LEDGER_URL=postgresql://...` puts the same ledger, same SQL and same rules, in PostgreSQL for
every machine of a sharded run (harness.infra.ledger_pg; `ledger_for` chooses).

- calls_per_day: overshoot is zero. A reservation counts toward its provider's UTC-day quota whatever
  the outcome (failed calls and never-settled reservations count: providers count requests).
- usd_per_run / usd_per_case: a call's price is only known after it returns, so reservations are granted
  while spend < cap and `settle_call` adds the cost. Overshoot is at most one in-flight call per
  worker: spend <= cap + workers x (max cost of one call).
- cost_usd=None (unknown price) counts 0 USD toward the caps and is flagged (`unknown_cost_calls`,
  `summary`): the reported spend is then a lower bound.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.errors import BudgetExhausted, HarnessError

BUSY_TIMEOUT_S = 30.0
SETTLED_STATUSES = ("ok", "error")

LEDGER_URL_ENV = "HARNESS_LEDGER_URL"
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT, provider TEXT NOT NULL, day TEXT NOT NULL,
    run_id TEXT NOT NULL, case_id TEXT NOT NULL, reserved_at TEXT NOT NULL, settled_at TEXT,
    status TEXT NOT NULL DEFAULT 'reserved', cost_usd REAL  -- status: reserved | ok | error
)""",
    "CREATE INDEX IF NOT EXISTS calls_provider_day ON calls (provider, day)",
    "CREATE INDEX IF NOT EXISTS calls_run_case ON calls (run_id, case_id, cost_usd)",
)
_CALLS_ON_DAY = "SELECT COUNT(*) FROM calls WHERE provider = ? AND day = ?"
_RUN_USD = "SELECT COALESCE(SUM(cost_usd), 0) FROM calls WHERE run_id = ?"
_CASE_USD = _RUN_USD + " AND case_id = ?"
_UNKNOWN_COST = "SELECT COUNT(*) FROM calls WHERE run_id = ? AND status != 'reserved' AND cost_usd IS NULL"
_RESERVE = (
    "INSERT INTO calls (provider, day, run_id, case_id, reserved_at) VALUES (?, ?, ?, ?, ?) RETURNING id"
)
_RUN_CALLS = "SELECT COUNT(*), COALESCE(SUM(CASE WHEN status = 'reserved' THEN 1 ELSE 0 END), 0) FROM calls WHERE run_id = ?"

# One connection per (process, thread, file). A child of fork finds its parent's entries under the
# parent's pid and leaves them alone: using or closing an inherited SQLite connection is unsafe.
_CONNECTIONS: dict[tuple[int, int, str], sqlite3.Connection] = {}


def _check_limit(name: str, value: float | None) -> None:
    if value is not None and not (isinstance(value, int | float) and value >= 0 and not math.isinf(value)):
        raise HarnessError(f"budget limit {name} is {value!r}; set it to a non-negative number or remove it")


@dataclass(frozen=True)
class Limits:
    """Budget limits; None (or a provider absent from calls_per_day) means unlimited."""

    calls_per_day: dict[str, int] = field(default_factory=dict)  # provider -> max LLM calls per UTC day
    usd_per_run: float | None = None
    usd_per_case: float | None = None

    def __post_init__(self) -> None:
        for provider, quota in self.calls_per_day.items():
            _check_limit(f"calls_per_day[{provider!r}]", quota)
        _check_limit("usd_per_run", self.usd_per_run)
        _check_limit("usd_per_case", self.usd_per_case)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _one(conn: Any, sql: str, *args: Any) -> Any:
    return conn.execute(sql, args).fetchone()[0]


class LedgerRules:
    """Quotas and caps over a `calls` table, in SQL both SQLite and PostgreSQL run (`?` placeholders).

    A store supplies `_tx(write)`: a transaction whose connection has `execute(sql, args)`; a write
    transaction excludes every other writer of the ledger until it ends (check + reserve is one step).
    """

    run_id: str
    limits: Limits
    now: Callable[[], datetime]
    location: str
    """Where the ledger lives, for messages (a path, or a URL without its password)."""

    def _tx(self, write: bool = False) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _open(
        self, location: str, run_id: str, limits: Limits, now: Callable[[], datetime], schema: tuple[str, ...]
    ) -> None:
        """Set the run and limits, create the table if it is not there yet (under the writer lock)."""
        self.location, self.run_id, self.limits, self.now = location, run_id, limits, now
        with self._tx(write=True) as conn:
            for statement in schema:
                conn.execute(statement)

    def _day(self) -> str:
        now = self.now()
        return (now if now.tzinfo else now.replace(tzinfo=UTC)).astimezone(UTC).date().isoformat()

    def _refusal(
        self, conn: Any, provider: str | None, case_id: str | None, day: str
    ) -> BudgetExhausted | None:
        quota = self.limits.calls_per_day.get(provider) if provider is not None else None
        if quota is not None and (used := _one(conn, _CALLS_ON_DAY, provider, day)) >= quota:
            return BudgetExhausted(
                f"calls-per-day:{provider}",
                f"daily LLM call quota for provider {provider!r} is used up ({used}/{quota} on {day} UTC); "
                f"wait for 00:00 UTC or raise calls_per_day[{provider!r}]",
            )
        cap = self.limits.usd_per_run
        if cap is not None and (spent := _one(conn, _RUN_USD, self.run_id)) >= cap:
            return BudgetExhausted(
                "usd-per-run",
                f"run {self.run_id!r} has spent ${spent:.4f} of its ${cap:.4f} budget; "
                "raise usd_per_run to make more LLM calls",
            )
        cap = self.limits.usd_per_case if case_id is not None else None
        if cap is not None and (spent := _one(conn, _CASE_USD, self.run_id, case_id)) >= cap:
            return BudgetExhausted(
                "usd-per-case",
                f"case {case_id!r} has spent ${spent:.4f} of its ${cap:.4f} budget; "
                "raise usd_per_case to make more LLM calls for it",
            )
        return None

    def reserve_call(self, provider: str, case_id: str) -> int:
        """Atomically check every budget and reserve one call; return its id or raise BudgetExhausted."""
        day = self._day()
        with self._tx(write=True) as conn:
            refusal = self._refusal(conn, provider, case_id, day)
            if refusal is not None:
                raise refusal
            return int(_one(conn, _RESERVE, provider, day, self.run_id, case_id, self.now().isoformat()))

    def settle_call(self, call_id: int, *, cost_usd: float | None, status: str) -> None:
        """Record a reserved call's outcome; cost_usd None = unknown price (0 USD toward caps, flagged)."""
        if status not in SETTLED_STATUSES:
            raise ValueError(f"status must be one of {SETTLED_STATUSES}, not {status!r}")
        if cost_usd is not None and not (cost_usd >= 0 and not math.isinf(cost_usd)):
            raise ValueError(f"cost_usd must be a non-negative number or None, not {cost_usd!r}")
        with self._tx(write=True) as conn:
            cur = conn.execute(
                "UPDATE calls SET status = ?, cost_usd = ?, settled_at = ? WHERE id = ? AND status = 'reserved'",
                (status, cost_usd, self.now().isoformat(), call_id),
            )
            if cur.rowcount != 1:
                raise ValueError(f"call {call_id} is not a reserved (unsettled) call in {self.location}")

    def calls_today(self, provider: str) -> int:
        """Calls reserved today (UTC) for provider, by every run and process sharing the ledger."""
        with self._tx() as conn:
            return int(_one(conn, _CALLS_ON_DAY, provider, self._day()))

    def spent_usd(self, run_id: str | None = None, case_id: str | None = None) -> float:
        """Known USD spent by a run (default: this ledger's run), or by one case of it."""
        run_id = run_id or self.run_id
        with self._tx() as conn:
            return float(
                _one(conn, _RUN_USD, run_id) if case_id is None else _one(conn, _CASE_USD, run_id, case_id)
            )

    def unknown_cost_calls(self, run_id: str | None = None) -> int:
        """Settled calls of a run (default: this one) whose price was unknown (counted as 0 USD)."""
        with self._tx() as conn:
            return int(_one(conn, _UNKNOWN_COST, run_id or self.run_id))

    def exhausted(self, provider: str | None, case_id: str | None = None) -> str | None:
        """The scope that would refuse a new call now (to skip a whole case up front), else None."""
        with self._tx() as conn:
            refusal = self._refusal(conn, provider, case_id, self._day())
        return refusal.scope if refusal is not None else None

    def summary(self, run_id: str | None = None) -> dict[str, Any]:
        """Budget figures for the run manifest; calls_today counts every run sharing the ledger."""
        run_id, day = run_id or self.run_id, self._day()
        with self._tx() as conn:
            rows = conn.execute(
                "SELECT provider, COUNT(*) FROM calls WHERE day = ? GROUP BY provider", (day,)
            )
            calls_today = dict.fromkeys(self.limits.calls_per_day, 0) | {p: int(n) for p, n in rows}
            run_calls, in_flight = conn.execute(_RUN_CALLS, (run_id,)).fetchone()
            spent, unknown = float(_one(conn, _RUN_USD, run_id)), int(_one(conn, _UNKNOWN_COST, run_id))
        return {
            "day": day,
            "calls_today": dict(sorted(calls_today.items())),
            "run_calls": int(run_calls),
            "in_flight_calls": int(in_flight),
            "spent_usd": spent,
            "unknown_cost_calls": unknown,
            "limits": dataclasses.asdict(self.limits),
        }


class Ledger(LedgerRules):
    """The budget ledger of one run, in a SQLite file shared with other runs and processes.

    Picklable (it holds no connection), so it can be handed to spawned workers as well as forked ones.
    """

    def __init__(
        self, path: Path, run_id: str, limits: Limits, *, now: Callable[[], datetime] = _utc_now
    ) -> None:
        self.path = Path(path).absolute()
        self._open(str(self.path), run_id, limits, now, _SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            _switch_to_wal(conn)
            conn.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable except on power loss
        except (OSError, sqlite3.Error) as exc:
            raise HarnessError(
                f"cannot open the budget ledger {self.path} ({exc}); use a writable path on a local disk"
            ) from exc
        return conn

    def _conn(self) -> sqlite3.Connection:
        key = (os.getpid(), threading.get_ident(), str(self.path))
        conn = _CONNECTIONS.get(key)
        if conn is None:
            conn = _CONNECTIONS[key] = self._connect()
        return conn

    @contextmanager
    def _tx(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """A short transaction; writers take the write lock up front (BEGIN IMMEDIATE)."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


def _switch_to_wal(conn: sqlite3.Connection) -> None:
    """`PRAGMA journal_mode = WAL`, retried until BUSY_TIMEOUT_S. On a file still in its first journal mode the
    switch needs a lock SQLite does not wait for (busy_timeout does not apply): while another process makes the
    same switch (shards started together on a new runs folder), it answers "database is locked" at once."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def ledger_for(
    path: Path, run_id: str, limits: Limits, *, environ: dict[str, str] | os._Environ = os.environ
) -> LedgerRules:
    """The PostgreSQL ledger named by HARNESS_LEDGER_URL (one for all machines), else the SQLite file `path`."""
    url = environ.get(LEDGER_URL_ENV, "").strip()
    if not url:
        return Ledger(path, run_id, limits)
    from harness.infra.ledger_pg import PostgresLedger

    return PostgresLedger(url, run_id, limits)


def estimate_cost(
    cases: int,
    calls_per_case: float,
    tokens_in_per_call: float,
    tokens_out_per_call: float,
    price_in_per_mtok: float | None,
    price_out_per_mtok: float | None,
) -> float | None:
    """Pre-flight USD estimate of a run; None when either price is unknown."""
    if price_in_per_mtok is None or price_out_per_mtok is None:
        return None
    per_call = (tokens_in_per_call * price_in_per_mtok + tokens_out_per_call * price_out_per_mtok) / 1e6
    return cases * calls_per_case * per_call
