"""Ingesting sources (a changed source replaces its old chunks) and detecting drift.

Re-ingesting an unchanged source only re-stamps its items' ``ingested_at``: the
source was read again and still says the same, so its knowledge is current. A
changed source's new chunks are added first, then its old version's chunks removed,
so a concurrent reader never finds the source missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from agentmesh.memory._items import MemoryItem

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from agentmesh.memory._embedders import Embedder
    from agentmesh.memory._items import SourceInfo
    from agentmesh.memory._sources import SourceDocument
    from agentmesh.memory._store import MemoryStore

__all__ = [
    "DriftReport",
    "DriftStatus",
    "IngestReport",
    "IngestStatus",
    "SourceChange",
    "SourceDrift",
    "ingest_documents",
    "source_drift",
]


class IngestStatus(StrEnum):
    """What ingesting one source did."""

    ADDED = "added"
    REPLACED = "replaced"
    UNCHANGED = "unchanged"


@dataclass(frozen=True, kw_only=True)
class SourceChange:
    """The outcome for one source.

    Attributes:
        source: The source's name.
        status: Added, replaced (content changed) or unchanged (re-stamped).
        chunks: How many items it now has.
        version: Its version now.
        previous_version: The version it replaced, if any.
        removed: How many items of the previous version were removed.
    """

    source: str
    status: IngestStatus
    chunks: int
    version: str
    previous_version: str | None = None
    removed: int = 0


@dataclass(frozen=True, kw_only=True)
class IngestReport:
    """What one ingest call did, per source."""

    changes: tuple[SourceChange, ...]

    def count(self, status: IngestStatus) -> int:
        """How many sources ended with ``status``."""
        return sum(c.status is status for c in self.changes)


class DriftStatus(StrEnum):
    """How a source on disk compares with what the index holds."""

    CURRENT = "current"
    CHANGED = "changed"
    NOT_INDEXED = "not_indexed"
    MISSING = "missing"


@dataclass(frozen=True, kw_only=True)
class SourceDrift:
    """One source's drift.

    Attributes:
        source: The source's name.
        status: ``current``; ``changed`` (content changed, index did not);
            ``not_indexed`` (never ingested); ``missing`` (indexed, gone from disk).
        indexed_version: The version in the index, if any.
        current_version: The version on disk, if it exists.
        indexed_at: When the indexed version was last ingested (epoch seconds).
    """

    source: str
    status: DriftStatus
    indexed_version: str | None = None
    current_version: str | None = None
    indexed_at: float | None = None


@dataclass(frozen=True, kw_only=True)
class DriftReport:
    """Every checked source's drift."""

    entries: tuple[SourceDrift, ...]

    @property
    def drifted(self) -> list[SourceDrift]:
        """The sources whose index does not match their content."""
        return [e for e in self.entries if e.status is not DriftStatus.CURRENT]

    @property
    def ok(self) -> bool:
        """Whether every checked source is current."""
        return not self.drifted


def ingest_documents(
    store: MemoryStore,
    embedder: Embedder,
    documents: Sequence[SourceDocument],
    *,
    now: float,
) -> IngestReport:
    """Ingest ``documents`` into ``store``; see the module docstring."""
    indexed = store.sources()
    return IngestReport(
        changes=tuple(
            _ingest_one(store, embedder, d, indexed.get(d.source), now) for d in documents
        )
    )


def _ingest_one(
    store: MemoryStore,
    embedder: Embedder,
    doc: SourceDocument,
    indexed: SourceInfo | None,
    now: float,
) -> SourceChange:
    if indexed is not None and _same(indexed, doc):
        store.restamp_source(doc.source, now)
        return SourceChange(
            source=doc.source,
            status=IngestStatus.UNCHANGED,
            chunks=indexed.chunks,
            version=doc.version,
            previous_version=doc.version,
        )
    items = [
        MemoryItem(
            id=f"{doc.source}#{chunk.anchor}",
            text=chunk.text,
            title=chunk.title,
            source=doc.source,
            data_type=doc.data_type,
            ingested_at=now,
            source_version=doc.version,
            expires_at=doc.expires_at,
        )
        for chunk in doc.chunks
    ]
    store.add(items, embedder.embed_documents([embedding_text(i) for i in items]))
    removed = store.delete_source(doc.source, keep_version=doc.version) if indexed else 0
    return SourceChange(
        source=doc.source,
        status=IngestStatus.REPLACED if indexed else IngestStatus.ADDED,
        chunks=len(items),
        version=doc.version,
        previous_version=indexed.version if indexed else None,
        removed=removed,
    )


def _same(indexed: SourceInfo, doc: SourceDocument) -> bool:
    return (
        indexed.version == doc.version
        and indexed.data_type == doc.data_type
        and indexed.chunks == len(doc.chunks)
    )


def embedding_text(item: MemoryItem) -> str:
    """The text embedded for ``item``: its title, then its text."""
    return f"{item.title}\n{item.text}" if item.title else item.text


def source_drift(
    indexed: Mapping[str, SourceInfo],
    on_disk: Mapping[str, str],
    *,
    scope: Sequence[str] = (),
) -> DriftReport:
    """Compare indexed sources with the versions now on disk.

    Args:
        indexed: What the store holds, per source.
        on_disk: Source name to its current version, for every source found on disk.
        scope: Name prefixes of the checked folders: an indexed source under one of them
            that is not on disk is reported ``missing``.
    """
    entries = []
    for source, version in sorted(on_disk.items()):
        info = indexed.get(source)
        if info is None:
            status = DriftStatus.NOT_INDEXED
        else:
            status = DriftStatus.CURRENT if info.version == version else DriftStatus.CHANGED
        entries.append(
            SourceDrift(
                source=source,
                status=status,
                indexed_version=info.version if info else None,
                current_version=version,
                indexed_at=info.ingested_at if info else None,
            )
        )
    entries.extend(
        SourceDrift(
            source=source,
            status=DriftStatus.MISSING,
            indexed_version=info.version,
            indexed_at=info.ingested_at,
        )
        for source, info in sorted(indexed.items())
        if source not in on_disk and any(_under(source, s) for s in scope)
    )
    return DriftReport(entries=tuple(entries))


def _under(source: str, prefix: str) -> bool:
    return source == prefix or source.startswith(prefix.rstrip("/") + "/") or prefix in ("", ".")
