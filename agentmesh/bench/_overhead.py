"""Framework overhead: one 3-level hierarchy built with agentmesh and hand-wired in LangGraph.

Both builds do the same work on the same inputs: a meta role runs two leads,
each with three specialists (code functions and model calls answered instantly
by :class:`~agentmesh.testing.ScriptedChatModel`); the second lead runs two
peer critics in parallel and joins them with a weighted vote. Only the
framework around that work differs, so the time difference is the overhead.
"""

from __future__ import annotations

import gc
import operator
import statistics
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, TypedDict

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send
from pydantic import BaseModel

import agentmesh as am
from agentmesh.testing import ScriptedChatModel
from agentmesh.tracing import NullTracer

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "Outcome",
    "Ticket",
    "build_agentmesh",
    "build_langgraph",
    "measure_overhead",
    "ratio",
    "sample_tickets",
]

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


class Triage(BaseModel):
    """The triage lead's result."""

    category: str
    urgent: bool
    priority: int
    n_words: int


class DraftIn(BaseModel):
    """What the drafter needs."""

    ticket_id: int
    category: str
    priority: int


class Draft(BaseModel):
    """A draft reply."""

    reply: str


class ReviewIn(BaseModel):
    """What each critic sees."""

    reply: str
    category: str


class Verdict(BaseModel):
    """A critic's verdict (the peers' shared schema)."""

    approve: bool
    tone: str


class Response(BaseModel):
    """The respond lead's result."""

    reply: str
    approve: bool
    tone: str


class Outcome(BaseModel):
    """The meta role's result: what both builds must return."""

    ticket_id: int
    category: str
    priority: int
    reply: str
    approve: bool
    tone: str


# -- the work itself, shared by both builds ---------------------------------------------


def tokenize(ticket: Ticket) -> Tokens:
    """Split the ticket into words."""
    words = ticket.text.split()
    return Tokens(words=words, n_words=len(words))


