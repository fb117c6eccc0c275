"""Retries: backoff, Retry-After, deadlines, the breaker hand-off, classification, retry storms."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest
from langgraph.errors import GraphInterrupt
from pydantic import BaseModel, ValidationError

from agentmesh.controls.breaker import BreakerConfig, CircuitBreaker
from agentmesh.controls.classify import classify, is_transient, parse_retry_after
from agentmesh.controls.retry import (
    DEFAULT_RETRY,
    RetryPolicy,
    RetryStormGuard,
    backoff_delays,
    call_with_retry,
)
from agentmesh.controls.timeouts import Deadline
from agentmesh.errors import (
    BudgetExhaustedError,
    CallTimeoutError,
    CircuitOpenError,
    ConfigError,
    RunawayError,
    ToolError,
    TransientError,
)

pytestmark = pytest.mark.timeout(30)

FIXED = RetryPolicy(
    initial_interval=1.0, backoff_factor=2.0, max_interval=5.0, max_attempts=5, jitter=False
)


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Script:
    """A call that raises the given errors in turn, then returns ``"ok"``."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def run(fn: Callable[[], str], **kwargs: object) -> tuple[str, list[float]]:
    slept: list[float] = []
    kwargs.setdefault("policy", FIXED)
    result = call_with_retry(fn, target="model:m", sleep=slept.append, **kwargs)  # type: ignore[arg-type]
    return result, slept


# -- backoff ------------------------------------------------------------------------------


def test_backoff_is_exponential_and_capped() -> None:
    assert list(backoff_delays(FIXED)) == [1.0, 2.0, 4.0, 5.0]
    assert list(backoff_delays(FIXED._replace(max_attempts=1))) == []


def test_jitter_spreads_delays_without_exceeding_the_policy() -> None:
    policy = FIXED._replace(jitter=True, max_attempts=200, backoff_factor=1.0)
    delays = list(backoff_delays(policy, rng=random.Random(7)))
    assert all(0.5 <= d <= 1.0 for d in delays)
    assert len(set(delays)) > 150, "jitter must actually vary the delays"
    assert list(backoff_delays(policy, rng=random.Random(7))) == delays


# -- call_with_retry ----------------------------------------------------------------------


def test_transient_failures_are_retried_with_backoff() -> None:
    seen: list[tuple[int, str, float]] = []
    fn = Script(ConnectionError("reset"), TimeoutError("slow"))
    result, slept = run(fn, on_retry=lambda n, err, d: seen.append((n, err.target, d)))
    assert (result, fn.calls, slept) == ("ok", 3, [1.0, 2.0])
    assert seen == [(1, "model:m", 1.0), (2, "model:m", 2.0)]


def test_permanent_failure_is_raised_at_once_unchanged() -> None:
    error = ValueError("bad request")
    fn = Script(error)
    with pytest.raises(ValueError) as info:
        run(fn)
    assert info.value is error
    assert fn.calls == 1


def test_last_transient_error_is_raised_after_max_attempts() -> None:
    fn = Script(*[ConnectionError(f"reset {i}") for i in range(5)])
    with pytest.raises(TransientError) as info:
        run(fn, policy=FIXED._replace(max_attempts=3))
    assert fn.calls == 3
    assert info.value.target == "model:m"
    assert isinstance(info.value.__cause__, ConnectionError)
    assert str(info.value.__cause__) == "reset 2"


def test_a_transient_error_raised_by_the_call_is_raised_as_is() -> None:
    timeout = CallTimeoutError("slow", target="tool:search")
    with pytest.raises(CallTimeoutError) as info:
        run(Script(timeout, timeout), policy=FIXED._replace(max_attempts=2))
    assert info.value is timeout


def test_retry_after_replaces_the_computed_delay_capped_by_max_interval() -> None:
    _, slept = run(
        Script(
            TransientError("429", target="m", retry_after_s=3.5),
            TransientError("429", target="m", retry_after_s=60.0),
            TransientError("429", target="m", retry_after_s=0.0),
        )
    )
    assert slept == [3.5, 5.0, 0.0]


def test_no_retry_that_would_sleep_past_the_deadline() -> None:
    clock = FakeClock()
    deadline = Deadline(1.5, scope="agent:a", clock=clock)
    fn = Script(ConnectionError("one"), ConnectionError("two"))
    with pytest.raises(TransientError, match="two"):
        run(fn, deadline=deadline)  # 1 s sleep fits in 1.5 s; the 2 s one does not
    assert fn.calls == 2


