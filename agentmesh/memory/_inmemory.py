"""The reference memory store: exact cosine search over a matrix held in memory."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import numpy as np

from agentmesh.errors import ConfigError
from agentmesh.memory._items import summarize_sources
from agentmesh.memory._store import ScoredItem, Vector, Vectors, unit_rows

if TYPE_CHECKING:
    from collections.abc import Sequence

    from agentmesh.memory._filter import ItemFilter
    from agentmesh.memory._items import MemoryItem, SourceInfo

__all__ = ["InMemoryStore"]


class InMemoryStore:
    """A :class:`~agentmesh.memory.MemoryStore` kept in process memory (thread-safe).

    Exact search: every query scores all items that pass the filter. Meant for tests,
    small knowledge bases and as the reference behaviour for other backends.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, MemoryItem] = {}
        self._vectors: dict[str, Vector] = {}
        self._matrix: Vectors | None = None
        self._order: list[str] = []

    def add(self, items: Sequence[MemoryItem], vectors: Vectors) -> None:
        """Insert or replace (by id) ``items`` with their ``vectors``."""
        if not items:
            return
        rows = unit_rows(vectors)
        if len(rows) != len(items):
            raise ConfigError(f"{len(items)} items but {len(rows)} vectors")
        with self._lock:
            self._check_dim(rows.shape[1])
            for item, row in zip(items, rows, strict=True):
                self._items[item.id] = item
                self._vectors[item.id] = row
            self._matrix = None

    def query(self, vector: Vector, *, k: int, where: ItemFilter | None = None) -> list[ScoredItem]:
        """The ``k`` items closest to ``vector`` that pass ``where``, best first."""
        if k < 1 or (where is not None and where.admits_none):
            return []
        query = unit_rows(vector)[0]
        with self._lock:
            if not self._items:
                return []
            self._check_dim(len(query))
            if self._matrix is None:
                self._order = list(self._items)
                self._matrix = np.stack([self._vectors[i] for i in self._order])
            keep = [
                n
                for n, i in enumerate(self._order)
                if where is None or where.matches(self._items[i])
            ]
            if not keep:
                return []
            scores = self._matrix[keep] @ query
            top = np.argsort(-scores, kind="stable")[:k]
            return [
                ScoredItem(item=self._items[self._order[keep[t]]], score=float(scores[t]))
                for t in top
            ]

    def _check_dim(self, dim: int) -> None:
        if self._vectors:
            have = next(iter(self._vectors.values())).shape[0]
            if dim != have:
                raise ConfigError(f"vector dimension {dim} differs from the store's ({have})")

    def delete_source(self, source: str, *, keep_version: str | None = None) -> int:
        """Remove the items of ``source`` (except those of ``keep_version``); return how many."""
        with self._lock:
            gone = [
                i
                for i, item in self._items.items()
                if item.source == source and item.source_version != keep_version
            ]
            for i in gone:
                del self._items[i], self._vectors[i]
            self._matrix = None
            return len(gone)

    def restamp_source(self, source: str, ingested_at: float) -> int:
        """Set ``ingested_at`` on every item of ``source``; return how many changed."""
        with self._lock:
            ids = [i for i, item in self._items.items() if item.source == source]
            for i in ids:
                self._items[i] = self._items[i].model_copy(update={"ingested_at": ingested_at})
            return len(ids)

    def sources(self) -> dict[str, SourceInfo]:
        """What the store holds, per source."""
        with self._lock:
            return summarize_sources(list(self._items.values()))

    def count(self) -> int:
        """How many items the store holds."""
        with self._lock:
            return len(self._items)
