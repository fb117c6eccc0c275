"""Budgets at run level: a meta -> 2 leads -> 4 specialists hierarchy under hard caps.

Every specialist answers from a `ScriptedChatModel` priced as gpt-4o-mini, so the
models' own counters (calls, tokens) can be compared with what the run's budget
snapshot says was spent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import BaseModel

import agentmesh as am
from agentmesh.testing import RecordingTracer, ScriptedChatModel
from agentmesh.tracing._base import SpanKind

pytestmark = pytest.mark.timeout(60)

# Every answer uses the whole max_tokens the call reserves (a provider never goes past
# it), so a call costs about what it reserves and caps bite at a known call, however
# tight the prompt bound (bytes, or tiktoken when its files are cached) is.
ANSWER_TOKENS = 1000
TOKENS_CAP = 2600  # two calls of ~1,030 tokens fit; a third cannot reserve ~1,100 more
COST_CAP = 0.0016  # two calls of ~$0.0006 fit; a third cannot reserve ~$0.0006 more
LEAVES = ("intake/extract", "intake/classify", "review/check", "review/summarize")


class Doc(BaseModel):
    text: str


class Fields(BaseModel):
    vendor: str
    amount: int


class Label(BaseModel):
    label: str


class Finding(BaseModel):
    risk: str


class Summary(BaseModel):
    summary: str


class IntakeOut(BaseModel):
    label: str


class ReviewOut(BaseModel):
    summary: str


class Pair(BaseModel):
    risk: str
    vendor: str


class DeskOut(BaseModel):
    label: str
    summary: str


ANSWERS: dict[str, BaseModel] = {
    "extract": Fields(vendor="acme", amount=120),
    "classify": Label(label="invoice"),
    "check": Finding(risk="low"),
    "summarize": Summary(summary="acme invoice, low risk"),
}
FALLBACKS: dict[str, BaseModel] = {
    "extract": Fields(vendor="?", amount=0),
    "classify": Label(label="fallback"),
    "check": Finding(risk="unknown"),
    "summarize": Summary(summary="fallback summary"),
}


@dataclass(frozen=True, kw_only=True)
class Desk:
    """The compiled hierarchy and the scripted model behind each specialist."""

    graph: Any
    models: dict[str, ScriptedChatModel]

    def calls(self) -> dict[str, int]:
        return {name: m.calls for name, m in self.models.items()}

    @property
    def total_calls(self) -> int:
        return sum(m.calls for m in self.models.values())

    @property
    def total_tokens(self) -> int:
        return sum(m.input_tokens + m.output_tokens for m in self.models.values())


def _fallback(name: str) -> Callable[[BaseModel], BaseModel]:
    def fallback(payload: BaseModel) -> BaseModel:
        return FALLBACKS[name]

    fallback.__name__ = f"{name}_rules"
    return fallback


def build_desk(*, fallbacks: frozenset[str] = frozenset()) -> Desk:
    """meta ``desk`` -> leads ``intake`` (extract, classify) and ``review`` (check, summarize)."""
    models: dict[str, ScriptedChatModel] = {}

    def agent(name: str, input: type[BaseModel], output: type[BaseModel]) -> am.Specialist:
        answer = ANSWERS[name]
        models[name] = ScriptedChatModel(
            respond=lambda messages, tools: answer,
            price_as="gpt-4o-mini",
            tokens_per_answer=ANSWER_TOKENS,
        )
        return am.Specialist(
            name=name,
            input=input,
            output=output,
            layer="small_model",
            prompt=f"You are the {name} agent.",
            model=models[name],
            fallback=_fallback(name) if name in fallbacks else None,
        )

    intake = am.Lead(
        name="intake",
        input=Doc,
        output=IntakeOut,
        stages=[agent("extract", Doc, Fields), agent("classify", Fields, Label)],
    )
    review = am.Lead(
        name="review",
        input=Doc,
        output=ReviewOut,
        stages=[agent("check", Doc, Finding), agent("summarize", Finding, Summary)],
    )
    meta = am.Meta(name="desk", input=Doc, output=DeskOut, stages=[intake, review])
    return Desk(graph=meta.compile(), models=models)


def run_desk(
    desk: Desk, budget: am.Budget, *, tracer: RecordingTracer | None = None
) -> am.RunResult[Any]:
    return am.run(
        desk.graph,
        Doc(text="ACME invoice 120 EUR due 2024-09-30"),
        checkpointer=None,
        tracer=tracer,
        controls=am.Controls(budget=budget, max_output_tokens=ANSWER_TOKENS),
    )


def scopes(snapshot: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every level of a budget snapshot, the root first."""
    yield snapshot
    for child in snapshot["children"].values():
        yield from scopes(child)


