"""Circuit breakers per model endpoint and per tool.

A breaker watches the outcomes of the last ``window`` calls to one target. While
*closed*, calls go through; once at least ``min_calls`` outcomes are in the window and
the share of failures reaches ``failure_rate``, it *opens*: every call fails fast with
`CircuitOpenError` (into the caller's fallback) without reaching the target. After
``cooldown_s`` it is *half-open*: up to ``half_open_calls`` trial calls go through;
when they all succeed it closes with an empty window, and one failure opens it again.

Only transient failures (see `agentmesh.controls.classify`) count as failures: a 400
says the request was wrong, not that the endpoint is down. A call that ends in a
permanent error should `CircuitBreaker.release` its trial permit instead.

State lives in a `BreakerStore`. `InMemoryBreakerStore` (the default) keeps it in this
process; `RedisBreakerStore` shares it between processes, so that one worker's
failures open the breaker for all. Every change is a compare-and-set on one small
record, so concurrent processes never lose each other's updates. Times in the record
are wall-clock (``time.time``) so that processes agree on when a cool-down ends.

If the store cannot be reached, the breaker *fails open* (lets calls through, logs a
warning) and does not ask the store again for ``store_backoff_s``: losing the breaker
must neither take the service down nor add a connect timeout to every call.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import astuple, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, runtime_checkable

from agentmesh.errors import CircuitOpenError, ConfigError, MissingExtraError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = [
    "BreakerConfig",
    "BreakerSnapshot",
    "BreakerState",
    "BreakerStore",
    "Breakers",
    "CircuitBreaker",
    "InMemoryBreakerStore",
    "RedisBreakerStore",
]

logger = logging.getLogger(__name__)

BreakerState = Literal["closed", "open", "half_open"]
R = TypeVar("R")


@dataclass(frozen=True, kw_only=True)
class BreakerConfig:
    """When a breaker opens and how it recovers.

    Attributes:
        failure_rate: Share of failures in the window (0 < rate <= 1) that opens it.
        window: How many of the latest calls are looked at.
        min_calls: Outcomes needed in the window before the rate is trusted.
        cooldown_s: How long it stays open before letting a trial call through.
        half_open_calls: Trial calls that must all succeed to close it again.

    Raises:
        ConfigError: A value is out of range.
    """

    failure_rate: float = 0.5
    window: int = 20
    min_calls: int = 5
    cooldown_s: float = 30.0
    half_open_calls: int = 1

    def __post_init__(self) -> None:
        problems = []
        if not 0 < self.failure_rate <= 1:
            problems.append(f"failure_rate must be in (0, 1], got {self.failure_rate!r}")
        if self.window < 1:
            problems.append(f"window must be >= 1, got {self.window!r}")
        if not 1 <= self.min_calls <= self.window:
            problems.append(f"min_calls must be in [1, window], got {self.min_calls!r}")
        if self.cooldown_s < 0:
            problems.append(f"cooldown_s must be >= 0, got {self.cooldown_s!r}")
        if self.half_open_calls < 1:
            problems.append(f"half_open_calls must be >= 1, got {self.half_open_calls!r}")
        if problems:
            raise ConfigError("BreakerConfig: " + "; ".join(problems))


@dataclass(frozen=True, kw_only=True)
class BreakerSnapshot:
    """A breaker's state at one moment, for reports and dashboards.

    Attributes:
        target: The model endpoint or tool.
        state: ``"closed"``, ``"open"`` or ``"half_open"``.
        calls: Outcomes in the current window.
        failures: Failures among them.
        retry_in_s: While open, seconds until a trial call is let through; else ``None``.
    """

    target: str
    state: BreakerState
    calls: int
    failures: int
    retry_in_s: float | None


@runtime_checkable
class BreakerStore(Protocol):
    """Where breaker records live; two atomic operations on opaque strings.

    Implementations must make `compare_and_set` atomic across every process that
    shares the store. A conformance suite in ``tests/controls/test_breaker.py``
    (``BreakerStoreContract``) checks any backend.
    """

    def load(self, key: str) -> str | None:
        """The record stored under ``key``, or ``None``."""
        ...

    def compare_and_set(self, key: str, expected: str | None, value: str) -> bool:
        """Store ``value`` if the record is still ``expected`` (``None``: absent).

        Returns:
            Whether ``value`` was stored.
        """
        ...


class InMemoryBreakerStore:
    """The reference `BreakerStore`: a dict behind a lock, shared by this process only."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, str] = {}

    def load(self, key: str) -> str | None:
        """The record stored under ``key``, or ``None``."""
        with self._lock:
            return self._records.get(key)

    def compare_and_set(self, key: str, expected: str | None, value: str) -> bool:
        """Store ``value`` if the record is still ``expected``."""
        with self._lock:
            if self._records.get(key) != expected:
                return False
            self._records[key] = value
            return True


