"""Faults injected through the real ``langchain-openai`` client, seen from a whole run.

A lead ``desk`` runs one specialist ``judge`` whose model is
``ChatOpenAI(base_url=<FakeOpenAIServer on 127.0.0.1>, max_retries=0)``, so every
retry is agentmesh's own and every request the run makes is counted by the server.
Each test ends in a typed `RunStatus`; none raises.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

import agentmesh as am
from agentmesh._runtime import guard
from agentmesh.controls import BreakerConfig, Breakers, RetryPolicy, Timeouts
from agentmesh.testing import FakeOpenAIServer, Fault, RecordingTracer, Reply
from agentmesh.tracing._base import SpanKind

pytestmark = pytest.mark.timeout(60)


def _target(srv: FakeOpenAIServer) -> str:
    """The breaker of the model endpoint a test's runs call."""
    return f"model:gpt-4o-mini@{srv.base_url}"


FAST_RETRY = RetryPolicy(
    initial_interval=0.01, backoff_factor=2.0, max_interval=1.0, max_attempts=3, jitter=False
)


class Doc(BaseModel):
    text: str


class Verdict(BaseModel):
    label: str


ANSWER = Reply.tool_call("Verdict", {"label": "invoice"})


def rules(doc: Doc) -> Verdict:
    """The deterministic fallback."""
    return Verdict(label="by rules")


@pytest.fixture(autouse=True)
def _fresh_services() -> Iterator[None]:
    """Breakers are shared per process and settings: no test sees another's."""
    guard._SERVICES.clear()
    yield
    guard._SERVICES.clear()


@pytest.fixture
def srv() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(default=ANSWER) as server:
        yield server


def client(srv: FakeOpenAIServer, *, timeout: float | None = 5.0) -> ChatOpenAI:
    return ChatOpenAI(
        model="gpt-4o-mini",
        base_url=srv.base_url,
        api_key="x",
        max_retries=0,  # agentmesh retries; the SDK must not retry behind its back
        timeout=timeout,
    )


def desk(llm: ChatOpenAI, *, fallback: bool) -> Any:
    judge = am.Specialist(
        name="judge",
        input=Doc,
        output=Verdict,
        layer="small_model",
        prompt="Label the document.",
        model=llm,
        fallback=rules if fallback else None,
    )
    return am.Lead(name="desk", input=Doc, output=Verdict, stages=[judge]).compile()


def run(
    graph: Any, controls: am.Controls, tracer: RecordingTracer | None = None
) -> am.RunResult[Any]:
    result = am.run(
        graph, Doc(text="ACME invoice"), checkpointer=None, controls=controls, tracer=tracer
    )
    assert isinstance(result.status, am.RunStatus)
    return result


def chats(srv: FakeOpenAIServer) -> list[float]:
    """Arrival times of the chat requests the server received."""
    return [r.timestamp for r in srv.requests if r.path.endswith("/chat/completions")]


def served_by(tracer: RecordingTracer) -> list[str]:
    return [s.attributes["served_by"] for s in tracer.of_kind(SpanKind.ROLE) if s.name == "judge"]


class Clock:
    """Wall-clock seconds for the breakers, moved on by hand (no sleeping through cool-downs)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def install_breakers(config: BreakerConfig, clock: Clock | None = None) -> Breakers:
    """Give this test's runs breakers with ``config``."""
    settings = am.Settings.from_env()
    breakers = Breakers(config=config, clock=clock or Clock())
    guard._SERVICES[settings] = replace(guard.services_for(settings), breakers=breakers)
    return breakers


# -- 429 with Retry-After ----------------------------------------------------------------------


