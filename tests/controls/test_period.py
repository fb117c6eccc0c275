"""Period budgets: ledgers (in memory, SQLite, Redis), the guard, alerts once per period."""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from agentmesh.controls.alerts import Alert, CallbackSink
from agentmesh.controls.period import (
    InMemorySpendLedger,
    PeriodBudget,
    PeriodGuard,
    RedisSpendLedger,
    SpendLedger,
    SQLiteSpendLedger,
    period_start,
)
from agentmesh.errors import BudgetExhaustedError, ConfigError

from .conftest import REDIS_URL

pytestmark = pytest.mark.timeout(60)

MONDAY_NOON = datetime(2025, 3, 3, 12, tzinfo=UTC).timestamp()
DAY = 86_400


class Clock:
    def __init__(self, now: float = MONDAY_NOON) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# -- periods ----------------------------------------------------------------------------------


def test_period_start_is_midnight_or_monday_in_the_time_zone() -> None:
    wednesday = datetime(2025, 3, 5, 1, 30, tzinfo=UTC).timestamp()
    assert period_start("day", wednesday) == datetime(2025, 3, 5, tzinfo=UTC).timestamp()
    assert period_start("week", wednesday) == datetime(2025, 3, 3, tzinfo=UTC).timestamp()
    # 01:30 UTC is still Tuesday evening in New York.
    ny = ZoneInfo("America/New_York")
    assert period_start("day", wednesday, ny) == datetime(2025, 3, 4, tzinfo=ny).timestamp()


def test_period_budget_validation() -> None:
    for bad in (
        {},
        {"cost_usd": -1.0},
        {"cost_usd": 1.0, "period": "month"},
        {"cost_usd": 1.0, "alert_at": (0.5, 1.0)},
    ):
        with pytest.raises(ConfigError):
            PeriodBudget(**bad)  # type: ignore[arg-type]


# -- ledger contract ------------------------------------------------------------------------------


