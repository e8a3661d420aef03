"""The cross-process budget ledger: quotas, USD caps, races between processes, day rollover."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from harness.errors import BudgetExhausted, HarnessError
from harness.infra.budget import Ledger, Limits, estimate_cost


class Clock:
    def __init__(self, start: datetime) -> None:
        self.t = start

    def __call__(self) -> datetime:
        return self.t


def ledger(tmp_path: Path, limits: Limits, run_id: str = "run-1", **kw) -> Ledger:
    return Ledger(tmp_path / "budget.sqlite", run_id, limits, **kw)


def test_daily_quota_is_exact_in_one_process(tmp_path):
    led = ledger(tmp_path, Limits(calls_per_day={"openai": 5}))
    ids = [led.reserve_call("openai", f"case-{i}") for i in range(5)]
    assert len(set(ids)) == 5
    with pytest.raises(BudgetExhausted) as exc:
        led.reserve_call("openai", "case-9")
    assert exc.value.scope == "calls-per-day:openai"
    assert "\n" not in str(exc.value) and "calls_per_day" in str(exc.value)
    assert led.calls_today("openai") == 5
    # A failed call still counts; other providers have their own (here: no) quota.
    led.settle_call(ids[0], cost_usd=0.0, status="error")
    assert led.calls_today("openai") == 5
    assert led.reserve_call("anthropic", "case-9") > 0
    assert led.exhausted("openai") == "calls-per-day:openai"
    assert led.exhausted("anthropic") is None


def _race_worker(led, barrier, queue, attempts: int, parent_conn=None) -> None:
    reserved = refused = 0
    errors: list[str] = []
    fresh = led._conn() is not parent_conn
    barrier.wait()
    for i in range(attempts):
        try:
            led.reserve_call("openai", f"case-{i}")
            reserved += 1
        except BudgetExhausted:
            refused += 1
        except Exception as exc:  # e.g. sqlite3.OperationalError: database is locked
            errors.append(f"{type(exc).__name__}: {exc}")
    queue.put((reserved, refused, errors, fresh))


def _spawn_race_worker(path, limits, barrier, queue, attempts: int) -> None:
    # Built in the worker from the path alone, on a file nobody has initialised yet.
    _race_worker(Ledger(path, "run-1", limits), barrier, queue, attempts)


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_quota_race_between_processes_is_exact(tmp_path, start_method):
    n, attempts, quota = 4, 50, 60
    limits = Limits(calls_per_day={"openai": quota})
    ctx = mp.get_context(start_method)
    barrier, queue = ctx.Barrier(n), ctx.Queue()
    path = tmp_path / "budget.sqlite"
    if start_method == "fork":
        led = Ledger(path, "run-1", limits)
        assert led.calls_today("openai") == 0  # the parent holds an open connection across the fork
        args = (led, barrier, queue, attempts, led._conn())
        procs = [ctx.Process(target=_race_worker, args=args) for _ in range(n)]
    else:
        procs = [
            ctx.Process(target=_spawn_race_worker, args=(path, limits, barrier, queue, attempts))
            for _ in range(n)
        ]
    for p in procs:
        p.start()
    results = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert [e for _, _, errs, _ in results for e in errs] == []
    assert all(fresh for *_, fresh in results), "a child reused the connection it inherited"
    assert sum(r[0] for r in results) == quota
    assert sum(r[1] for r in results) == n * attempts - quota
    check = Ledger(path, "run-1", limits)
    assert check.calls_today("openai") == quota
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_usd_per_run_cap_refuses_and_bounds_overshoot(tmp_path):
    cap, call_cost, workers = 1.0, 0.3, 4
    path = tmp_path / "budget.sqlite"
    pool = [Ledger(path, "run-1", Limits(usd_per_run=cap)) for _ in range(workers)]
    refused = 0
    for _round in range(10):
        in_flight = []
        for w, led in enumerate(pool):  # every worker reserves before any settles: worst case
            try:
                in_flight.append((led, led.reserve_call("openai", f"case-{w}")))
            except BudgetExhausted as exc:
                assert exc.scope == "usd-per-run"
                refused += 1
        for led, call_id in in_flight:
            led.settle_call(call_id, cost_usd=call_cost, status="ok")
        if not in_flight:
            break
    assert refused == workers, "the run cap never refused a call"
    spent = pool[0].spent_usd()
    assert cap <= spent <= cap + workers * call_cost
    with pytest.raises(BudgetExhausted) as exc:
        pool[0].reserve_call("anthropic", "case-new")
    assert exc.value.scope == "usd-per-run"
    assert pool[0].exhausted(None) == "usd-per-run"
    # Another run sharing the file has its own USD budget.
    other = Ledger(path, "run-2", Limits(usd_per_run=cap))
    assert other.exhausted(None) is None and other.spent_usd() == 0.0


def test_usd_per_case_cap_isolates_cases(tmp_path):
    led = ledger(tmp_path, Limits(usd_per_case=0.5))
    led.settle_call(led.reserve_call("openai", "a"), cost_usd=0.6, status="ok")
    with pytest.raises(BudgetExhausted) as exc:
        led.reserve_call("openai", "a")
    assert exc.value.scope == "usd-per-case"
    assert led.exhausted("openai", "a") == "usd-per-case"
    assert led.exhausted("openai", "b") is None
    led.settle_call(led.reserve_call("openai", "b"), cost_usd=0.1, status="ok")
    assert led.spent_usd(case_id="a") == pytest.approx(0.6)
    assert led.spent_usd(case_id="b") == pytest.approx(0.1)
    assert led.spent_usd() == pytest.approx(0.7)


def test_unknown_cost_counts_zero_and_is_flagged(tmp_path):
    led = ledger(tmp_path, Limits(usd_per_run=0.01))
    for _ in range(3):
        led.settle_call(led.reserve_call("local", "a"), cost_usd=None, status="ok")
    pending = led.reserve_call("local", "a")  # not settled yet: not flagged
    assert led.spent_usd() == 0.0
    assert led.unknown_cost_calls() == 3
    assert led.exhausted("local", "a") is None
    led.settle_call(pending, cost_usd=0.02, status="ok")
    assert led.unknown_cost_calls("run-1") == 3
    assert led.exhausted("local", "a") == "usd-per-run"
    with pytest.raises(ValueError):
        led.settle_call(pending, cost_usd=0.0, status="ok")  # settled twice


def test_day_rollover_resets_daily_quota(tmp_path):
    clock = Clock(datetime(2025, 3, 1, 23, 59, 59, tzinfo=UTC))
    led = ledger(tmp_path, Limits(calls_per_day={"openai": 2}), now=clock)
    led.reserve_call("openai", "a")
    led.reserve_call("openai", "a")
    assert led.exhausted("openai") == "calls-per-day:openai"
    clock.t += timedelta(seconds=2)
    assert led.calls_today("openai") == 0
    assert led.exhausted("openai") is None
    led.reserve_call("openai", "a")
    assert led.summary()["day"] == "2025-03-02"
    # The day is the UTC day, whatever the clock's zone: 01:00+02:00 is still 2025-03-01 23:00 UTC.
    clock.t = datetime(2025, 3, 2, 1, 0, tzinfo=timezone(timedelta(hours=2)))
    assert led.calls_today("openai") == 2


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"calls_per_day": {"openai": -1}}, "calls_per_day['openai']"),
        ({"usd_per_run": -0.5}, "usd_per_run"),
        ({"usd_per_case": -1.0}, "usd_per_case"),
        ({"usd_per_run": float("nan")}, "usd_per_run"),
    ],
)
def test_negative_limits_are_a_one_line_harness_error(kwargs, field):
    with pytest.raises(HarnessError) as exc:
        Limits(**kwargs)
    message = str(exc.value)
    assert field in message and "\n" not in message


def test_exhausted_scopes_in_order(tmp_path):
    led = ledger(tmp_path, Limits(calls_per_day={"openai": 1}, usd_per_run=1.0, usd_per_case=0.5))
    assert led.exhausted("openai", "a") is None
    led.settle_call(led.reserve_call("openai", "a"), cost_usd=0.5, status="ok")
    assert led.exhausted("openai", "a") == "calls-per-day:openai"
    assert led.exhausted(None, "a") == "usd-per-case"
    assert led.exhausted("anthropic", "b") is None
    led.settle_call(led.reserve_call("anthropic", "b"), cost_usd=0.5, status="ok")
    assert led.exhausted("anthropic", "c") == "usd-per-run"


def test_summary_for_the_manifest(tmp_path):
    led = ledger(tmp_path, Limits(calls_per_day={"openai": 10, "anthropic": 5}))
    led.settle_call(led.reserve_call("openai", "a"), cost_usd=0.25, status="ok")
    led.settle_call(led.reserve_call("openai", "a"), cost_usd=None, status="error")
    led.reserve_call("openai", "b")
    Ledger(led.path, "run-0", led.limits).reserve_call("openai", "z")  # another run, same quota
    summary = led.summary()
    assert set(summary) == {
        "day",
        "calls_today",
        "run_calls",
        "in_flight_calls",
        "spent_usd",
        "unknown_cost_calls",
        "limits",
    }
    assert summary["calls_today"] == {"anthropic": 0, "openai": 4}
    assert summary["run_calls"] == 3 and summary["in_flight_calls"] == 1
    assert summary["spent_usd"] == pytest.approx(0.25)
    assert summary["unknown_cost_calls"] == 1
    assert summary["limits"]["calls_per_day"] == {"openai": 10, "anthropic": 5}
    assert led.summary("run-0")["run_calls"] == 1


def test_estimate_cost_known_and_unknown_prices():
    # 10 cases x 20 calls x (10k in x $3/Mtok + 1k out x $15/Mtok) = 200 x $0.045 = $9.
    assert estimate_cost(10, 20, 10_000, 1_000, 3.0, 15.0) == pytest.approx(9.0)
    assert estimate_cost(10, 20, 10_000, 1_000, None, 15.0) is None
    assert estimate_cost(10, 20, 10_000, 1_000, 3.0, None) is None
    assert estimate_cost(0, 20, 10_000, 1_000, 3.0, 15.0) == 0.0


def test_ledger_pickles_without_its_connection(tmp_path):
    import pickle

    led = ledger(tmp_path, Limits(calls_per_day={"openai": 1}))
    led.reserve_call("openai", "a")
    clone = pickle.loads(pickle.dumps(led))
    assert clone.exhausted("openai") == "calls-per-day:openai"


def _open_fresh_ledgers(paths: list[Path], barrier, queue) -> None:
    errors: list[str] = []
    for path in paths:
        barrier.wait()  # every process opens the same new file at once
        try:
            led = Ledger(path, "run-1", Limits())
            led.settle_call(led.reserve_call("openai", "case-1"), cost_usd=0.0, status="ok")
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
    queue.put(errors)


def test_processes_opening_a_new_ledger_at_once_all_get_it(tmp_path):
    """Two runs started together on a new runs folder (shards on one machine), or workers that each build the
    ledger, open one new file at the same moment. Switching a new file to WAL needs a lock SQLite does not wait
    for (busy_timeout does not apply), so the losers were told "database is locked" at once."""
    n, files = 8, 30
    ctx = mp.get_context("fork")
    barrier, queue = ctx.Barrier(n), ctx.Queue()
    paths = [tmp_path / f"budget-{i}.sqlite" for i in range(files)]
    procs = [ctx.Process(target=_open_fresh_ledgers, args=(paths, barrier, queue)) for _ in range(n)]
    for p in procs:
        p.start()
    errors = [e for _ in procs for e in queue.get(timeout=120)]
    for p in procs:
        p.join(timeout=60)
    assert errors == []
    for path in paths:
        assert Ledger(path, "run-1", Limits()).calls_today("openai") == n
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
