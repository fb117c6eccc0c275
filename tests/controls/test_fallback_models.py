"""A failing model falls back to another model or provider, then to code."""

from __future__ import annotations

from langchain_openai import ChatOpenAI
from pydantic import BaseModel

import agentmesh as am
from agentmesh.controls import RetryPolicy
from agentmesh.testing import FakeOpenAIServer, Fault, RecordingTracer, ScriptedChatModel


class Ask(BaseModel):
    text: str


class Label(BaseModel):
    label: str


def by_rule(a: Ask) -> Label:
    return Label(label="rule")


def _run(agent: am.Specialist, tracer: RecordingTracer | None = None) -> am.RunResult:
    graph = am.Lead(name="desk", input=Ask, output=Label, stages=[agent]).compile()
    return am.run(
        graph,
        Ask(text="hello"),
        checkpointer=None,
        tracer=tracer,
        controls=am.Controls(retry=RetryPolicy(max_attempts=1)),
    )


def test_a_provider_that_is_down_falls_back_to_the_next_model() -> None:
    backup = ScriptedChatModel(
        respond=lambda messages, tools: Label(label="backup"), price_as="gpt-4o"
    )
    with FakeOpenAIServer(default=Fault.status(500)) as srv:
        primary = ChatOpenAI(
            model="gpt-4o-mini", base_url=srv.base_url, api_key="x", max_retries=0, timeout=5
        )
        tracer = RecordingTracer()
        result = _run(
            am.Specialist(
                name="labeler",
                input=Ask,
                output=Label,
                layer="small_model",
                model=primary,
                fallback_models=[backup],
                fallback=by_rule,
            ),
            tracer,
        )
    assert result.status is am.RunStatus.COMPLETED, result.reason
    assert result.output == Label(label="backup")
    assert backup.calls == 1
    assert result.result is not None and result.result.degraded
    span = next(s for s in tracer.spans if s.name == "labeler")
    assert span.attributes["served_by"] == "gpt-4o"  # the backup
    assert any("gpt-4o-mini failed" in line for line in span.attributes["evidence"])


def test_when_every_model_fails_the_deterministic_fallback_answers() -> None:
    with FakeOpenAIServer(default=Fault.status(500)) as srv:
        models = [
            ChatOpenAI(model=m, base_url=srv.base_url, api_key="x", max_retries=0, timeout=5)
            for m in ("gpt-4o-mini", "gpt-4o")
        ]
        result = _run(
            am.Specialist(
                name="labeler",
                input=Ask,
                output=Label,
                layer="small_model",
                model=models[0],
                fallback_models=models[1:],
                fallback=by_rule,
            )
        )
        requests = len(srv.requests)
    assert result.status is am.RunStatus.COMPLETED, result.reason
    assert result.output == Label(label="rule")
    assert requests == 2  # one per model, no more


def test_code_agents_take_no_fallback_models() -> None:
    import pytest

    with pytest.raises(am.ConfigError, match="fallback_models"):
        am.Specialist(
            name="c", input=Ask, output=Label, fn=by_rule, fallback_models=["openai:gpt-4o"]
        )
