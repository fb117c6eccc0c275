"""Retrieval quality on a labelled query set: recall@k, MRR and abstention.

A query file is JSON Lines, one ``{"query": ..., "relevant": [item ids]}`` per line;
an empty ``relevant`` list marks a question the knowledge cannot answer, for which
retrieval should return insufficient context. A hit on ``<id>~N`` (a part of a long
section) counts for ``<id>``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agentmesh.errors import ConfigError
from agentmesh.memory._retrieval import InsufficientContext

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from agentmesh.memory._external import ExternalMemory
    from agentmesh.memory._retrieval import Hit

__all__ = ["LabelledQuery", "RecallReport", "evaluate_recall", "load_labelled_queries"]


@dataclass(frozen=True, kw_only=True)
class LabelledQuery:
    """A query and the ids of the items that answer it (none: unanswerable)."""

    query: str
    relevant: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class RecallReport:
    """How well retrieval finds the labelled answers.

    Attributes:
        embedder: The embedder's name.
        k: Hits considered per query.
        answerable: Queries with at least one relevant item.
        recall_at_k: Share of answerable queries with a relevant item in the top ``k``.
        mrr: Mean reciprocal rank of the first relevant item (0 when not in the top ``k``).
        abstain_rate: Share of unanswerable queries that got insufficient context.
        false_insufficient_rate: Share of answerable queries that got insufficient context.
        misses: The answerable queries whose answer was not in the top ``k``.
    """

    embedder: str
    k: int
    answerable: int
    recall_at_k: float
    mrr: float
    abstain_rate: float | None
    false_insufficient_rate: float
    misses: tuple[str, ...]


def load_labelled_queries(path: Path) -> list[LabelledQuery]:
    """Read a labelled query file.

    Raises:
        ConfigError: The file is missing or a line is malformed (names file and line).
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read labelled queries ({exc.strerror})") from exc
    queries = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            queries.append(
                LabelledQuery(query=str(row["query"]), relevant=tuple(map(str, row["relevant"])))
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path}:{number}: expected {{'query', 'relevant'}} ({exc})") from exc
    return queries


def evaluate_recall(
    memory: ExternalMemory, queries: Sequence[LabelledQuery], *, k: int = 5
) -> RecallReport:
    """Measure ``memory`` on ``queries``: :meth:`ExternalMemory.search` ranks, and
    :meth:`ExternalMemory.assess` decides insufficient context, as ``retrieve`` does."""
    answerable = [q for q in queries if q.relevant]
    unanswerable = [q for q in queries if not q.relevant]
    ranks: list[int | None] = []
    misses = []
    false_insufficient = 0
    for q in answerable:
        hits = memory.search(q.query, k=k)
        ids = [h.item.id.split("~")[0] for h in hits]
        rank = next((n for n, i in enumerate(ids, start=1) if i in q.relevant), None)
        ranks.append(rank)
        if rank is None:
            misses.append(q.query)
        false_insufficient += _insufficient(memory, q.query, hits)
    abstained = sum(
        _insufficient(memory, q.query, memory.search(q.query, k=k)) for q in unanswerable
    )
    return RecallReport(
        embedder=memory.embedder.name,
        k=k,
        answerable=len(answerable),
        recall_at_k=_share(sum(r is not None for r in ranks), len(answerable)),
        mrr=_share(sum(1.0 / r for r in ranks if r is not None), len(answerable)),
        abstain_rate=_share(abstained, len(unanswerable)) if unanswerable else None,
        false_insufficient_rate=_share(false_insufficient, len(answerable)),
        misses=tuple(misses),
    )


def _insufficient(memory: ExternalMemory, query: str, hits: list[Hit]) -> bool:
    return isinstance(memory.assess(query, hits), InsufficientContext)


def _share(part: float, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0