def score(data: ScoreIn) -> Score:
    """Priority from length and urgency."""
    return Score(priority=min(5, 1 + data.n_words // 8 + (2 if data.urgent else 0)))


def draft(data: DraftIn) -> Draft:
    """A templated reply."""
    return Draft(
        reply=f"Ticket {data.ticket_id}: our {data.category} team has it (P{data.priority})."
    )


def _last_text(messages: list[BaseMessage]) -> str:
    return str(messages[-1].content)


def answer_classify(messages: list[BaseMessage], tools: list[dict[str, Any]]) -> Category:
    """The classifier model's instant answer, read from the words it was sent."""
    text = _last_text(messages).lower()
    category = "billing" if "invoice" in text else "technical" if "crash" in text else "general"
    return Category(category=category, urgent="urgent" in text)


def answer_critic_a(messages: list[BaseMessage], tools: list[dict[str, Any]]) -> Verdict:
    """First critic: approves replies that name a team."""
    return Verdict(approve="team" in _last_text(messages), tone="friendly")


def answer_critic_b(messages: list[BaseMessage], tools: list[dict[str, Any]]) -> Verdict:
    """Second critic: agrees on approval, disagrees on tone for billing tickets."""
    text = _last_text(messages)
    return Verdict(approve="team" in text, tone="formal" if "billing" in text else "friendly")


@dataclass(frozen=True, kw_only=True)
class Models:
    """One set of scripted models per build, so each build's calls are counted apart."""

    classify: ScriptedChatModel
    critic_a: ScriptedChatModel
    critic_b: ScriptedChatModel

    @classmethod
    def new(cls) -> Models:
        """Fresh models with instant, input-dependent answers."""
        return cls(
            classify=ScriptedChatModel(respond=answer_classify),
            critic_a=ScriptedChatModel(respond=answer_critic_a),
            critic_b=ScriptedChatModel(respond=answer_critic_b),
        )

    @property
    def calls(self) -> int:
        """Model calls across the set."""
        return self.classify.calls + self.critic_a.calls + self.critic_b.calls


def sample_tickets(n: int) -> list[Ticket]:
    """``n`` varied tickets (billing, technical, general; some urgent)."""
    topics = [
        "my invoice shows a duplicate charge for last month",
        "the app will crash whenever I open the settings page",
        "how do I change the email address on my account",
    ]
    return [
        Ticket(
            ticket_id=i,
            text=f"{'urgent ' if i % 4 == 0 else ''}hello, {topics[i % 3]} "
            + "please help " * (i % 5),
        )
        for i in range(n)
    ]


# -- agentmesh build ------------------------------------------------------------------------


def build_agentmesh(models: Models) -> Any:
    """The hierarchy as agentmesh roles, compiled (no checkpointer)."""
    code = am.specialist()
    triage = am.Lead(
        name="triage",
        input=Ticket,
        output=Triage,
        stages=[
            code(tokenize),
            am.Specialist(
                name="classify",
                input=Tokens,
                output=Category,
                layer="small_model",
                prompt=CLASSIFY_PROMPT,
                model=models.classify,
            ),
            code(score),
        ],
    )
    critics = [
        am.Specialist(
            name=name,
            input=ReviewIn,
            output=Verdict,
            layer="small_model",
            prompt=CRITIC_PROMPT,
            model=model,
        )
        for name, model in (("critic_a", models.critic_a), ("critic_b", models.critic_b))
    ]
    respond = am.Lead(
        name="respond",
        input=DraftIn,
        output=Response,
        stages=[
            code(draft),
            am.Parallel(*critics, name="review", resolver=am.Vote(weights=WEIGHTS)),
        ],
    )
    meta = am.Meta(name="support", input=Ticket, output=Outcome, stages=[triage, respond])
    return meta.compile()


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
    n_words: int
    category: str
    urgent: bool
    priority: int
    reply: str
    approve: bool
    tone: str


def _asker(
    model: ScriptedChatModel, prompt: str, schema: type[BaseModel]
) -> Callable[[BaseModel], Any]:
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
    classify = _asker(models.classify, CLASSIFY_PROMPT, Category)
    critics = {
        "critic_a": _asker(models.critic_a, CRITIC_PROMPT, Verdict),
        "critic_b": _asker(models.critic_b, CRITIC_PROMPT, Verdict),
    }

    tri: StateGraph[Any, Any, Any, Any] = StateGraph(TriageState)
    tri.add_node(
        "tokenize",
        lambda s: tokenize(Ticket(ticket_id=s["ticket_id"], text=s["text"])).model_dump(),
    )
    tri.add_node(
        "classify", lambda s: classify(Tokens(words=s["words"], n_words=s["n_words"])).model_dump()
    )
    tri.add_node(
        "score", lambda s: score(ScoreIn(n_words=s["n_words"], urgent=s["urgent"])).model_dump()
    )
    tri.add_edge(START, "tokenize")
    tri.add_edge("tokenize", "classify")
    tri.add_edge("classify", "score")
    tri.add_edge("score", END)

    def critic(name: str) -> Callable[[Any], dict[str, Any]]:
        ask = critics[name]
        return lambda s: {
            "verdicts": [(name, ask(ReviewIn(reply=s["reply"], category=s["category"])))]
        }

    res: StateGraph[Any, Any, Any, Any] = StateGraph(RespondState)
    res.add_node(
        "draft",
        lambda s: draft(
            DraftIn(ticket_id=s["ticket_id"], category=s["category"], priority=s["priority"])
        ).model_dump(),
    )
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


def _ms_per_task(run: Callable[[Any, Ticket], Outcome], graph: Any, tickets: list[Ticket]) -> float:
    gc.collect()
    start = time.perf_counter()
    for ticket in tickets:
        run(graph, ticket)
    return (time.perf_counter() - start) * 1000 / len(tickets)


def measure_overhead(*, tasks: int, repeats: int, warmup: int = 20) -> dict[str, Any]:
    """Time both builds on the same tickets and report agentmesh's overhead.

    Args:
        tasks: Tickets per timed repeat.
        repeats: Timed repeats; the median of the per-task means is reported.
        warmup: Untimed tickets run through each build first.
    """
    tickets = sample_tickets(tasks)
    am_models, lg_models = Models.new(), Models.new()
    am_graph, lg_graph = build_agentmesh(am_models), build_langgraph(lg_models)
    for ticket in sample_tickets(warmup):
        run_agentmesh(am_graph, ticket)
        run_langgraph(lg_graph, ticket)
    am_runs: list[float] = []
    lg_runs: list[float] = []
    for _ in range(repeats):  # interleaved so drift hits both alike
        am_runs.append(_ms_per_task(run_agentmesh, am_graph, tickets))
        lg_runs.append(_ms_per_task(run_langgraph, lg_graph, tickets))
    am_ms, lg_ms = statistics.median(am_runs), statistics.median(lg_runs)
    overhead = ratio(am_ms, lg_ms, 3)
    return {
        "agentmesh_ms_per_task": round(am_ms, 4),
        "langgraph_ms_per_task": round(lg_ms, 4),
        "overhead_ratio_vs_langgraph": overhead,
        "target_ratio": 1.25,
        "within_target": overhead <= 1.25,
        "agentmesh_repeats_ms": [round(x, 4) for x in am_runs],
        "langgraph_repeats_ms": [round(x, 4) for x in lg_runs],
        "model_calls_per_task": {
            "agentmesh": ratio(am_models.calls, warmup + tasks * repeats, 3),
            "langgraph": ratio(lg_models.calls, warmup + tasks * repeats, 3),
        },
    }
