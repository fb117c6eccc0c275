"""The real HTTP client path: model-layer specialists against a local OpenAI-compatible server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import agentmesh as am
from agentmesh.testing.openai_server import FakeOpenAIServer, Fault, Reply

pytestmark = pytest.mark.timeout(30)


class Doc(BaseModel):
    text: str


class Verdict(BaseModel):
    label: str
    count: int


PROMPT = "You label documents for the archive."


def keyword_fallback(doc: Doc) -> Verdict:
    """Deterministic answer used when the model fails."""
    return Verdict(label="fallback", count=len(doc.text.split()))


def judge(*, fallback: Any = None, model: str | None = None) -> am.Specialist[Any, Any]:
    return am.Specialist(
        name="judge", input=Doc, output=Verdict, layer="small_model", prompt=PROMPT,
        fallback=fallback, model=model,
    )  # fmt: skip


@pytest.fixture
def srv() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def settings(srv: FakeOpenAIServer) -> am.Settings:
    return am.Settings(
        data_dir=Path(os.environ["AGENTMESH_DATA_DIR"]),
        small_model="openai:gpt-4o-mini",
        openai_base_url=srv.base_url,
        openai_api_key="test",
        model_timeout_s=5.0,
    )


def _chat_requests(srv: FakeOpenAIServer) -> list[Any]:
    return [r for r in srv.requests if r.path.endswith("/chat/completions")]


def test_structured_answer_and_usage_come_from_the_server(
    srv: FakeOpenAIServer, settings: am.Settings
) -> None:
    srv.enqueue(
        Reply.tool_call(
            "Verdict", {"label": "invoice", "count": 3}, input_tokens=123, output_tokens=45
        )
    )
    graph = judge().compile(settings=settings)

    result = am.run(graph, Doc(text="pay this now"), settings=settings)

    assert result.status is am.RunStatus.COMPLETED, result.reason
    assert result.output == Verdict(label="invoice", count=3)
    assert result.result is not None
    assert result.result.served_by == "gpt-4o-mini"
    assert result.result.degraded is False
    assert result.usage.input_tokens == 123
    assert result.usage.output_tokens == 45
    assert result.usage.model_calls == 1
    assert result.usage.cost_usd > 0

    (request,) = _chat_requests(srv)
    assert request.model == "gpt-4o-mini"
    assert request.headers["authorization"] == "Bearer test"
    offered = {t["function"]["name"]: t["function"] for t in request.tools}
    assert "Verdict" in offered, "the output schema must be offered as a tool"
    assert set(offered["Verdict"]["parameters"]["properties"]) == {"label", "count"}
    system = [m for m in request.messages if m["role"] == "system"]
    assert len(system) == 1
    assert PROMPT in system[0]["content"]
    user_text = " ".join(str(m["content"]) for m in request.messages if m["role"] == "user")
    assert "pay this now" in user_text


def test_lead_with_model_from_environment_reports_server_usage(
    srv: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for shadowing in ("AGENTMESH_OPENAI_BASE_URL", "AGENTMESH_OPENAI_API_KEY"):
        monkeypatch.delenv(shadowing, raising=False)  # they win over OPENAI_* in Settings
    monkeypatch.setenv("AGENTMESH_SMALL_MODEL", "openai:gpt-4o-mini")
    monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    # The server estimates prompt tokens itself here; whatever it reports is what counts.
    srv.enqueue(Reply.tool_call("Verdict", {"label": "memo", "count": 2}, output_tokens=9))
    lead = am.Lead(name="archive", input=Doc, output=Verdict, stages=[judge()])
    graph = lead.compile()

    result = am.run(graph, Doc(text="team lunch"), thread_id="env-model")

    assert result.status is am.RunStatus.COMPLETED, result.reason
    assert result.output == Verdict(label="memo", count=2)
    (request,) = _chat_requests(srv)
    prompt_text = sum(len(str(m.get("content") or "")) for m in request.messages)
    server_prompt_tokens = -(-prompt_text // 4)  # the server's own estimate: ceil(chars / 4)
    assert result.usage.input_tokens == server_prompt_tokens
    assert result.usage.output_tokens == 9
    assert result.usage.model_calls == 1


def test_server_error_with_fallback_completes_degraded(
    srv: FakeOpenAIServer, settings: am.Settings
) -> None:
    srv.default = Fault.status(500, retry_after=0.01)  # every attempt, retries included
    lead = am.Lead(
        name="archive", input=Doc, output=Verdict, stages=[judge(fallback=keyword_fallback)]
    )
    graph = lead.compile(settings=settings)

    result = am.run(graph, Doc(text="one two three"), settings=settings)

    assert result.status is am.RunStatus.COMPLETED, result.reason
    assert result.output == Verdict(label="fallback", count=3)
    assert result.result is not None
    assert result.result.degraded is True
    statuses = [r.status for r in _chat_requests(srv)]
    assert statuses, "the model was really asked first"
    assert set(statuses) == {500}


def test_malformed_body_falls_back(srv: FakeOpenAIServer, settings: am.Settings) -> None:
    srv.default = Fault.malformed()
    graph = judge(fallback=keyword_fallback).compile(settings=settings)

    result = am.run(graph, Doc(text="one two"), settings=settings)

    assert result.status is am.RunStatus.COMPLETED, result.reason
    assert result.output == Verdict(label="fallback", count=2)
    assert result.result is not None
    assert result.result.degraded is True
    assert result.result.served_by == "fallback:keyword_fallback"
    assert any("model failed" in e for e in result.result.evidence)
    assert _chat_requests(srv), "the model was really asked first"


def test_server_error_without_fallback_ends_typed_not_raised(
    srv: FakeOpenAIServer, settings: am.Settings
) -> None:
    srv.default = Fault.status(500, retry_after=0.01)
    graph = judge().compile(settings=settings)

    result = am.run(graph, Doc(text="one two"), settings=settings)

    assert result.status is am.RunStatus.HALTED
    assert result.output is None
    assert "500" in result.reason


def test_bad_model_reference_fails_at_compile(settings: am.Settings) -> None:
    with pytest.raises(am.ModelConfigError, match="gpt4"):
        judge(model="gpt4").compile(settings=settings)
    with pytest.raises(am.ModelConfigError, match="gpt4"):
        am.Lead(name="archive", input=Doc, output=Verdict, stages=[judge(model="gpt4")]).compile(
            settings=settings
        )


def test_bad_model_reference_in_settings_fails_at_compile(settings: am.Settings) -> None:
    from dataclasses import replace

    with pytest.raises(am.ModelConfigError, match="provider:model"):
        judge().compile(settings=replace(settings, small_model="gpt4"))
