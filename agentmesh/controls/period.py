"""Spend caps per day or week, across runs and processes, with threshold alerts.

A :class:`PeriodBudget` caps cost and/or tokens per calendar day or week (in a
chosen time zone, UTC by default). A :class:`PeriodGuard` charges calls against
it through a :class:`SpendLedger`, a counter store whose one primitive is an
atomic add that returns the new total. Two counters are kept per cap:

* *committed*: settled spend plus calls in flight. :meth:`PeriodGuard.reserve`
  adds the worst case and takes it back if the total passed the cap, so
  concurrent processes can never commit more than the cap between them;
* *spent*: settled spend only. It only grows, so exactly one add crosses each
  alert threshold; that add's process claims the alert in the ledger too
  (first to add 1 to the claim counter), and sends it.

Amounts are stored as integers (tokens, nano-dollars), so totals are exact.
If the ledger cannot be reached the guard *fails open*: it logs a warning and
lets the call through (each run's own :class:`~agentmesh.controls.budget.Envelope`
still bounds it); losing the ledger must not take the service down.
"""

from __future__ import annotations

import itertools
import logging
import math
import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from agentmesh.controls.alerts import Alert, AlertSink, LogSink, fanout
from agentmesh.errors import BudgetExhaustedError, ConfigError, MissingExtraError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = [
    "InMemorySpendLedger",
    "PeriodBudget",
    "PeriodGuard",
    "PeriodReservation",
    "RedisSpendLedger",
    "SQLiteSpendLedger",
    "SpendLedger",
    "period_start",
]

logger = logging.getLogger(__name__)

Period = Literal["day", "week"]
_NANO = 10**9
_LIMITS = ("cost_usd", "tokens")


@dataclass(frozen=True, kw_only=True)
class PeriodBudget:
    """Caps on spend per calendar period, shared by every run that uses the same guard key.

    Attributes:
        period: ``"day"`` or ``"week"`` (weeks start on Monday).
        cost_usd: Cost cap per period in US dollars, or ``None``.
        tokens: Token cap per period, or ``None``.
        alert_at: Fractions of a cap at which to alert, once per period each.
        tz: The time zone whose midnight starts a period.

    Raises:
        ConfigError: Unknown period, no cap, a negative cap or a threshold outside (0, 1).
    """

    period: Period = "day"
    cost_usd: float | None = None
    tokens: int | None = None
    alert_at: tuple[float, ...] = (0.5, 0.8)
    tz: tzinfo = UTC

    def __post_init__(self) -> None:
        if self.period not in ("day", "week"):
            raise ConfigError(f"PeriodBudget.period must be 'day' or 'week', got {self.period!r}")
        if self.cost_usd is None and self.tokens is None:
            raise ConfigError("PeriodBudget needs a cost_usd cap, a tokens cap, or both")
        for cap in (self.cost_usd, self.tokens):
            if cap is not None and not cap >= 0:
                raise ConfigError(f"PeriodBudget caps must be zero or more, got {cap!r}")
        for at in self.alert_at:
            if not 0 < at < 1:
                raise ConfigError(f"PeriodBudget.alert_at values must be in (0, 1), got {at!r}")

    def caps(self) -> dict[str, int]:
        """The caps in ledger units: ``cost_usd`` in nano-dollars, ``tokens`` as is."""
        caps = {}
        if self.cost_usd is not None:
            caps["cost_usd"] = round(self.cost_usd * _NANO)
        if self.tokens is not None:
            caps["tokens"] = self.tokens
        return caps


def period_start(period: Period, now: float, tz: tzinfo = UTC) -> int:
    """Unix time at which the day or week containing ``now`` began in ``tz``."""
    day = datetime.fromtimestamp(now, tz).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "week":
        day -= timedelta(days=day.weekday())
    return int(day.timestamp())


# -- ledgers -----------------------------------------------------------------------------------


@runtime_checkable
class SpendLedger(Protocol):
    """Integer counters per (key, period start), safe to share between threads.

    A backend shared between processes makes :meth:`add` atomic across them.
    """

    def add(self, key: str, period_start: int, amount: int) -> int:
        """Add ``amount`` (may be negative) and return the new total, atomically."""
        ...

    def total(self, key: str, period_start: int) -> int:
        """The current total (0 if never added to)."""
        ...