def test_an_expired_deadline_makes_no_call() -> None:
    clock = FakeClock()
    deadline = Deadline(1.0, scope="run", clock=clock)
    clock.advance(2)
    fn = Script()
    with pytest.raises(CallTimeoutError, match="run ran past its 1s deadline"):
        run(fn, deadline=deadline)
    assert fn.calls == 0


def test_retry_on_narrows_what_is_retried() -> None:
    policy = FIXED._replace(retry_on=(TimeoutError,))
    assert run(Script(TimeoutError()), policy=policy)[0] == "ok"
    fn = Script(ConnectionError("reset"))
    with pytest.raises(ConnectionError):
        run(fn, policy=policy)
    assert fn.calls == 1
    never = FIXED._replace(retry_on=lambda exc: False)
    with pytest.raises(TimeoutError):
        run(Script(TimeoutError()), policy=never)


def test_langgraph_default_retry_on_defers_to_classification() -> None:
    # LangGraph's own default would skip TimeoutError (an OSError) and retry a 400-style ValueError.
    policy = RetryPolicy(initial_interval=0.1, jitter=False)
    assert run(Script(TimeoutError()), policy=policy)[0] == "ok"
    fn = Script(ValueError("bad"))
    with pytest.raises(ValueError):
        run(fn, policy=policy)
    assert fn.calls == 1


def test_bad_policy_is_refused() -> None:
    with pytest.raises(ConfigError, match="max_attempts"):
        run(Script(), policy=FIXED._replace(max_attempts=0))


def test_default_policy() -> None:
    assert DEFAULT_RETRY.max_attempts == 3
    assert DEFAULT_RETRY.retry_on is is_transient


def test_interrupts_and_run_stops_pass_through_untouched() -> None:
    interrupt = GraphInterrupt(())
    with pytest.raises(GraphInterrupt) as info:
        run(Script(interrupt))
    assert info.value is interrupt
    fn = Script(BudgetExhaustedError("cap", scope="run", limit="tokens", cap=1, needed=2))
    with pytest.raises(BudgetExhaustedError):
        run(fn)
    assert fn.calls == 1


def test_breaker_opens_between_retries_and_fails_fast() -> None:
    breaker = CircuitBreaker("model:m", BreakerConfig(window=2, min_calls=2, cooldown_s=30))
    fn = Script(*[ConnectionError() for _ in range(5)])
    slept: list[float] = []
    with pytest.raises(CircuitOpenError) as info:
        call_with_retry(fn, target="model:m", policy=FIXED, sleep=slept.append, breaker=breaker)
    assert fn.calls == 2
    assert slept == [1.0], "no pause after the failure that opened the breaker"
    assert isinstance(info.value.__cause__, ConnectionError)
    assert info.value.retry_in_s == 30
    with pytest.raises(CircuitOpenError):
        run(fn, breaker=breaker)
    assert fn.calls == 2, "an open breaker must not let the call through"


def test_breaker_counts_only_transient_failures() -> None:
    breaker = CircuitBreaker("model:m", BreakerConfig(window=2, min_calls=2))
    for _ in range(3):
        with pytest.raises(ValueError):
            run(Script(ValueError()), breaker=breaker)
    run(Script(ConnectionError()), breaker=breaker)
    snap = breaker.snapshot()
    assert (snap.state, snap.calls, snap.failures) == ("closed", 2, 1)


def test_a_permanent_failure_gives_back_the_half_open_trial() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("m", BreakerConfig(window=1, min_calls=1, cooldown_s=5), clock=clock)
    breaker.record_failure()
    clock.advance(5)
    with pytest.raises(ValueError):
        run(Script(ValueError()), breaker=breaker)
    with pytest.raises(KeyboardInterrupt):
        run(Script(KeyboardInterrupt()), breaker=breaker)
    assert run(Script(), breaker=breaker)[0] == "ok"
    assert breaker.state == "closed"


# -- retry storms -------------------------------------------------------------------------


