"""The memory store extension point: a vector index of items with provenance.

Stores hold vectors the caller computed (see :class:`~agentmesh.memory.Embedder`), so
one store works with any embedder; similarity is cosine, reported as a score in
``[-1, 1]`` (higher is closer). :class:`~agentmesh.memory.InMemoryStore` is the
reference implementation; every backend passes the conformance suite in
``tests/memory/test_store_conformance.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from collections.abc import Sequence

    from agentmesh.memory._filter import ItemFilter
    from agentmesh.memory._items import MemoryItem, SourceInfo

__all__ = ["MemoryStore", "ScoredItem", "Vector", "Vectors", "unit_rows"]

Vector = npt.NDArray[np.float32]
"""One embedding, shape ``(dim,)``."""
Vectors = npt.NDArray[np.float32]
"""A batch of embeddings, shape ``(n, dim)``."""


@dataclass(frozen=True, kw_only=True)
class ScoredItem:
    """An item and its cosine similarity to the query vector."""

    item: MemoryItem
    score: float


@runtime_checkable
class MemoryStore(Protocol):
    """A vector index of :class:`~agentmesh.memory.MemoryItem` s.

    Implementations are thread-safe. Filtering is the store's job: ``query`` must
    apply ``where`` inside the index query, never by returning everything.
    """

    def add(self, items: Sequence[MemoryItem], vectors: Vectors) -> None:
        """Insert or replace (by id) ``items`` with their ``vectors`` (one row each)."""
        ...

    def query(self, vector: Vector, *, k: int, where: ItemFilter | None = None) -> list[ScoredItem]:
        """The ``k`` items closest to ``vector`` that pass ``where``, best first."""
        ...

    def delete_source(self, source: str, *, keep_version: str | None = None) -> int:
        """Remove the items of ``source`` (except those of ``keep_version``); return how many."""
        ...

    def restamp_source(self, source: str, ingested_at: float) -> int:
        """Set ``ingested_at`` on every item of ``source``; return how many changed."""
        ...

    def sources(self) -> dict[str, SourceInfo]:
        """What the store holds, per source."""
        ...

    def count(self) -> int:
        """How many items the store holds."""
        ...


def unit_rows(vectors: npt.ArrayLike) -> Vectors:
    """``vectors`` as a 2-D float32 array with rows scaled to unit length (zero rows stay zero)."""
    rows: Vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    out: Vectors = np.divide(rows, norms, out=np.zeros_like(rows), where=norms > 0)
    return out