class InMemorySpendLedger:
    """A ledger for one process; the reference implementation."""

    def __init__(self) -> None:
        self._totals: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    def add(self, key: str, period_start: int, amount: int) -> int:
        """Add ``amount`` and return the new total."""
        with self._lock:
            total = self._totals.get((key, period_start), 0) + amount
            self._totals[key, period_start] = total
            return total

    def total(self, key: str, period_start: int) -> int:
        """The current total."""
        with self._lock:
            return self._totals.get((key, period_start), 0)


class SQLiteSpendLedger:
    """A ledger in a SQLite file, shared by every process on the machine.

    Each add is one ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``
    statement, a single write transaction, so adds from several processes are
    serialized by SQLite's lock. Open one ledger per process.

    Args:
        path: The database file; by default ``controls.sqlite`` in the data folder.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else _default_db_path()
        self._conn = _open_db(self.path)
        self._lock = threading.Lock()
        with self._lock:
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS agentmesh_spend ("
                " key TEXT NOT NULL, period_start INTEGER NOT NULL, total INTEGER NOT NULL,"
                " PRIMARY KEY (key, period_start))"
            )

    def add(self, key: str, period_start: int, amount: int) -> int:
        """Add ``amount`` and return the new total."""
        with self._lock:
            rows = self._conn.execute(
                "INSERT INTO agentmesh_spend (key, period_start, total) VALUES (?, ?, ?)"
                " ON CONFLICT (key, period_start) DO UPDATE SET total = total + excluded.total"
                " RETURNING total",
                (key, period_start, amount),
            ).fetchall()
        return int(rows[0][0])

    def total(self, key: str, period_start: int) -> int:
        """The current total."""
        with self._lock:
            row = self._conn.execute(
                "SELECT total FROM agentmesh_spend WHERE key = ? AND period_start = ?",
                (key, period_start),
            ).fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._conn.close()


def _default_db_path() -> Path:
    """``controls.sqlite`` in the data folder (``AGENTMESH_DATA_DIR``)."""
    from agentmesh.settings import Settings

    return Settings.from_env().data_dir / "controls.sqlite"


def _open_db(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode and WAL journal, waiting up to 30 s on a busy lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


class RedisSpendLedger:
    """A ledger in Redis, shared by a fleet of workers.

    Each counter is one Redis key updated with ``INCRBY`` (integers, so exact)
    and expiring ``retention_s`` after its last change (keep it above a week).

    Args:
        url_or_client: A ``redis://`` URL or a ``redis.Redis`` client.
        prefix: Prefix of every key.
        retention_s: How long a counter is kept after its last change.

    Raises:
        MissingExtraError: The ``redis`` package is not installed.
    """

    def __init__(
        self,
        url_or_client: str | Any,
        *,
        prefix: str = "agentmesh:spend:",
        retention_s: int = 9 * 86_400,
    ) -> None:
        try:
            import redis
        except ImportError as exc:
            raise MissingExtraError("The Redis spend ledger", "redis", "redis") from exc
        if isinstance(url_or_client, str):
            url_or_client = redis.Redis.from_url(
                url_or_client, socket_timeout=1.0, socket_connect_timeout=1.0
            )
        self._redis = url_or_client
        self._prefix = prefix
        self._retention_s = retention_s

    def add(self, key: str, period_start: int, amount: int) -> int:
        """Add ``amount`` and return the new total."""
        name = f"{self._prefix}{key}:{period_start}"
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.incrby(name, amount)
            pipe.expire(name, self._retention_s)
            total, _ = pipe.execute()
        return int(total)

    def total(self, key: str, period_start: int) -> int:
        """The current total."""
        value = self._redis.get(f"{self._prefix}{key}:{period_start}")
        return int(value) if value is not None else 0


# -- guard -------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PeriodReservation:
    """A hold on period budgets for one call, from :meth:`PeriodGuard.reserve`.

    Attributes:
        id: Unique within the process.
        tokens: Tokens held.
        cost_usd: Cost held, in US dollars.
        starts: Start of the period charged, one per budget of the guard.
    """

    id: int
    tokens: int
    cost_usd: float
    starts: tuple[int, ...]


_IDS = itertools.count(1)


class PeriodGuard:
    """Charges calls against period budgets and raises alerts as they fill.

    Thread-safe; every process that shares the ledger and the ``key`` shares
    the budgets.

    Args:
        budgets: One budget or several (say a daily and a weekly one).
        ledger: Where totals live; by default :class:`SQLiteSpendLedger` in the data folder.
        sink: Where alerts go; by default a :class:`~agentmesh.controls.alerts.LogSink`.
        key: What the budgets cover (``"all"``, a workflow, a tenant); other
            keys have separate totals and show in the scope: ``"period:day:KEY"``.
        clock: Unix time; injectable to test period rollover.
    """

    def __init__(
        self,
        budgets: PeriodBudget | Sequence[PeriodBudget],
        *,
        ledger: SpendLedger | None = None,
        sink: AlertSink | None = None,
        key: str = "all",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._budgets = (budgets,) if isinstance(budgets, PeriodBudget) else tuple(budgets)
        self._ledger = ledger if ledger is not None else SQLiteSpendLedger()
        self._sink = fanout(sink if sink is not None else LogSink())
        self._key = key
        self._clock = clock
        self._open: set[int] = set()
        self._lock = threading.Lock()

    def scope(self, budget: PeriodBudget) -> str:
        """The scope named in errors and alerts for ``budget``: ``"period:day"``, ..."""
        suffix = "" if self._key == "all" else f":{self._key}"
        return f"period:{budget.period}{suffix}"

    def reserve(
        self,
        *,
        tokens: int = 0,
        cost_usd: float = 0.0,
        run_id: str | None = None,
        agent: str | None = None,
    ) -> PeriodReservation:
        """Hold a call's worst case against every budget, or refuse it.

        Raises:
            BudgetExhaustedError: A budget would pass its cap, or is already full;
                ``scope`` is ``"period:day"`` or ``"period:week"``.
        """
        held = _units(tokens, cost_usd)
        starts = self._starts()
        self._hold(held, starts, run_id, agent)
        ticket = next(_IDS)
        with self._lock:
            self._open.add(ticket)
        return PeriodReservation(id=ticket, tokens=tokens, cost_usd=cost_usd, starts=starts)

    def settle(self, reservation: PeriodReservation, *, tokens: int, cost_usd: float) -> None:
        """Replace a hold with the call's real usage and send any alert it triggers.

        Raises:
            ValueError: The reservation is not open in this guard.
        """
        with self._lock:
            if reservation.id not in self._open:
                raise ValueError(f"period reservation {reservation.id} is not open")
            self._open.discard(reservation.id)
        held = _units(reservation.tokens, reservation.cost_usd)
        self._charge(reservation.starts, held, _units(tokens, cost_usd))

    def release(self, reservation: PeriodReservation) -> None:
        """Drop a hold whose call was not made; releasing twice is harmless."""
        with self._lock:
            if reservation.id not in self._open:
                return
            self._open.discard(reservation.id)
        held = _units(reservation.tokens, reservation.cost_usd)
        for budget, start in zip(self._budgets, reservation.starts, strict=True):
            for limit in budget.caps():
                if held[limit]:
                    self._add(self._counter(budget, limit, "committed"), start, -held[limit])

    def record(self, *, tokens: int, cost_usd: float) -> None:
        """Charge spend that was not reserved (for example a whole run, after the fact)."""
        self._charge(self._starts(), _units(0, 0.0), _units(tokens, cost_usd))

    def check(self, *, run_id: str | None = None, agent: str | None = None) -> None:
        """Refuse to start work when a budget is already full.

        Raises:
            BudgetExhaustedError: A budget has reached 100% this period.
        """
        self._hold(_units(0, 0.0), self._starts(), run_id, agent)

    def snapshot(self) -> dict[str, Any]:
        """Figures per scope: ``period_start``, ``caps``, ``spent`` and ``committed``."""
        report: dict[str, Any] = {}
        for budget, start in zip(self._budgets, self._starts(), strict=True):
            caps = budget.caps()
            figures: dict[str, Any] = {"period_start": start, "caps": {}, "spent": {}}
            figures["committed"] = {}
            for limit, cap in caps.items():
                figures["caps"][limit] = _shown(limit, cap)
                for counter in ("spent", "committed"):
                    total = self._total(self._counter(budget, limit, counter), start) or 0
                    figures[counter][limit] = _shown(limit, total)
            report[self.scope(budget)] = figures
        return report

    def _hold(
        self, held: dict[str, int], starts: tuple[int, ...], run_id: str | None, agent: str | None
    ) -> None:
        added: list[tuple[str, int, int]] = []
        for budget, start in zip(self._budgets, starts, strict=True):
            for limit, cap in budget.caps().items():
                name, amount = self._counter(budget, limit, "committed"), held[limit]
                total = self._add(name, start, amount) if amount else self._total(name, start)
                if total is None:
                    continue
                if amount:
                    added.append((name, start, amount))
                if total > cap or (total >= cap and not amount):
                    for undo in added:
                        self._add(undo[0], undo[1], -undo[2])
                    self._alert_exhausted(budget, limit, start, total)
                    raise BudgetExhaustedError(
                        f"{self.scope(budget)} budget exhausted: {limit} would reach "
                        f"{_shown(limit, total):g} of {_shown(limit, cap):g}",
                        scope=self.scope(budget),
                        limit=limit,
                        cap=_shown(limit, cap),
                        needed=_shown(limit, total),
                        run_id=run_id,
                        agent=agent,
                    )

    def _charge(self, starts: tuple[int, ...], held: dict[str, int], used: dict[str, int]) -> None:
        for budget, start in zip(self._budgets, starts, strict=True):
            for limit, cap in budget.caps().items():
                if used[limit] != held[limit]:
                    delta = used[limit] - held[limit]
                    self._add(self._counter(budget, limit, "committed"), start, delta)
                if used[limit]:
                    after = self._add(self._counter(budget, limit, "spent"), start, used[limit])
                    if after is not None:
                        self._alert_crossings(budget, limit, cap, start, after - used[limit], after)

    def _alert_crossings(
        self, budget: PeriodBudget, limit: str, cap: int, start: int, before: int, after: int
    ) -> None:
        for at in sorted(budget.alert_at):
            if before < at * cap <= after and self._claim(budget, limit, start, f"{at:g}"):
                self._sink.send(
                    Alert(
                        kind="period_threshold",
                        scope=self.scope(budget),
                        message=f"{at:.0%} of the {budget.period}'s {limit} cap used: "
                        f"{_shown(limit, after):g} of {_shown(limit, cap):g}",
                        value=after / cap,
                        at=self._clock(),
                        details=self._details(budget, limit, cap, start, after, threshold=at),
                    )
                )
        if before < cap <= after:
            self._alert_exhausted(budget, limit, start, after)

    def _alert_exhausted(self, budget: PeriodBudget, limit: str, start: int, total: int) -> None:
        if not self._claim(budget, limit, start, "exhausted"):
            return
        cap = budget.caps()[limit]
        self._sink.send(
            Alert(
                kind="period_exhausted",
                scope=self.scope(budget),
                message=f"the {budget.period}'s {limit} cap of {_shown(limit, cap):g} is reached;"
                " calls are refused until the period ends",
                value=total / cap if cap else 1.0,
                at=self._clock(),
                details=self._details(budget, limit, cap, start, total, threshold=1.0),
            )
        )

    def _details(
        self, budget: PeriodBudget, limit: str, cap: int, start: int, total: int, threshold: float
    ) -> dict[str, Any]:
        return {
            "key": self._key,
            "period": budget.period,
            "period_start": datetime.fromtimestamp(start, budget.tz).isoformat(),
            "limit": limit,
            "cap": _shown(limit, cap),
            "total": _shown(limit, total),
            "threshold": threshold,
        }

    def _claim(self, budget: PeriodBudget, limit: str, start: int, what: str) -> bool:
        return self._add(self._counter(budget, limit, f"alert:{what}"), start, 1) == 1

    def _counter(self, budget: PeriodBudget, limit: str, counter: str) -> str:
        return f"{self._key}:{budget.period}:{limit}:{counter}"

    def _starts(self) -> tuple[int, ...]:
        now = self._clock()
        return tuple(period_start(b.period, now, b.tz) for b in self._budgets)

    def _add(self, name: str, start: int, amount: int) -> int | None:
        try:
            return self._ledger.add(name, start, amount)
        except Exception as exc:
            logger.warning("spend ledger failed, period budget not enforced: %s", exc)
            return None

    def _total(self, name: str, start: int) -> int | None:
        try:
            return self._ledger.total(name, start)
        except Exception as exc:
            logger.warning("spend ledger failed, period budget not enforced: %s", exc)
            return None


def _units(tokens: int, cost_usd: float) -> dict[str, int]:
    if tokens < 0 or cost_usd < 0:
        raise ValueError("reserved and settled amounts cannot be negative")
    # A thousandth of a nano-dollar of rounding first, so 3e-7 * 1e9 is 300, not 301.
    return {"tokens": tokens, "cost_usd": math.ceil(round(cost_usd * _NANO, 3))}


def _shown(limit: str, value: int) -> float:
    return value / _NANO if limit == "cost_usd" else value
