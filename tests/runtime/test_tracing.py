"""Tracing a run: one connected span tree with the run, roles, gates, model and tool calls."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

import agentmesh as am
from agentmesh.testing import RecordingTracer, ScriptedChatModel, tool_call
from agentmesh.tracing import SpanKind, SpanRecord


class Doc(BaseModel):
    text: str


class Words(BaseModel):
    words: list[str]


class Verdict(BaseModel):
    label: str
    count: int


def lookup(word: str) -> str:
    """Look a word up in the glossary."""
    return word.upper()


@am.specialist(tools=[lookup])
def split(doc: Doc, ctx: am.AgentContext) -> Words:
    """Split the text into words, checking the first one in the glossary."""
    words = doc.text.split()
    ctx.call_tool("lookup", word=words[0])
    return Words(words=words)


def _graph() -> tuple[Any, ScriptedChatModel]:
    """meta ``top`` -> lead ``desk`` -> split (code + tool), judge (model: tool call, answer)."""
    model = ScriptedChatModel(
        script=[tool_call("lookup", word="b"), Verdict(label="ok", count=2)], tokens_per_answer=7
    )
    judge = am.Specialist(
        name="judge", input=Words, output=Verdict, layer="small_model", model=model,
        tools=[lookup], prompt="Judge the words.",
    )  # fmt: skip
    lead = am.Lead(name="desk", input=Doc, output=Verdict, stages=[split, judge])
    top = am.Meta(name="top", input=Doc, output=Verdict, stages=[lead])
    return top.compile(), model


@pytest.fixture
def traced() -> tuple[am.RunResult[Any], RecordingTracer, ScriptedChatModel]:
    graph, model = _graph()
    tracer = RecordingTracer()
    result = am.run(graph, Doc(text="a b"), thread_id="traced-run", tracer=tracer)
    assert result.status is am.RunStatus.COMPLETED, result.reason
    assert result.output == Verdict(label="ok", count=2)
    return result, tracer, model


def _names(spans: list[SpanRecord]) -> list[str]:
    return sorted(s.name for s in spans)


def test_spans_for_run_roles_gates_models_and_tools(
    traced: tuple[am.RunResult[Any], RecordingTracer, ScriptedChatModel],
) -> None:
    _, tracer, model = traced

    (run_span,) = tracer.of_kind(SpanKind.RUN)
    assert run_span.name == "top"
    assert run_span.parent_id is None
    assert _names(tracer.of_kind(SpanKind.ROLE)) == ["desk", "judge", "split"]
    assert _names(tracer.of_kind(SpanKind.GATE)) == ["gate:desk", "gate:judge", "gate:split"]

    model_spans = tracer.of_kind(SpanKind.MODEL)
    assert len(model_spans) == model.calls == 2
    for s in model_spans:
        assert s.attributes["model"] == "gpt-4o-mini"
        assert s.attributes["agent"] == "judge"

    tool_spans = tracer.of_kind(SpanKind.TOOL)
    assert _names(tool_spans) == ["lookup", "lookup"]  # one from code, one proposed by the model
    assert sorted(s.input["word"] for s in tool_spans) == ["a", "b"]
    assert {s.attributes["agent"] for s in tool_spans} == {"split", "judge"}


def test_spans_form_one_connected_tree_of_the_run(
    traced: tuple[am.RunResult[Any], RecordingTracer, ScriptedChatModel],
) -> None:
    result, tracer, _ = traced
    spans = tracer.spans
    by_id = {s.span_id: s for s in spans}

    assert len(by_id) == len(spans), "span ids must be unique"
    assert {s.run_id for s in spans} == {result.thread_id} == {"traced-run"}
    roots = [s for s in spans if s.parent_id is None]
    assert [r.kind for r in roots] == [SpanKind.RUN]
    for s in spans:
        if s.parent_id is not None:
            assert s.parent_id in by_id, f"{s.kind} span {s.name!r} has an unknown parent"

    def parent(name: str, kind: SpanKind) -> SpanRecord:
        (child,) = [s for s in spans if s.name == name and s.kind is kind]
        assert child.parent_id is not None
        return by_id[child.parent_id]

    assert parent("desk", SpanKind.ROLE).name == "top"
    assert parent("split", SpanKind.ROLE).name == "desk"
    assert parent("judge", SpanKind.ROLE).name == "desk"
    assert parent("gate:split", SpanKind.GATE).name == "desk"
    assert parent("gate:desk", SpanKind.GATE).name == "top"
    assert {by_id[s.parent_id].name for s in tracer.of_kind(SpanKind.MODEL) if s.parent_id} == {
        "judge"
    }
    assert {by_id[s.parent_id].name for s in tracer.of_kind(SpanKind.TOOL) if s.parent_id} == {
        "split",
        "judge",
    }


def test_model_spans_carry_tokens_and_cost(
    traced: tuple[am.RunResult[Any], RecordingTracer, ScriptedChatModel],
) -> None:
    result, tracer, model = traced
    model_spans = tracer.of_kind(SpanKind.MODEL)
    for s in model_spans:
        assert {"model", "input_tokens", "output_tokens", "cost_usd"} <= set(s.attributes)
        assert s.attributes["output_tokens"] == 7
        assert s.attributes["cost_usd"] > 0
    assert sum(s.attributes["input_tokens"] for s in model_spans) == model.input_tokens
    assert sum(s.attributes["input_tokens"] for s in model_spans) == result.usage.input_tokens


def test_specialist_role_spans_carry_outcome_and_usage(
    traced: tuple[am.RunResult[Any], RecordingTracer, ScriptedChatModel],
) -> None:
    _, tracer, model = traced
    (judge,) = [s for s in tracer.of_kind(SpanKind.ROLE) if s.name == "judge"]
    assert judge.attributes["served_by"] == "gpt-4o-mini"
    assert judge.attributes["status"] == "ok"
    assert judge.attributes["input_tokens"] == model.input_tokens


class ExplodingTracer(RecordingTracer):
    def record(self, span: SpanRecord) -> None:
        super().record(span)
        raise RuntimeError("tracing backend is down")


def test_a_tracer_that_raises_does_not_fail_the_run() -> None:
    graph, _ = _graph()
    tracer = ExplodingTracer()

    result = am.run(graph, Doc(text="a b"), thread_id="broken-tracer", tracer=tracer)

    assert result.status is am.RunStatus.COMPLETED, result.reason
    assert result.output == Verdict(label="ok", count=2)
    assert len(tracer.of_kind(SpanKind.MODEL)) == 2  # it kept being called
    assert len(tracer.of_kind(SpanKind.RUN)) == 1
