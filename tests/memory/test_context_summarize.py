"""Summarizers (extractive and model-backed) and the retention score."""

from __future__ import annotations

import json

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from agentmesh.errors import BudgetExhaustedError
from agentmesh.memory._step_score import goal_terms, score_step
from agentmesh.memory._steps import Step, estimate_text_tokens, estimate_tokens
from agentmesh.memory._summarize import ExtractiveSummarizer, ModelSummarizer, Summarizer
from agentmesh.memory.context import ContextBudget, WorkingContext
from agentmesh.testing import ScriptedChatModel


def step(n: int, body: str | None = None, *, status: str = "success", name: str = "lookup") -> Step:
    ai = AIMessage("", tool_calls=[{"name": name, "args": {"id": f"INV-{n:04d}"}, "id": f"c{n}"}])
    reply = ToolMessage(
        body or json.dumps({"invoice": f"INV-{n:04d}", "total": n * 1.5, "lines": [1, 2, 3]}),
        tool_call_id=f"c{n}",
        status=status,
    )
    messages = (ai, reply)
    return Step(
        index=n,
        pointer=f"step:s:{n}",
        messages=messages,
        score=0.0,
        tokens=estimate_tokens(messages),
    )


# -- extractive --------------------------------------------------------------------------


def test_extractive_line_per_step_with_pointer_call_and_digest() -> None:
    text = ExtractiveSummarizer().summarize(
        "", [step(1), step(2, "error: timed out", status="error")], max_tokens=500
    )
    first, second = text.splitlines()
    assert first == (
        "- #1 [step:s:1] lookup(id=INV-0001) -> {invoice=INV-0001, total=1.5, lines:3 items}"
    )
    assert second == "- #2 [step:s:2] lookup(id=INV-0002) -> ERROR error: timed out"


def test_extractive_is_deterministic_and_within_limit() -> None:
    steps = [step(n) for n in range(1, 40)]
    a = ExtractiveSummarizer().summarize("", steps, max_tokens=120)
    assert a == ExtractiveSummarizer().summarize("", steps, max_tokens=120)
    assert estimate_text_tokens(a) <= 120


def failing(n: int) -> Step:
    return step(n, "error: boom", status="error", name="fetch" if n % 2 else "lookup")


def test_extractive_rolls_oldest_lines_up_progressively() -> None:
    summarizer = ExtractiveSummarizer()
    summary = ""
    for batch in range(4):  # four compressions of 10 steps each
        steps = [
            failing(n) if n % 7 == 0 else step(n, name="fetch" if n % 2 else "lookup")
            for n in range(batch * 10 + 1, batch * 10 + 11)
        ]
        summary = summarizer.summarize(summary, steps, max_tokens=150)
        assert estimate_text_tokens(summary) <= 150
    rollup, *lines = summary.splitlines()
    kept = [int(line.split()[1][1:]) for line in lines]
    assert kept == list(range(41 - len(kept), 41))  # the newest steps keep their detail
    last_rolled = 40 - len(kept)
    assert rollup.startswith(f"Steps 1-{last_rolled} [step:s:1 .. step:s:{last_rolled}] condensed:")
    fetches = len([n for n in range(1, last_rolled + 1) if n % 2])
    assert f"fetch x{fetches}, lookup x{last_rolled - fetches};" in rollup
    errors = [n for n in range(1, last_rolled + 1) if n % 7 == 0]
    assert f"; {len(errors)} errors at " in rollup
    assert f"[step:s:{errors[-1]}]" in rollup


def test_extractive_summary_text_lines_and_feedback() -> None:
    said = Step(
        index=3,
        pointer="step:s:3",
        messages=(AIMessage("I decide to stop because totals match."),),
        score=2,
        tokens=10,
    )
    feedback = Step(
        index=4,
        pointer="step:s:4",
        messages=(HumanMessage("Rejected: total wrong"),),
        score=2,
        tokens=10,
    )
    text = ExtractiveSummarizer().summarize("", [said, feedback], max_tokens=200)
    assert "- #3 [step:s:3] said: I decide to stop because totals match." in text
    assert "- #4 [step:s:4] human: Rejected: total wrong" in text


