"""The working context: budget, pinned messages, retention, pointers and tool-call pairs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from agentmesh.errors import ConfigError, ToolError
from agentmesh.memory._steps import Step, estimate_tokens
from agentmesh.memory.context import SUMMARY_HEADER, ContextBudget, WorkingContext

PINNED: list[BaseMessage] = [
    SystemMessage("You reconcile invoices."),
    HumanMessage("Goal: total the invoices of customer C-4711.\n\nConstraints: max_total 9999"),
]


def call(n: int, *, name: str = "lookup", calls: int = 1) -> AIMessage:
    return AIMessage(
        "",
        tool_calls=[
            {"name": name, "args": {"id": f"INV-{n:04d}"}, "id": f"c{n}_{i}", "type": "tool_call"}
            for i in range(calls)
        ],
    )


def result(ai: AIMessage, body: str | None = None, **kw: Any) -> list[ToolMessage]:
    return [
        ToolMessage(
            body or json.dumps({"row": c["args"], "pad": "x" * 300}), tool_call_id=c["id"], **kw
        )
        for c in ai.tool_calls
    ]


def round_(
    ctx: WorkingContext,
    n: int,
    body: str | None = None,
    *,
    status: str = "success",
    relevance: float | None = None,
) -> AIMessage:
    ai = call(n)
    ctx.add(ai, *result(ai, body, status=status), relevance=relevance)
    return ai


def assert_pairs_intact(messages: Sequence[BaseMessage]) -> None:
    """Every tool call is answered right after it, and every tool result answers one."""
    i = 0
    while i < len(messages):
        m = messages[i]
        assert not isinstance(m, ToolMessage), f"orphan tool result at {i}"
        if isinstance(m, AIMessage) and m.tool_calls:
            ids = [c["id"] for c in m.tool_calls]
            replies = messages[i + 1 : i + 1 + len(ids)]
            assert all(isinstance(r, ToolMessage) for r in replies), f"call at {i} unanswered"
            assert sorted(r.tool_call_id for r in replies) == sorted(ids)  # type: ignore[attr-defined]
            i += len(ids)
        i += 1


# -- budget ------------------------------------------------------------------------------


def test_under_budget_everything_is_sent_unchanged() -> None:
    ctx = WorkingContext(ContextBudget(max_tokens=10_000), pinned=PINNED)
    sent = [*PINNED]
    for n in range(1, 6):
        ai = call(n)
        replies = result(ai)
        ctx.add(ai, *replies)
        sent += [ai, *replies]
    assert ctx.messages() == sent
    stats = ctx.stats
    assert (stats.steps, stats.live, stats.compressed, stats.summaries) == (5, 5, 0, 0)
    assert stats.tokens == estimate_tokens(sent)
    assert ctx.summary == ""


def test_long_loop_stays_within_budget_and_keeps_pinned_first() -> None:
    budget = ContextBudget(max_tokens=1500)
    ctx = WorkingContext(budget, pinned=PINNED)
    sizes = []
    for n in range(1, 120):
        round_(ctx, n)
        sent = ctx.messages()
        sizes.append(estimate_tokens(sent))
        assert sent[:2] == PINNED
        assert_pairs_intact(sent)
    assert max(sizes) <= budget.max_tokens
    # without compression the same loop would be ~8x the budget
    assert 119 * estimate_tokens([call(1), *result(call(1))]) > 7 * budget.max_tokens
    stats = ctx.stats
    assert stats.compressed > 100 and stats.externalized == stats.compressed
    assert not stats.over_budget
    # compression shrinks to compact_to of the budget, so it does not run on every step
    assert stats.summaries < stats.compressed / 3


def test_latest_step_is_always_sent_verbatim() -> None:
    ctx = WorkingContext(ContextBudget(max_tokens=800, keep_recent=1), pinned=PINNED)
    for n in range(1, 30):
        ai = round_(ctx, n)
        sent = ctx.messages()
        assert sent[-2] is ai
        assert sent[-1].tool_call_id == ai.tool_calls[0]["id"]  # type: ignore[attr-defined]


def test_the_recent_window_is_kept_whole_while_the_budget_allows() -> None:
    budget = ContextBudget(max_tokens=1000, keep_recent=6, retain_top=0)
    ctx = WorkingContext(budget, pinned=PINNED)
    for n in range(1, 40):
        round_(ctx, n)
        window = {f"INV-{k:04d}" for k in range(max(1, n - 5), n + 1)}
        assert window <= live_ids(ctx), n
    assert ctx.stats.compressed > 20


def test_summary_follows_pinned_and_quotes_pointers() -> None:
    ctx = WorkingContext(ContextBudget(max_tokens=1200), pinned=PINNED, context_id="t1")
    for n in range(1, 20):
        round_(ctx, n)
    sent = ctx.messages()
    summary = sent[2]
    assert isinstance(summary, HumanMessage)
    assert str(summary.content) == SUMMARY_HEADER + ctx.summary
    assert "[step:t1:1]" in ctx.summary or "[step:t1:1 .." in ctx.summary
    assert "lookup(id=INV-0001)" in ctx.summary or "lookup x" in ctx.summary


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=3000), min_size=1, max_size=40),
    calls=st.lists(st.integers(min_value=1, max_value=3), min_size=40, max_size=40),
    max_tokens=st.integers(min_value=300, max_value=3000),
    keep_recent=st.integers(min_value=1, max_value=5),
    retain_top=st.integers(min_value=0, max_value=5),
)
def test_any_loop_keeps_pairs_and_budget(
    sizes: list[int], calls: list[int], max_tokens: int, keep_recent: int, retain_top: int
) -> None:
    budget = ContextBudget(max_tokens=max_tokens, keep_recent=keep_recent, retain_top=retain_top)
    ctx = WorkingContext(budget, pinned=PINNED, context_id="h")
    added: list[list[BaseMessage]] = []
    for n, (size, k) in enumerate(zip(sizes, calls, strict=False), start=1):
        ai = call(n, calls=k)
        if n % 3:
            replies = [ToolMessage("y" * size, tool_call_id=c["id"]) for c in ai.tool_calls]
            ctx.add(ai, *replies)  # a model turn and its results at once
        else:
            ctx.add(ai)  # or one by one, as a loop produces them
            replies = [ToolMessage("z" * size, tool_call_id=c["id"]) for c in ai.tool_calls]
            for r in replies:
                ctx.add(r)
        added.append([ai, *replies])
        sent = ctx.messages()
        assert_pairs_intact(sent)
        assert ctx.stats.tokens == estimate_tokens(sent)
        assert estimate_tokens(sent) <= max_tokens
    for n, step in enumerate(added, start=1):
        assert ctx.deref(f"step:h:{n}") == step  # every step can be read back whole


# -- retention ---------------------------------------------------------------------------


def live_ids(ctx: WorkingContext) -> set[str]:
    return {
        str(c["args"]["id"])
        for m in ctx.messages()
        if isinstance(m, AIMessage)
        for c in m.tool_calls
    }


def test_decision_relevant_steps_are_retained_longer_than_plain_ones() -> None:
    budget = ContextBudget(max_tokens=1400, keep_recent=2, retain_top=4)
    ctx = WorkingContext(budget, pinned=PINNED)
    round_(ctx, 1)
    round_(ctx, 2, body="error: billing service timed out", status="error")  # error
    round_(ctx, 3)
    round_(ctx, 4, body=json.dumps({"customer": "C-4711", "pad": "x" * 300}))  # goal id
    round_(ctx, 5)
    round_(ctx, 6, relevance=1.0)  # explicit relevance
    round_(ctx, 7)
    ctx.add(HumanMessage("Your answer does not match Verdict: count is missing. " + "p" * 300))
    for n in range(9, 16):
        round_(ctx, n)
    assert ctx.stats.compressed > 0
    live = live_ids(ctx)
    assert {"INV-0002", "INV-0004", "INV-0006"} <= live
    assert any("does not match" in str(m.content) for m in ctx.messages()[3:])
    assert not {"INV-0001", "INV-0003", "INV-0005", "INV-0007"} & live
    assert "INV-0001" in ctx.summary


def test_retain_top_zero_keeps_only_the_recent_window() -> None:
    budget = ContextBudget(max_tokens=1200, keep_recent=2, retain_top=0)
    ctx = WorkingContext(budget, pinned=PINNED)
    round_(ctx, 1, body="error: boom", status="error")
    for n in range(2, 15):
        round_(ctx, n)
    assert "INV-0001" not in live_ids(ctx)
    assert "ERROR" in ctx.summary or "1 error" in ctx.summary


# -- pointers and recall -----------------------------------------------------------------


def test_compressed_steps_are_externalized_and_dereferenced_whole() -> None:
    ctx = WorkingContext(ContextBudget(max_tokens=1000), pinned=PINNED, context_id="abc")
    originals = {}
    for n in range(1, 25):
        ai = call(n)
        replies = result(ai)
        ctx.add(ai, *replies)
        originals[n] = [ai, *replies]
    assert ctx.stats.compressed >= 10
    for n, messages in originals.items():
        assert ctx.deref(f"step:abc:{n}") == messages
    with pytest.raises(KeyError, match="step:abc:99"):
        ctx.deref("step:abc:99")
    assert ctx.get("step:other:1") is None


def test_recall_tool_reads_a_step_back_for_the_model() -> None:
    ctx = WorkingContext(ContextBudget(max_tokens=1000), pinned=PINNED, context_id="abc")
    for n in range(1, 25):
        round_(ctx, n, body=json.dumps({"invoice": n, "total": n * 10.5, "pad": "x" * 300}))
    tool = ctx.recall_tool()
    assert tool.name == "recall_step"
    assert set(tool.args) == {"pointer"}
    rows = json.loads(tool.invoke({"pointer": "step:abc:3"}))
    assert rows[0]["role"] == "ai"
    assert rows[0]["tool_calls"] == [{"name": "lookup", "args": {"id": "INV-0003"}}]
    assert rows[1]["role"] == "tool" and rows[1]["tool_call_id"] == "c3_0"
    assert json.loads(rows[1]["content"])["total"] == 31.5
    with pytest.raises(ToolError, match="no recorded step"):
        tool.invoke({"pointer": "step:abc:404"})


def test_an_oversized_latest_step_is_clipped_with_a_pointer_to_the_full_record() -> None:
    budget = ContextBudget(max_tokens=1000)
    ctx = WorkingContext(budget, pinned=PINNED, context_id="big")
    for n in range(1, 4):
        round_(ctx, n)
    ai = call(4, calls=2)
    huge = [ToolMessage("h" * 20_000, tool_call_id=c["id"]) for c in ai.tool_calls]
    ctx.add(ai, *huge)
    sent = ctx.messages()
    assert estimate_tokens(sent) <= budget.max_tokens
    assert_pairs_intact(sent)
    assert sent[-3] is ai
    for clipped in sent[-2:]:
        text = str(clipped.content)
        assert text.startswith("hhh") and len(text) < 2000
        assert text.endswith("[clipped; full step: recall_step('step:big:4')]")
    assert ctx.stats.clipped == 1
    assert ctx.deref("step:big:4") == [ai, *huge]
    # the next step pushes the clipped one out; it stays readable in full
    for n in range(5, 12):
        round_(ctx, n)
    assert ctx.stats.clipped == 0
    assert [len(str(m.content)) for m in ctx.deref("step:big:4")[1:]] == [20_000, 20_000]


def test_pinned_messages_over_budget_are_reported_not_dropped() -> None:
    pinned = [SystemMessage("s" * 4000)]
    ctx = WorkingContext(ContextBudget(max_tokens=500), pinned=pinned)
    round_(ctx, 1)
    sent = ctx.messages()
    assert sent[0] is pinned[0]
    assert_pairs_intact(sent)
    assert ctx.stats.over_budget


# -- collaborators -----------------------------------------------------------------------


class RecordingSummarizer:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[Step], int]] = []

    def summarize(self, summary: str, steps: Sequence[Step], *, max_tokens: int) -> str:
        self.calls.append((summary, list(steps), max_tokens))
        return f"{summary}+{','.join(str(s.index) for s in steps)}"


def test_summarizer_folds_leaving_steps_into_the_running_summary() -> None:
    summarizer = RecordingSummarizer()
    budget = ContextBudget(max_tokens=1000, summary_tokens=100, retain_top=0)
    ctx = WorkingContext(budget, pinned=PINNED, summarizer=summarizer, context_id="s")
    for n in range(1, 20):
        round_(ctx, n)
    assert len(summarizer.calls) >= 2
    previous = ""
    seen: list[int] = []
    for summary, steps, max_tokens in summarizer.calls:
        assert summary == previous  # progressive: each call gets the last summary
        assert max_tokens == 100
        assert [s.index for s in steps] == sorted(s.index for s in steps)
        for s in steps:
            assert s.pointer == f"step:s:{s.index}"
            assert isinstance(s.messages[0], AIMessage) and len(s.messages) == 2
            assert s.tokens == estimate_tokens(s.messages)
        seen += [s.index for s in steps]
        previous = f"{summary}+{','.join(str(s.index) for s in steps)}"
    assert seen == list(range(1, len(seen) + 1))  # oldest first, none twice
    assert ctx.summary == previous


def test_a_long_summary_is_clipped_to_its_limit() -> None:
    class Verbose:
        def summarize(self, summary: str, steps: Sequence[Step], *, max_tokens: int) -> str:
            return "v" * 100_000

    budget = ContextBudget(max_tokens=1000, summary_tokens=50)
    ctx = WorkingContext(budget, pinned=PINNED, summarizer=Verbose())
    for n in range(1, 12):
        round_(ctx, n)
    summary = ctx.messages()[2]
    assert estimate_tokens([summary]) <= estimate_tokens([HumanMessage(SUMMARY_HEADER)]) + 50
    assert estimate_tokens(ctx.messages()) <= 1000


def test_an_injected_token_counter_sizes_the_budget() -> None:
    def per_message(messages: Sequence[BaseMessage]) -> int:
        return 10 * len(messages)

    ctx = WorkingContext(
        ContextBudget(max_tokens=100, summary_tokens=10), pinned=PINNED, count_tokens=per_message
    )
    for n in range(1, 30):
        round_(ctx, n)
        assert per_message(ctx.messages()) <= 100
    assert ctx.stats.tokens == per_message(ctx.messages())


# -- misuse ------------------------------------------------------------------------------


def test_a_tool_result_must_answer_the_latest_steps_open_call() -> None:
    ctx = WorkingContext(ContextBudget(max_tokens=1000), pinned=PINNED)
    with pytest.raises(ValueError, match="answers no open tool call"):
        ctx.add(ToolMessage("x", tool_call_id="nope"))
    ai = call(1)
    ctx.add(ai, *result(ai))
    with pytest.raises(ValueError, match="answers no open tool call"):
        ctx.add(*result(ai))  # answered already
    with pytest.raises(ValueError, match="relevance"):
        ctx.add(HumanMessage("x"), relevance=1.5)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 100, "keep_recent": 0}, "keep_recent"),
        ({"max_tokens": 100, "retain_top": -1}, "retain_top"),
        ({"max_tokens": 100, "compact_to": 0}, "compact_to"),
        ({"max_tokens": 100, "summary_tokens": 100}, "summary_tokens"),
    ],
)
def test_budget_mistakes_raise_config_error(kwargs: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        ContextBudget(**kwargs)


def test_budget_defaults() -> None:
    budget = ContextBudget(max_tokens=4000)
    assert (budget.keep_recent, budget.retain_top, budget.compact_to) == (4, 4, 0.75)
    assert budget.summary_limit == 500
    assert ContextBudget(max_tokens=4000, summary_tokens=64).summary_limit == 64


def test_public_surface_of_the_context_module() -> None:
    from agentmesh.memory import context

    assert sorted(context.__all__) == [
        "ContextBudget",
        "ContextStats",
        "ExtractiveSummarizer",
        "InMemoryStepStore",
        "ModelSummarizer",
        "RECALL_TOOL_NAME",
        "SQLiteStepStore",
        "SUMMARY_HEADER",
        "Step",
        "StepStore",
        "Summarizer",
        "TokenCounter",
        "WorkingContext",
        "build_recall_tool",
        "estimate_tokens",
    ]
    assert all(hasattr(context, name) for name in context.__all__)


def test_recall_tool_runs_through_the_tool_gateway_like_any_tool() -> None:
    from agentmesh import ToolGateway

    ctx = WorkingContext(ContextBudget(max_tokens=800), pinned=PINNED, context_id="g")
    for n in range(1, 15):
        round_(ctx, n)
    tool = ctx.recall_tool()
    gateway = ToolGateway()
    out = gateway.execute(
        "recall_step", {"pointer": "step:g:2"}, agent="clerk", allowed={tool.name: tool}
    )
    assert json.loads(out)[0]["tool_calls"][0]["args"] == {"id": "INV-0002"}
    with pytest.raises(ToolError, match="tool 'recall_step' failed: no recorded step"):
        gateway.execute("recall_step", {"pointer": "x"}, agent="clerk", allowed={tool.name: tool})
    assert [c.ok for c in gateway.calls] == [True, False]


def test_the_memory_package_exports_the_working_context() -> None:
    import agentmesh.memory as memory

    mine = {
        "ContextBudget",
        "ContextStats",
        "ExtractiveSummarizer",
        "InMemoryStepStore",
        "ModelSummarizer",
        "RECALL_TOOL_NAME",
        "SQLiteStepStore",
        "Step",
        "StepStore",
        "Summarizer",
        "WorkingContext",
        "build_recall_tool",
    }
    assert mine <= set(memory.__all__)
    assert memory.WorkingContext is WorkingContext
