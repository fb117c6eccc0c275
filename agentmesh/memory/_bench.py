"""``agentmesh memory bench``: query latency on a large Chroma collection, with and without
the freshness policy, against a raw Chroma query of the same collection.

Items are synthetic (word sequences drawn from a fixed vocabulary, embedded with the
default hashing embedder) with data types and ages spread so that the policy excludes
a good share of them. Every query vector is timed in turn on each path:

- ``raw_chroma``: ``collection.query`` straight on the Chroma collection;
- ``without_policy``: :meth:`ChromaStore.query` with no filter;
- ``with_policy``: :meth:`ChromaStore.query` with the policy's filter (the planned query),
  reading kept rows from the store's row cache, as an embedded store does;
- ``no_row_cache``: the same with no row cache (as a Chroma server client without one),
  so kept rows are read back from Chroma in a second call;
- ``where_only``: the same filter always sent as a Chroma ``where`` (on fewer queries,
  as it is slow on large collections).

``freshness_overhead_ratio`` is the ``with_policy`` p50 over the ``raw_chroma`` p50
(``no_row_cache_overhead_ratio`` likewise for ``no_row_cache``).
``*_recall_at_k`` compare each path's ids with the exact top ``k`` (brute force over
every vector; admitted items only for the filtered paths), and ``policy_violations``
counts returned items the policy should have excluded (it must be 0).
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

import numpy as np

from agentmesh.memory._chroma import ChromaStore
from agentmesh.memory._chroma_ids import row_fields
from agentmesh.memory._hashing import HashingEmbedder
from agentmesh.memory._items import MemoryItem
from agentmesh.memory._policy import FreshnessRule, MemoryPolicy, StaleAction
from agentmesh.memory._store import unit_rows

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy.typing as npt

    from agentmesh.memory._filter import ItemFilter
    from agentmesh.memory._store import Vector, Vectors

__all__ = ["BENCH_POLICY", "run_memory_bench"]

_T = TypeVar("_T")

_DAY: Final = 86400.0
_BATCH: Final = 2000
BENCH_POLICY: Final = MemoryPolicy(
    rules={
        "vendor_master": FreshnessRule(max_age_s=30 * _DAY),
        "vendor_risk": FreshnessRule(max_age_s=30 * _DAY),
        "fx_rates": FreshnessRule(max_age_s=1 * _DAY),
        "procedure": FreshnessRule(max_age_s=365 * _DAY, on_stale=StaleAction.FLAG),
        "tax_rules": FreshnessRule(max_age_s=180 * _DAY, on_stale=StaleAction.FLAG),
    },
    default=FreshnessRule(max_age_s=365 * _DAY, on_stale=StaleAction.FLAG),
)
"""The shipped policy's shape: three excluding data types, the rest flagged."""
_TYPES: Final = (*BENCH_POLICY.rules, "compliance_guideline")


def _vocabulary(rng: random.Random, size: int = 3000) -> list[str]:
    syllables = ["ka", "ro", "mi", "ten", "vo", "lu", "sa", "pre", "dis", "ex", "an", "el"]
    words = {"".join(rng.choices(syllables, k=rng.randint(2, 4))) for _ in range(size * 2)}
    return sorted(words)[:size]


def _text(rng: random.Random, vocab: list[str]) -> str:
    # Zipf-like: low indices are common words, as in real text.
    picks = [vocab[min(int(rng.paretovariate(1.1)) - 1, len(vocab) - 1)] for _ in range(4)]
    picks += rng.choices(vocab, k=rng.randint(8, 20))
    return " ".join(picks)


def _items(
    rng: random.Random, vocab: list[str], start: int, count: int, now: float
) -> list[MemoryItem]:
    items = []
    for n in range(start, start + count):
        expired = rng.random() < 0.05
        items.append(
            MemoryItem(
                id=f"bench/{n // 20}#{n}",
                text=_text(rng, vocab),
                source=f"bench/{n // 20}",
                data_type=_TYPES[n % len(_TYPES)],
                ingested_at=now - rng.uniform(0, 90 * _DAY),
                source_version="v1",
                expires_at=now - _DAY if expired else None,
            )
        )
    return items


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return round(statistics.median(ordered) * 1000, 3), round(p95 * 1000, 3)


