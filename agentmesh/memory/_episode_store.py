"""Typed records (episodes, facts) kept as items of a :class:`~agentmesh.memory.MemoryStore`.

Episodic and semantic memory persist through the same store Protocol as knowledge,
so every backend (in memory, Chroma) serves them. A record is one item whose
``text`` is the record's JSON, whose ``source`` is the record id (so one record can
be deleted alone), and whose ``data_type`` says what it is and lets the store filter
on it inside the query. The vector is the embedding of a text chosen by the caller
(what the record should be found by), not of the JSON.

The Protocol has no lookup by id or listing, so both are built from what it has:
``sources()`` names every record with its data type and ``ingested_at``; a query whose
``k`` is at least the number of items a filter admits returns all of them (the
Protocol's contract), so a lookup lists the few records of the same data type
stored at or after the wanted one and picks it out.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agentmesh.memory._filter import ItemFilter, Window
from agentmesh.memory._items import MemoryItem

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

    from agentmesh.memory._embedders import Embedder
    from agentmesh.memory._store import MemoryStore, ScoredItem, Vector

__all__ = ["Record", "RecordStore", "collection_name"]


@dataclass(frozen=True, kw_only=True)
class Record:
    """One record to store.

    Attributes:
        id: Unique record id (also its source name).
        data_type: What the record is; queries filter on it.
        payload: The record's JSON.
        title: A one-line human-readable label.
        embed_text: The text the record should be found by.
        stored_at: Epoch seconds, stored as the item's ``ingested_at``.
        expires_at: Epoch seconds after which the record is no longer valid, if any.
    """

    id: str
    data_type: str
    payload: str
    title: str
    embed_text: str
    stored_at: float
    expires_at: float | None = None


class RecordStore:
    """Records on a :class:`~agentmesh.memory.MemoryStore` (thread-safe as the store is)."""

    def __init__(self, store: MemoryStore, embedder: Embedder) -> None:
        """Keep records in ``store``, embedded with ``embedder``."""
        self.store = store
        self.embedder = embedder
        self._probe: Vector | None = None

    def put(self, records: Sequence[Record]) -> None:
        """Insert or replace (by id) ``records``."""
        if not records:
            return
        vectors = self.embedder.embed_documents([r.embed_text for r in records])
        self.store.add([_item(r) for r in records], vectors)

    def get(self, record_id: str) -> MemoryItem | None:
        """The item of ``record_id``, or ``None`` (reads every source's summary)."""
        infos = self.store.sources()
        info = infos.get(record_id)
        if info is None:
            return None
        later = sum(
            i.chunks
            for i in infos.values()
            if i.data_type == info.data_type and i.ingested_at >= info.ingested_at
        )
        window = Window(ingested_since=info.ingested_at)
        found = self.store.query(
            self.probe(), k=later, where=ItemFilter(types={info.data_type: window}, others=None)
        )
        return next((s.item for s in found if s.item.id == record_id), None)

    def listing(
        self, data_types: Collection[str], *, live_at: float | None = None
    ) -> list[MemoryItem]:
        """Every item of ``data_types`` (not expired at ``live_at``, when given)."""
        if not data_types:
            return []
        window = Window(live_at=live_at)
        where = ItemFilter(types=dict.fromkeys(data_types, window), others=None)
        found = self.store.query(self.probe(), k=max(1, self.store.count()), where=where)
        return [s.item for s in found]

    def search(
        self, text: str, data_types: Collection[str], *, k: int, since: float | None = None
    ) -> list[ScoredItem]:
        """The ``k`` items of ``data_types`` nearest to ``text``, best first."""
        if not data_types:
            return []
        window = Window(ingested_since=since)
        where = ItemFilter(types=dict.fromkeys(data_types, window), others=None)
        return self.store.query(self.embedder.embed_query(text), k=k, where=where)

    def delete(self, record_id: str) -> bool:
        """Remove the record; whether it existed."""
        return self.store.delete_source(record_id) > 0

    def data_types(self, prefix: str) -> set[str]:
        """The data types starting with ``prefix`` that the store holds (reads every source)."""
        return {
            i.data_type for i in self.store.sources().values() if i.data_type.startswith(prefix)
        }

    def probe(self) -> Vector:
        """A query vector for listings, where the order does not matter."""
        if self._probe is None:
            self._probe = self.embedder.embed_query("record listing probe")
        return self._probe


def collection_name(kind: str, embedder: str) -> str:
    """A Chroma collection name for ``kind`` records embedded by ``embedder``."""
    cleaned = "".join(c if c.isalnum() or c in "._-" else "-" for c in f"{kind}-{embedder}")
    return cleaned.strip("-._")[:200]


def _item(record: Record) -> MemoryItem:
    return MemoryItem(
        id=record.id,
        text=record.payload,
        source=record.id,
        data_type=record.data_type,
        ingested_at=record.stored_at,
        source_version=hashlib.sha256(record.payload.encode()).hexdigest()[:16],
        expires_at=record.expires_at,
        title=record.title,
    )
