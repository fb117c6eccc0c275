"""Deterministic code agents reuse their answers through LangGraph's node cache."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

import agentmesh as am
from agentmesh.testing import RecordingTracer


class Text(BaseModel):
    text: str


class Count(BaseModel):
    n: int


def test_a_cached_code_agent_runs_once_per_input_and_says_so() -> None:
    runs: list[str] = []

    @am.specialist(cache_ttl_s=60)
    def count_words(doc: Text) -> Count:
        """Count words (deterministic)."""
        runs.append(doc.text)
        return Count(n=len(doc.text.split()))

    graph = am.Lead(name="counter", input=Text, output=Count, stages=[count_words]).compile()
    first = am.run(graph, Text(text="a b c"), checkpointer=None)
    tracer = RecordingTracer()
    second = am.run(graph, Text(text="a b c"), checkpointer=None, tracer=tracer)
    other = am.run(graph, Text(text="a b"), checkpointer=None)

    assert first.output == second.output == Count(n=3)
    assert other.output == Count(n=2)
    assert runs == ["a b c", "a b"]
    spans = [s for s in tracer.spans if s.name == "count_words"]
    assert spans and spans[0].attributes["served_by"] == "code (cache)"


def test_a_new_version_does_not_reuse_old_answers() -> None:
    runs: list[str] = []

    def count(doc: Text) -> Count:
        runs.append(doc.text)
        return Count(n=len(doc.text))

    for version in ("1", "2"):
        agent = am.Specialist(
            name="count_chars",
            input=Text,
            output=Count,
            fn=count,
            version=version,
            cache_ttl_s=60,
        )
        graph = am.Lead(name="c", input=Text, output=Count, stages=[agent]).compile()
        am.run(graph, Text(text="xyz"), checkpointer=None)
    assert runs == ["xyz", "xyz"]


def test_caching_is_refused_where_answers_are_not_deterministic() -> None:
    with pytest.raises(am.ConfigError, match="cache_ttl_s"):
        am.Specialist(name="m", input=Text, output=Count, layer="small_model", cache_ttl_s=5)