def assert_within_caps(snapshot: dict[str, Any]) -> None:
    for level in scopes(snapshot):
        for limit, cap in level["caps"].items():
            if limit != "wall_clock_s":
                assert level["spent"][limit] <= cap, (level["scope"], limit)
        assert level["overruns"] == 0, level["scope"]
        assert not any(level["reserved"].values()), level["scope"]


def level(snapshot: dict[str, Any], path: str) -> dict[str, Any]:
    node = snapshot
    for part in path.split("/"):
        node = node["children"][part]
    return node


def served_by(tracer: RecordingTracer, agent: str) -> tuple[str, bool]:
    [span] = [s for s in tracer.of_kind(SpanKind.ROLE) if s.name == agent]
    return span.attributes["served_by"], span.attributes["degraded"]


# -- spend is accounted at every level -----------------------------------------------------------


def test_an_affordable_run_completes_and_its_snapshot_matches_the_models() -> None:
    desk = build_desk()
    result = run_desk(desk, am.Budget(tokens=100_000, cost_usd=1.0, model_calls=10, steps=10))

    assert result.status is am.RunStatus.COMPLETED, result.reason
    assert result.output == DeskOut(label="invoice", summary="acme invoice, low risk")
    snap = result.budget
    assert snap["scope"] == "run"
    assert snap["spent"]["model_calls"] == desk.total_calls == 4
    assert snap["spent"]["tokens"] == desk.total_tokens
    assert snap["spent"]["steps"] == 6  # two leads and four specialists
    for lead in ("intake", "review"):
        assert level(snap, lead)["spent"]["model_calls"] == 2
        assert level(snap, lead)["spent"]["steps"] == 3
    for path in LEAVES:
        model = desk.models[path.split("/")[1]]
        assert level(snap, path)["spent"]["tokens"] == model.input_tokens + model.output_tokens
    assert result.usage.model_calls == 4
    assert snap["spent"]["cost_usd"] == pytest.approx(result.usage.cost_usd, abs=1e-8)
    assert_within_caps(snap)


# -- a cap ends the run budget_exhausted, with what it had done ----------------------------------


@pytest.mark.parametrize(
    ("limit", "budget"),
    [
        ("model_calls", am.Budget(model_calls=3)),
        ("steps", am.Budget(steps=4)),
        ("tokens", am.Budget(tokens=TOKENS_CAP)),
        ("cost_usd", am.Budget(cost_usd=COST_CAP)),
    ],
)
def test_a_cap_ends_the_run_budget_exhausted_with_partial_results(
    limit: str, budget: am.Budget
) -> None:
    desk = build_desk()
    result = run_desk(desk, budget)

    assert result.status is am.RunStatus.BUDGET_EXHAUSTED
    assert result.output is None
    assert result.reason.startswith(f"budget exhausted at run: {limit} would reach")
    snap = result.budget
    assert_within_caps(snap)
    assert snap["caps"][limit] == getattr(budget, limit)
    # It stopped part-way: some specialists answered, the rest never called a model.
    done = [p for p in LEAVES if p in result.partial]
    assert 0 < len(done) < len(LEAVES), sorted(result.partial)
    assert done == list(LEAVES[: len(done)])
    for path in LEAVES:
        expected = 1 if path in done else 0
        assert desk.models[path.split("/")[1]].calls == expected, path
    for path in done:
        agent = path.split("/")[1]
        assert result.partial[path].output == ANSWERS[agent].model_dump()
    assert snap["spent"]["model_calls"] == desk.total_calls == len(done)
    assert snap["spent"]["tokens"] == desk.total_tokens
    assert result.usage.model_calls == len(done)


