"""Timeouts: the policy, deadlines, and bounding a blocking call."""

from __future__ import annotations

import contextvars
import threading
import time
from typing import Any, TypedDict

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.errors import GraphInterrupt
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from agentmesh.controls.timeouts import Deadline, Timeouts, call_with_timeout
from agentmesh.errors import CallTimeoutError, ConfigError, TransientError

pytestmark = pytest.mark.timeout(30)


class FakeClock:
    def __init__(self, now: float = 50.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_timeouts_defaults_and_validation() -> None:
    t = Timeouts()
    assert (t.model_call_s, t.tool_call_s, t.agent_s, t.run_s) == (60.0, 30.0, None, None)
    with pytest.raises(ConfigError, match="tool_call_s"):
        Timeouts(tool_call_s=0)
    with pytest.raises(ConfigError, match="run_s"):
        Timeouts(run_s=-1)


def test_deadline_counts_down_and_caps_timeouts() -> None:
    clock = FakeClock()
    run = Deadline(10.0, scope="run", clock=clock)
    assert run.remaining() == 10.0
    assert run.cap(60.0) == 10.0
    assert run.cap(3.0) == 3.0
    assert run.cap(None) == 10.0
    clock.advance(7)
    assert run.remaining() == 3.0
    assert not run.expired()
    run.check()
    clock.advance(4)
    assert run.expired()
    assert run.remaining() == 0.0
    with pytest.raises(CallTimeoutError) as info:
        run.check()
    assert info.value.target == "run"
    assert isinstance(info.value, TransientError)


def test_an_unbounded_deadline_never_expires() -> None:
    clock = FakeClock()
    forever = Deadline(None, clock=clock)
    clock.advance(1e9)
    assert forever.remaining() is None
    assert not forever.expired()
    assert forever.cap(5.0) == 5.0
    assert forever.cap(None) is None


def test_a_child_deadline_never_outlives_its_parent() -> None:
    clock = FakeClock()
    run = Deadline(10.0, scope="run", clock=clock)
    assert run.child(30.0, scope="agent:a").remaining() == 10.0
    assert run.child(4.0, scope="agent:a").remaining() == 4.0
    inherited = run.child(None, scope="agent:b")
    assert inherited.remaining() == 10.0
    assert inherited.scope == "agent:b"
    assert Deadline(None, clock=clock).child(2.0, scope="agent:c").remaining() == 2.0


def test_call_with_timeout_returns_the_result() -> None:
    assert call_with_timeout(lambda: 42, 5.0, target="tool:t") == 42


def test_no_timeout_calls_inline() -> None:
    assert call_with_timeout(threading.get_ident, None, target="tool:t") == threading.get_ident()


def test_a_hung_call_is_abandoned_after_its_timeout() -> None:
    release = threading.Event()
    started = time.monotonic()
    with pytest.raises(CallTimeoutError) as info:
        call_with_timeout(lambda: release.wait(10), 0.2, target="tool:slow")
    elapsed = time.monotonic() - started
    release.set()
    assert 0.15 < elapsed < 2.0
    assert info.value.target == "tool:slow"
    assert "within 0.2s" in str(info.value)


def test_no_time_left_makes_no_call() -> None:
    called = []
    with pytest.raises(CallTimeoutError):
        call_with_timeout(lambda: called.append(1), 0.0, target="tool:t")
    assert called == []


def test_exceptions_pass_through_unchanged() -> None:
    error = KeyError("missing")

    def fail() -> None:
        raise error

    with pytest.raises(KeyError) as info:
        call_with_timeout(fail, 5.0, target="tool:t")
    assert info.value is error
    bubble = GraphInterrupt(())

    def pause() -> None:
        raise bubble

    with pytest.raises(GraphInterrupt) as paused:
        call_with_timeout(pause, 5.0, target="tool:t")
    assert paused.value is bubble


REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="none")


def test_context_variables_reach_the_worker() -> None:
    token = REQUEST_ID.set("req-7")
    try:
        seen = call_with_timeout(REQUEST_ID.get, 5.0, target="tool:t")
    finally:
        REQUEST_ID.reset(token)
    assert seen == "req-7"


class State(TypedDict):
    answer: str


def test_a_langgraph_interrupt_inside_a_bounded_call_pauses_and_resumes_the_graph() -> None:
    def ask(state: State) -> dict[str, Any]:
        answer = call_with_timeout(lambda: interrupt("approve?"), 5.0, target="tool:human")
        return {"answer": answer}

    builder = StateGraph(State)
    builder.add_node("ask", ask)
    builder.add_edge(START, "ask")
    builder.add_edge("ask", END)
    graph = builder.compile(checkpointer=InMemorySaver())
    config: Any = {"configurable": {"thread_id": "t1"}}

    paused = graph.invoke({"answer": ""}, config)
    assert [i.value for i in paused["__interrupt__"]] == ["approve?"]
    done = graph.invoke(Command(resume="yes"), config)
    assert done["answer"] == "yes"