def test_a_429_is_retried_after_the_servers_retry_after(srv: FakeOpenAIServer) -> None:
    srv.enqueue(Fault.status(429, retry_after=0.25))
    tracer = RecordingTracer()
    started = time.monotonic()
    result = run(desk(client(srv), fallback=True), am.Controls(retry=FAST_RETRY), tracer)

    assert result.status is am.RunStatus.COMPLETED, result.reason
    assert result.output == Verdict(label="invoice")
    assert served_by(tracer) == ["gpt-4o-mini"]
    first, second = chats(srv)
    # The policy alone would wait 0.01 s: the server's 0.25 s was honoured instead.
    assert second - first >= 0.25
    assert time.monotonic() - started >= 0.25


# -- 500s: retries, then the breaker opens, fails fast, and recovers half-open -----------------


def test_500s_are_retried_then_open_the_breaker_which_fails_fast_and_recovers(
    srv: FakeOpenAIServer,
) -> None:
    clock = Clock()
    config = BreakerConfig(failure_rate=0.5, window=4, min_calls=3, cooldown_s=30.0)
    breakers = install_breakers(config, clock)
    controls = am.Controls(retry=FAST_RETRY._replace(max_attempts=5), breaker=config)
    srv.default = Fault.status(500)
    tracer = RecordingTracer()

    # Attempts 1-3 reach the server; the third failure opens the breaker: no 4th attempt.
    first = run(desk(client(srv), fallback=True), controls, tracer)
    assert first.status is am.RunStatus.COMPLETED, first.reason
    assert first.output == Verdict(label="by rules")
    assert first.result is not None and first.result.degraded
    assert len(chats(srv)) == 3
    assert breakers.get(_target(srv)).state == "open"

    # Open: later runs fail fast into the fallback without a request ...
    again = run(desk(client(srv), fallback=True), controls, tracer)
    assert again.output == Verdict(label="by rules")
    # ... and a specialist without one fails, which ends its run typed, not with an exception.
    bare = run(desk(client(srv), fallback=False), controls)
    assert bare.status is am.RunStatus.ESCALATED
    assert "CircuitOpenError" in bare.reason
    assert len(chats(srv)) == 3, "an open breaker must not reach the server"

    # After the cool-down one trial goes through; it fails, so the breaker opens again.
    clock.now += 30.0
    trial = run(desk(client(srv), fallback=True), controls, tracer)
    assert trial.output == Verdict(label="by rules")
    assert len(chats(srv)) == 4
    assert breakers.get(_target(srv)).state == "open"

    # After the next cool-down the trial succeeds and closes it.
    clock.now += 30.0
    srv.default = ANSWER
    healed = run(desk(client(srv), fallback=True), controls, tracer)
    assert healed.status is am.RunStatus.COMPLETED, healed.reason
    assert healed.output == Verdict(label="invoice")
    assert len(chats(srv)) == 5
    assert breakers.get(_target(srv)).state == "closed"
    assert served_by(tracer) == ["fallback:rules"] * 3 + ["gpt-4o-mini"]


def test_the_runs_breaker_config_is_applied(srv: FakeOpenAIServer) -> None:
    srv.default = Fault.status(500)
    controls = am.Controls(
        retry=FAST_RETRY._replace(max_attempts=5),
        breaker=BreakerConfig(failure_rate=0.5, window=2, min_calls=2, cooldown_s=0.3),
    )
    result = run(desk(client(srv), fallback=True), controls)
    assert result.output == Verdict(label="by rules")
    assert len(chats(srv)) == 2  # the second failure opens it (the default config needs 5)


# -- hangs past the model-call timeout ---------------------------------------------------------


def test_a_hang_is_cut_at_the_model_call_timeout_and_retried(srv: FakeOpenAIServer) -> None:
    srv.enqueue(Fault.hang(10))
    controls = am.Controls(timeouts=Timeouts(model_call_s=0.3), retry=FAST_RETRY)
    started = time.monotonic()
    # No client timeout of its own: the run's watchdog bounds the call.
    result = run(desk(client(srv, timeout=None), fallback=False), controls)

    assert result.status is am.RunStatus.COMPLETED, result.reason
    assert result.output == Verdict(label="invoice")
    assert len(chats(srv)) == 2
    assert 0.3 <= time.monotonic() - started < 3.0


