"""Framework overhead: one 3-level hierarchy built with agentmesh and hand-wired in LangGraph.

Both builds do the same work on the same inputs: a meta role runs two leads,
each with three specialists (code functions and model calls answered instantly
by :class:`~agentmesh.testing.ScriptedChatModel`); the second lead runs two
peer critics in parallel and joins them with a weighted vote. Only the
framework around that work differs, so the time difference is the overhead.
"""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING, Annotated, Any, TypedDict

from langchain_core.messages import HumanMessage, SystemMessage
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send
from pydantic import BaseModel

import agentmesh as am
from agentmesh.testing import ScriptedChatModel
from agentmesh.tracing import NullTracer

if TYPE_CHECKING:
    from collections.abc import Callable

    from langchain_core.messages import BaseMessage

__all__ = [
    "Outcome",
    "Ticket",
    "build_agentmesh",
    "build_langgraph",
    "new_models",
    "ratio",
    "run_agentmesh",
    "run_langgraph",
    "sample_tickets",
]

Models = dict[str, ScriptedChatModel]
WEIGHTS = {"critic_a": 2.0, "critic_b": 1.0}
CLASSIFY_PROMPT = "Classify the support ticket from its words."
CRITIC_PROMPT = "Review the draft reply; approve it or not and name its tone."


class Ticket(BaseModel):
    """A support ticket: the hierarchy's input."""

    ticket_id: int
    text: str


class Tokens(BaseModel):
    """The ticket's words."""

    words: list[str]
    n_words: int


class Category(BaseModel):
    """What the ticket is about (a model's answer)."""

    category: str
    urgent: bool


class ScoreIn(BaseModel):
    """What the scorer needs."""

    n_words: int
    urgent: bool


class Score(BaseModel):
    """The ticket's priority."""

    priority: int


class Triaged(BaseModel):
    """The triage lead's result, which is also the drafter's input."""

    ticket_id: int
    category: str
    priority: int


class Draft(BaseModel):
    """A draft reply."""

    reply: str


class Verdict(BaseModel):
    """A critic's verdict (the peers' shared schema)."""

    approve: bool
    tone: str


class Response(BaseModel):
    """The respond lead's result."""

    reply: str
    approve: bool
    tone: str


class Outcome(Triaged, Response):
    """The meta role's result: what both builds must return."""


# -- the work itself, shared by both builds ---------------------------------------------


def tokenize(ticket: Ticket) -> Tokens:
    """Split the ticket into words."""
    words = ticket.text.split()
    return Tokens(words=words, n_words=len(words))


