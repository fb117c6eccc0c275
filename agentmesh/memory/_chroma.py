"""The Chroma memory store: embedded (a folder) by default, or a Chroma server by URL.

Freshness is enforced inside the query. An :class:`~agentmesh.memory.ItemFilter`
becomes a Chroma ``where`` filter on the items' numeric ``ingested_at`` and
``expires_at`` metadata and their ``data_type``.

Why filtered queries are planned: Chroma evaluates a ``where`` filter by listing
every row it admits from its metadata index before the vector search, so a filter
that admits most of a large collection (the usual case for freshness: most knowledge
is fresh) costs far more than the search itself (measured: 0.7-1 s against 2-3 ms for
100,000 items). So a filtered query first takes the ``m`` nearest items without a
filter (``m`` from :class:`~agentmesh.memory._plan.CandidatePlanner`, learnt from the
share of candidates that passed before) and keeps those that pass. When at least
``k`` pass, or the collection has no more items, they are the filtered top ``k``;
after three short tries it runs the ``where``-filtered query.

What a planned query costs over a plain one: Chroma reads every returned row back
from its metadata index after the vector search, at about the same price per row
whatever ``include`` asks for, so the ``m - k`` extra candidates are the overhead.
Rows are checked on their metadata and only the kept ones become items. Two cheaper
looking plans were measured and dropped: distances first, then a ``get`` of the kept
rows (the second call's fixed cost is more than the rows it saves), and a local cache
of each item's filter fields (it cannot see writes by another process or client, such
as a re-ingest that re-stamps a source, so it would drop items that are fresh again).

Chroma's ``where``-filtered search is approximate in a way that matters here: when
few items are admitted and they sit far from the query, it can return fewer than
``k`` of them, even none. So a ``where`` query that comes back short is redone
exactly: the admitted items (when fewer than 2,048) are fetched with their vectors
and scored here. ``candidate_limit=0`` sends every filtered query as a ``where`` query.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

import numpy as np

from agentmesh.errors import ConfigError
from agentmesh.memory._items import MemoryItem, summarize_sources
from agentmesh.memory._plan import TRIES, CandidatePlanner
from agentmesh.memory._store import ScoredItem, Vector, Vectors, unit_rows

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

    from agentmesh.memory._filter import ItemFilter, Window
    from agentmesh.memory._items import SourceInfo

__all__ = ["ChromaStore", "chroma_where"]

# Chroma metadata cannot hold None: "no expiry" is stored as the year 9999.
_NEVER: Final = 253_402_300_799.0
_INCLUDE: Final[list[Any]] = ["documents", "metadatas", "distances"]
_PAGE: Final = 5000
_EXACT_LIMIT: Final = 2048


class ChromaStore:
    """A :class:`~agentmesh.memory.MemoryStore` on Chroma (thread-safe).

    Give exactly one of ``path`` (embedded, persistent), ``url`` (a Chroma server,
    e.g. ``http://127.0.0.1:8000``) or ``client`` (any ``chromadb`` client).

    Attributes:
        collection_name: The Chroma collection holding the items.
        where_queries: How many filtered queries ran as ``where`` queries.
        planned_queries: How many filtered queries were answered from candidates.
    """

    def __init__(
        self,
        *,
        path: Path | None = None,
        url: str | None = None,
        client: ClientAPI | None = None,
        collection: str = "knowledge",
        candidate_limit: int = 256,
    ) -> None:
        """Open (or create) the collection.

        Args:
            path: Folder of an embedded, persistent Chroma.
            url: URL of a Chroma server.
            client: A ``chromadb`` client to use as is.
            collection: The collection name.
            candidate_limit: Most unfiltered candidates a filtered query tries before
                it runs as a ``where`` query (see the module docstring); ``0`` always
                runs filtered queries as ``where`` queries.

        Raises:
            ConfigError: Not exactly one of ``path``/``url``/``client``, a bad URL, or
                the server cannot be reached.
        """
        if sum(x is not None for x in (path, url, client)) != 1:
            raise ConfigError("ChromaStore needs exactly one of path=, url= or client=")
        if candidate_limit < 0:
            raise ConfigError(f"candidate_limit must be >= 0, got {candidate_limit}")
        self.collection_name = collection
        self._planner = CandidatePlanner(limit=candidate_limit)
        self.where_queries = 0
        self.planned_queries = 0
        self._lock = threading.Lock()
        self._client = client or _client(path, url)
        try:
            self._col: Collection = self._client.get_or_create_collection(
                collection, configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
            )
        except Exception as exc:
            raise ConfigError(f"Chroma collection {collection!r}: {exc}") from exc

    @property
    def client(self) -> ClientAPI:
        """The Chroma client in use."""
        return self._client

    @property
    def collection(self) -> Collection:
        """The underlying Chroma collection (for raw access and benchmarks)."""
        return self._col

    def add(self, items: Sequence[MemoryItem], vectors: Vectors) -> None:
        """Insert or replace (by id) ``items`` with their ``vectors``."""
        if not items:
            return
        rows = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        if len(rows) != len(items):
            raise ConfigError(f"{len(items)} items but {len(rows)} vectors")
        for start in range(0, len(items), _PAGE):
            batch = items[start : start + _PAGE]
            try:
                self._col.upsert(
                    ids=[i.id for i in batch],
                    embeddings=rows[start : start + _PAGE],
                    documents=[i.text for i in batch],
                    metadatas=[_metadata(i) for i in batch],
                )
            except Exception as exc:
                if "dimension" in str(exc):
                    raise ConfigError(f"Chroma collection {self.collection_name!r}: {exc}") from exc
                raise

    def query(self, vector: Vector, *, k: int, where: ItemFilter | None = None) -> list[ScoredItem]:
        """The ``k`` items closest to ``vector`` that pass ``where``, best first."""
        if k < 1 or (where is not None and where.admits_none):
            return []
        if where is None or where.admits_all:
            return self._search(vector, k, None).scored()
        want = self._planner.first(where, k)
        for _ in range(TRIES):
            if not want:
                break
            rows = self._search(vector, want, None)
            kept, passed = rows.passing(where, k)
            self._planner.observe(where, passed, len(rows.ids))
            # Fewer candidates than asked for means every item was seen only if the
            # collection is that small: HNSW can return short lists on its own.
            if len(kept) >= k or (len(rows.ids) < want and want >= self._col.count()):
                with self._lock:
                    self.planned_queries += 1
                return kept
            want = self._planner.more(where, k, tried=want, passed=passed)
        with self._lock:
            self.where_queries += 1
        clause = chroma_where(where)
        found = self._search(vector, k, clause).scored()
        if len(found) < k:
            # Chroma's filtered HNSW search can miss admitted items that sit far from
            # the query when few items are admitted; score small admitted sets exactly.
            return self._exact(vector, k, clause) or found
        return found

    def delete_source(self, source: str, *, keep_version: str | None = None) -> int:
        """Remove the items of ``source`` (except those of ``keep_version``); return how many."""
        where: dict[str, Any] = {"source": source}
        if keep_version is not None:
            where = {"$and": [where, {"source_version": {"$ne": keep_version}}]}
        with self._lock:
            ids = self._col.get(where=where, include=[])["ids"]
            if ids:
                self._col.delete(ids=ids)
            return len(ids)

    def restamp_source(self, source: str, ingested_at: float) -> int:
        """Set ``ingested_at`` on every item of ``source``; return how many changed."""
        with self._lock:
            ids = self._col.get(where={"source": source}, include=[])["ids"]
            if ids:
                self._col.update(ids=ids, metadatas=[{"ingested_at": ingested_at}] * len(ids))
            return len(ids)

    def sources(self) -> dict[str, SourceInfo]:
        """What the store holds, per source (reads every item's metadata)."""
        return summarize_sources(self._all_items())

    def count(self) -> int:
        """How many items the store holds."""
        return self._col.count()

    def _search(self, vector: Vector, k: int, where: dict[str, Any] | None) -> _Rows:
        try:
            found = self._col.query(
                query_embeddings=np.atleast_2d(np.asarray(vector, dtype=np.float32)),
                n_results=k,
                where=where,
                include=_INCLUDE,
            )
        except Exception as exc:
            if "dimension" in str(exc):
                raise ConfigError(f"Chroma collection {self.collection_name!r}: {exc}") from exc
            raise
        return _Rows(
            ids=found["ids"][0],
            docs=(found["documents"] or [[]])[0],
            metas=(found["metadatas"] or [[]])[0],
            dists=(found["distances"] or [[]])[0],
        )

    def _exact(self, vector: Vector, k: int, where: dict[str, Any] | None) -> list[ScoredItem]:
        got = self._col.get(
            where=where, include=["embeddings", "documents", "metadatas"], limit=_EXACT_LIMIT
        )
        if len(got["ids"]) >= _EXACT_LIMIT or got["embeddings"] is None or not got["ids"]:
            return []
        rows = unit_rows(np.asarray(got["embeddings"], dtype=np.float32))
        scores = rows @ unit_rows(vector)[0]
        docs, metas = got["documents"] or [], got["metadatas"] or []
        top = np.argsort(-scores, kind="stable")[:k]
        return [
            ScoredItem(item=_item(got["ids"][t], docs[t], metas[t]), score=float(scores[t]))
            for t in top
        ]

    def _all_items(self) -> Iterator[MemoryItem]:
        offset = 0
        while True:
            page = self._col.get(include=["documents", "metadatas"], limit=_PAGE, offset=offset)
            docs, metas = page["documents"] or [], page["metadatas"] or []
            yield from (_item(i, d, m) for i, d, m in zip(page["ids"], docs, metas, strict=True))
            if len(page["ids"]) < _PAGE:
                return
            offset += _PAGE


def chroma_where(where: ItemFilter) -> dict[str, Any] | None:
    """The Chroma ``where`` filter meaning the same as ``where`` (``None``: no filter)."""
    clauses: list[dict[str, Any] | None] = [
        _all_of([{"data_type": {"$eq": name}}, *_bounds(window)])
        for name, window in where.types.items()
    ]
    if where.others is not None:
        named: list[dict[str, Any]] = [{"data_type": {"$nin": list(where.types)}}]
        clauses.append(_all_of([*(named if where.types else []), *_bounds(where.others)]))
    if any(c is None for c in clauses):
        return None
    present = [c for c in clauses if c is not None]
    return present[0] if len(present) == 1 else {"$or": present}


def _bounds(window: Window) -> list[dict[str, Any]]:
    bounds: list[dict[str, Any]] = []
    if window.ingested_since is not None:
        bounds.append({"ingested_at": {"$gte": window.ingested_since}})
    if window.live_at is not None:
        bounds.append({"expires_at": {"$gt": window.live_at}})
    return bounds


def _all_of(conditions: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not conditions:
        return None
    return conditions[0] if len(conditions) == 1 else {"$and": conditions}


def _metadata(item: MemoryItem) -> dict[str, Any]:
    return {
        "source": item.source,
        "data_type": item.data_type,
        "ingested_at": float(item.ingested_at),
        "source_version": item.source_version,
        "expires_at": _NEVER if item.expires_at is None else float(item.expires_at),
        "title": item.title,
    }


@dataclass(frozen=True, kw_only=True)
class _Rows:
    """One Chroma query's answer, nearest first, before any item is built."""

    ids: list[str]
    docs: list[Any]
    metas: list[Any]
    dists: list[Any]

    def scored(self) -> list[ScoredItem]:
        return [self._scored(n) for n in range(len(self.ids))]

    def passing(self, where: ItemFilter, k: int) -> tuple[list[ScoredItem], int]:
        """The first ``k`` rows that pass ``where`` as items, and how many rows passed."""
        kept: list[ScoredItem] = []
        passed = 0
        # Rows are checked on their metadata so only the kept ones become items.
        for n, meta in enumerate(self.metas):
            if where.matches_fields(meta["data_type"], meta["ingested_at"], _expiry(meta)):
                passed += 1
                if len(kept) < k:
                    kept.append(self._scored(n))
        return kept, passed

    def _scored(self, n: int) -> ScoredItem:
        return ScoredItem(
            item=_item(self.ids[n], self.docs[n], self.metas[n]), score=1.0 - float(self.dists[n])
        )


def _expiry(meta: Any) -> float | None:
    expires = float(meta["expires_at"])
    return None if expires >= _NEVER else expires


def _item(item_id: str, text: str | None, meta: Any) -> MemoryItem:
    # Validating is cheaper than ``model_construct`` (pydantic-core against a Python loop).
    return MemoryItem(
        id=item_id,
        text=text or "",
        source=str(meta["source"]),
        data_type=str(meta["data_type"]),
        ingested_at=float(meta["ingested_at"]),
        source_version=str(meta["source_version"]),
        expires_at=_expiry(meta),
        title=str(meta.get("title", "")),
    )


def _client(path: Path | None, url: str | None) -> ClientAPI:
    import chromadb
    from chromadb.config import Settings

    settings = Settings(anonymized_telemetry=False)
    if path is not None:
        Path(path).mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(path), settings=settings)
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"Chroma URL {url!r}: expected http(s)://HOST[:PORT]")
    try:
        return chromadb.HttpClient(
            host=parts.hostname,
            port=parts.port or (443 if parts.scheme == "https" else 8000),
            ssl=parts.scheme == "https",
            settings=settings,
        )
    except Exception as exc:
        raise ConfigError(f"Chroma server at {url} is not reachable: {exc}") from exc
