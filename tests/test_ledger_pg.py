"""One budget ledger for all machines: the same quotas and caps in PostgreSQL (HARNESS_LEDGER_URL),
against a real server started for these tests (tests/postgres_server.py)."""

from __future__ import annotations

import multiprocessing as mp
from datetime import UTC, datetime, timedelta

import pytest

from harness.errors import BudgetExhausted, HarnessError
from harness.infra.budget import Ledger, Limits, ledger_for
from tests.postgres_server import ServerUnavailable, postgres_server

psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed (pip install -e '.[dev]')")


@pytest.fixture(scope="module")
def server_url():
    try:
        with postgres_server() as url:
            yield url
    except ServerUnavailable as e:
        pytest.skip(str(e))


@pytest.fixture
def pg_url(server_url):
    """A clean ledger table for each test (one server for the module)."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS calls")
    return server_url


def _reserve_many(url: str, limits: Limits, barrier, queue, attempts: int, worker: int) -> None:
    # A separate interpreter (spawn) that knows only the URL, as a shard on another machine would.
    from harness.infra.budget import ledger_for

    led = ledger_for(None, f"shard-{worker}", limits, environ={"HARNESS_LEDGER_URL": url})
    granted = refused = 0
    errors: list[str] = []
    barrier.wait()
    for i in range(attempts):
        try:
            led.reserve_call("chutes", f"case-{worker}-{i}")
            granted += 1
        except BudgetExhausted:
            refused += 1
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
    queue.put((granted, refused, errors))


def test_two_processes_share_one_postgres_quota_exactly(pg_url):
    quota, attempts = 37, 60
    limits = Limits(calls_per_day={"chutes": quota})
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(target=_reserve_many, args=(pg_url, limits, barrier, queue, attempts, w)) for w in (1, 2)
    ]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert [e for *_, errs in results for e in errs] == []
    assert sum(r[0] for r in results) == quota, results
    assert sum(r[1] for r in results) == 2 * attempts - quota
    assert all(r[0] > 0 for r in results), f"one process got every call: {results}"
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT run_id, COUNT(*) FROM calls GROUP BY run_id ORDER BY run_id").fetchall()
    assert sum(n for _, n in rows) == quota and {r for r, _ in rows} == {"shard-1", "shard-2"}


def test_postgres_ledger_keeps_the_sqlite_rules(pg_url, tmp_path):
    """The same sequence of operations gives the same answers in both stores."""
    clock_t = [datetime(2025, 3, 1, 23, 59, 59, tzinfo=UTC)]
    limits = Limits(calls_per_day={"openai": 3}, usd_per_run=1.0, usd_per_case=0.5)
    stores = {
        "sqlite": Ledger(tmp_path / "l.sqlite", "run-1", limits, now=lambda: clock_t[0]),
        "postgres": ledger_for(tmp_path, "run-1", limits, environ={"HARNESS_LEDGER_URL": pg_url}),
    }
    stores["postgres"].now = lambda: clock_t[0]
    seen = {}
    for name, led in stores.items():
        clock_t[0] = datetime(2025, 3, 1, 23, 59, 59, tzinfo=UTC)
        trace: list[object] = []
        led.settle_call(led.reserve_call("openai", "a"), cost_usd=0.3, status="ok")
        led.settle_call(led.reserve_call("openai", "a"), cost_usd=None, status="error")
        trace.append(led.exhausted("openai", "a"))  # case a: 0.3 spent of 0.5
        led.settle_call(led.reserve_call("openai", "a"), cost_usd=0.3, status="ok")
        trace += [led.exhausted("openai", "a"), led.exhausted(None, "a"), led.exhausted("other", "b")]
        with pytest.raises(BudgetExhausted) as exc:
            led.reserve_call("openai", "b")
        trace.append(exc.value.scope)
        clock_t[0] += timedelta(seconds=2)  # next UTC day: the quota resets, the USD spent stays
        trace += [led.calls_today("openai"), led.exhausted("openai", "b")]
        pending = led.reserve_call("openai", "b")
        with pytest.raises(ValueError):
            led.settle_call(pending + 1000, cost_usd=0.0, status="ok")
        summary = led.summary()
        trace += [
            round(led.spent_usd(), 6),
            led.unknown_cost_calls(),
            summary["run_calls"],
            summary["in_flight_calls"],
        ]
        trace.append(summary["calls_today"])
        seen[name] = trace
    assert seen["postgres"] == seen["sqlite"]
    assert seen["postgres"][:5] == [
        None,
        "calls-per-day:openai",
        "usd-per-case",
        None,
        "calls-per-day:openai",
    ]


def test_usd_cap_holds_across_machines(pg_url):
    """A run's USD cap counts what every machine's shard spent under the same run id."""
    env = {"HARNESS_LEDGER_URL": pg_url}
    a = ledger_for(None, "run-x", Limits(usd_per_run=1.0), environ=env)
    b = ledger_for(None, "run-x", Limits(usd_per_run=1.0), environ=env)
    a.settle_call(a.reserve_call("openrouter", "c1"), cost_usd=0.6, status="ok")
    assert b.exhausted("openrouter", "c2") is None
    b.settle_call(b.reserve_call("openrouter", "c2"), cost_usd=0.5, status="ok")
    with pytest.raises(BudgetExhausted) as exc:
        a.reserve_call("openrouter", "c3")
    assert exc.value.scope == "usd-per-run" and a.spent_usd() == pytest.approx(1.1)


def test_sqlite_stays_the_default(tmp_path):
    led = ledger_for(tmp_path / "ledger.sqlite", "run-1", Limits(), environ={})
    assert isinstance(led, Ledger) and led.path == (tmp_path / "ledger.sqlite").absolute()


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("mysql://u:hunter2secret@h/db", "use postgresql://"),
        ("postgresql://u:hunter2secret@127.0.0.1:1/nope", "cannot reach the budget ledger"),
    ],
)
def test_bad_ledger_url_is_one_line_without_the_password(url, needle):
    with pytest.raises(HarnessError) as exc:
        ledger_for(None, "run-1", Limits(), environ={"HARNESS_LEDGER_URL": url})
    message = str(exc.value)
    assert needle in message and "\n" not in message
    assert "hunter2secret" not in message and "HARNESS_LEDGER_URL" in message