def _timed(fn: Callable[[], _T]) -> tuple[float, _T]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def run_memory_bench(
    *,
    n: int = 100_000,
    queries: int = 200,
    where_queries: int = 20,
    k: int = 5,
    folder: Path | None = None,
    seed: int = 7,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Load ``n`` items into an embedded Chroma collection and time queries.

    Args:
        n: Items to load.
        queries: Queries timed on the raw, no-policy and policy paths.
        where_queries: Queries also timed on the always-``where`` path.
        k: Hits per query.
        folder: Where the collection is created (a temporary folder by default; it is
            removed afterwards either way).
        seed: Seed of the synthetic data.
        on_progress: Called with (items loaded, ``n``) after each batch.

    Returns:
        The figures, as a JSON-ready dict (see the module docstring).
    """
    with tempfile.TemporaryDirectory(dir=folder, prefix="memory-bench-") as tmp:
        return _bench(Path(tmp), n, queries, where_queries, k, seed, on_progress)


def _bench(
    path: Path,
    n: int,
    queries: int,
    where_queries: int,
    k: int,
    seed: int,
    on_progress: Callable[[int, int], None] | None,
) -> dict[str, Any]:
    rng = random.Random(seed)
    vocab = _vocabulary(rng)
    embedder = HashingEmbedder()
    now = time.time()
    corpus = _Corpus(
        store=ChromaStore(path=path, collection="bench"), where=BENCH_POLICY.item_filter(now)
    )
    load_start = time.perf_counter()
    for start in range(0, n, _BATCH):
        batch = _items(rng, vocab, start, min(_BATCH, n - start), now)
        corpus.add(batch, embedder.embed_documents([i.text for i in batch]))
        if on_progress is not None:
            on_progress(start + len(batch), n)
    load_s = time.perf_counter() - load_start
    vectors = [embedder.embed_query(_text(rng, vocab)) for _ in range(queries + 10)]
    for v in vectors[:10]:  # warm caches and the index before timing
        _raw(corpus.store, v, k)
        corpus.store.query(v, k=k, where=corpus.where)
    figures = _measure(corpus, vectors[10:], k, where_queries)
    return {
        "n": n,
        "queries": queries,
        "k": k,
        "dim": embedder.dim,
        "load_s": round(load_s, 1),
        "excluded_share": round(1 - float(np.mean(corpus.admitted())), 3) if n else 0.0,
        **figures,
    }


class _Corpus:
    """The loaded store, plus what exact answers need: every vector and who is admitted."""

    def __init__(self, *, store: ChromaStore, where: ItemFilter) -> None:
        self.store = store
        self.where = where
        self.ids: list[str] = []
        self._rows: list[Vectors] = []
        self._admitted: list[bool] = []
        self._matrix: Vectors | None = None

    def add(self, items: list[MemoryItem], vectors: Vectors) -> None:
        self.store.add(items, vectors)
        self.ids.extend(i.id for i in items)
        self._rows.append(unit_rows(vectors))
        self._admitted.extend(self.where.matches(i) for i in items)

    def admitted(self) -> npt.NDArray[np.bool_]:
        return np.array(self._admitted, dtype=bool)

    def exact(self, vector: Vector, k: int, *, filtered: bool) -> set[str]:
        if self._matrix is None:
            self._matrix = np.concatenate(self._rows)
        scores = self._matrix @ unit_rows(vector)[0]
        if filtered:
            scores = np.where(self.admitted(), scores, -np.inf)
        return {self.ids[i] for i in np.argsort(-scores)[:k] if np.isfinite(scores[i])}


def _raw(store: ChromaStore, vector: Vector, k: int) -> Any:
    return store.collection.query(
        query_embeddings=vector[None, :],
        n_results=k,
        include=["documents", "metadatas", "distances"],
    )


def _item_id(rid: str) -> str:
    fields = row_fields(rid)
    return rid if fields is None else fields.item_id


def _recall(found: list[str], exact: set[str]) -> float:
    return len(set(found) & exact) / len(exact) if exact else 1.0


def _measure(corpus: _Corpus, vectors: list[Vector], k: int, where_queries: int) -> dict[str, Any]:
    store, where = corpus.store, corpus.where
    where_store = ChromaStore(client=store.client, collection="bench", candidate_limit=0)
    uncached = ChromaStore(client=store.client, collection="bench", row_cache=False)
    paths: dict[str, Callable[[Vector], list[str]]] = {
        "raw": lambda v: list(_raw(store, v, k)["ids"][0]),
        "plain": lambda v: [h.item.id for h in store.query(v, k=k)],
        "policy": lambda v: [h.item.id for h in store.query(v, k=k, where=where)],
        "uncached": lambda v: [h.item.id for h in uncached.query(v, k=k, where=where)],
    }
    seconds: dict[str, list[float]] = {name: [] for name in (*paths, "where")}
    found: dict[str, list[list[str]]] = {name: [] for name in (*paths, "where")}
    store.where_queries = store.planned_queries = 0
    for n, vector in enumerate(vectors):
        names = list(paths)
        # Rotate the order so no path always runs first (after a cache-cold gap).
        for name in names[n % len(names) :] + names[: n % len(names)]:
            elapsed, ids = _timed(partial(paths[name], vector))
            seconds[name].append(elapsed)
            found[name].append(ids)
        if n < where_queries:
            elapsed, hits = _timed(partial(where_store.query, vector, k=k, where=where))
            seconds["where"].append(elapsed)
            found["where"].append([h.item.id for h in hits])
    # Exact answers only after timing: brute force over every vector churns the caches.
    admitted = dict(zip(corpus.ids, corpus.admitted(), strict=True))
    violations = sum(
        not admitted[i] for path in ("policy", "uncached") for ids in found[path] for i in ids
    )
    exact = [corpus.exact(v, k, filtered=True) for v in vectors]
    # Raw Chroma answers with row ids (item id plus filter fields).
    raw_recall = [
        _recall([_item_id(r) for r in ids], corpus.exact(v, k, filtered=False))
        for ids, v in zip(found["raw"], vectors, strict=True)
    ]
    policy_recall = [_recall(ids, e) for ids, e in zip(found["policy"], exact, strict=True)]
    where_recall = [_recall(ids, e) for ids, e in zip(found["where"], exact, strict=False)]
    raw, plain, policy = seconds["raw"], seconds["plain"], seconds["policy"]
    where_only = seconds["where"]
    raw_p, plain_p, policy_p = _percentiles(raw), _percentiles(plain), _percentiles(policy)
    uncached_p = _percentiles(seconds["uncached"])
    where_p = _percentiles(where_only) if where_only else (0.0, 0.0)
    filtered = store.where_queries + store.planned_queries
    return {
        "raw_chroma_p50_ms": raw_p[0],
        "raw_chroma_p95_ms": raw_p[1],
        "without_policy_p50_ms": plain_p[0],
        "without_policy_p95_ms": plain_p[1],
        "with_policy_p50_ms": policy_p[0],
        "with_policy_p95_ms": policy_p[1],
        "freshness_overhead_ratio": round(policy_p[0] / raw_p[0], 3),
        "freshness_overhead_ratio_p95": round(policy_p[1] / raw_p[1], 3),
        "no_row_cache_p50_ms": uncached_p[0],
        "no_row_cache_p95_ms": uncached_p[1],
        "no_row_cache_overhead_ratio": round(uncached_p[0] / raw_p[0], 3),
        "planned_share": round(store.planned_queries / filtered, 3) if filtered else 0.0,
        "policy_violations": violations,
        "raw_chroma_recall_at_k": round(statistics.mean(raw_recall), 3),
        "with_policy_recall_at_k": round(statistics.mean(policy_recall), 3),
        "where_only_queries": len(where_only),
        "where_only_p50_ms": where_p[0],
        "where_only_p95_ms": where_p[1],
        "where_only_overhead_ratio": round(where_p[0] / raw_p[0], 3),
        "where_only_recall_at_k": round(statistics.mean(where_recall), 3) if where_recall else None,
    }
