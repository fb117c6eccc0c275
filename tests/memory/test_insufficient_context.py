"""Retrieval returns insufficient context instead of weak or stale answers, and is traced."""

from __future__ import annotations

import numpy as np
import pytest
from _external_support import DAY, NOW, Clock, basis, item, toward
from pydantic import TypeAdapter

from agentmesh._runtime.context import RunContext, use_context
from agentmesh.memory import (
    ExternalMemory,
    FreshnessRule,
    HashingEmbedder,
    InMemoryStore,
    InsufficientContext,
    MemoryPolicy,
    Retrieval,
    Retrieved,
    StaleAction,
)
from agentmesh.messages import EscalationMessage
from agentmesh.settings import Settings
from agentmesh.testing import RecordingTracer
from agentmesh.tools import ToolGateway
from agentmesh.tracing import SpanKind

POLICY = MemoryPolicy(
    rules={
        "rates": FreshnessRule(max_age_s=DAY),
        "manual": FreshnessRule(max_age_s=30 * DAY, on_stale=StaleAction.FLAG),
    },
    min_score=0.5,
)


class AxisEmbedder:
    """Queries name their vector: ``axis:N`` or ``near:N:COS``."""

    name = "axis"

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.embed_query(t) for t in texts])

    def embed_query(self, text: str) -> np.ndarray:
        kind, *args = text.split(":")
        if kind == "near":
            return toward(int(args[0]), float(args[1]))
        return basis(int(args[0]))


def _memory(*items_and_axes: tuple, clock: Clock | None = None) -> ExternalMemory:
    store = InMemoryStore()
    if items_and_axes:
        store.add([i for i, _ in items_and_axes], np.stack([v for _, v in items_and_axes]))
    return ExternalMemory(
        store=store, embedder=AxisEmbedder(), policy=POLICY, clock=clock or Clock()
    )


def test_empty_memory_is_insufficient_context() -> None:
    result = _memory().retrieve("axis:0")
    assert isinstance(result, InsufficientContext)
    assert result.reason == "no fresh item was found"
    assert result.best_score is None


def test_weak_matches_are_insufficient_context() -> None:
    memory = _memory((item("far", data_type="manual"), toward(0, 0.3)))
    result = memory.retrieve("axis:0")
    assert isinstance(result, InsufficientContext)
    assert result.best_score == pytest.approx(0.3, abs=1e-4)
    assert "below 0.50" in result.reason


def test_only_stale_relevant_items_are_insufficient_context_with_the_stale_hits() -> None:
    memory = _memory(
        (item("old-manual", data_type="manual", ingested_at=NOW - 60 * DAY), basis(0)),
        (item("old-rate", data_type="rates", ingested_at=NOW - 2 * DAY), basis(0)),
    )
    result = memory.retrieve("axis:0")
    assert isinstance(result, InsufficientContext)
    assert [h.item.id for h in result.stale_hits] == ["old-manual"]  # old-rate is excluded
    assert "stale" in result.reason


def test_fresh_relevant_hit_is_retrieved_with_flagged_stale_neighbours() -> None:
    memory = _memory(
        (item("fresh", data_type="manual"), toward(0, 0.9)),
        (item("old", data_type="manual", ingested_at=NOW - 60 * DAY), basis(0)),
        (item("weak", data_type="manual"), toward(0, 0.2)),
    )
    result = memory.retrieve("axis:0")
    assert isinstance(result, Retrieved)
    assert [(h.item.id, h.stale) for h in result.hits] == [("old", True), ("fresh", False)]


def test_insufficient_context_becomes_an_escalation() -> None:
    memory = _memory((item("old", data_type="manual", ingested_at=NOW - 60 * DAY), basis(0)))
    result = memory.retrieve("axis:0", data_types=["manual"])
    assert isinstance(result, InsufficientContext)
    esc = result.to_escalation("check_vendor")
    assert isinstance(esc, EscalationMessage)
    assert esc.decision_point == "check_vendor"
    assert esc.reason.startswith("insufficient context: ")
    assert esc.data["stale_hits"] == [f"old ({result.stale_hits[0].stale_reason})"]
    assert esc.data["data_types"] == ["manual"]


def test_results_round_trip_as_a_tagged_union() -> None:
    adapter: TypeAdapter[Retrieved | InsufficientContext] = TypeAdapter(Retrieval)
    memory = _memory((item("a", data_type="manual"), basis(0)))
    for result in (memory.retrieve("axis:0"), memory.retrieve("axis:1")):
        assert adapter.validate_json(adapter.dump_json(result)) == result


def test_every_retrieval_is_traced() -> None:
    tracer = RecordingTracer()
    ctx = RunContext(settings=Settings(), tracer=tracer, gateway=ToolGateway(), run_id="run-7")
    memory = _memory(
        (item("fresh", data_type="manual", ingested_at=NOW - 3600), toward(0, 0.9)),
        (item("old", data_type="manual", ingested_at=NOW - 60 * DAY), basis(0)),
    )
    with use_context(ctx):
        memory.retrieve("axis:0")
        memory.retrieve("axis:1")
    first, second = tracer.of_kind(SpanKind.RETRIEVAL)
    assert (first.name, first.run_id, first.input) == ("memory.retrieve", "run-7", "axis:0")
    attrs = first.attributes
    assert attrs["query"] == "axis:0"
    assert attrs["hit_ids"] == ["old", "fresh"]
    assert attrs["scores"] == [1.0, 0.9]
    assert attrs["ages_s"] == [60 * DAY, 3600.0]
    assert attrs["stale_count"] == 1
    assert attrs["result"] == "retrieved"
    assert first.output == ["old", "fresh"]
    assert second.attributes["result"] == "insufficient_context"
    assert second.status == "insufficient_context"


def test_hashing_memory_abstains_on_off_topic_questions() -> None:
    memory = ExternalMemory(
        store=InMemoryStore(), embedder=HashingEmbedder(), policy=MemoryPolicy(min_score=0.2)
    )
    from agentmesh.memory import Chunk, SourceDocument

    memory.ingest_documents(
        [
            SourceDocument(
                source="kb",
                data_type="doc",
                version="1",
                chunks=(
                    Chunk(
                        anchor="iban", title="Bank details", text="Verify IBAN changes by phone."
                    ),
                ),
            )
        ]
    )
    assert isinstance(memory.retrieve("verify an IBAN change"), Retrieved)
    assert isinstance(memory.retrieve("recipe for lemon cake"), InsufficientContext)
