"""Hard, hierarchical budget envelopes for one run.

A :class:`Budget` states the caps; an :class:`Envelope` keeps the live account
for one run and hands out child envelopes for leads and specialists, so that
spend is charged at every level up to the run:

```python
env = Envelope(Budget(cost_usd=1.0, tokens=50_000, shares={"intake": 0.25}))
intake = env.child("intake")              # 25% of every cap of the run
held = intake.reserve(tokens=prompt + max_tokens, cost_usd=worst_case)
... call the model ...
intake.settle(held, tokens=used, cost_usd=cost)
```

Why caps are never exceeded: a model call is made only after
:meth:`Envelope.reserve` has set aside its worst case (an upper bound on the
prompt tokens plus the full ``max_tokens`` answer, priced by
:func:`agentmesh.pricing.worst_case_cost`) at every level at once; the check
and the hold happen under one lock per tree, so concurrent branches cannot
both take the last share. :meth:`Envelope.settle` then replaces the hold with
the real usage, which cannot be larger when the reservation was an upper
bound. If it is larger anyway the overrun is recorded (``overruns`` in the
snapshot, a warning in the log) and, when it pushed a level past a cap, that
level refuses every later reservation and step.

Cost is counted in whole picodollars, so sums never drift past a cap through
floating-point rounding.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentmesh.errors import BudgetExhaustedError, ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["Budget", "Envelope", "Reservation", "Spend"]

logger = logging.getLogger(__name__)

_PICO = 10**12
_HELD = ("tokens", "cost_usd", "model_calls")
_COUNTED = (*_HELD, "steps")
_IDS = itertools.count(1)


@dataclass(frozen=True, kw_only=True)
class Budget:
    """Caps for one envelope; ``None`` leaves a limit uncapped (its parent still bounds it).

    Attributes:
        tokens: Input plus output tokens.
        cost_usd: Cost in US dollars.
        model_calls: Model calls made.
        steps: Agent steps taken (see :meth:`Envelope.step`).
        wall_clock_s: Seconds since the envelope was created.
        degrade_at: The :meth:`Envelope.pressure` at which routing should move
            to a cheaper model layer.
        shares: Child name to its budget: a fraction of this budget's token,
            cost, call and step caps, or an explicit :class:`Budget`. A child
            not listed is created on demand, capped only by its ancestors.
            Fractions do not divide the wall clock: children may run at the
            same time, and each is bounded by its parent's deadline anyway.

    Raises:
        ConfigError: A cap is negative, ``degrade_at`` is outside (0, 1], a
            fraction is outside (0, 1], the fractions add up to more than 1,
            or a child name is empty or contains ``/``.
    """

    tokens: int | None = None
    cost_usd: float | None = None
    model_calls: int | None = None
    steps: int | None = None
    wall_clock_s: float | None = None
    degrade_at: float = 0.8
    shares: Mapping[str, float | Budget] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("tokens", "cost_usd", "model_calls", "steps", "wall_clock_s"):
            value = getattr(self, name)
            if value is not None and not value >= 0:
                raise ConfigError(f"Budget.{name} must be zero or more, got {value!r}")
        if not 0 < self.degrade_at <= 1:
            raise ConfigError(f"Budget.degrade_at must be in (0, 1], got {self.degrade_at!r}")
        total = 0.0
        for child, share in self.shares.items():
            if not child or "/" in child:
                raise ConfigError(f"Budget.shares: invalid child name {child!r}")
            if isinstance(share, Budget):
                continue
            if not 0 < share <= 1:
                raise ConfigError(f"Budget.shares[{child!r}] must be in (0, 1], got {share!r}")
            total += share
        if total > 1 + 1e-9:
            raise ConfigError(f"Budget.shares: fractions add up to {total:g}, more than 1")

    def scaled(self, fraction: float) -> Budget:
        """This budget's token, cost, call and step caps times ``fraction`` (rounded down).

        The result has no wall-clock cap and no shares; ``degrade_at`` is kept.
        """

        def part(cap: int | None) -> int | None:
            return None if cap is None else math.floor(cap * fraction)

        return Budget(
            tokens=part(self.tokens),
            cost_usd=None if self.cost_usd is None else self.cost_usd * fraction,
            model_calls=part(self.model_calls),
            steps=part(self.steps),
            degrade_at=self.degrade_at,
        )


@dataclass(frozen=True, kw_only=True)
class Spend:
    """What an envelope (with everything below it) has spent.

    Attributes:
        tokens: Tokens settled.
        cost_usd: Cost settled, in US dollars.
        model_calls: Model calls settled.
        steps: Steps taken.
        elapsed_s: Seconds since the envelope was created.
    """

    tokens: int
    cost_usd: float
    model_calls: int
    steps: int
    elapsed_s: float


@dataclass(frozen=True, kw_only=True)
class Reservation:
    """A hold on budget for one model call, returned by :meth:`Envelope.reserve`.

    Settle it with the real usage, or release it if the call was not made.

    Attributes:
        id: Unique within the process.
        scope: The envelope that holds it, such as ``"run/back_office/intake"``.
        tokens: Tokens held.
        cost_usd: Cost held, in US dollars.
        model_calls: Model calls held.
        agent: The agent that asked, when given.
    """

    id: int
    scope: str
    tokens: int
    cost_usd: float
    model_calls: int
    agent: str | None = None


def _pico(usd: float) -> int:
    # Rounded to a thousandth of a picodollar first, so 1.5e-7 * 1e12 is 150000, not 150001.
    return math.ceil(round(usd * _PICO, 3))


def _amounts(tokens: int, cost_usd: float, model_calls: int) -> dict[str, int]:
    if tokens < 0 or cost_usd < 0 or model_calls < 0:
        raise ValueError("reserved and settled amounts cannot be negative")
    return {"tokens": tokens, "cost_usd": _pico(cost_usd), "model_calls": model_calls}


def _shown(limit: str, value: float) -> float:
    return value / _PICO if limit == "cost_usd" else value


class Envelope:
    """The live account of a budget: thread-safe, shared by every branch of a run.

    Args:
        budget: The caps.
        scope: Name of this envelope in errors and snapshots.
        clock: Monotonic seconds; injectable for tests.
        run_id: Put on every :class:`~agentmesh.errors.BudgetExhaustedError`.
    """

    def __init__(
        self,
        budget: Budget,
        *,
        scope: str = "run",
        clock: Callable[[], float] = time.monotonic,
        run_id: str | None = None,
    ) -> None:
        self._setup(budget, scope, clock, run_id, parent=None, lock=threading.Lock())

    def _setup(
        self,
        budget: Budget,
        scope: str,
        clock: Callable[[], float],
        run_id: str | None,
        *,
        parent: Envelope | None,
        lock: threading.Lock,
    ) -> None:
        self._budget = budget
        self._scope = scope
        self._clock = clock
        self._run_id = run_id
        self._parent = parent
        self._lock = lock
        self._started = clock()
        caps = {
            "tokens": budget.tokens,
            "cost_usd": None if budget.cost_usd is None else round(budget.cost_usd * _PICO),
            "model_calls": budget.model_calls,
            "steps": budget.steps,
        }
        self._caps: dict[str, int] = {k: v for k, v in caps.items() if v is not None}
        self._spent = dict.fromkeys(_COUNTED, 0)
        self._held = dict.fromkeys(_HELD, 0)
        self._overruns = 0
        self._children: dict[str, Envelope] = {}
        self._open: dict[int, tuple[Envelope, dict[str, int]]] = {}

    # -- tree -----------------------------------------------------------------------------

    @property
    def scope(self) -> str:
        """This envelope's path from the root, such as ``"run/back_office/intake"``."""
        return self._scope

    @property
    def budget(self) -> Budget:
        """The caps of this envelope."""
        return self._budget

    def child(self, name: str) -> Envelope:
        """The sub-envelope ``name``; asking twice returns the same one.

        Its caps come from ``budget.shares[name]``; a name not listed gets an
        on-demand envelope, capped only by its ancestors.

        Raises:
            ConfigError: ``name`` is empty or contains ``/``.
        """
        if not name or "/" in name:
            raise ConfigError(f"invalid envelope name {name!r}")
        with self._lock:
            found = self._children.get(name)
            if found is not None:
                return found
            share = self._budget.shares.get(name)
            if isinstance(share, Budget):
                budget = share
            elif share is None:
                budget = Budget(degrade_at=self._budget.degrade_at)
            else:
                budget = self._budget.scaled(share)
            kid = Envelope.__new__(Envelope)
            kid._setup(
                budget,
                f"{self._scope}/{name}",
                self._clock,
                self._run_id,
                parent=self,
                lock=self._lock,
            )
            self._children[name] = kid
            return kid

    def _path(self) -> list[Envelope]:
        node: Envelope | None = self
        path = []
        while node is not None:
            path.append(node)
            node = node._parent
        return path

    def _root(self) -> Envelope:
        return self._path()[-1]

    # -- spending -------------------------------------------------------------------------

    def reserve(
        self, *, tokens: int, cost_usd: float, model_calls: int = 1, agent: str | None = None
    ) -> Reservation:
        """Hold budget for one call at this level and every level above, or refuse.

        Args:
            tokens: Upper bound of the call's tokens (prompt bound plus ``max_tokens``).
            cost_usd: Upper bound of its cost (:func:`agentmesh.pricing.worst_case_cost`).
            model_calls: Calls it makes.
            agent: The agent asking, for the error.

        Raises:
            BudgetExhaustedError: Some level would pass a cap, or its wall clock ran
                out; ``scope`` names the nearest such level, ``limit`` the cap.
            ValueError: An amount is negative.
        """
        ask = _amounts(tokens, cost_usd, model_calls)
        with self._lock:
            path = self._path()
            now = self._clock()
            for node in path:
                node._check(ask, now, agent)
            for node in path:
                for limit, amount in ask.items():
                    node._held[limit] += amount
            ticket = next(_IDS)
            path[-1]._open[ticket] = (self, ask)
        return Reservation(
            id=ticket,
            scope=self._scope,
            tokens=tokens,
            cost_usd=ask["cost_usd"] / _PICO,
            model_calls=model_calls,
            agent=agent,
        )

    def settle(self, reservation: Reservation, *, tokens: int, cost_usd: float) -> None:
        """Replace a hold with the call's real usage, at every level it was held.

        Raises:
            ValueError: The reservation is not open in this envelope's tree
                (already settled or released, or from another run), or an amount
                is negative.
        """
        actual = _amounts(tokens, cost_usd, reservation.model_calls)
        with self._lock:
            holder, held = self._close(reservation)
            over = actual["tokens"] > held["tokens"] or actual["cost_usd"] > held["cost_usd"]
            for node in holder._path():
                for limit in _HELD:
                    node._held[limit] -= held[limit]
                    node._spent[limit] += actual[limit]
                node._overruns += over
        if over:
            logger.warning(
                "budget %s: call used %d tokens / $%.6f, more than the %d / $%.6f reserved",
                reservation.scope,
                tokens,
                cost_usd,
                reservation.tokens,
                reservation.cost_usd,
            )

    def release(self, reservation: Reservation) -> None:
        """Drop a hold whose call was not made; releasing twice is harmless."""
        with self._lock:
            root = self._root()
            if reservation.id not in root._open:
                return
            holder, held = self._close(reservation)
            for node in holder._path():
                for limit in _HELD:
                    node._held[limit] -= held[limit]

    def _close(self, reservation: Reservation) -> tuple[Envelope, dict[str, int]]:
        found = self._root()._open.pop(reservation.id, None)
        if found is None:
            raise ValueError(
                f"reservation {reservation.id} ({reservation.scope}) is not open in this run"
            )
        return found

    def step(self, agent: str | None = None) -> None:
        """Count one step at this level and every level above, or refuse it.

        Raises:
            BudgetExhaustedError: A step cap is reached, a wall clock ran out, or a
                level is already past a cap after an overrun.
        """
        ask = {"steps": 1}
        with self._lock:
            path = self._path()
            now = self._clock()
            for node in path:
                node._check(ask, now, agent)
            for node in path:
                node._spent["steps"] += 1

    def check_clock(self) -> None:
        """Raise if the wall clock ran out at this level or any level above.

        Raises:
            BudgetExhaustedError: ``limit`` is ``"wall_clock_s"``.
        """
        with self._lock:
            now = self._clock()
            for node in self._path():
                node._check_clock(now, None)

    def _check(self, ask: Mapping[str, int], now: float, agent: str | None) -> None:
        self._check_clock(now, agent)
        for limit, cap in self._caps.items():
            needed = self._spent[limit] + self._held.get(limit, 0) + ask.get(limit, 0)
            if needed > cap:
                raise self._refusal(limit, _shown(limit, cap), _shown(limit, needed), agent)

    def _check_clock(self, now: float, agent: str | None) -> None:
        cap = self._budget.wall_clock_s
        if cap is not None and now - self._started >= cap:
            raise self._refusal("wall_clock_s", cap, now - self._started, agent)

    def _refusal(self, limit: str, cap: float, needed: float, agent: str | None) -> Exception:
        return BudgetExhaustedError(
            f"budget exhausted at {self._scope}: {limit} would reach {needed:g}, cap {cap:g}",
            scope=self._scope,
            limit=limit,
            cap=cap,
            needed=needed,
            run_id=self._run_id,
            agent=agent,
        )

    # -- reading --------------------------------------------------------------------------

    def pressure(self) -> float:
        """How close the tightest cap at this level or above is to full, from 0 to 1.

        Held (reserved) amounts count as spent. Compare with ``budget.degrade_at``
        (or use :meth:`should_degrade`) to route to a cheaper model.
        """
        with self._lock:
            now = self._clock()
            return min(1.0, max(node._own_pressure(now) for node in self._path()))

    def should_degrade(self) -> bool:
        """Whether :meth:`pressure` has reached this envelope's ``degrade_at``."""
        return self.pressure() >= self._budget.degrade_at

    def _own_pressure(self, now: float) -> float:
        worst = 0.0
        for limit, cap in self._caps.items():
            used = self._spent[limit] + self._held.get(limit, 0)
            worst = max(worst, used / cap if cap else 1.0)
        wall = self._budget.wall_clock_s
        if wall is not None:
            worst = max(worst, (now - self._started) / wall if wall else 1.0)
        return worst

    @property
    def spent(self) -> Spend:
        """Settled spend of this envelope, its children included."""
        with self._lock:
            return self._spend(self._clock())

    def _spend(self, now: float) -> Spend:
        return Spend(
            tokens=self._spent["tokens"],
            cost_usd=self._spent["cost_usd"] / _PICO,
            model_calls=self._spent["model_calls"],
            steps=self._spent["steps"],
            elapsed_s=now - self._started,
        )

    def snapshot(self) -> dict[str, Any]:
        """This envelope and its children as plain data, for run results and reports.

        Each level has ``scope``, ``caps`` (capped limits only), ``spent``,
        ``reserved``, ``pressure`` (this level's own caps), ``overruns`` (calls
        that used more than they reserved) and ``children`` by name.
        """
        with self._lock:
            return self._snap(self._clock())

    def _snap(self, now: float) -> dict[str, Any]:
        caps: dict[str, float] = {k: _shown(k, v) for k, v in self._caps.items()}
        if self._budget.wall_clock_s is not None:
            caps["wall_clock_s"] = self._budget.wall_clock_s
        spend = self._spend(now)
        return {
            "scope": self._scope,
            "caps": caps,
            "spent": {
                "tokens": spend.tokens,
                "cost_usd": spend.cost_usd,
                "model_calls": spend.model_calls,
                "steps": spend.steps,
                "elapsed_s": spend.elapsed_s,
            },
            "reserved": {k: _shown(k, v) for k, v in self._held.items()},
            "pressure": min(1.0, self._own_pressure(now)),
            "overruns": self._overruns,
            "children": {name: kid._snap(now) for name, kid in self._children.items()},
        }
