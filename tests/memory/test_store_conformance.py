"""Every memory store backend passes the same conformance suite; Chroma's query planning."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _external_support import DAY, NOW, basis, item, toward
from _store_conformance import StoreConformance

from agentmesh.memory import ChromaStore, InMemoryStore, ItemFilter, MemoryStore, Window
from agentmesh.memory._chroma import chroma_where
from agentmesh.memory._plan import needed


class TestInMemoryStore(StoreConformance):
    @pytest.fixture
    def store(self) -> MemoryStore:
        return InMemoryStore()


class TestChromaStore(StoreConformance):
    """Embedded Chroma with planned filtered queries (the default)."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> MemoryStore:
        return ChromaStore(path=tmp_path / "chroma")


class TestChromaStoreWhereOnly(StoreConformance):
    """Embedded Chroma sending every filter as a ``where`` query."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> MemoryStore:
        return ChromaStore(path=tmp_path / "chroma", candidate_limit=0)


# -- Chroma specifics ----------------------------------------------------------------------


class _Spy:
    """Records the ``where`` of every Chroma collection query."""

    def __init__(self, store: ChromaStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.wheres: list[Any] = []
        original = store.collection.query

        def query(**kwargs: Any) -> Any:
            self.wheres.append(kwargs.get("where"))
            return original(**kwargs)

        monkeypatch.setattr(store.collection, "query", query)


@pytest.fixture
def chroma(tmp_path: Path) -> Iterator[ChromaStore]:
    yield ChromaStore(path=tmp_path / "chroma")


def test_freshness_filter_becomes_a_where_on_numeric_timestamps() -> None:
    where = ItemFilter(
        types={"fx_rates": Window(ingested_since=NOW - DAY, live_at=NOW)},
        others=Window(live_at=NOW),
    )
    assert chroma_where(where) == {
        "$or": [
            {
                "$and": [
                    {"data_type": {"$eq": "fx_rates"}},
                    {"ingested_at": {"$gte": NOW - DAY}},
                    {"expires_at": {"$gt": NOW}},
                ]
            },
            {"$and": [{"data_type": {"$nin": ["fx_rates"]}}, {"expires_at": {"$gt": NOW}}]},
        ]
    }
    assert chroma_where(ItemFilter(types={"a": Window()}, others=None)) == {
        "data_type": {"$eq": "a"}
    }
    assert chroma_where(ItemFilter(others=Window())) is None


def test_where_only_store_filters_inside_chroma(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ChromaStore(path=tmp_path / "chroma", candidate_limit=0)
    store.add(
        [item("stale", ingested_at=NOW - 10 * DAY), item("fresh")],
        np.stack([basis(0), toward(0, 0.5)]),
    )
    spy = _Spy(store, monkeypatch)
    where = ItemFilter(others=Window(ingested_since=NOW - DAY))
    assert [s.item.id for s in store.query(basis(0), k=1, where=where)] == ["fresh"]
    assert spy.wheres == [{"ingested_at": {"$gte": NOW - DAY}}]
    assert store.where_queries == 1


def test_planned_query_answers_from_nearest_candidates_when_enough_pass(
    chroma: ChromaStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    chroma.add([item(f"i{n}") for n in range(30)], np.stack([toward(0, 0.9)] * 30))
    spy = _Spy(chroma, monkeypatch)
    where = ItemFilter(others=Window(ingested_since=NOW - DAY))
    assert len(chroma.query(basis(0), k=3, where=where)) == 3
    assert spy.wheres == [None]
    assert chroma.planned_queries == 1


def test_planned_query_falls_back_to_where_when_candidates_do_not_pass(
    chroma: ChromaStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    stale = [item(f"s{n}", ingested_at=NOW - 9 * DAY) for n in range(300)]
    chroma.add(
        [*stale, item("fresh")],
        np.stack([toward(0, 0.9)] * 300 + [toward(0, 0.1)]),
    )
    spy = _Spy(chroma, monkeypatch)
    where = ItemFilter(others=Window(ingested_since=NOW - DAY))
    assert [s.item.id for s in chroma.query(basis(0), k=2, where=where)] == ["fresh"]
    assert spy.wheres[:-1] == [None] * (len(spy.wheres) - 1)
    assert spy.wheres[-1] == {"ingested_at": {"$gte": NOW - DAY}}
    assert chroma.where_queries == 1


def test_planned_query_reads_the_planned_candidates_in_one_query(
    chroma: ChromaStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    stale = [item(f"s{n}", ingested_at=NOW - 9 * DAY) for n in range(20)]
    fresh = [item(f"f{n}") for n in range(20)]
    # Nearest first, alternating stale and fresh: half the candidates pass.
    ordered = [x for pair in zip(stale, fresh, strict=True) for x in pair]
    chroma.add(ordered, np.stack([toward(0, 0.99 - n * 0.01) for n in range(40)]))
    asked: list[int] = []
    original = chroma.collection.query

    def query(**kwargs: Any) -> Any:
        asked.append(kwargs["n_results"])
        return original(**kwargs)

    monkeypatch.setattr(chroma.collection, "query", query)
    where = ItemFilter(others=Window(ingested_since=NOW - DAY))
    found = chroma.query(basis(0), k=3, where=where)
    assert [s.item.id for s in found] == ["f0", "f1", "f2"]
    assert asked == [needed(3, 0.5)]  # the prior share before anything was seen


def test_writes_through_another_store_are_seen_by_filtered_queries(tmp_path: Path) -> None:
    # The filter is checked on what Chroma holds at query time, never on a copy kept
    # by one store: a re-ingest elsewhere that re-stamps a source must count at once.
    reader = ChromaStore(path=tmp_path / "chroma")
    writer = ChromaStore(path=tmp_path / "chroma")
    where = ItemFilter(others=Window(ingested_since=NOW - DAY))
    writer.add(
        [item("a", source="s", ingested_at=NOW - 9 * DAY), item("b", source="t")],
        np.stack([basis(0), toward(0, 0.5)]),
    )
    assert [s.item.id for s in reader.query(basis(0), k=1, where=where)] == ["b"]
    writer.restamp_source("s", NOW)
    assert [s.item.id for s in reader.query(basis(0), k=1, where=where)] == ["a"]
    writer.add([item("a", source="s", ingested_at=NOW - 9 * DAY)], np.stack([basis(0)]))
    assert [s.item.id for s in reader.query(basis(0), k=1, where=where)] == ["b"]
    other_client = _chromadb_client(tmp_path / "chroma")
    other_client.get_collection("knowledge").update(ids=["a"], metadatas=[{"ingested_at": NOW}])
    assert [s.item.id for s in reader.query(basis(0), k=1, where=where)] == ["a"]


def _chromadb_client(path: Path) -> Any:
    import chromadb
    from chromadb.config import Settings

    return chromadb.PersistentClient(path=str(path), settings=Settings(anonymized_telemetry=False))


def test_embedded_chroma_persists_across_instances(tmp_path: Path) -> None:
    first = ChromaStore(path=tmp_path / "chroma", collection="kb-test")
    first.add([item("a", source="s")], np.stack([basis(0)]))
    second = ChromaStore(path=tmp_path / "chroma", collection="kb-test")
    assert second.count() == 1
    assert second.sources()["s"].chunks == 1


def test_chroma_store_needs_exactly_one_location(tmp_path: Path) -> None:
    from agentmesh.errors import ConfigError

    with pytest.raises(ConfigError, match="exactly one"):
        ChromaStore()
    with pytest.raises(ConfigError, match="exactly one"):
        ChromaStore(path=tmp_path, url="http://127.0.0.1:1")
    with pytest.raises(ConfigError, match="expected http"):
        ChromaStore(url="ftp://example")
