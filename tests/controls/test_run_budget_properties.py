"""Property test: random hierarchies under random caps never spend past any cap.

Each example builds a meta with 1-3 leads, each running 1-3 stages (a specialist, or
two specialists in parallel), every specialist a `ScriptedChatModel` priced as
gpt-4o-mini with its own answer size and, at random, a deterministic fallback. The
run gets random token, cost, call and step caps, split among the leads by random
fractions or explicit budgets. Whatever happens, at every level of the budget tree
the spend stays within the caps, and so does what the models themselves counted.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, create_model

import agentmesh as am
from agentmesh.pricing import cost_usd
from agentmesh.testing import ScriptedChatModel

pytestmark = pytest.mark.timeout(300)

PRICED_AS = "gpt-4o-mini"
STATUSES = {am.RunStatus.COMPLETED, am.RunStatus.BUDGET_EXHAUSTED}


class Doc(BaseModel):
    text: str


@dataclass(frozen=True, kw_only=True)
class Leaf:
    name: str
    answer_tokens: int
    fallback: bool


@dataclass(frozen=True, kw_only=True)
class Shape:
    """A hierarchy: leads, each a list of stages, each stage one leaf or two in parallel."""

    leads: dict[str, list[list[Leaf]]]
    max_output: int


@dataclass(kw_only=True)
class Built:
    graph: Any
    models: dict[str, ScriptedChatModel] = field(default_factory=dict)
    lead_of: dict[str, str] = field(default_factory=dict)


# -- strategies -----------------------------------------------------------------------------------


@st.composite
def shapes(draw: st.DrawFn) -> Shape:
    max_output = draw(st.integers(20, 800))
    counter = iter(range(100))
    leads: dict[str, list[list[Leaf]]] = {}
    for lead in range(draw(st.integers(1, 3))):
        stages = []
        for _ in range(draw(st.integers(1, 3))):
            width = draw(st.sampled_from([1, 1, 2]))
            stages.append(
                [
                    Leaf(
                        name=f"s{next(counter)}",
                        answer_tokens=draw(st.integers(1, max_output)),
                        fallback=draw(st.booleans()),
                    )
                    for _ in range(width)
                ]
            )
        leads[f"l{lead}"] = stages
    return Shape(leads=leads, max_output=max_output)


# A call reserves its prompt bound (a few hundred tokens here) plus max_output: caps are
# drawn as "room for k such calls, give or take", k spread evenly, so that runs stop at
# every point (or never) rather than mostly before their first call.
PROMPT_ROOM = 500


ROOMS = range(1, 12)  # calls' (or steps') worth of room; 0 is drawn on its own, rarely


def _room(draw: st.DrawFn, unit: float) -> float | None:
    presence = draw(st.sampled_from(["absent"] * 4 + ["set"] * 3 + ["none_left"]))
    if presence == "absent":
        return None
    if presence == "none_left":
        return draw(st.floats(0, unit))
    return draw(st.sampled_from(ROOMS)) * unit + draw(st.floats(0, unit))


@st.composite
def caps(draw: st.DrawFn, shape: Shape) -> dict[str, Any]:
    """Each cap absent, or room for a random number of calls (or steps)."""
    tokens = _room(draw, PROMPT_ROOM + shape.max_output)
    calls = _room(draw, 1)
    steps = _room(draw, 2)
    return {
        "tokens": None if tokens is None else int(tokens),
        "cost_usd": _room(draw, cost_usd(PRICED_AS, PROMPT_ROOM, shape.max_output)),
        "model_calls": None if calls is None else int(calls),
        "steps": None if steps is None else int(steps),
    }


@st.composite
def budgets(draw: st.DrawFn, shape: Shape) -> am.Budget:
    shares: dict[str, float | am.Budget] = {}
    room = 1.0
    for lead, stages in shape.leads.items():
        kind = draw(st.sampled_from(["none", "fraction", "budget"]))
        if kind == "fraction":
            fraction = draw(st.floats(0.05, 1.0))
            if fraction <= room:
                shares[lead] = fraction
                room -= fraction
        elif kind == "budget":
            leaves = [leaf.name for stage in stages for leaf in stage]
            inner = {
                name: am.Budget(**draw(caps(shape)))
                for name in draw(st.lists(st.sampled_from(leaves), unique=True))
            }
            shares[lead] = am.Budget(**draw(caps(shape)), shares=inner)
    return am.Budget(**draw(caps(shape)), shares=shares)


# -- building and checking ------------------------------------------------------------------------


def build(shape: Shape) -> Built:
    built = Built(graph=None)
    leads = []
    every_field: dict[str, Any] = {}
    for lead, stages in shape.leads.items():
        lead_fields: dict[str, Any] = {}
        parts: list[Any] = []
        for stage in stages:
            agents = [_specialist(leaf, built, lead) for leaf in stage]
            for agent in agents:
                lead_fields.update(dict.fromkeys(agent.output.model_fields, (str, ...)))
            parts.append(
                agents[0]
                if len(agents) == 1
                else am.Parallel(*agents, name=f"p_{lead}_{len(parts)}")
            )
        output = create_model(f"Out_{lead}", **lead_fields)
        leads.append(am.Lead(name=lead, input=Doc, output=output, stages=parts, max_steps=20))
        every_field.update(lead_fields)
    meta = am.Meta(
        name="top", input=Doc, output=create_model("TopOut", **every_field), stages=leads
    )
    built.graph = meta.compile()
    return built


def _specialist(leaf: Leaf, built: Built, lead: str) -> am.Specialist:
    key = f"f_{leaf.name}"
    output = create_model(f"Out_{leaf.name}", **{key: (str, ...)})
    answer = output(**{key: f"{leaf.name} by model"})
    model = ScriptedChatModel(
        respond=lambda messages, tools: answer,
        price_as=PRICED_AS,
        tokens_per_answer=leaf.answer_tokens,
    )
    built.models[leaf.name] = model
    built.lead_of[leaf.name] = lead

    def rules(doc: Doc) -> BaseModel:
        return output(**{key: f"{leaf.name} by rules"})

    return am.Specialist(
        name=leaf.name,
        input=Doc,
        output=output,
        layer="small_model",
        prompt=f"Agent {leaf.name}.",
        model=model,
        fallback=rules if leaf.fallback else None,
    )


def levels(snapshot: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield snapshot
    for child in snapshot["children"].values():
        yield from levels(child)


def counted(models: list[ScriptedChatModel]) -> tuple[int, int, float]:
    """Tokens, calls and cost as the models themselves counted them."""
    tokens = sum(m.input_tokens + m.output_tokens for m in models)
    calls = sum(m.calls for m in models)
    # One call per model at most here, so its token counters are that call's usage.
    cost = sum(cost_usd(PRICED_AS, m.input_tokens, m.output_tokens) for m in models)
    return tokens, calls, cost


def assert_model_counts_within(caps: dict[str, float], models: list[ScriptedChatModel]) -> None:
    tokens, calls, cost = counted(models)
    if "tokens" in caps:
        assert tokens <= caps["tokens"]
    if "model_calls" in caps:
        assert calls <= caps["model_calls"]
    if "cost_usd" in caps:
        assert cost <= caps["cost_usd"] + 1e-12


def expected_caps(budget: am.Budget) -> dict[str, float]:
    raw = {
        "tokens": budget.tokens,
        "cost_usd": budget.cost_usd,
        "model_calls": budget.model_calls,
        "steps": budget.steps,
    }
    return {k: v for k, v in raw.items() if v is not None}


def lead_budget(budget: am.Budget, lead: str) -> am.Budget | None:
    share = budget.shares.get(lead)
    if share is None:
        return None
    return share if isinstance(share, am.Budget) else budget.scaled(share)


# -- the property ---------------------------------------------------------------------------------


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_no_level_ever_spends_past_a_cap(data: st.DataObject) -> None:
    shape = data.draw(shapes(), label="shape")
    budget = data.draw(budgets(shape), label="budget")
    built = build(shape)

    result = am.run(
        built.graph,
        Doc(text="random run"),
        checkpointer=None,
        controls=am.Controls(budget=budget, max_output_tokens=shape.max_output),
    )

    assert result.status in STATUSES, result.reason
    event(f"ended {result.status.value}")
    snap = result.budget
    for level in levels(snap):
        for limit, cap in level["caps"].items():
            assert level["spent"][limit] <= cap, (level["scope"], limit, level["spent"], cap)
        assert not any(level["reserved"].values()), level["scope"]
        assert level["overruns"] == 0, level["scope"]

    # The models' own counters agree with the root account and are within the root caps.
    models = list(built.models.values())
    tokens, calls, cost = counted(models)
    event(f"model calls: {min(calls, 4)}{'+' if calls >= 4 else ''}")
    assert (snap["spent"]["tokens"], snap["spent"]["model_calls"]) == (tokens, calls)
    assert snap["spent"]["cost_usd"] == pytest.approx(cost, abs=1e-9)
    assert snap["caps"] == pytest.approx(expected_caps(budget), abs=1e-12)
    assert_model_counts_within(snap["caps"], models)

    # ... and within each lead's caps, which come from its share.
    for lead, node in snap["children"].items():
        mine = [m for name, m in built.models.items() if built.lead_of[name] == lead]
        share = lead_budget(budget, lead)
        # (cost caps are kept in whole picodollars)
        assert node["caps"] == pytest.approx(expected_caps(share) if share else {}, abs=1e-12)
        assert_model_counts_within(node["caps"], mine)
        assert node["spent"]["model_calls"] == sum(m.calls for m in mine)

    if result.status is am.RunStatus.BUDGET_EXHAUSTED:
        assert result.reason.startswith("budget exhausted at run")
    else:
        assert result.output is not None