# -- model-backed ------------------------------------------------------------------------


def test_model_summarizer_sends_summary_and_pointers_and_clips_its_answer() -> None:
    model = ScriptedChatModel(script=["S" * 10_000])
    seen: list[AIMessage] = []
    summarizer = ModelSummarizer(model=model, on_response=seen.append)
    assert isinstance(summarizer, Summarizer)
    text = summarizer.summarize("earlier: 3 lookups", [step(4), step(5)], max_tokens=50)
    assert estimate_text_tokens(text) <= 50 and text.startswith("SSS")
    request = model.requests[0]
    sent = str(request[-1].content)
    assert "earlier: 3 lookups" in sent
    assert "[step:s:4]" in sent and "[step:s:5]" in sent
    assert "INV-0005" in sent
    assert "at most 50 tokens" in sent
    assert len(seen) == 1 and seen[0].usage_metadata is not None


def test_model_summarizer_falls_back_when_the_model_fails() -> None:
    model = ScriptedChatModel(script=[ConnectionError("provider down")])
    text = ModelSummarizer(model=model).summarize("", [step(1)], max_tokens=100)
    assert text.startswith("- #1 [step:s:1] lookup(id=INV-0001)")
    strict = ModelSummarizer(model=ScriptedChatModel(script=[ConnectionError("x")]), fallback=None)
    with pytest.raises(ConnectionError):
        strict.summarize("", [step(1)], max_tokens=100)


def test_model_summarizer_lets_run_stopping_errors_through() -> None:
    stop = BudgetExhaustedError("cap reached", scope="run", limit="usd", cap=1.0, needed=1.2)
    model = ScriptedChatModel(script=[stop])
    with pytest.raises(BudgetExhaustedError):
        ModelSummarizer(model=model).summarize("", [step(1)], max_tokens=100)


def test_working_context_with_a_model_summarizer() -> None:
    model = ScriptedChatModel(respond=lambda messages, tools: "Looked up invoices [step:m:1].")
    ctx = WorkingContext(
        ContextBudget(max_tokens=900),
        pinned=[HumanMessage("goal")],
        summarizer=ModelSummarizer(model=model),
        context_id="m",
    )
    for n in range(1, 20):
        s = step(n, json.dumps({"pad": "x" * 400}))
        ctx.add(*s.messages)
    assert model.calls == ctx.stats.summaries > 0
    assert ctx.summary == "Looked up invoices [step:m:1]."
    assert estimate_tokens(ctx.messages()) <= 900


# -- retention score ---------------------------------------------------------------------


def messages_of(s: Step) -> list[BaseMessage]:
    return list(s.messages)


def test_score_rules() -> None:
    terms = goal_terms([HumanMessage("Goal: invoices of C-4711 above 5000 in 2024")])
    assert terms == {"c-4711", "5000", "2024"}
    plain = messages_of(step(1, json.dumps({"total": 12})))
    assert score_step(plain, terms=terms) == 0
    error = messages_of(step(2, "error: timed out", status="error"))
    assert score_step(error, terms=terms) == 3
    assert score_step(messages_of(step(2, "Traceback (most recent call last)")), terms=terms) == 3
    feedback = [HumanMessage("Your answer does not match Verdict: count missing")]
    assert score_step(feedback, terms=terms) == 2 + 3
    assert score_step([AIMessage("Looking further.")], terms=terms) == 1
    assert score_step([AIMessage("I decide to approve it.")], terms=terms) == 2
    matches = messages_of(step(3, json.dumps({"customer": "C-4711", "year": 2024, "n": 5000})))
    assert score_step(matches, terms=terms) == 3
    many = messages_of(step(3, "C-4711 5000 2024 C-4711"))
    assert score_step(many, terms=terms | {"inv-0003"}) == 3  # 4 matches, capped at 3
    assert score_step(plain, terms=terms, relevance=0.5) == 2