def test_the_reason_names_the_scope_and_the_limit() -> None:
    result = run_desk(build_desk(), am.Budget(model_calls=3))
    assert result.reason == "budget exhausted at run: model_calls would reach 4, cap 3"
    assert sorted(result.partial) == ["intake", "intake/classify", "intake/extract", "review/check"]
    assert result.partial["intake"].output == {"label": "invoice"}


# -- a specialist with a fallback answers over budget, degraded ----------------------------------


def test_over_budget_a_specialist_with_a_fallback_answers_through_it() -> None:
    desk = build_desk(fallbacks=frozenset({"summarize"}))
    tracer = RecordingTracer()
    result = run_desk(desk, am.Budget(model_calls=3), tracer=tracer)

    assert result.status is am.RunStatus.COMPLETED, result.reason
    assert result.output == DeskOut(label="invoice", summary="fallback summary")
    assert result.result is not None and result.result.degraded
    assert desk.calls() == {"extract": 1, "classify": 1, "check": 1, "summarize": 0}
    assert served_by(tracer, "summarize") == ("fallback:summarize_rules", True)
    assert served_by(tracer, "check") == ("gpt-4o-mini", False)
    assert result.budget["spent"]["model_calls"] == 3
    assert_within_caps(result.budget)


def test_fallbacks_keep_a_tight_run_going_without_one_more_model_call() -> None:
    desk = build_desk(fallbacks=frozenset(ANSWERS))
    result = run_desk(desk, am.Budget(tokens=TOKENS_CAP))

    assert result.status is am.RunStatus.COMPLETED, result.reason
    assert result.output == DeskOut(label="invoice", summary="fallback summary")
    assert desk.calls() == {"extract": 1, "classify": 1, "check": 0, "summarize": 0}
    assert result.budget["spent"]["tokens"] == desk.total_tokens <= TOKENS_CAP


# -- shares split the caps among the leads --------------------------------------------------------


@pytest.mark.parametrize(
    ("shares", "stopped_at", "done"),
    [
        ({"intake": 0.25, "review": 0.75}, "run/intake", ["intake/extract"]),
        (
            {"intake": 0.5, "review": 0.25},
            "run/review",
            ["intake/extract", "intake/classify", "review/check"],
        ),
    ],
)
def test_shares_split_the_caps_per_lead(
    shares: dict[str, float], stopped_at: str, done: list[str]
) -> None:
    desk = build_desk()
    result = run_desk(desk, am.Budget(model_calls=4, shares=shares))

    assert result.status is am.RunStatus.BUDGET_EXHAUSTED
    assert result.reason.startswith(f"budget exhausted at {stopped_at}: model_calls would reach")
    snap = result.budget
    for lead, fraction in shares.items():
        if lead in snap["children"]:  # envelopes are opened when a lead first runs
            assert level(snap, lead)["caps"] == {"model_calls": int(4 * fraction)}
    stopped_lead = stopped_at.removeprefix("run/")
    assert level(snap, stopped_lead)["spent"]["model_calls"] == int(4 * shares[stopped_lead])
    assert snap["caps"] == {"model_calls": 4}
    assert [p for p in LEAVES if p in result.partial] == done
    assert desk.total_calls == len(done)
    assert_within_caps(snap)


def test_each_lead_degrades_only_inside_its_own_share() -> None:
    desk = build_desk(fallbacks=frozenset(ANSWERS))
    result = run_desk(desk, am.Budget(model_calls=4, shares={"intake": 0.25, "review": 0.75}))

    assert result.status is am.RunStatus.COMPLETED, result.reason
    # intake's one call is spent by extract; review still has three and uses two.
    assert desk.calls() == {"extract": 1, "classify": 0, "check": 1, "summarize": 1}
    assert result.output == DeskOut(label="fallback", summary="acme invoice, low risk")
    assert level(result.budget, "intake")["spent"]["model_calls"] == 1
    assert level(result.budget, "review")["spent"]["model_calls"] == 2


# -- a child never spends beyond its parent -------------------------------------------------------


