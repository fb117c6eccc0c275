"""Model calls and input tokens: a LangGraph supervisor team against an agentmesh lead.

The task is research -> compute -> write on a few hundred words of source text.
Both systems use the same worker prompts and the same scripted "brains" (the
research worker reads the figures out of whatever text it receives, the
compute worker finds them in what it receives, and so on), so both produce the
same final summary. What differs is how work is routed and what each model
call is sent:

* ``langgraph_supervisor.create_supervisor`` with three ``create_react_agent``
  workers: the supervisor model routes by calling a handoff tool on every hop,
  and every call (supervisor's and workers') receives the shared conversation,
  source text included, exactly as langgraph-supervisor passes it.
* an agentmesh :class:`~agentmesh.Lead`: routing is code (sequential stages) and
  each model specialist receives only its typed input.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, BaseMessage
from pydantic import BaseModel

import agentmesh as am
from agentmesh.bench._overhead import ratio
from agentmesh.testing import ScriptedChatModel, tool_call
from agentmesh.tracing import NullTracer

if TYPE_CHECKING:
    from collections.abc import Callable

    from agentmesh.testing._scripted import Responder

__all__ = [
    "SKIPPED",
    "Brief",
    "compare_supervisor",
    "make_brief",
    "run_agentmesh",
    "run_supervisor",
]

SKIPPED = {"skipped": "pip install 'agentmesh[bench]'"}
WORKERS = ("research", "compute", "write")
PROMPTS = {
    "research": "You are the research worker. Read the source text and report the company's "
    "revenue for each year it mentions, in millions of dollars.",
    "compute": "You are the compute worker. From the revenue figures found, compute the growth "
    "from 2023 to 2024 as a percentage rounded to one decimal.",
    "write": "You are the writing worker. Write a one-sentence summary of the revenue growth "
    "for the user, with both figures and the growth.",
}
SUPERVISOR_PROMPT = (
    "You are a team supervisor managing three workers. research: reads source documents and "
    "extracts figures. compute: does arithmetic on extracted figures. write: writes the final "
    "summary. Assign work to one worker at a time with your transfer tools; do not do the work "
    "yourself. When the summary is written, reply with it verbatim."
)


class Brief(BaseModel):
    """The user's request: a question and the source text to answer it from."""

    question: str
    source: str


class Findings(BaseModel):
    """What research extracts."""

    revenue_2023: float
    revenue_2024: float


class Growth(BaseModel):
    """What compute works out."""

    growth_pct: float


class WriteIn(BaseModel):
    """What the writer needs: a summary of the earlier work, not the transcript."""

    revenue_2023: float
    revenue_2024: float
    growth_pct: float


class Report(BaseModel):
    """The final answer."""

    summary: str


# -- the scripted brains, shared by both systems --------------------------------------------

_FILLER = [
    "The company was founded as a regional distributor and now sells to customers in "
    "fourteen countries through a mix of direct sales and long-standing channel partners.",
    "Management spent much of the year on a new warehouse system, which replaced three "
    "older tools and, according to the operations team, cut order handling time noticeably.",
    "Competition in the core market stayed intense, with two larger rivals cutting prices "
    "in the spring and a smaller one leaving the market after a failed funding round.",
    "Headcount grew modestly, mostly in engineering and customer support, while the sales "
    "organisation was restructured around industries instead of regions.",
    "The board approved a new dividend policy and a small buyback programme, and it noted "
    "that capital spending would stay near current levels for the next two years.",
    "Customer retention improved after the support changes, although the company warned "
    "that churn among its smallest accounts remains higher than it would like.",
    "Input costs were volatile: freight prices fell during the year, but packaging and "
    "energy costs rose, and the company hedged part of its exposure for the coming year.",
]
_YEAR = re.compile(r"\$([\d.]+) million in (20\d\d)")


def make_brief(i: int) -> Brief:
    """Task ``i``: about 400 words of source text with the revenue figures inside."""
    r23 = round(10 + (i * 7 % 40) / 4, 2)
    r24 = round(r23 * (1 + (5 + i * 3 % 30) / 100), 2)
    name = f"Northwind {i}"
    sentences = [_FILLER[(i + k) % len(_FILLER)] for k in range(len(_FILLER))]
    sentences.insert(2, f"{name} reported that revenue was ${r23} million in 2023.")
    sentences.insert(6, f"For the following year revenue reached ${r24} million in 2024.")
    source = f"Annual review of {name}.\n\n" + " ".join(sentences * 2)
    question = f"How much did {name}'s revenue grow from 2023 to 2024? Summarise in one sentence."
    return Brief(question=question, source=source)


def _field(text: str, name: str) -> float:
    """A figure reported by an earlier worker, as ``name=1.5`` (text) or ``"name": 1.5`` (JSON)."""
    found = re.findall(rf'{name}"?\s*[:=]\s*([\d.]+)', text)
    if not found:
        raise ValueError(f"no {name} in the input")
    return float(found[-1])


def research(text: str) -> Findings:
    """Read the revenue figures out of the source text."""
    years = {year: float(value) for value, year in _YEAR.findall(text)}
    return Findings(revenue_2023=years["2023"], revenue_2024=years["2024"])


def compute(text: str) -> Growth:
    """Growth from the figures research reported."""
    r23, r24 = _field(text, "revenue_2023"), _field(text, "revenue_2024")
    return Growth(growth_pct=round((r24 - r23) / r23 * 100, 1))


def write(text: str) -> Report:
    """The one-sentence summary from the figures and the growth."""
    r23, r24, g = (_field(text, n) for n in ("revenue_2023", "revenue_2024", "growth_pct"))
    return Report(
        summary=f"Revenue grew {g}% from ${r23} million in 2023 to ${r24} million in 2024."
    )


