"""Every memory store backend passes the same conformance suite; Chroma's query planning."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _external_support import DAY, NOW, basis, item, toward
from _store_conformance import StoreConformance

from agentmesh.memory import ChromaStore, InMemoryStore, ItemFilter, MemoryStore, Window
from agentmesh.memory._chroma import chroma_where
from agentmesh.memory._chroma_ids import row_fields
from agentmesh.memory._plan import needed
from agentmesh.memory._row_cache import FILE_NAME, RowCache


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
    writer = ChromaStore(client=_chromadb_client(tmp_path / "chroma"))
    where = ItemFilter(others=Window(ingested_since=NOW - DAY))
    writer.add(
        [item("a", source="s", ingested_at=NOW - 9 * DAY), item("b", source="t")],
        np.stack([basis(0), toward(0, 0.5)]),
    )
    assert [s.item.id for s in reader.query(basis(0), k=1, where=where)] == ["b"]
    assert writer.restamp_source("s", NOW) == 1
    assert [s.item.id for s in reader.query(basis(0), k=1, where=where)] == ["a"]
    writer.add([item("a", source="s", ingested_at=NOW - 9 * DAY)], np.stack([basis(0)]))
    assert [s.item.id for s in reader.query(basis(0), k=1, where=where)] == ["b"]
    assert reader.count() == 2


def _chromadb_client(path: Path) -> Any:
    import chromadb
    from chromadb.config import Settings

    return chromadb.PersistentClient(path=str(path), settings=Settings(anonymized_telemetry=False))


class _Reads:
    """Records what every Chroma query and get of a store asked for."""

    def __init__(self, store: ChromaStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.queries: list[dict[str, Any]] = []
        self.gets: list[dict[str, Any]] = []
        query, get = store.collection.query, store.collection.get

        def spy_query(**kwargs: Any) -> Any:
            self.queries.append(kwargs)
            return query(**kwargs)

        def spy_get(**kwargs: Any) -> Any:
            self.gets.append(kwargs)
            return get(**kwargs)

        monkeypatch.setattr(store.collection, "query", spy_query)
        monkeypatch.setattr(store.collection, "get", spy_get)


def _alternating(store: ChromaStore) -> None:
    """40 items, nearest first, alternating stale and fresh: half the candidates pass."""
    stale = [item(f"s{n}", ingested_at=NOW - 9 * DAY) for n in range(20)]
    fresh = [item(f"f{n}") for n in range(20)]
    ordered = [x for pair in zip(stale, fresh, strict=True) for x in pair]
    store.add(ordered, np.stack([toward(0, 0.99 - n * 0.01) for n in range(40)]))


_FRESH = ItemFilter(others=Window(ingested_since=NOW - DAY))


def test_planned_query_reads_no_rows_from_chroma(
    chroma: ChromaStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Candidates come with ids and distances only; the filter is checked on the fields
    # in each row id; the kept rows come from the row cache beside the collection.
    _alternating(chroma)
    reads = _Reads(chroma, monkeypatch)

    found = chroma.query(basis(0), k=3, where=_FRESH)

    assert [s.item.id for s in found] == ["f0", "f1", "f2"]
    assert [s.item.text for s in found] == ["text of f0", "text of f1", "text of f2"]
    assert [q["include"] for q in reads.queries] == [["distances"]]
    assert reads.gets == []


def test_without_the_row_cache_only_the_kept_rows_are_read_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ChromaStore(path=tmp_path / "chroma", row_cache=False)
    _alternating(store)
    reads = _Reads(store, monkeypatch)

    found = store.query(basis(0), k=3, where=_FRESH)

    assert [(s.item.id, s.item.text) for s in found] == [
        (f"f{n}", f"text of f{n}") for n in range(3)
    ]
    assert [q["include"] for q in reads.queries] == [["distances"]]
    assert len(reads.gets) == 1
    assert [row_fields(r).item_id for r in reads.gets[0]["ids"]] == ["f0", "f1", "f2"]  # type: ignore[union-attr]
    assert not (tmp_path / "chroma" / FILE_NAME).exists()


def test_rows_missing_from_the_cache_are_read_from_chroma_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Written by a client that keeps no copy (another machine's client of a server).
    _alternating(ChromaStore(client=_chromadb_client(tmp_path / "chroma")))
    reader = ChromaStore(path=tmp_path / "chroma")
    reads = _Reads(reader, monkeypatch)

    first = reader.query(basis(0), k=3, where=_FRESH)
    second = reader.query(basis(0), k=3, where=_FRESH)

    assert [s.item.text for s in first] == [s.item.text for s in second]
    assert [s.item.text for s in first] == ["text of f0", "text of f1", "text of f2"]
    assert len(reads.gets) == 1  # the second query found them in the cache


def test_a_cached_row_never_hides_a_change_made_elsewhere(tmp_path: Path) -> None:
    # Same item, same timestamps, new text, written by a store without the cache: the
    # row id names the content, so the reader's cached copy of the old row is not used.
    reader = ChromaStore(path=tmp_path / "chroma")
    reader.add([item("a", text="old")], np.stack([basis(0)]))
    assert [s.item.text for s in reader.query(basis(0), k=1, where=_FRESH)] == ["old"]
    writer = ChromaStore(client=_chromadb_client(tmp_path / "chroma"), row_cache=False)

    writer.add([item("a", text="new")], np.stack([basis(0)]))

    assert [s.item.text for s in reader.query(basis(0), k=1, where=_FRESH)] == ["new"]
    assert reader.count() == 1


def test_the_row_cache_forgets_rows_chroma_no_longer_holds(
    chroma: ChromaStore, tmp_path: Path
) -> None:
    cache = RowCache(tmp_path / "chroma" / FILE_NAME, collection="knowledge")
    chroma.add([item("a", source="s"), item("b", source="t")], np.stack([basis(0), basis(1)]))
    ids = chroma.collection.get(include=[])["ids"]
    assert set(cache.get(ids)) == set(ids)

    chroma.add([item("a", source="s", text="changed")], np.stack([basis(0)]))
    chroma.delete_source("t")

    (kept,) = chroma.collection.get(include=[])["ids"]
    assert set(cache.get([*ids, kept])) == {kept}
    assert cache.get([kept])[kept].text == "changed"


def test_row_ids_carry_the_filter_fields(chroma: ChromaStore) -> None:
    chroma.add(
        [item("doc#1", data_type="fx_rates", ingested_at=NOW, expires_at=NOW + DAY)],
        np.stack([basis(0)]),
    )
    (rid,) = chroma.collection.get(include=[])["ids"]
    assert row_fields(rid)[:4] == ("doc#1", "fx_rates", NOW, NOW + DAY)  # type: ignore[index]
    assert row_fields("written-by-another-tool") is None


def test_timestamps_agree_between_row_ids_and_metadata(chroma: ChromaStore) -> None:
    # Chroma's metadata gives some floats back one unit in the last place off; a
    # record looked up by its own timestamp must pass both the planned and the
    # ``where`` query.
    rng = random.Random(3)
    stamps = [NOW + rng.random() * DAY for _ in range(60)]
    chroma.add(
        [item(f"i{n}", source=f"s{n}", ingested_at=t) for n, t in enumerate(stamps)],
        np.stack([toward(0, 0.5)] * len(stamps)),
    )
    where_only = ChromaStore(client=chroma.client, candidate_limit=0)
    for info in chroma.sources().values():
        window = ItemFilter(others=Window(ingested_since=info.ingested_at))
        for store in (chroma, where_only):
            hits = store.query(basis(0), k=len(stamps), where=window)
            assert info.source in {h.item.source for h in hits}
    assert chroma.planned_queries == len(stamps)  # the planned path was the one tested


def test_replacing_an_item_with_new_filter_fields_leaves_one_row(chroma: ChromaStore) -> None:
    chroma.add([item("a", ingested_at=NOW - 9 * DAY, text="old")], np.stack([basis(0)]))
    chroma.add([item("a", ingested_at=NOW, text="new")], np.stack([basis(0)]))
    assert chroma.count() == 1
    where = ItemFilter(others=Window(ingested_since=NOW - DAY))
    assert [s.item.text for s in chroma.query(basis(0), k=5, where=where)] == ["new"]


def test_rows_written_before_row_ids_carried_fields_are_adopted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A collection written by an earlier agentmesh (ids = item ids) gets new ids when
    # a store opens it; nothing is lost and planned queries see every item.
    client = _chromadb_client(tmp_path / "chroma")
    old = client.create_collection(
        "knowledge", configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
    )
    stale, fresh = item("a", ingested_at=NOW - 9 * DAY), item("b", text="kept text")
    old.add(
        ids=["a", "b"],
        embeddings=np.stack([basis(0), toward(0, 0.5)]),
        documents=[stale.text, fresh.text],
        metadatas=[
            {
                "source": i.source,
                "data_type": i.data_type,
                "ingested_at": i.ingested_at,
                "source_version": i.source_version,
                "expires_at": 253_402_300_799.0,
                "title": i.title,
            }
            for i in (stale, fresh)
        ],
    )

    with caplog.at_level(logging.WARNING, logger="agentmesh.memory._chroma"):
        store = ChromaStore(client=client)

    assert "giving 2 rows written by an earlier agentmesh their new ids" in caplog.text
    assert store.count() == 2
    assert all(row_fields(r) for r in store.collection.get(include=[])["ids"])
    where = ItemFilter(others=Window(ingested_since=NOW - DAY))
    (hit,) = store.query(basis(0), k=1, where=where)
    assert (hit.item.id, hit.item.text) == ("b", "kept text")
    assert store.planned_queries == 1
    assert ChromaStore(client=client).count() == 2  # adopted once, recorded on the collection


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