def test_a_generous_child_budget_is_still_bounded_by_its_parent() -> None:
    desk = build_desk()
    budget = am.Budget(
        model_calls=3,
        shares={
            "intake": am.Budget(model_calls=1, shares={"extract": am.Budget(model_calls=50)}),
            "review": am.Budget(model_calls=50),
        },
    )
    result = run_desk(desk, budget)

    assert result.status is am.RunStatus.BUDGET_EXHAUSTED
    # classify is refused by its lead's cap of 1, not by its own (none) or the run's (3)
    assert result.reason.startswith("budget exhausted at run/intake: model_calls would reach 2")
    assert desk.calls() == {"extract": 1, "classify": 0, "check": 0, "summarize": 0}
    snap = result.budget
    assert level(snap, "intake/extract")["caps"] == {"model_calls": 50}
    assert level(snap, "intake")["spent"]["model_calls"] == 1
    assert_within_caps(snap)


def test_a_lead_with_a_larger_cap_than_the_run_stops_at_the_runs() -> None:
    desk = build_desk(fallbacks=frozenset({"summarize"}))
    result = run_desk(desk, am.Budget(model_calls=3, shares={"review": am.Budget(model_calls=50)}))

    assert result.status is am.RunStatus.COMPLETED, result.reason
    assert desk.calls() == {"extract": 1, "classify": 1, "check": 1, "summarize": 0}
    review = level(result.budget, "review")
    assert review["caps"] == {"model_calls": 50}
    assert review["spent"]["model_calls"] == 1 <= result.budget["caps"]["model_calls"]
    assert result.budget["spent"]["model_calls"] == 3


def test_spent_adds_up_from_the_specialists_to_the_run() -> None:
    desk = build_desk()
    result = run_desk(desk, am.Budget(tokens=4 * TOKENS_CAP, cost_usd=2 * COST_CAP))

    assert result.status is am.RunStatus.COMPLETED, result.reason
    snap = result.budget
    # Model calls happen only in specialists: every level is the sum of the levels below it.
    for node in scopes(snap):
        if node["children"]:
            for limit in ("tokens", "model_calls"):
                below = sum(c["spent"][limit] for c in node["children"].values())
                assert below == node["spent"][limit], (node["scope"], limit)
            below_cost = sum(c["spent"]["cost_usd"] for c in node["children"].values())
            assert below_cost == pytest.approx(node["spent"]["cost_usd"], abs=1e-9)
    assert snap["spent"]["tokens"] == desk.total_tokens
    assert_within_caps(snap)


def test_a_refused_parallel_member_does_not_lose_its_siblings_spend() -> None:
    def slowly(messages: Any, tools: Any) -> BaseModel:
        time.sleep(0.2)  # still answering when its sibling is refused
        return ANSWERS["check"]

    slow = ScriptedChatModel(respond=slowly, tokens_per_answer=ANSWER_TOKENS)
    fast = ScriptedChatModel(respond=lambda m, t: ANSWERS["extract"], tokens_per_answer=1)
    both = am.Parallel(
        am.Specialist(name="check", input=Doc, output=Finding, layer="small_model", model=slow),
        am.Specialist(name="extract", input=Doc, output=Fields, layer="small_model", model=fast),
        name="both",
    )
    lead = am.Lead(name="pair", input=Doc, output=Pair, stages=[both]).compile()
    budget = am.Budget(model_calls=5, shares={"extract": am.Budget(model_calls=0)})

    result = am.run(
        lead,
        Doc(text="x"),
        checkpointer=None,
        controls=am.Controls(budget=budget, max_output_tokens=ANSWER_TOKENS),
    )

    assert result.status is am.RunStatus.BUDGET_EXHAUSTED
    assert result.reason.startswith("budget exhausted at run/extract: model_calls would reach 1")
    assert (slow.calls, fast.calls) == (1, 0)
    # The run ended after the sibling settled: its call is in the snapshot, nothing is held.
    assert result.budget["spent"]["model_calls"] == 1
    assert result.budget["spent"]["tokens"] == slow.input_tokens + slow.output_tokens
    assert_within_caps(result.budget)
    assert list(result.partial) == ["check"]