def test_retry_storm_guard_stops_the_run() -> None:
    clock = FakeClock()
    guard = RetryStormGuard(max_retries=3, window_s=10.0, run_id="run-1", clock=clock)
    for target in ("model:a", "model:a", "tool:b"):
        guard.record(target)
    with pytest.raises(RunawayError) as info:
        guard.record("model:a")
    assert (info.value.kind, info.value.run_id) == ("retry_storm", "run-1")
    assert "model:a x3" in str(info.value)
    clock.advance(10)
    assert guard.count == 0
    guard.record("model:a")


def test_retry_storm_guard_ends_a_retry_loop() -> None:
    guard = RetryStormGuard(max_retries=2, window_s=60.0, clock=FakeClock())
    fn = Script(*[ConnectionError() for _ in range(10)])
    with pytest.raises(RunawayError):
        run(fn, policy=FIXED._replace(max_attempts=10), on_retry=guard.on_retry)
    assert fn.calls == 3


def test_retry_storm_guard_is_thread_safe() -> None:
    guard = RetryStormGuard(max_retries=10_000, window_s=60.0)
    threads = [
        threading.Thread(target=lambda: [guard.record("t") for _ in range(100)]) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert guard.count == 800


def test_retry_storm_guard_config_is_checked() -> None:
    with pytest.raises(ConfigError):
        RetryStormGuard(max_retries=-1)


# -- classification (the real-client cases are in test_fault_injection.py) ------------------


def _http_error(status: int, headers: dict[str, str] | None = None) -> httpx.HTTPStatusError:
    request = httpx.Request("GET", "http://127.0.0.1/tool")
    response = httpx.Response(status, headers=headers, request=request)
    return httpx.HTTPStatusError(f"HTTP {status}", request=request, response=response)


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_retryable_http_statuses_are_transient(status: int) -> None:
    assert isinstance(classify(_http_error(status), target="tool:t"), TransientError)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_other_client_errors_are_permanent(status: int) -> None:
    assert classify(_http_error(status), target="tool:t") is None


def test_classification_of_common_failures() -> None:
    request = httpx.Request("GET", "http://127.0.0.1/")

    class Shape(BaseModel):
        n: int

    try:
        Shape.model_validate({"n": "x"})
    except ValidationError as exc:
        validation = exc
    transient = [
        httpx.ConnectError("refused", request=request),
        httpx.ReadTimeout("slow", request=request),
        httpx.RemoteProtocolError("closed", request=request),
        TimeoutError(),
        ConnectionResetError(),
    ]
    permanent = [
        ValueError("bad"),
        validation,
        KeyError("x"),
        httpx.UnsupportedProtocol("ftp"),
        ToolError("refused", tool="t"),
        CircuitOpenError("open", target="t", retry_in_s=1),
        FileNotFoundError("x"),
    ]
    assert [is_transient(e) for e in transient] == [True] * len(transient)
    assert [is_transient(e) for e in permanent] == [False] * len(permanent)


def test_classification_follows_an_explicit_cause() -> None:
    class WrapperError(Exception):
        pass

    try:
        try:
            raise ConnectionResetError("peer reset")
        except ConnectionResetError as inner:
            raise WrapperError("tool failed") from inner
    except WrapperError as exc:
        error = classify(exc, target="tool:t")
    assert error is not None
    assert error.target == "tool:t"
    assert "WrapperError" in str(error)
    # an agentmesh error is authoritative: its cause is not looked at
    wrapped = ToolError("refused", tool="t")
    wrapped.__cause__ = ConnectionResetError()
    assert classify(wrapped, target="t") is None


def test_retry_after_forms() -> None:
    assert parse_retry_after(httpx.Headers({"Retry-After": "2"})) == 2.0
    assert parse_retry_after(httpx.Headers({"retry-after": "0.25"})) == 0.25
    both = httpx.Headers({"retry-after": "1", "retry-after-ms": "1500"})
    assert parse_retry_after(both) == 1.5
    when = format_datetime(datetime(2030, 1, 1, 0, 0, 30, tzinfo=UTC), usegmt=True)
    now = datetime(2030, 1, 1, tzinfo=UTC).timestamp()
    assert parse_retry_after(httpx.Headers({"Retry-After": when}), now=now) == 30.0
    assert parse_retry_after(httpx.Headers({"Retry-After": "soon"})) is None
    assert parse_retry_after(httpx.Headers({"Retry-After": "-3"})) is None
    assert parse_retry_after(httpx.Headers({})) is None
    assert classify(_http_error(429, {"Retry-After": "4"}), target="t").retry_after_s == 4.0  # type: ignore[union-attr]
