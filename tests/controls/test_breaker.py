"""Circuit breakers: the state machine, the store contract every backend passes, the registry."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest

from agentmesh.controls.breaker import (
    BreakerConfig,
    Breakers,
    BreakerStore,
    CircuitBreaker,
    InMemoryBreakerStore,
    RedisBreakerStore,
)
from agentmesh.errors import CircuitOpenError, ConfigError

pytestmark = pytest.mark.timeout(30)


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def fail_times(breaker: CircuitBreaker, n: int) -> None:
    for _ in range(n):
        breaker.allow()
        breaker.record_failure()


def succeed_times(breaker: CircuitBreaker, n: int) -> None:
    for _ in range(n):
        breaker.allow()
        breaker.record_success()


SMALL = BreakerConfig(failure_rate=0.5, window=4, min_calls=4, cooldown_s=10.0)


class BreakerStoreContract:
    """What every `BreakerStore` backend must do; subclass with a ``store`` fixture."""

    @pytest.fixture
    def store(self) -> Iterator[BreakerStore]:
        raise NotImplementedError

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    def breaker(
        self, store: BreakerStore, clock: FakeClock, config: BreakerConfig = SMALL
    ) -> CircuitBreaker:
        return CircuitBreaker("model:test", config, store=store, clock=clock)

    # -- the two store operations --------------------------------------------------------

    def test_is_a_breaker_store(self, store: BreakerStore) -> None:
        assert isinstance(store, BreakerStore)

    def test_missing_key_loads_none(self, store: BreakerStore) -> None:
        assert store.load("absent") is None

    def test_compare_and_set_creates_then_replaces(self, store: BreakerStore) -> None:
        assert store.compare_and_set("k", None, "one")
        assert store.load("k") == "one"
        assert not store.compare_and_set("k", None, "two"), "a create must not overwrite"
        assert not store.compare_and_set("k", "stale", "two"), "a stale expectation must fail"
        assert store.load("k") == "one"
        assert store.compare_and_set("k", "one", "two")
        assert store.load("k") == "two"

    def test_concurrent_compare_and_set_loses_no_update(self, store: BreakerStore) -> None:
        def bump(times: int) -> None:
            for _ in range(times):
                while True:
                    raw = store.load("counter")
                    if store.compare_and_set("counter", raw, str(int(raw or 0) + 1)):
                        break

        threads = [threading.Thread(target=bump, args=(50,)) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert store.load("counter") == "300"

    # -- the state machine on top of the store -------------------------------------------

    def test_opens_at_the_failure_rate_and_fails_fast(
        self, store: BreakerStore, clock: FakeClock
    ) -> None:
        breaker = self.breaker(store, clock)
        succeed_times(breaker, 2)
        fail_times(breaker, 1)
        assert breaker.state == "closed"  # 3 calls: below min_calls
        fail_times(breaker, 1)  # 2 of 4 failed = 0.5
        assert breaker.state == "open"
        clock.advance(4)
        with pytest.raises(CircuitOpenError) as info:
            breaker.allow()
        assert info.value.target == "model:test"
        assert info.value.retry_in_s == pytest.approx(6.0)

    def test_half_open_trial_success_closes_with_an_empty_window(
        self, store: BreakerStore, clock: FakeClock
    ) -> None:
        breaker = self.breaker(store, clock)
        fail_times(breaker, 4)
        clock.advance(10)
        assert breaker.state == "half_open"
        breaker.allow()  # the trial
        with pytest.raises(CircuitOpenError):
            breaker.allow()  # only one trial at a time
        breaker.record_success()
        snap = breaker.snapshot()
        assert (snap.state, snap.calls, snap.failures) == ("closed", 0, 0)
        breaker.allow()

    def test_half_open_trial_failure_reopens_for_a_full_cooldown(
        self, store: BreakerStore, clock: FakeClock
    ) -> None:
        breaker = self.breaker(store, clock)
        fail_times(breaker, 4)
        clock.advance(15)
        breaker.allow()
        breaker.record_failure()
        assert breaker.state == "open"
        clock.advance(9.5)
        with pytest.raises(CircuitOpenError) as info:
            breaker.allow()
        assert info.value.retry_in_s == pytest.approx(0.5)

    def test_several_trials_must_all_succeed(self, store: BreakerStore, clock: FakeClock) -> None:
        config = BreakerConfig(window=4, min_calls=4, cooldown_s=10.0, half_open_calls=2)
        breaker = self.breaker(store, clock, config)
        fail_times(breaker, 4)
        clock.advance(10)
        breaker.allow()
        breaker.allow()
        with pytest.raises(CircuitOpenError):
            breaker.allow()
        breaker.record_success()
        assert breaker.state == "half_open"
        breaker.record_success()
        assert breaker.state == "closed"

    def test_release_returns_a_trial_permit(self, store: BreakerStore, clock: FakeClock) -> None:
        breaker = self.breaker(store, clock)
        fail_times(breaker, 4)
        clock.advance(10)
        breaker.allow()
        breaker.release()  # the trial failed permanently: no verdict on the endpoint
        assert breaker.state == "half_open"
        breaker.allow()

    def test_a_lost_trial_is_given_up_after_a_cooldown(
        self, store: BreakerStore, clock: FakeClock
    ) -> None:
        breaker = self.breaker(store, clock)
        fail_times(breaker, 4)
        clock.advance(10)
        breaker.allow()  # this caller never reports back (its process died)
        clock.advance(5)
        with pytest.raises(CircuitOpenError):
            breaker.allow()
        clock.advance(5)
        breaker.allow()

    def test_two_breakers_on_one_store_share_state(
        self, store: BreakerStore, clock: FakeClock
    ) -> None:
        first, second = self.breaker(store, clock), self.breaker(store, clock)
        fail_times(first, 2)
        fail_times(second, 2)
        with pytest.raises(CircuitOpenError):
            first.allow()
        clock.advance(10)
        second.allow()
        with pytest.raises(CircuitOpenError):
            first.allow()  # the single trial permit is taken by the other breaker
        second.record_success()
        first.allow()


class TestInMemoryStore(BreakerStoreContract):
    @pytest.fixture
    def store(self) -> Iterator[BreakerStore]:
        yield InMemoryBreakerStore()


# -- in-process details -------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"failure_rate": 0},
        {"failure_rate": 1.5},
        {"window": 0},
        {"min_calls": 30},
        {"cooldown_s": -1},
        {"half_open_calls": 0},
    ],
)
def test_bad_config_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError, match="BreakerConfig"):
        BreakerConfig(**kwargs)  # type: ignore[arg-type]


def test_old_failures_roll_out_of_the_window() -> None:
    breaker = CircuitBreaker("t", SMALL, clock=FakeClock())
    fail_times(breaker, 1)
    succeed_times(breaker, 4)  # the failure is pushed out
    fail_times(breaker, 1)
    snap = breaker.snapshot()
    assert (snap.state, snap.calls, snap.failures) == ("closed", 4, 1)
    fail_times(breaker, 1)
    assert breaker.state == "open"


def test_a_healthy_target_never_opens() -> None:
    breaker = CircuitBreaker("t", SMALL, clock=FakeClock())
    succeed_times(breaker, 50)
    fail_times(breaker, 1)
    assert breaker.state == "closed"


def test_a_wall_clock_step_back_restarts_the_cooldown() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("t", SMALL, clock=clock)
    fail_times(breaker, 4)
    clock.advance(-3600)
    with pytest.raises(CircuitOpenError) as info:
        breaker.allow()
    assert info.value.retry_in_s == pytest.approx(10.0)  # not an hour
    clock.advance(10)
    breaker.allow()


def test_concurrent_failures_are_all_counted() -> None:
    config = BreakerConfig(window=1000, min_calls=1000, failure_rate=1.0)
    breaker = CircuitBreaker("t", config)
    threads = [threading.Thread(target=fail_times, args=(breaker, 100)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert breaker.snapshot().failures == 600


class FlakyStore(InMemoryBreakerStore):
    def __init__(self) -> None:
        super().__init__()
        self.down = True
        self.calls = 0

    def load(self, key: str) -> str | None:
        self.calls += 1
        if self.down:
            raise OSError("store is down")
        return super().load(key)


def test_an_unreachable_store_fails_open_and_is_left_alone_for_a_while(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, store = FakeClock(), FlakyStore()
    breaker = CircuitBreaker("tool:search", SMALL, store=store, clock=clock, store_backoff_s=5.0)
    with caplog.at_level(logging.WARNING, logger="agentmesh.controls.breaker"):
        fail_times(breaker, 10)
        breaker.allow()
        assert breaker.state == "closed"
        assert store.calls == 1, "while the store is down, calls must not wait on it"
        store.down = False
        clock.advance(5.1)
        fail_times(breaker, 4)
    assert breaker.state == "open", "once reachable again, the store is used again"
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3, messages  # down (once, not per call), up again, opened
    assert "unreachable" in messages[0]
    assert "tool:search" in messages[0]
    assert "reachable again" in messages[1]


def test_an_unreadable_record_starts_closed() -> None:
    store = InMemoryBreakerStore()
    store.compare_and_set("t", None, "{not json")
    breaker = CircuitBreaker("t", SMALL, store=store)
    breaker.allow()
    fail_times(breaker, 4)
    assert breaker.state == "open"


def test_reset_closes_an_open_breaker() -> None:
    breaker = CircuitBreaker("t", SMALL)
    fail_times(breaker, 4)
    breaker.reset()
    assert breaker.state == "closed"
    breaker.allow()


def test_registry_makes_one_breaker_per_target_with_its_config() -> None:
    clock = FakeClock()
    tight = BreakerConfig(window=2, min_calls=2, cooldown_s=1.0)
    breakers = Breakers(config=SMALL, configs={"tool:flaky": tight}, clock=clock)
    assert breakers.get("model:a") is breakers.get("model:a")
    assert breakers.get("tool:flaky").config is tight
    fail_times(breakers.get("tool:flaky"), 2)
    succeed_times(breakers.get("model:a"), 3)
    snaps = breakers.snapshot()
    assert snaps["tool:flaky"].state == "open"
    assert snaps["tool:flaky"].retry_in_s == pytest.approx(1.0)
    assert (snaps["model:a"].state, snaps["model:a"].calls) == ("closed", 3)


def test_redis_store_needs_a_url_or_a_client() -> None:
    with pytest.raises(ConfigError, match="url or a client"):
        RedisBreakerStore()
