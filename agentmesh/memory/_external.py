"""External memory: a store, an embedder and a policy behind ingest, retrieve and check."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentmesh._runtime.context import current_context, span
from agentmesh.memory._embedders import Embedder, build_embedder
from agentmesh.memory._ingest import ingest_documents, source_drift
from agentmesh.memory._policy import MemoryPolicy, StaleAction
from agentmesh.memory._retrieval import Hit, InsufficientContext, Retrieved
from agentmesh.memory._sources import (
    discover_sources,
    read_source,
    source_name,
    source_version,
)
from agentmesh.tracing._base import SpanKind

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from agentmesh.memory._ingest import DriftReport, IngestReport
    from agentmesh.memory._sources import SourceDocument
    from agentmesh.memory._store import MemoryStore, ScoredItem

__all__ = ["ExternalMemory", "MemoryStats", "TypeStats", "build_external_memory"]


@dataclass(frozen=True, kw_only=True)
class TypeStats:
    """What the store holds for one data type.

    Attributes:
        data_type: The data type.
        sources: How many sources.
        items: How many items.
        stale_items: How many items are stale now.
        max_age_s: The policy's maximum age for it (``None``: no limit).
        on_stale: What retrieval does with its stale items.
    """

    data_type: str
    sources: int
    items: int
    stale_items: int
    max_age_s: float | None
    on_stale: StaleAction


@dataclass(frozen=True, kw_only=True)
class MemoryStats:
    """A summary of external memory.

    Attributes:
        items: How many items.
        sources: How many sources.
        stale_items: How many items are stale now.
        by_type: Per data type, sorted by name.
        embedder: The embedder's name.
        store: The store's class name.
    """

    items: int
    sources: int
    stale_items: int
    by_type: tuple[TypeStats, ...]
    embedder: str
    store: str


class ExternalMemory:
    """Knowledge an agent retrieves, with freshness enforced by the retrieval itself.

    Stale items are excluded inside the store query or returned flagged, per data
    type, as the policy says; the agent never has to judge age. When nothing fresh
    and relevant enough is found, :meth:`retrieve` returns
    :class:`~agentmesh.memory.InsufficientContext`, which the agent must escalate on.
    Every retrieval is traced as a ``retrieval`` span.

    Attributes:
        store: Where items live.
        embedder: How text becomes vectors.
        policy: Freshness rules and relevance floor.
        min_score: The relevance floor for this embedder.
    """

    def __init__(
        self,
        *,
        store: MemoryStore,
        embedder: Embedder,
        policy: MemoryPolicy | None = None,
        clock: Callable[[], float] = time.time,
        root: Path | None = None,
    ) -> None:
        """Assemble external memory.

        Args:
            store: The memory store.
            embedder: The embedder (the same one for ingest and retrieval).
            policy: Freshness rules and relevance floor; the default has no age limits.
            clock: Epoch seconds now (injectable for tests).
            root: Source names are file paths relative to this folder (default: the
                current directory).
        """
        self.store = store
        self.embedder = embedder
        self.policy = policy or MemoryPolicy()
        self.min_score = self.policy.min_score_for(embedder.name)
        self._clock = clock
        self._root = root or Path.cwd()

    def ingest(self, paths: Sequence[Path | str]) -> IngestReport:
        """Ingest the knowledge files at or under ``paths``.

        A changed file replaces its old chunks; an unchanged one is re-stamped.

        Raises:
            ConfigError: A path does not exist or a file cannot be parsed.
        """
        files = discover_sources([Path(p) for p in paths])
        return self.ingest_documents([self._read(f) for f in files])

    def ingest_documents(self, documents: Sequence[SourceDocument]) -> IngestReport:
        """Ingest already-read sources (for knowledge that does not live in files)."""
        return ingest_documents(self.store, self.embedder, documents, now=self._clock())

    def check_sources(self, paths: Sequence[Path | str]) -> DriftReport:
        """Report sources whose content changed but whose index did not (and vice versa).

        Paths that no longer exist are checked too: what was indexed under them is
        reported ``missing``.
        """
        given = [Path(p) for p in paths]
        files = discover_sources([p for p in given if p.exists()])
        on_disk = {source_name(f, self._root): source_version(f.read_bytes()) for f in files}
        scope = [source_name(p, self._root) for p in given]
        return source_drift(self.store.sources(), on_disk, scope=scope)

    def search(
        self, query: str, *, k: int | None = None, data_types: Sequence[str] | None = None
    ) -> list[Hit]:
        """The nearest admitted items, best first, without a relevance floor.

        Stale items of ``exclude`` types are filtered out in the store query; those of
        ``flag`` types come back with ``stale=True``.
        """
        now = self._clock()
        where = self.policy.item_filter(now, data_types)
        found = self.store.query(
            self.embedder.embed_query(query), k=k or self.policy.k, where=where
        )
        return [self._hit(s, now) for s in found]

    def retrieve(
        self, query: str, *, k: int | None = None, data_types: Sequence[str] | None = None
    ) -> Retrieved | InsufficientContext:
        """Fresh, relevant context for ``query``, or :class:`InsufficientContext`.

        Args:
            query: What the agent needs to know.
            k: How many hits at most (default: the policy's ``k``).
            data_types: Limit the search to these data types.
        """
        attrs: dict[str, Any] = {
            "query": query,
            "k": k or self.policy.k,
            "data_types": list(data_types) if data_types is not None else None,
            "min_score": self.min_score,
            "embedder": self.embedder.name,
            "store": type(self.store).__name__,
        }
        run_id = current_context().run_id
        with span(
            SpanKind.RETRIEVAL, "memory.retrieve", run_id=run_id, input=query, attributes=attrs
        ) as opened:
            hits = self.search(query, k=k, data_types=data_types)
            result = self.assess(query, hits, data_types=data_types)
            attrs.update(
                scores=[round(h.score, 4) for h in hits],
                ages_s=[round(h.age_s, 1) for h in hits],
                stale_count=sum(h.stale for h in hits),
                hit_ids=[h.item.id for h in hits],
                result=result.kind,
            )
            opened.output = (
                [h.item.id for h in result.hits] if isinstance(result, Retrieved) else result.reason
            )
            opened.status = "ok" if isinstance(result, Retrieved) else "insufficient_context"
        return result

    def stats(self) -> MemoryStats:
        """Items, sources and stale items per data type."""
        now = self._clock()
        grouped: dict[str, list[tuple[int, bool]]] = {}
        for info in self.store.sources().values():
            reason = self.policy.staleness(
                info.data_type, ingested_at=info.ingested_at, expires_at=info.expires_at, now=now
            )
            grouped.setdefault(info.data_type, []).append((info.chunks, reason is not None))
        by_type = tuple(
            TypeStats(
                data_type=name,
                sources=len(rows),
                items=sum(n for n, _ in rows),
                stale_items=sum(n for n, stale in rows if stale),
                max_age_s=self.policy.rule(name).max_age_s,
                on_stale=self.policy.rule(name).on_stale,
            )
            for name, rows in sorted(grouped.items())
        )
        return MemoryStats(
            items=sum(t.items for t in by_type),
            sources=sum(t.sources for t in by_type),
            stale_items=sum(t.stale_items for t in by_type),
            by_type=by_type,
            embedder=self.embedder.name,
            store=type(self.store).__name__,
        )

    def _read(self, path: Path) -> SourceDocument:
        return read_source(path, name=source_name(path, self._root), policy=self.policy)

    def _hit(self, scored: ScoredItem, now: float) -> Hit:
        reason = self.policy.stale_reason(scored.item, now)
        return Hit(
            item=scored.item,
            score=scored.score,
            age_s=scored.item.age_s(now),
            stale=reason is not None,
            stale_reason=reason,
        )

    def assess(
        self, query: str, hits: list[Hit], *, data_types: Sequence[str] | None = None
    ) -> Retrieved | InsufficientContext:
        """Judge :meth:`search` hits: enough fresh, relevant context, or not."""
        relevant = [h for h in hits if h.score >= self.min_score]
        if any(not h.stale for h in relevant):
            return Retrieved(query=query, hits=relevant, min_score=self.min_score)
        stale = [h for h in relevant if h.stale]
        best = max((h.score for h in hits), default=None)
        if stale:
            reason = f"the {len(stale)} relevant item(s) are stale ({stale[0].stale_reason})"
        elif best is None:
            reason = "no fresh item was found"
        else:
            reason = f"the best fresh match scored {best:.2f}, below {self.min_score:.2f}"
        return InsufficientContext(
            query=query,
            reason=reason,
            min_score=self.min_score,
            best_score=best,
            stale_hits=stale,
            data_types=list(data_types) if data_types is not None else None,
        )


def build_external_memory(
    *,
    data_dir: Path,
    chroma_url: str | None = None,
    embedder: str | Embedder = "hashing",
    policy: MemoryPolicy | Path | None = None,
    collection: str | None = None,
    root: Path | None = None,
) -> ExternalMemory:
    """External memory on Chroma: embedded under ``data_dir/chroma``, or a server.

    Args:
        data_dir: The project data folder (``Settings.data_dir``).
        chroma_url: A Chroma server URL; ``None`` uses embedded Chroma.
        embedder: An embedder or a :func:`~agentmesh.memory.build_embedder` spec.
        policy: A policy or a policy file; ``None`` has no age limits.
        collection: The collection name (default: ``knowledge-<embedder name>``, so
            different embedders never share vectors).
        root: The folder source names are relative to (default: current directory).

    Raises:
        ConfigError: A bad embedder spec, policy file or Chroma location.
        MissingExtraError: An embedder that needs an extra which is not installed.
    """
    from agentmesh.memory._chroma import ChromaStore

    made = build_embedder(embedder) if isinstance(embedder, str) else embedder
    loaded = MemoryPolicy.load(policy) if isinstance(policy, Path) else policy
    name = collection or _collection_name(made.name)
    store = (
        ChromaStore(url=chroma_url, collection=name)
        if chroma_url
        else ChromaStore(path=data_dir / "chroma", collection=name)
    )
    return ExternalMemory(store=store, embedder=made, policy=loaded, root=root)


def _collection_name(embedder: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", f"knowledge-{embedder}").strip("-._")
    return cleaned[:200]