_CAS_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if current == false then current = '' end
if current ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""


class RedisBreakerStore:
    """A `BreakerStore` in Redis, shared by every process that uses the same keys.

    The compare-and-set runs as one Lua script, so it is atomic on the server.

    Args:
        url: A ``redis://`` URL; ignored when ``client`` is given.
        client: An existing ``redis.Redis`` client (used as configured).
        prefix: Prefix of every key (one key per breaker).
        ttl_s: Records expire after this long without a change.
        timeout_s: Socket and connect timeout of the client made from ``url``; short,
            because every model and tool call waits on the breaker. That client also
            retries a failed command once, without the default backoff.

    Raises:
        MissingExtraError: The ``redis`` package is not installed.
        ConfigError: Neither ``url`` nor ``client`` is given.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Any = None,
        prefix: str = "agentmesh:breaker:",
        ttl_s: int = 86_400,
        timeout_s: float = 0.5,
    ) -> None:
        if client is None:
            if url is None:
                raise ConfigError("RedisBreakerStore needs a url or a client")
            try:
                import redis
                from redis.backoff import NoBackoff
                from redis.retry import Retry
            except ImportError as exc:
                raise MissingExtraError("Redis-backed circuit breakers", "redis", "redis") from exc
            client = redis.Redis.from_url(
                url,
                socket_timeout=timeout_s,
                socket_connect_timeout=timeout_s,
                retry=Retry(NoBackoff(), 1),
            )
        self.client = client
        self.prefix = prefix
        self.ttl_s = ttl_s
        self._cas = client.register_script(_CAS_SCRIPT)

    def load(self, key: str) -> str | None:
        """The record stored under ``key``, or ``None``."""
        raw = self.client.get(self.prefix + key)
        return raw.decode() if isinstance(raw, bytes) else raw

    def compare_and_set(self, key: str, expected: str | None, value: str) -> bool:
        """Store ``value`` if the record is still ``expected``, atomically on the server."""
        args = [expected or "", value, self.ttl_s]
        return bool(self._cas(keys=[self.prefix + key], args=args))


@dataclass(frozen=True)
class _Record:
    """What a store keeps per breaker (stored as a JSON list, in field order)."""

    state: BreakerState = "closed"
    outcomes: str = ""  # oldest first: "1" a failure, "0" a success
    opened_at: float = 0.0
    trials: int = 0  # half-open permits handed out and not yet settled
    trial_at: float = 0.0  # when the last permit was handed out
    passed: int = 0  # half-open trials that succeeded

    def dump(self) -> str:
        text = _DUMPED.get(self)
        if text is None:
            text = json.dumps(astuple(self), separators=(",", ":"))
            _remember(_DUMPED, self, text)
        return text

    @classmethod
    def parse(cls, raw: str | None) -> _Record:
        if raw is None:
            return cls()
        # Every call reads its breaker's record, and a healthy breaker's record
        # does not change: parse each distinct text once.
        known = _PARSED.get(raw)
        if known is not None:
            return known
        try:
            record = cls(*json.loads(raw))
            if record.state not in ("closed", "open", "half_open"):
                raise ValueError(record.state)
        except (ValueError, TypeError):
            logger.warning("unreadable circuit breaker record %r; starting closed", raw)
            return cls()
        _remember(_PARSED, raw, record)
        return record


_PARSED: dict[str, _Record] = {}
_DUMPED: dict[_Record, str] = {}
_MEMO_SIZE = 4096


def _remember(memo: dict[Any, Any], key: Any, value: Any) -> None:
    if len(memo) >= _MEMO_SIZE:
        memo.clear()  # records are tiny and re-parsed cheaply: no LRU bookkeeping
    memo[key] = value


class CircuitBreaker:
    """The breaker for one model endpoint or tool. Thread-safe.

    Args:
        target: The endpoint or tool, e.g. ``"model:gpt-4o-mini"`` or ``"tool:search"``;
            also the store key, so processes sharing a store share the breaker.
        config: When it opens and how it recovers.
        store: Where its state lives; a private `InMemoryBreakerStore` by default.
        clock: Wall-clock time in seconds (inject a fake one in tests).
        store_backoff_s: After the store fails, how long calls go through without
            asking it again.
    """

    def __init__(
        self,
        target: str,
        config: BreakerConfig | None = None,
        *,
        store: BreakerStore | None = None,
        clock: Callable[[], float] = time.time,
        store_backoff_s: float = 5.0,
    ) -> None:
        self.target = target
        self.config = config or BreakerConfig()
        self.store: BreakerStore = store if store is not None else InMemoryBreakerStore()
        self.clock = clock
        self.store_backoff_s = store_backoff_s
        self._store_down = False
        self._store_retry_at = 0.0

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.target!r}, state={self.state!r})"

    @property
    def state(self) -> BreakerState:
        """The state as the next call would see it (open past its cool-down is half-open)."""
        return self.snapshot().state

    def allow(self) -> None:
        """Ask to make a call; returns if it may go ahead.

        Raises:
            CircuitOpenError: The breaker is open (or half-open with all trials taken).
        """
        retry_in = self._update(self._allow, default=None)
        if retry_in is not None:
            raise CircuitOpenError(
                f"circuit for {self.target} is open; next trial in {retry_in:.1f}s",
                target=self.target,
                retry_in_s=retry_in,
            )

    def record_success(self) -> None:
        """Record that an allowed call succeeded."""
        self._update(self._success, default=None)

    def record_failure(self) -> BreakerState:
        """Record that an allowed call failed transiently.

        Returns:
            The state after the failure (``"open"`` if it opened the breaker).
        """
        return self._update(self._failure, default="closed")

    def release(self) -> None:
        """Give back a trial permit without a verdict (the call failed permanently)."""
        self._update(self._release, default=None)

    def reset(self) -> None:
        """Close the breaker and forget its window (an operator's override)."""
        self._update(lambda rec, now: (_Record(), None), default=None)

    def snapshot(self) -> BreakerSnapshot:
        """The breaker's current state, window and time to the next trial."""
        rec = _Record()
        now = self.clock()
        if not self._skip_store(now):
            try:
                rec = _Record.parse(self.store.load(self.target))
                self._store_up()
            except Exception as exc:
                self._store_failed(exc, now)
        state, retry_in = rec.state, None
        if state == "open":
            left = self.config.cooldown_s - (now - rec.opened_at)
            state, retry_in = ("half_open", None) if left <= 0 else ("open", left)
        return BreakerSnapshot(
            target=self.target,
            state=state,
            calls=len(rec.outcomes),
            failures=rec.outcomes.count("1"),
            retry_in_s=retry_in,
        )

    # -- transitions: pure functions of (record, now) -> (new record, result) --------------

    def _allow(self, rec: _Record, now: float) -> tuple[_Record, float | None]:
        cooldown = self.config.cooldown_s
        if rec.state == "open":
            elapsed = now - rec.opened_at
            if elapsed < 0:  # the wall clock stepped back: restart the cool-down from now
                return replace(rec, opened_at=now), cooldown
            if elapsed < cooldown:
                return rec, cooldown - elapsed
            return _Record(state="half_open", trials=1, trial_at=now), None
        if rec.state == "half_open":
            since = now - rec.trial_at
            if since < 0:  # the clock stepped back (or is behind another process's)
                return replace(rec, trial_at=now), cooldown
            if since >= cooldown:  # a trial that never reported back is given up
                rec = replace(rec, trials=0)
            if rec.trials + rec.passed >= self.config.half_open_calls:
                return rec, max(cooldown - since, 0.0)
            return replace(rec, trials=rec.trials + 1, trial_at=now), None
        return rec, None

    def _success(self, rec: _Record, now: float) -> tuple[_Record, None]:
        if rec.state == "half_open":
            passed = rec.passed + 1
            if passed >= self.config.half_open_calls:
                return _Record(), None
            return replace(rec, passed=passed, trials=max(rec.trials - 1, 0)), None
        if rec.state == "closed":
            outcomes = self._push(rec.outcomes, "0")
            return (rec if outcomes == rec.outcomes else replace(rec, outcomes=outcomes)), None
        return rec, None

    def _failure(self, rec: _Record, now: float) -> tuple[_Record, BreakerState]:
        if rec.state == "half_open":
            return _Record(state="open", opened_at=now), "open"
        if rec.state == "closed":
            outcomes = self._push(rec.outcomes, "1")
            cfg = self.config
            if len(outcomes) >= cfg.min_calls and outcomes.count("1") >= cfg.failure_rate * len(
                outcomes
            ):
                return _Record(state="open", opened_at=now), "open"
            return replace(rec, outcomes=outcomes), "closed"
        return rec, rec.state

    def _release(self, rec: _Record, now: float) -> tuple[_Record, None]:
        if rec.state == "half_open" and rec.trials > 0:
            return replace(rec, trials=rec.trials - 1), None
        return rec, None

    def _push(self, outcomes: str, outcome: str) -> str:
        return (outcomes + outcome)[-self.config.window :]

    # -- the compare-and-set loop ---------------------------------------------------------

    def _update(self, step: Callable[[_Record, float], tuple[_Record, R]], *, default: R) -> R:
        if self._skip_store(self.clock()):
            return default
        try:
            while True:
                raw = self.store.load(self.target)
                rec = _Record.parse(raw)
                new, result = step(rec, self.clock())
                if new == rec or self.store.compare_and_set(self.target, raw, new.dump()):
                    break
        except Exception as exc:
            self._store_failed(exc, self.clock())
            return default
        self._store_up()
        if new.state != rec.state:
            log = logger.warning if new.state == "open" else logger.info
            log("circuit for %s: %s -> %s", self.target, rec.state, new.state)
        return result

    def _skip_store(self, now: float) -> bool:
        return self._store_down and 0 <= self._store_retry_at - now <= self.store_backoff_s

    def _store_failed(self, exc: Exception, now: float) -> None:
        self._store_retry_at = now + self.store_backoff_s
        if not self._store_down:
            self._store_down = True
            logger.warning(
                "circuit breaker store unreachable for %s (%s: %s); letting calls through",
                self.target,
                type(exc).__name__,
                exc,
            )

    def _store_up(self) -> None:
        if self._store_down:
            self._store_down = False
            logger.warning("circuit breaker store for %s is reachable again", self.target)


@dataclass(kw_only=True, eq=False)
class Breakers:
    """One `CircuitBreaker` per model endpoint and per tool, made on first use. Thread-safe.

    Attributes:
        config: Configuration for targets not in ``configs``.
        configs: Per-target configuration, by target name.
        store: Shared by every breaker; an `InMemoryBreakerStore` by default.
        clock: Wall-clock time in seconds, for every breaker.
    """

    config: BreakerConfig = field(default_factory=BreakerConfig)
    configs: Mapping[str, BreakerConfig] = field(default_factory=dict)
    store: BreakerStore = field(default_factory=InMemoryBreakerStore)
    clock: Callable[[], float] = time.time
    _breakers: dict[str, CircuitBreaker] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def get(self, target: str) -> CircuitBreaker:
        """The breaker for ``target``."""
        with self._lock:
            breaker = self._breakers.get(target)
            if breaker is None:
                config = self.configs.get(target, self.config)
                breaker = CircuitBreaker(target, config, store=self.store, clock=self.clock)
                self._breakers[target] = breaker
            return breaker

    def snapshot(self) -> dict[str, BreakerSnapshot]:
        """The state of every breaker used so far, by target."""
        with self._lock:
            breakers = list(self._breakers.values())
        return {b.target: b.snapshot() for b in breakers}
