"""Per-agent and per-tool timeouts, and tool retries, applied by the runtime."""

from __future__ import annotations

import time

import pytest
from langchain_core.messages import ToolMessage
from langchain_core.tools import tool
from pydantic import BaseModel

import agentmesh as am
from agentmesh.controls import Timeouts
from agentmesh.errors import TransientError
from agentmesh.testing import ScriptedChatModel, tool_call


class Query(BaseModel):
    word: str


class Verdict(BaseModel):
    ok: bool


def rule_verdict(q: Query) -> Verdict:
    return Verdict(ok=False)


def _lead(agent: am.Specialist) -> object:
    return am.Lead(name="desk", input=Query, output=Verdict, stages=[agent]).compile()


def test_an_agent_past_its_own_timeout_stops_between_rounds_and_falls_back() -> None:
    calls: list[float] = []

    @tool
    def slow_lookup(word: str) -> str:
        """Look a word up (slowly)."""
        time.sleep(0.15)
        return word

    def respond(messages: list, tools: list) -> object:
        calls.append(time.monotonic())
        return tool_call("slow_lookup", word="a")  # never answers: loops on the tool

    judge = am.Specialist(
        name="judge",
        input=Query,
        output=Verdict,
        layer="small_model",
        model=ScriptedChatModel(respond=respond),
        tools=[slow_lookup],
        fallback=rule_verdict,
        max_tool_rounds=50,
    )
    started = time.monotonic()
    result = am.run(
        _lead(judge),
        Query(word="a"),
        checkpointer=None,
        tools=am.ToolGateway([slow_lookup]),
        controls=am.Controls(timeouts=Timeouts(agent_s=0.4)),
    )
    elapsed = time.monotonic() - started
    assert result.status is am.RunStatus.COMPLETED
    assert result.output == Verdict(ok=False)
    assert result.result is not None and result.result.degraded
    assert 2 <= len(calls) <= 5, calls  # stopped after ~0.4 s, not after 50 rounds
    assert elapsed < 2.0


def test_a_hanging_tool_is_cut_off_by_the_tool_timeout() -> None:
    @tool
    def hang(word: str) -> str:
        """Never answers in time."""
        time.sleep(5)
        return word

    def respond(messages: list, tools: list) -> object:
        if isinstance(messages[-1], ToolMessage):
            assert "did not answer within" in str(messages[-1].content)
            return Verdict(ok=True)
        return tool_call("hang", word="a")

    judge = am.Specialist(
        name="judge",
        input=Query,
        output=Verdict,
        layer="small_model",
        model=ScriptedChatModel(respond=respond),
        tools=[hang],
    )
    started = time.monotonic()
    result = am.run(
        _lead(judge),
        Query(word="a"),
        checkpointer=None,
        tools=am.ToolGateway([hang]),
        controls=am.Controls(
            timeouts=Timeouts(tool_call_s=0.2),
            retry=am.controls.RetryPolicy(max_attempts=1),
        ),
    )
    assert result.status is am.RunStatus.COMPLETED, result.reason
    assert time.monotonic() - started < 2.0


def test_a_transient_tool_failure_is_retried_and_a_permanent_one_is_not() -> None:
    attempts = {"flaky": 0, "broken": 0}

    @tool
    def flaky(word: str) -> str:
        """Fails once with a transient error."""
        attempts["flaky"] += 1
        if attempts["flaky"] == 1:
            raise TransientError("upstream 503", target="tool:flaky")
        return word

    @tool
    def broken(word: str) -> str:
        """Fails permanently."""
        attempts["broken"] += 1
        raise ValueError("bad input")

    def respond(messages: list, tools: list) -> object:
        done = [m for m in messages if isinstance(m, ToolMessage)]
        if len(done) == 2:
            return Verdict(ok=True)
        return tool_call("flaky" if not done else "broken", word="a")

    judge = am.Specialist(
        name="judge",
        input=Query,
        output=Verdict,
        layer="small_model",
        model=ScriptedChatModel(respond=respond),
        tools=[flaky, broken],
    )
    result = am.run(
        _lead(judge),
        Query(word="a"),
        checkpointer=None,
        tools=am.ToolGateway([flaky, broken]),
        controls=am.Controls(
            retry=am.controls.RetryPolicy(initial_interval=0.01, max_interval=0.02, max_attempts=3)
        ),
    )
    assert result.status is am.RunStatus.COMPLETED, result.reason
    assert attempts == {"flaky": 2, "broken": 1}


def test_a_kill_switch_on_the_top_role_stops_the_run_before_its_first_step() -> None:
    ran: list[str] = []

    @am.specialist()
    def echo(q: Query) -> Verdict:
        """Answer."""
        ran.append(q.word)
        return Verdict(ok=True)

    graph = _lead(echo)
    switch = am.controls.KillSwitch()
    switch.kill(agent="desk", reason="maintenance")
    try:
        stopped = am.run(graph, Query(word="a"), thread_id="t-kill")
    finally:
        switch.clear(agent="desk")
    assert stopped.status is am.RunStatus.KILLED
    assert "maintenance" in stopped.reason
    assert ran == []
    resumed = am.run(graph, None, thread_id="t-kill")
    assert resumed.status is am.RunStatus.COMPLETED
    assert ran == ["a"]


@pytest.mark.parametrize("bad", [0, -1])
def test_controls_reject_nonsense(bad: int) -> None:
    with pytest.raises(am.ConfigError):
        am.Controls(max_output_tokens=bad)