def score(data: ScoreIn) -> Score:
    """Priority from length and urgency."""
    return Score(priority=min(5, 1 + data.n_words // 8 + (2 if data.urgent else 0)))


def draft(data: Triaged) -> Draft:
    """A templated reply."""
    return Draft(reply=f"Ticket {data.ticket_id}: our {data.category} team has it.")


def answer_classify(messages: list[BaseMessage], tools: list[dict[str, Any]]) -> Category:
    """The classifier model's instant answer, read from the words it was sent."""
    text = str(messages[-1].content).lower()
    category = "billing" if "invoice" in text else "technical" if "crash" in text else "general"
    return Category(category=category, urgent="urgent" in text)


def answer_critic_a(messages: list[BaseMessage], tools: list[dict[str, Any]]) -> Verdict:
    """First critic: approves replies that name a team."""
    return Verdict(approve="team" in str(messages[-1].content), tone="friendly")


def answer_critic_b(messages: list[BaseMessage], tools: list[dict[str, Any]]) -> Verdict:
    """Second critic: agrees on approval, disagrees on tone for billing tickets."""
    text = str(messages[-1].content)
    return Verdict(approve="team" in text, tone="formal" if "billing" in text else "friendly")


def new_models() -> Models:
    """One set of scripted models per build, so each build's calls are counted apart."""
    answers = {"classify": answer_classify, "critic_a": answer_critic_a}
    return {
        n: ScriptedChatModel(respond=f) for n, f in {**answers, "critic_b": answer_critic_b}.items()
    }


def sample_tickets(n: int) -> list[Ticket]:
    """``n`` varied tickets (billing, technical, general; some urgent)."""
    topics = [
        "my invoice shows a duplicate charge for last month",
        "the app will crash whenever I open the settings page",
        "how do I change the email address on my account",
    ]
    urgent = ["urgent ", "", "", ""]
    return [
        Ticket(ticket_id=i, text=f"{urgent[i % 4]}hello, {topics[i % 3]} " + "please " * (i % 9))
        for i in range(n)
    ]


# -- agentmesh build ------------------------------------------------------------------------


def build_agentmesh(models: Models) -> Any:
    """The hierarchy as agentmesh roles, compiled (no checkpointer)."""
    code = am.specialist()

    def model(name: str, input: type[BaseModel], output: type[BaseModel], prompt: str) -> Any:
        return am.Specialist(
            name=name,
            input=input,
            output=output,
            layer="small_model",
            prompt=prompt,
            model=models[name],
        )

    classify = model("classify", Tokens, Category, CLASSIFY_PROMPT)
    critics = [model(n, Draft, Verdict, CRITIC_PROMPT) for n in ("critic_a", "critic_b")]
    review = am.Parallel(*critics, name="review", resolver=am.Vote(weights=WEIGHTS))
    stages = [code(tokenize), classify, code(score)]
    triage = am.Lead(name="triage", input=Ticket, output=Triaged, stages=stages)
    respond = am.Lead(name="respond", input=Triaged, output=Response, stages=[code(draft), review])
    return am.Meta(name="support", input=Ticket, output=Outcome, stages=[triage, respond]).compile()


def run_agentmesh(graph: Any, ticket: Ticket) -> Outcome:
    """Run one ticket through the agentmesh build."""
    result = am.run(graph, ticket, checkpointer=None, tracer=NullTracer())
    if not isinstance(result.output, Outcome):
        raise RuntimeError(f"agentmesh run ended {result.status}: {result.reason}")
    return result.output


# -- hand-wired LangGraph build --------------------------------------------------------------


class TriageState(TypedDict, total=False):
    """State of the hand-wired triage lead."""

    ticket_id: int
    text: str
    words: list[str]
    n_words: int
    category: str
    urgent: bool
    priority: int


class RespondState(TypedDict, total=False):
    """State of the hand-wired respond lead."""

    ticket_id: int
    category: str
    priority: int
    reply: str
    verdicts: Annotated[list[tuple[str, Verdict]], operator.add]
    approve: bool
    tone: str


class SupportState(TypedDict, total=False):
    """State of the hand-wired meta graph."""

    ticket_id: int
    text: str
    category: str
    priority: int
    reply: str
    approve: bool
    tone: str


def _asker(model: ScriptedChatModel, prompt: str, schema: type[BaseModel]) -> Callable[..., Any]:
    """A model call: tool-forced answer, validated against ``schema``."""
    bound = model.bind_tools([schema], tool_choice="any")
    system = SystemMessage(prompt)

    def ask(payload: BaseModel) -> Any:
        ai = bound.invoke([system, HumanMessage(payload.model_dump_json())])
        return schema.model_validate(ai.tool_calls[0]["args"])

    return ask


def vote(verdicts: list[tuple[str, Verdict]]) -> Verdict:
    """Weighted per-field majority over the critics' verdicts."""
    merged: dict[str, Any] = {}
    for field in Verdict.model_fields:
        tally: dict[Any, float] = {}
        for name, verdict in verdicts:
            value = getattr(verdict, field)
            tally[value] = tally.get(value, 0.0) + WEIGHTS.get(name, 1.0)
        merged[field] = max(tally.items(), key=operator.itemgetter(1))[0]
    return Verdict.model_validate(merged)


def build_langgraph(models: Models) -> Any:
    """The same hierarchy as a LangGraph developer would wire it by hand."""
    classify = _asker(models["classify"], CLASSIFY_PROMPT, Category)
    critics = {n: _asker(models[n], CRITIC_PROMPT, Verdict) for n in ("critic_a", "critic_b")}

    tri: StateGraph[Any, Any, Any, Any] = StateGraph(TriageState)
    tri.add_sequence(
        [
            ("tokenize", lambda s: tokenize(Ticket.model_validate(s)).model_dump()),
            ("classify", lambda s: classify(Tokens.model_validate(s)).model_dump()),
            ("score", lambda s: score(ScoreIn.model_validate(s)).model_dump()),
        ]
    )
    tri.add_edge(START, "tokenize")
    tri.add_edge("score", END)

    def critic(name: str) -> Any:
        ask = critics[name]
        return lambda s: {"verdicts": [(name, ask(Draft.model_validate(s)))]}

    res: StateGraph[Any, Any, Any, Any] = StateGraph(RespondState)
    res.add_node("draft", lambda s: draft(Triaged.model_validate(s)).model_dump())
    for name in critics:
        res.add_node(name, critic(name))
        res.add_edge(name, "join")
    res.add_node("join", lambda s: vote(s["verdicts"]).model_dump())
    res.add_edge(START, "draft")
    res.add_conditional_edges("draft", lambda s: [Send(n, s) for n in critics], list(critics))
    res.add_edge("join", END)

    meta: StateGraph[Any, Any, Any, Any] = StateGraph(SupportState)
    meta.add_node("triage", tri.compile())
    meta.add_node("respond", res.compile())
    meta.add_edge(START, "triage")
    meta.add_edge("triage", "respond")
    meta.add_edge("respond", END)
    return meta.compile()


def run_langgraph(graph: Any, ticket: Ticket) -> Outcome:
    """Run one ticket through the hand-wired build."""
    return Outcome.model_validate(graph.invoke(ticket.model_dump()))


# -- measurement ---------------------------------------------------------------------------


def ratio(numerator: float, denominator: float, digits: int = 4) -> float:
    """``numerator / denominator`` rounded (``inf`` when the denominator is 0)."""
    return round(numerator / denominator, digits) if denominator else float("inf")
