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

What a planned query costs over a plain one: Chroma reads every returned row's
metadata and document back after the vector search, at 25-80 microseconds a row, and
every call costs about 0.45 ms before it does any work, while ids and distances come
nearly free. So candidates are searched for ids and distances only and checked on the
filter fields each row id carries (:mod:`agentmesh.memory._chroma_ids`); the kept
rows are read from a content-addressed copy beside the embedded collection
(:mod:`agentmesh.memory._row_cache`), or from Chroma, by id, when the copy lacks them.
A planned query is then one Chroma call that reads no rows. Dropped after measuring:
reading every candidate's metadata (the extra rows cost 15-25% of a query), and a
cache of each item's filter fields keyed by item id (it cannot see writes by another
process or client, such as a re-ingest that re-stamps a source); a row id names its
content, so a copy keyed by row id cannot go stale.

Chroma's ``where``-filtered search is approximate in a way that matters here: when
few items are admitted and they sit far from the query, it can return fewer than
``k`` of them, even none. So a ``where`` query that comes back short is redone
exactly: the admitted items (when fewer than 2,048) are fetched with their vectors
and scored here. ``candidate_limit=0`` sends every filtered query as a ``where`` query.
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

import numpy as np

from agentmesh.errors import ConfigError
from agentmesh.memory._chroma_ids import ID_SCHEME, ID_SCHEME_KEY, row_fields, row_id, stamp
from agentmesh.memory._items import MemoryItem, summarize_sources
from agentmesh.memory._plan import TRIES, CandidatePlanner
from agentmesh.memory._row_cache import FILE_NAME, RowCache
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
_CANDIDATE_INCLUDE: Final[list[Any]] = ["distances"]
_ROW_INCLUDE: Final[list[Any]] = ["documents", "metadatas"]
_COPY_INCLUDE: Final[list[Any]] = ["embeddings", "documents", "metadatas"]
_PAGE: Final = 5000
_EXACT_LIMIT: Final = 2048
_log = logging.getLogger(__name__)


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
        row_cache: Path | bool = True,
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
            row_cache: Where filtered queries read kept rows from (see
                :mod:`agentmesh.memory._row_cache`): ``True`` for a file in the
                embedded folder (none for a server or a given client), a path for that
                file, ``False`` to read every row from Chroma.

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
        self._rows = _row_cache(row_cache, path, collection)
        try:
            self._col: Collection = self._client.get_or_create_collection(
                collection, configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
            )
        except Exception as exc:
            raise ConfigError(f"Chroma collection {collection!r}: {exc}") from exc
        self._adopt_rows()

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
        with self._lock:
            for start in range(0, len(items), _PAGE):
                self._write(items[start : start + _PAGE], rows[start : start + _PAGE])

    def query(self, vector: Vector, *, k: int, where: ItemFilter | None = None) -> list[ScoredItem]:
        """The ``k`` items closest to ``vector`` that pass ``where``, best first."""
        if k < 1 or (where is not None and where.admits_none):
            return []
        if where is None or where.admits_all:
            return self._search(vector, k, None).scored()
        planned = self._planned(vector, k, where)
        if planned is not None:
            with self._lock:
                self.planned_queries += 1
            return planned
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
                self._delete(ids)
            return len(ids)

    def restamp_source(self, source: str, ingested_at: float) -> int:
        """Set ``ingested_at`` on every item of ``source``; return how many changed."""
        # The ingestion time is part of each row id, so the rows are written anew.
        with self._lock:
            got = self._col.get(where={"source": source}, include=_COPY_INCLUDE)
            if not got["ids"]:
                return 0
            items = [
                item.model_copy(update={"ingested_at": stamp(ingested_at)}) for item in _items(got)
            ]
            vectors = _vectors(got)
            for start in range(0, len(items), _PAGE):
                self._write(items[start : start + _PAGE], vectors[start : start + _PAGE])
            return len(items)

    def sources(self) -> dict[str, SourceInfo]:
        """What the store holds, per source (reads every item's metadata)."""
        return summarize_sources(self._all_items())

    def count(self) -> int:
        """How many items the store holds."""
        return self._col.count()

    def _planned(self, vector: Vector, k: int, where: ItemFilter) -> list[ScoredItem] | None:
        """The filtered top ``k`` from unfiltered candidates, or ``None`` to run ``where``."""
        want = self._planner.first(where, k)
        for _ in range(TRIES):
            if not want:
                return None
            found = self._query(vector, want, None, _CANDIDATE_INCLUDE)
            ids, dists = found["ids"][0], (found["distances"] or [[]])[0]
            picked, passed = _passing(ids, dists, where, k)
            self._planner.observe(where, passed, len(ids))
            # Fewer candidates than asked for means every item was seen only if the
            # collection is that small: HNSW can return short lists on its own.
            if len(picked) >= k or (len(ids) < want and want >= self._col.count()):
                kept = self._read(picked)
                if len(kept) == len(picked):
                    return kept
                # A picked row was replaced between the two calls: search again.
                continue
            want = self._planner.more(where, k, tried=want, passed=passed)
        return None

    def _read(self, picked: list[tuple[str, float]]) -> list[ScoredItem]:
        """The picked rows (id, distance) as items, in order; rows gone since are left out.

        Rows come from the row cache when it has them, else from Chroma (and are kept).
        """
        if not picked:
            return []
        wanted = [rid for rid, _ in picked]
        rows = self._rows.get(wanted) if self._rows is not None else {}
        missing = [rid for rid in wanted if rid not in rows]
        if missing:
            got = self._col.get(ids=missing, include=_ROW_INCLUDE)
            fetched = dict(_id_items(got))
            if self._rows is not None:
                self._rows.put(fetched)
            rows.update(fetched)
        return [ScoredItem(item=rows[rid], score=1.0 - dist) for rid, dist in picked if rid in rows]

    def _write(self, items: Sequence[MemoryItem], vectors: Vectors) -> None:
        """Upsert one page of rows, then drop older rows of the same items (lock held)."""
        ids = [row_id(i) for i in items]
        if self._rows is not None:
            self._rows.put(dict(zip(ids, items, strict=True)))
        with self._dimension_errors():
            self._col.upsert(
                ids=ids,
                embeddings=vectors,
                documents=[i.text for i in items],
                metadatas=[_metadata(i) for i in items],
            )
        # Written first, removed second: a concurrent query may see both rows of an
        # item for a moment (it keeps one), never neither.
        keep = set(ids)
        same_items: dict[str, Any] = {"item_id": {"$in": sorted({i.id for i in items})}}
        older = [r for r in self._col.get(where=same_items, include=[])["ids"] if r not in keep]
        if older:
            self._delete(older)

    def _delete(self, ids: list[str]) -> None:
        self._col.delete(ids=ids)
        if self._rows is not None:
            self._rows.delete(ids)

    def _adopt_rows(self) -> None:
        """Give rows written before row ids carried filter fields their new ids."""
        meta = dict(self._col.metadata or {})
        if meta.get(ID_SCHEME_KEY) == ID_SCHEME:
            return
        with self._lock:
            legacy = [rid for rid in self._all_ids() if row_fields(rid) is None]
            if legacy:
                _log.warning(
                    "Chroma collection %r: giving %d rows written by an earlier agentmesh "
                    "their new ids (once; about as long as ingesting them again)",
                    self.collection_name,
                    len(legacy),
                )
            for start in range(0, len(legacy), _PAGE):
                page = legacy[start : start + _PAGE]
                got = self._col.get(ids=page, include=_COPY_INCLUDE)
                self._write(list(_items(got)), _vectors(got))
                self._delete(page)
            self._col.modify(metadata={**meta, ID_SCHEME_KEY: ID_SCHEME})

    def _all_ids(self) -> list[str]:
        ids: list[str] = []
        while True:
            page = self._col.get(include=[], limit=_PAGE, offset=len(ids))["ids"]
            ids.extend(page)
            if len(page) < _PAGE:
                return ids

    def _query(
        self, vector: Vector, k: int, where: dict[str, Any] | None, include: list[Any]
    ) -> Any:
        with self._dimension_errors():
            return self._col.query(
                query_embeddings=np.atleast_2d(np.asarray(vector, dtype=np.float32)),
                n_results=k,
                where=where,
                include=include,
            )

    @contextmanager
    def _dimension_errors(self) -> Iterator[None]:
        """Chroma's complaint about a vector of the wrong size, as a ConfigError."""
        try:
            yield
        except Exception as exc:
            if "dimension" in str(exc):
                raise ConfigError(f"Chroma collection {self.collection_name!r}: {exc}") from exc
            raise

    def _search(self, vector: Vector, k: int, where: dict[str, Any] | None) -> _Rows:
        found = self._query(vector, k, where, _INCLUDE)
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
            page = self._col.get(include=_ROW_INCLUDE, limit=_PAGE, offset=offset)
            yield from _items(page)
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
        "item_id": item.id,
        "source": item.source,
        "data_type": item.data_type,
        "ingested_at": stamp(item.ingested_at),
        "source_version": item.source_version,
        "expires_at": _NEVER if item.expires_at is None else stamp(item.expires_at),
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
        # Keep the nearest row of each item: another writer may be replacing one.
        out: list[ScoredItem] = []
        seen: set[str] = set()
        for rid, doc, meta, dist in zip(self.ids, self.docs, self.metas, self.dists, strict=True):
            found = ScoredItem(item=_item(rid, doc, meta), score=1.0 - float(dist))
            if found.item.id not in seen:
                seen.add(found.item.id)
                out.append(found)
        return out


