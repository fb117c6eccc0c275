"""A model agent's working context stays within its token budget inside a real run."""

from __future__ import annotations

import json

from langchain_core.messages import ToolMessage
from langchain_core.tools import tool
from pydantic import BaseModel

import agentmesh as am
from agentmesh.memory import ContextBudget
from agentmesh.memory.context import estimate_tokens
from agentmesh.testing import ScriptedChatModel, tool_call


class Ask(BaseModel):
    goal_id: str


class Found(BaseModel):
    rows: int


@tool
def fetch(page: int) -> str:
    """Fetch one page of records (a large JSON blob)."""
    return json.dumps([{"page": page, "row": i, "note": "x" * 40} for i in range(12)])


def _agent(model: ScriptedChatModel, budget: ContextBudget | None) -> am.Specialist:
    return am.Specialist(
        name="reader",
        input=Ask,
        output=Found,
        layer="small_model",
        model=model,
        tools=[fetch],
        max_tool_rounds=40,
        context_budget=budget,
    )


def _run(budget: ContextBudget | None, rounds: int = 30) -> tuple[am.RunResult, list[int], list]:
    sizes: list[int] = []
    recalled: list = []

    def respond(messages: list, tools: list) -> object:
        sizes.append(estimate_tokens(messages))
        if recalled and len(recalled) == 1 and isinstance(messages[-1], ToolMessage):
            recalled.append(str(messages[-1].content))  # what recall_step answered
        pages = sum(isinstance(m, ToolMessage) for m in messages)
        if budget is not None and len(sizes) == rounds - 5 and not recalled:
            pointer = next(
                (w for m in messages for w in str(m.content).split() if w.startswith("step:")),
                None,
            )
            if pointer:
                recalled.append(pointer.strip("[]'\",()"))
                return tool_call("recall_step", pointer=recalled[-1])
        if len(sizes) >= rounds:
            return Found(rows=pages)
        return tool_call("fetch", page=len(sizes))

    graph = am.Lead(
        name="desk",
        input=Ask,
        output=Found,
        stages=[_agent(ScriptedChatModel(respond=respond), budget)],
    ).compile()
    result = am.run(graph, Ask(goal_id="G-7"), checkpointer=None, tools=am.ToolGateway([fetch]))
    return result, sizes, recalled


def test_the_prompt_stays_within_budget_while_an_unbounded_one_grows() -> None:
    bounded, sizes, recalled = _run(ContextBudget(max_tokens=1500))
    unbounded, raw_sizes, _ = _run(None)
    assert bounded.status is am.RunStatus.COMPLETED, bounded.reason
    assert unbounded.status is am.RunStatus.COMPLETED
    assert max(sizes) <= 1500 * 1.1
    assert raw_sizes[-1] > 3 * 1500
    assert len(recalled) == 2, "the agent saw a pointer to an externalized step and used it"
    pointer, answer = recalled
    assert pointer.startswith("step:"), pointer
    assert not answer.startswith("error"), answer
    assert answer.count("row") == 12  # the full step record came back, not a summary


def test_a_code_agent_cannot_take_a_context_budget() -> None:
    import pytest

    with pytest.raises(am.ConfigError, match="context_budget"):
        am.Specialist(
            name="c",
            input=Ask,
            output=Found,
            fn=lambda a: Found(rows=0),
            context_budget=ContextBudget(max_tokens=100),
        )