BRAINS: dict[str, Callable[[str], BaseModel]] = {
    "research": research,
    "compute": compute,
    "write": write,
}


def _as_text(answer: BaseModel) -> str:
    if isinstance(answer, Report):
        return answer.summary
    return "; ".join(f"{k}={v}" for k, v in answer.model_dump().items())


def _responder(brain: Callable[[str], BaseModel], *, typed: bool) -> Responder:
    """A model answer from ``brain`` applied to everything the model was sent."""

    def respond(messages: list[BaseMessage], tools: list[dict[str, Any]]) -> BaseModel | str:
        answer = brain("\n".join(str(m.content) for m in messages))
        return answer if typed else _as_text(answer)

    return respond


def supervise(messages: list[BaseMessage], tools: list[dict[str, Any]]) -> Any:
    """The supervisor's minimum: hand off to each worker in turn, then relay the summary."""
    spoke = [m for m in messages if isinstance(m, AIMessage) and m.name in WORKERS]
    done = {m.name for m in spoke}
    for worker in WORKERS:
        if worker not in done:
            return tool_call(f"transfer_to_{worker}")
    return next(str(m.content) for m in reversed(spoke) if m.name == "write" and not m.tool_calls)


# -- the two systems ------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class System:
    """A compiled system and the scripted models whose counters measure it."""

    graph: Any
    models: dict[str, ScriptedChatModel]

    @property
    def calls(self) -> int:
        """Model calls so far."""
        return sum(m.calls for m in self.models.values())

    @property
    def input_tokens(self) -> int:
        """Input tokens sent so far."""
        return sum(m.input_tokens for m in self.models.values())


def build_supervisor() -> System:
    """``create_supervisor`` over three ``create_react_agent`` workers."""
    from langgraph.prebuilt import create_react_agent
    from langgraph_supervisor import create_supervisor

    models = {w: ScriptedChatModel(respond=_responder(BRAINS[w], typed=False)) for w in WORKERS}
    models["supervisor"] = ScriptedChatModel(respond=supervise)
    with warnings.catch_warnings():  # create_react_agent is deprecated in favour of langchain's
        warnings.simplefilter("ignore")
        agents: list[Any] = [
            create_react_agent(models[w], tools=[], prompt=PROMPTS[w], name=w) for w in WORKERS
        ]
        graph = create_supervisor(
            agents, model=models["supervisor"], prompt=SUPERVISOR_PROMPT
        ).compile()
    return System(graph=graph, models=models)


def run_supervisor(system: System, brief: Brief) -> str:
    """The supervisor team's final answer for ``brief``."""
    text = f"{brief.question}\n\nSource:\n{brief.source}"
    state = system.graph.invoke({"messages": [{"role": "user", "content": text}]})
    return str(state["messages"][-1].content)


def build_agentmesh() -> System:
    """A lead with three model specialists in sequence; routing is code."""
    models = {w: ScriptedChatModel(respond=_responder(BRAINS[w], typed=True)) for w in WORKERS}
    io: dict[str, tuple[type[BaseModel], type[BaseModel]]] = {
        "research": (Brief, Findings),
        "compute": (Findings, Growth),
        "write": (WriteIn, Report),
    }
    stages = [
        am.Specialist(
            name=w,
            input=io[w][0],
            output=io[w][1],
            layer="small_model",
            prompt=PROMPTS[w],
            model=models[w],
        )
        for w in WORKERS
    ]
    lead = am.Lead(name="analyst", input=Brief, output=Report, stages=stages)
    return System(graph=lead.compile(), models=models)


def run_agentmesh(system: System, brief: Brief) -> str:
    """The agentmesh lead's final answer for ``brief``."""
    result = am.run(system.graph, brief, checkpointer=None, tracer=NullTracer())
    if not isinstance(result.output, Report):
        raise RuntimeError(f"agentmesh run ended {result.status}: {result.reason}")
    return result.output.summary


def supervisor_available() -> bool:
    """Whether ``langgraph_supervisor`` (the ``bench`` extra) is installed."""
    from importlib.util import find_spec

    return find_spec("langgraph_supervisor") is not None


def compare_supervisor(*, tasks: int) -> dict[str, Any]:
    """Run ``tasks`` briefs through both systems and compare model calls and input tokens."""
    if not supervisor_available():
        return dict(SKIPPED)
    sup, mesh = build_supervisor(), build_agentmesh()
    briefs = [make_brief(i) for i in range(tasks)]
    same = all(run_supervisor(sup, b) == run_agentmesh(mesh, b) for b in briefs)
    calls_ratio = ratio(mesh.calls, sup.calls)
    tokens_ratio = ratio(mesh.input_tokens, sup.input_tokens)
    return {
        "model_calls_ratio_vs_supervisor": calls_ratio,
        "input_tokens_ratio_vs_supervisor": tokens_ratio,
        "targets": {"model_calls_ratio": 0.6, "input_tokens_ratio": 0.4},
        "within_targets": calls_ratio <= 0.6 and tokens_ratio <= 0.4,
        "tasks": tasks,
        "same_outputs": same,
        "supervisor": _counts(sup, tasks),
        "agentmesh": _counts(mesh, tasks),
    }


def _counts(system: System, tasks: int) -> dict[str, Any]:
    return {
        "model_calls": system.calls,
        "input_tokens": system.input_tokens,
        "model_calls_per_task": ratio(system.calls, tasks, 2),
        "input_tokens_per_task": ratio(system.input_tokens, tasks, 1),
        "by_model": {
            n: {"calls": m.calls, "input_tokens": m.input_tokens} for n, m in system.models.items()
        },
    }