def test_a_model_that_keeps_hanging_falls_back(srv: FakeOpenAIServer) -> None:
    srv.default = Fault.hang(10)
    tracer = RecordingTracer()
    controls = am.Controls(
        timeouts=Timeouts(model_call_s=0.3), retry=FAST_RETRY._replace(max_attempts=2)
    )
    started = time.monotonic()
    result = run(desk(client(srv, timeout=0.3), fallback=True), controls, tracer)

    assert result.status is am.RunStatus.COMPLETED, result.reason
    assert result.output == Verdict(label="by rules")
    assert served_by(tracer) == ["fallback:rules"]
    assert len(chats(srv)) == 2
    assert time.monotonic() - started < 3.0


def test_the_model_call_timeout_bounds_a_client_with_a_longer_timeout(
    srv: FakeOpenAIServer,
) -> None:
    srv.enqueue(Fault.hang(2.0))
    controls = am.Controls(timeouts=Timeouts(model_call_s=0.3), retry=FAST_RETRY)
    started = time.monotonic()
    result = run(desk(client(srv, timeout=30.0), fallback=False), controls)
    assert result.output == Verdict(label="invoice")
    assert time.monotonic() - started < 1.5


# -- malformed JSON ----------------------------------------------------------------------------


def test_malformed_json_is_not_retried_and_falls_back(srv: FakeOpenAIServer) -> None:
    breakers = install_breakers(BreakerConfig(window=2, min_calls=1))
    srv.enqueue(Fault.malformed())
    tracer = RecordingTracer()
    result = run(desk(client(srv), fallback=True), am.Controls(retry=FAST_RETRY), tracer)

    assert result.status is am.RunStatus.COMPLETED, result.reason
    assert result.output == Verdict(label="by rules")
    assert served_by(tracer) == ["fallback:rules"]
    assert len(chats(srv)) == 1
    assert breakers.get(_target(srv)).snapshot().calls == 0  # a bad answer is not an outage


def test_malformed_json_without_a_fallback_escalates(srv: FakeOpenAIServer) -> None:
    srv.default = Fault.malformed()
    result = run(desk(client(srv), fallback=False), am.Controls(retry=FAST_RETRY))

    assert result.status is am.RunStatus.ESCALATED
    assert "judge failed" in result.reason
    assert len(chats(srv)) == 2  # once per gate attempt, never by transport retries


# -- every fault ends typed --------------------------------------------------------------------

FAULTS = [
    Fault.status(429),
    Fault.status(500),
    Fault.status(503),
    Fault.status(400),
    Fault.hang(5),
    Fault.malformed(),
    Fault.bad_shape(),
]


@pytest.mark.parametrize("fallback", [True, False], ids=["fallback", "bare"])
@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f"{f.kind}-{f.status_code}")
def test_every_fault_ends_the_run_in_a_typed_status(
    srv: FakeOpenAIServer, fault: Fault, fallback: bool
) -> None:
    srv.default = fault
    controls = am.Controls(
        timeouts=Timeouts(model_call_s=0.3), retry=FAST_RETRY._replace(max_attempts=2)
    )
    started = time.monotonic()
    result = run(desk(client(srv, timeout=0.3), fallback=fallback), controls)

    if fallback:
        assert result.status is am.RunStatus.COMPLETED, result.reason
        assert result.output == Verdict(label="by rules")
        assert result.result is not None and result.result.degraded
    else:
        assert result.status is am.RunStatus.ESCALATED
        assert result.output is None
        assert "judge failed" in result.reason
    transient = fault.kind == "hang" or fault.status_code in (429, 500, 503)
    per_attempt = 2 if transient else 1  # transport retries only for transient faults
    gate_attempts = 1 if fallback else 2
    assert len(chats(srv)) == per_attempt * gate_attempts
    assert time.monotonic() - started < 5.0