def _passing(
    ids: list[str], dists: list[Any], where: ItemFilter, k: int
) -> tuple[list[tuple[str, float]], int]:
    """The first ``k`` candidates (row id, distance) whose id fields pass, and how many passed.

    A row id without fields (written by another tool) never passes: the filter cannot
    be checked on it, so it is left to the ``where`` query.
    """
    picked: list[tuple[str, float]] = []
    items: set[str] = set()
    passed = 0
    for rid, dist in zip(ids, dists, strict=True):
        fields = row_fields(rid)
        if fields is None or not where.matches_fields(
            fields.data_type, fields.ingested_at, fields.expires_at
        ):
            continue
        passed += 1
        if len(picked) < k and fields.item_id not in items:
            items.add(fields.item_id)
            picked.append((rid, float(dist)))
    return picked, passed


def _items(got: Any) -> Iterator[MemoryItem]:
    yield from (item for _, item in _id_items(got))


def _id_items(got: Any) -> Iterator[tuple[str, MemoryItem]]:
    docs, metas = got["documents"] or [], got["metadatas"] or []
    yield from ((r, _item(r, d, m)) for r, d, m in zip(got["ids"], docs, metas, strict=True))


def _vectors(got: Any) -> Vectors:
    return np.asarray(got["embeddings"], dtype=np.float32)


def _expiry(meta: Any) -> float | None:
    expires = float(meta["expires_at"])
    return None if expires >= _NEVER else expires


def _item(rid: str, text: str | None, meta: Any) -> MemoryItem:
    # Validating is cheaper than ``model_construct`` (pydantic-core against a Python loop).
    fields = row_fields(rid)
    return MemoryItem(
        id=rid if fields is None else fields.item_id,
        text=text or "",
        source=str(meta["source"]),
        data_type=str(meta["data_type"]),
        ingested_at=float(meta["ingested_at"]),
        source_version=str(meta["source_version"]),
        expires_at=_expiry(meta),
        title=str(meta.get("title", "")),
    )


def _row_cache(setting: Path | bool, folder: Path | None, collection: str) -> RowCache | None:
    if setting is False:
        return None
    if setting is True:
        if folder is None:
            return None
        Path(folder).mkdir(parents=True, exist_ok=True)
        return RowCache(Path(folder) / FILE_NAME, collection=collection)
    return RowCache(Path(setting), collection=collection)


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
