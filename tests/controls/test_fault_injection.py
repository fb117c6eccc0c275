"""Faults injected through the real ``langchain-openai`` client against a local server.

The client is built the way agentmesh must build it for these controls to own
retries and time: ``ChatOpenAI(max_retries=0, timeout=...)``.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_openai import ChatOpenAI

from agentmesh.controls.breaker import BreakerConfig, CircuitBreaker
from agentmesh.controls.classify import classify
from agentmesh.controls.retry import RetryPolicy, call_with_retry
from agentmesh.controls.timeouts import call_with_timeout
from agentmesh.errors import CallTimeoutError, CircuitOpenError, TransientError
from agentmesh.testing.openai_server import FakeOpenAIServer, Fault, Reply

pytestmark = pytest.mark.timeout(30)

TARGET = "model:gpt-4o-mini"
POLICY = RetryPolicy(
    initial_interval=0.2, backoff_factor=2.0, max_interval=10.0, max_attempts=5, jitter=False
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def srv() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


def client(base_url: str, *, timeout: float = 5.0, max_retries: int = 0) -> ChatOpenAI:
    return ChatOpenAI(
        model="gpt-4o-mini",
        base_url=base_url,
        api_key="x",
        max_retries=max_retries,
        timeout=timeout,
    )


def chats(srv: FakeOpenAIServer) -> int:
    return sum(r.path.endswith("/chat/completions") for r in srv.requests)


def failure_of(call: Any) -> BaseException:
    try:
        call()
    except Exception as exc:
        return exc
    raise AssertionError("the call did not fail")


# -- each failure is classified right -------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "transient"),
    [
        (Fault.status(429), True),
        (Fault.status(500), True),
        (Fault.status(502), True),
        (Fault.status(503), True),
        (Fault.status(408), True),
        (Fault.status(400), False),
        (Fault.status(401), False),
        (Fault.status(404), False),
        (Fault.status(422), False),
        (Fault.malformed(), False),
        (Fault.bad_shape(), False),
    ],
    ids=lambda v: f"{v.kind}-{v.status_code}" if isinstance(v, Fault) else str(v),
)
def test_each_failure_is_classified(srv: FakeOpenAIServer, fault: Fault, transient: bool) -> None:
    srv.enqueue(fault)
    exc = failure_of(lambda: client(srv.base_url).invoke("hi"))
    error = classify(exc, target=TARGET)
    assert (error is not None) == transient, repr(exc)
    assert chats(srv) == 1, "max_retries=0: the SDK must not retry on its own"
    if error is not None:
        assert error.target == TARGET
        assert error.__cause__ is exc


def test_rate_limit_keeps_the_servers_retry_after(srv: FakeOpenAIServer) -> None:
    srv.enqueue(Fault.status(429, retry_after=2.5))
    error = classify(failure_of(lambda: client(srv.base_url).invoke("hi")), target=TARGET)
    assert error is not None
    assert error.retry_after_s == 2.5


def test_a_client_timeout_is_transient(srv: FakeOpenAIServer) -> None:
    srv.enqueue(Fault.hang(5))
    exc = failure_of(lambda: client(srv.base_url, timeout=0.3).invoke("hi"))
    assert isinstance(classify(exc, target=TARGET), TransientError)


def test_a_refused_connection_is_transient() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    exc = failure_of(lambda: client(f"http://127.0.0.1:{port}/v1").invoke("hi"))
    assert isinstance(classify(exc, target=TARGET), TransientError)


# -- retries ------------------------------------------------------------------------------


def test_429_is_retried_after_the_retry_after_delay(srv: FakeOpenAIServer) -> None:
    srv.enqueue(Fault.status(429, retry_after=1.5), Reply.text("done"))
    slept: list[float] = []
    llm = client(srv.base_url)
    answer = call_with_retry(
        lambda: llm.invoke("hi"), target=TARGET, policy=POLICY, sleep=slept.append
    )
    assert answer.content == "done"
    assert slept == [1.5]
    assert chats(srv) == 2


def test_without_max_retries_0_the_sdk_retries_behind_our_back(srv: FakeOpenAIServer) -> None:
    srv.enqueue(Fault.status(500, retry_after=0.01), Fault.status(500, retry_after=0.01))
    answer = client(srv.base_url, max_retries=2).invoke("hi")
    assert answer.content == "ok"
    assert chats(srv) == 3  # three requests for one "call": invisible to budgets and breakers


def test_malformed_json_is_not_retried_and_does_not_count_against_the_breaker(
    srv: FakeOpenAIServer,
) -> None:
    srv.enqueue(Fault.malformed())
    breaker = CircuitBreaker(TARGET, BreakerConfig(window=2, min_calls=1))
    llm = client(srv.base_url)
    with pytest.raises(ValueError):
        call_with_retry(
            lambda: llm.invoke("hi"),
            target=TARGET,
            policy=POLICY,
            sleep=lambda s: None,
            breaker=breaker,
        )
    assert chats(srv) == 1
    assert breaker.snapshot().calls == 0


def test_a_hang_past_the_timeout_is_cut_short_and_retried(srv: FakeOpenAIServer) -> None:
    srv.enqueue(Fault.hang(10), Reply.text("second try"))
    llm = client(srv.base_url, timeout=20.0)  # the client alone would wait for 10 s
    failures: list[TransientError] = []
    started = time.monotonic()
    answer = call_with_retry(
        lambda: call_with_timeout(lambda: llm.invoke("hi"), 0.3, target=TARGET),
        target=TARGET,
        policy=POLICY,
        sleep=lambda s: None,
        on_retry=lambda n, err, d: failures.append(err),
    )
    assert time.monotonic() - started < 3.0
    assert answer.content == "second try"
    assert [type(f) for f in failures] == [CallTimeoutError]
    assert chats(srv) == 2


# -- breaker ------------------------------------------------------------------------------


def test_500s_open_the_breaker_which_fails_fast_then_recovers_half_open(
    srv: FakeOpenAIServer,
) -> None:
    srv.default = Fault.status(500)
    clock = FakeClock()
    config = BreakerConfig(failure_rate=0.5, window=4, min_calls=3, cooldown_s=30.0)
    breaker = CircuitBreaker(TARGET, config, clock=clock)
    llm = client(srv.base_url)
    slept: list[float] = []

    def call() -> Any:
        return call_with_retry(
            lambda: llm.invoke("hi"),
            target=TARGET,
            policy=POLICY,
            sleep=slept.append,
            breaker=breaker,
        )

    with pytest.raises(CircuitOpenError) as info:
        call()  # attempts 1-3 reach the server; the third failure opens the breaker
    assert chats(srv) == 3
    assert slept == [0.2, 0.4]
    assert info.value.target == TARGET
    assert info.value.retry_in_s == pytest.approx(30.0)
    assert classify(info.value.__cause__, target=TARGET) is not None  # the 500 that opened it

    with pytest.raises(CircuitOpenError):
        call()
    assert chats(srv) == 3, "an open breaker must not reach the server"

    clock.now += 30.0  # cool-down over: one trial; it fails, so the breaker opens again
    with pytest.raises(CircuitOpenError):
        call()
    assert chats(srv) == 4
    assert breaker.state == "open"

    clock.now += 30.0
    srv.default = Reply.text("recovered")
    assert call().content == "recovered"
    assert chats(srv) == 5
    assert breaker.state == "closed"