class SpendLedgerContract:
    """What every SpendLedger backend must do."""

    @pytest.fixture
    def ledger(self) -> SpendLedger:
        raise NotImplementedError

    def test_is_a_spend_ledger(self, ledger: SpendLedger) -> None:
        assert isinstance(ledger, SpendLedger)

    def test_add_returns_the_new_total(self, ledger: SpendLedger) -> None:
        assert ledger.total("k", 100) == 0
        assert ledger.add("k", 100, 5) == 5
        assert ledger.add("k", 100, 7) == 12
        assert ledger.add("k", 100, -2) == 10
        assert ledger.total("k", 100) == 10

    def test_keys_and_periods_are_separate(self, ledger: SpendLedger) -> None:
        ledger.add("a", 100, 1)
        ledger.add("a", 200, 2)
        ledger.add("b", 100, 3)
        assert (ledger.total("a", 100), ledger.total("a", 200), ledger.total("b", 100)) == (1, 2, 3)

    def test_large_amounts_are_exact(self, ledger: SpendLedger) -> None:
        big = 5_000_000 * 10**9  # five million dollars in nano-dollars
        ledger.add("k", 1, big)
        assert ledger.add("k", 1, 1) == big + 1

    def test_concurrent_adds_lose_nothing(self, ledger: SpendLedger) -> None:
        totals: list[int] = []

        def adder() -> None:
            totals.extend(ledger.add("k", 1, 1) for _ in range(50))

        threads = [threading.Thread(target=adder) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert ledger.total("k", 1) == 200
        assert sorted(totals) == list(range(1, 201))  # every add saw its own total


class TestInMemoryLedger(SpendLedgerContract):
    @pytest.fixture
    def ledger(self) -> SpendLedger:
        return InMemorySpendLedger()


class TestSQLiteLedger(SpendLedgerContract):
    @pytest.fixture
    def ledger(self, tmp_path: Path) -> Iterator[SpendLedger]:
        ledger = SQLiteSpendLedger(tmp_path / "spend.sqlite")
        yield ledger
        ledger.close()

    def test_default_file_is_in_the_data_folder(self) -> None:
        ledger = SQLiteSpendLedger()
        assert ledger.path == Path(os.environ["AGENTMESH_DATA_DIR"]) / "controls.sqlite"
        ledger.add("k", 1, 3)
        ledger.close()
        again = SQLiteSpendLedger()
        assert again.total("k", 1) == 3
        again.close()


class TestRedisLedger(SpendLedgerContract):
    @pytest.fixture
    def ledger(self, redis_client: Any, prefix: str) -> SpendLedger:
        return RedisSpendLedger(redis_client, prefix=prefix)

    def test_counters_expire_after_the_retention(self, redis_client: Any, prefix: str) -> None:
        RedisSpendLedger(REDIS_URL, prefix=prefix, retention_s=3600).add("k", 1, 1)
        ttl = redis_client.ttl(f"{prefix}k:1")
        assert 3000 < ttl <= 3600


# -- guard ----------------------------------------------------------------------------------------


@pytest.fixture
def alerts() -> list[Alert]:
    return []


def guard(alerts: list[Alert], *budgets: PeriodBudget, **kw: Any) -> PeriodGuard:
    kw.setdefault("ledger", InMemorySpendLedger())
    kw.setdefault("clock", Clock())
    return PeriodGuard(budgets, sink=CallbackSink(alerts.append), **kw)


def spend(g: PeriodGuard, cost_usd: float = 0.0, tokens: int = 0) -> None:
    g.settle(g.reserve(cost_usd=cost_usd, tokens=tokens), cost_usd=cost_usd, tokens=tokens)


def test_alerts_fire_once_each_at_50_and_80_percent(alerts: list[Alert]) -> None:
    g = guard(alerts, PeriodBudget(period="day", cost_usd=1.0))
    for _ in range(4):
        spend(g, 0.1)
    assert alerts == []
    spend(g, 0.1)  # exactly 50%
    assert [(a.kind, a.scope, a.value) for a in alerts] == [("period_threshold", "period:day", 0.5)]
    for _ in range(4):
        spend(g, 0.1)
    assert [a.details["threshold"] for a in alerts] == [0.5, 0.8]
    assert alerts[1].value == pytest.approx(0.8)
    assert "80%" in alerts[1].message


def test_one_large_call_crossing_both_thresholds_sends_both(alerts: list[Alert]) -> None:
    g = guard(alerts, PeriodBudget(tokens=1000))
    spend(g, tokens=900)
    assert [(a.details["threshold"], a.details["limit"]) for a in alerts] == [
        (0.5, "tokens"),
        (0.8, "tokens"),
    ]


def test_hard_stop_at_100_percent(alerts: list[Alert]) -> None:
    g = guard(alerts, PeriodBudget(cost_usd=1.0), key="invoices")
    for _ in range(10):
        spend(g, 0.1)  # 0.1 ten times is not 1.0 in floats; the ledger counts exactly
    assert alerts[-1].kind == "period_exhausted"
    with pytest.raises(BudgetExhaustedError) as info:
        g.reserve(cost_usd=0.000001, run_id="r9")
    err = info.value
    assert (err.scope, err.limit, err.cap, err.run_id) == (
        "period:day:invoices",
        "cost_usd",
        1.0,
        "r9",
    )
    assert err.needed == pytest.approx(1.000001)
    with pytest.raises(BudgetExhaustedError):
        g.check()
    assert [a.kind for a in alerts].count("period_exhausted") == 1


def test_a_refused_reservation_holds_nothing(alerts: list[Alert]) -> None:
    g = guard(alerts, PeriodBudget(cost_usd=1.0, tokens=100))
    g.reserve(cost_usd=0.5, tokens=10)
    with pytest.raises(BudgetExhaustedError) as info:
        g.reserve(cost_usd=0.1, tokens=91)
    assert info.value.limit == "tokens"
    assert g.snapshot()["period:day"]["committed"] == {"cost_usd": 0.5, "tokens": 10}
    assert [a.kind for a in alerts] == ["period_exhausted"]  # runs are now being refused
    g.reserve(cost_usd=0.5, tokens=90)  # exactly to the caps


def test_in_flight_reservations_count_against_the_cap(alerts: list[Alert]) -> None:
    g = guard(alerts, PeriodBudget(cost_usd=1.0))
    held = g.reserve(cost_usd=0.7)
    with pytest.raises(BudgetExhaustedError):
        g.reserve(cost_usd=0.4)
    g.settle(held, cost_usd=0.2, tokens=0)  # used less than the worst case
    g.reserve(cost_usd=0.8)
    g.release(held)  # already settled: harmless
    with pytest.raises(ValueError, match="not open"):
        g.settle(held, cost_usd=0.2, tokens=0)
    figures = g.snapshot()["period:day"]
    assert (figures["spent"]["cost_usd"], figures["committed"]["cost_usd"]) == (0.2, 1.0)


def test_release_returns_the_hold(alerts: list[Alert]) -> None:
    g = guard(alerts, PeriodBudget(cost_usd=1.0))
    g.release(g.reserve(cost_usd=1.0))
    spend(g, 1.0)
    assert g.snapshot()["period:day"]["spent"]["cost_usd"] == 1.0


def test_a_new_day_starts_from_zero_and_alerts_again(alerts: list[Alert]) -> None:
    clock = Clock()
    g = guard(alerts, PeriodBudget(cost_usd=1.0), clock=clock)
    held = g.reserve(cost_usd=0.0)  # a free call, opened on Monday
    spend(g, 1.0)
    with pytest.raises(BudgetExhaustedError):
        g.check()
    clock.now += DAY
    g.check()
    spend(g, 0.6)
    g.settle(held, cost_usd=0.0, tokens=0)
    assert [a.kind for a in alerts] == ["period_threshold"] * 2 + ["period_exhausted"] + [
        "period_threshold"
    ]
    assert g.snapshot()["period:day"]["spent"]["cost_usd"] == 0.6
    assert alerts[-1].details["period_start"] == "2025-03-04T00:00:00+00:00"


def test_a_call_is_settled_in_the_period_it_was_reserved_in(alerts: list[Alert]) -> None:
    clock = Clock(MONDAY_NOON + 11.9 * 3600)  # just before midnight
    g = guard(alerts, PeriodBudget(cost_usd=1.0), clock=clock)
    held = g.reserve(cost_usd=0.9)
    clock.now += 3600
    g.reserve(cost_usd=1.0)  # the new day has its whole budget
    g.settle(held, cost_usd=0.5, tokens=0)
    clock.now -= 3600
    assert g.snapshot()["period:day"]["spent"]["cost_usd"] == 0.5


def test_day_and_week_budgets_together(alerts: list[Alert]) -> None:
    clock = Clock()
    g = guard(
        alerts,
        PeriodBudget(period="day", cost_usd=1.0, alert_at=()),
        PeriodBudget(period="week", cost_usd=2.5),
        clock=clock,
    )
    for _ in range(2):
        spend(g, 1.0)
        clock.now += DAY
    with pytest.raises(BudgetExhaustedError) as info:
        g.reserve(cost_usd=0.6)
    assert info.value.scope == "period:week"
    # The refused call took nothing from the day either.
    assert g.snapshot()["period:day"]["committed"]["cost_usd"] == 0.0
    spend(g, 0.5)
    assert [(a.scope, a.kind, a.details["threshold"]) for a in alerts] == [
        ("period:day", "period_exhausted", 1.0),  # Monday
        ("period:day", "period_exhausted", 1.0),  # Tuesday
        ("period:week", "period_threshold", 0.5),
        ("period:week", "period_threshold", 0.8),
        ("period:week", "period_exhausted", 1.0),  # the refusal
    ]
    clock.now += 7 * DAY
    spend(g, 1.0)


def test_record_charges_unreserved_spend(alerts: list[Alert]) -> None:
    g = guard(alerts, PeriodBudget(tokens=100))
    g.record(tokens=60, cost_usd=0.0)
    assert g.snapshot()["period:day"]["committed"]["tokens"] == 60
    assert len(alerts) == 1
    with pytest.raises(BudgetExhaustedError):
        g.reserve(tokens=41)


def test_keys_have_separate_totals(alerts: list[Alert]) -> None:
    ledger = InMemorySpendLedger()
    a = guard(alerts, PeriodBudget(cost_usd=1.0), ledger=ledger, key="tenant-a")
    b = guard(alerts, PeriodBudget(cost_usd=1.0), ledger=ledger, key="tenant-b")
    spend(a, 1.0)
    b.check()
    with pytest.raises(BudgetExhaustedError):
        a.check()


def test_a_ledger_outage_fails_open_with_a_warning(
    alerts: list[Alert], caplog: pytest.LogCaptureFixture
) -> None:
    class Down:
        def add(self, key: str, period_start: int, amount: int) -> int:
            raise ConnectionError("ledger down")

        def total(self, key: str, period_start: int) -> int:
            raise ConnectionError("ledger down")

    g = guard(alerts, PeriodBudget(cost_usd=0.0), ledger=Down())
    with caplog.at_level(logging.WARNING):
        spend(g, 5.0)
        g.check()
    assert "ledger down" in caplog.text
    assert alerts == []


# -- across processes -----------------------------------------------------------------------------

CALLS_PER_PROCESS = 70


def _spend_in_child(backend: str, target: str, barrier: Any, results: Any) -> None:
    ledger: SpendLedger = (
        SQLiteSpendLedger(target)
        if backend == "sqlite"
        else RedisSpendLedger(REDIS_URL, prefix=target)
    )
    seen: list[Alert] = []
    g = PeriodGuard(
        PeriodBudget(cost_usd=1.0), ledger=ledger, sink=CallbackSink(seen.append), clock=Clock()
    )
    refused = 0
    barrier.wait()
    for _ in range(CALLS_PER_PROCESS):
        try:
            held = g.reserve(cost_usd=0.01)
        except BudgetExhaustedError:
            refused += 1
            continue
        g.settle(held, cost_usd=0.01, tokens=0)
    results.put((refused, [(a.kind, a.details["threshold"]) for a in seen]))


def _run_two_processes(backend: str, target: str) -> tuple[list[int], list[tuple[str, float]]]:
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(target=_spend_in_child, args=(backend, target, barrier, results))
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    return [o[0] for o in outcomes], sorted(a for o in outcomes for a in o[1])


EXPECTED_ALERTS = [("period_exhausted", 1.0), ("period_threshold", 0.5), ("period_threshold", 0.8)]


def test_two_processes_share_a_sqlite_period_and_alert_once(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    refused, sent = _run_two_processes("sqlite", str(path))
    assert sent == EXPECTED_ALERTS
    assert sum(refused) == 2 * CALLS_PER_PROCESS - 100  # exactly $1.00 of $0.01 calls got through
    ledger = SQLiteSpendLedger(path)
    g = PeriodGuard(PeriodBudget(cost_usd=1.0), ledger=ledger, clock=Clock())
    assert g.snapshot()["period:day"]["spent"] == {"cost_usd": 1.0}
    assert g.snapshot()["period:day"]["committed"] == {"cost_usd": 1.0}
    ledger.close()


def test_two_processes_share_a_redis_period_and_alert_once(prefix: str) -> None:
    refused, sent = _run_two_processes("redis", prefix)
    assert sent == EXPECTED_ALERTS
    assert sum(refused) == 2 * CALLS_PER_PROCESS - 100
    g = PeriodGuard(
        PeriodBudget(cost_usd=1.0), ledger=RedisSpendLedger(REDIS_URL, prefix=prefix), clock=Clock()
    )
    assert g.snapshot()["period:day"]["spent"] == {"cost_usd": 1.0}
