"""The conformance suite every MemoryStore backend passes.

Subclass :class:`StoreConformance` and provide a ``store`` fixture that yields an
empty store.
"""

from __future__ import annotations

import random
import threading

import numpy as np
import pytest
from _external_support import DAY, NOW, basis, item, toward

from agentmesh.errors import ConfigError
from agentmesh.memory import InMemoryStore, ItemFilter, MemoryStore, Window


def _ids(found: list) -> list[str]:
    return [s.item.id for s in found]


class StoreConformance:
    @pytest.fixture
    def store(self) -> MemoryStore:
        raise NotImplementedError

    def test_is_a_memory_store(self, store: MemoryStore) -> None:
        assert isinstance(store, MemoryStore)

    def test_empty_store(self, store: MemoryStore) -> None:
        assert store.query(basis(0), k=3) == []
        assert store.count() == 0
        assert store.sources() == {}

    def test_nearest_first_with_cosine_scores(self, store: MemoryStore) -> None:
        store.add(
            [item("a"), item("b"), item("c")],
            np.stack([basis(0), toward(0, 0.8), toward(0, 0.3)]),
        )
        found = store.query(basis(0), k=2)
        assert _ids(found) == ["a", "b"]
        assert [round(s.score, 3) for s in found] == [1.0, 0.8]

    def test_vectors_need_not_be_unit_length(self, store: MemoryStore) -> None:
        store.add([item("a")], np.stack([5 * basis(2)]))
        assert round(store.query(3 * basis(2), k=1)[0].score, 4) == 1.0

    def test_add_replaces_by_id(self, store: MemoryStore) -> None:
        store.add([item("a", text="old")], np.stack([basis(0)]))
        store.add([item("a", text="new")], np.stack([basis(1)]))
        assert store.count() == 1
        (hit,) = store.query(basis(1), k=5)
        assert (hit.item.text, round(hit.score, 3)) == ("new", 1.0)

    def test_k_larger_than_the_store(self, store: MemoryStore) -> None:
        store.add([item("a"), item("b")], np.stack([basis(0), basis(1)]))
        assert sorted(_ids(store.query(basis(0), k=10))) == ["a", "b"]

    def test_items_keep_their_provenance(self, store: MemoryStore) -> None:
        kept = item("a", ingested_at=NOW - 12.5, version="abc123", expires_at=NOW + DAY)
        plain = item("b", data_type="other")
        store.add([kept, plain], np.stack([basis(0), basis(1)]))
        assert store.query(basis(0), k=1)[0].item == kept
        assert store.query(basis(1), k=1)[0].item == plain

    def test_filter_by_data_type(self, store: MemoryStore) -> None:
        store.add(
            [item("a", data_type="x"), item("b", data_type="y")], np.stack([basis(0), basis(0)])
        )
        only_y = ItemFilter(types={"y": Window()}, others=None)
        assert _ids(store.query(basis(0), k=5, where=only_y)) == ["b"]

    def test_filter_window_for_named_type_others_unbounded(self, store: MemoryStore) -> None:
        old = NOW - 10 * DAY
        store.add(
            [
                item("x-old", data_type="x", ingested_at=old),
                item("x-new", data_type="x"),
                item("y-old", data_type="y", ingested_at=old),
            ],
            np.stack([basis(0), toward(0, 0.9), toward(0, 0.8)]),
        )
        where = ItemFilter(types={"x": Window(ingested_since=NOW - DAY)}, others=Window())
        assert _ids(store.query(basis(0), k=5, where=where)) == ["x-new", "y-old"]

    def test_ingested_since_is_inclusive(self, store: MemoryStore) -> None:
        store.add(
            [item("edge", ingested_at=NOW - DAY), item("older", ingested_at=NOW - DAY - 1)],
            np.stack([basis(0), basis(0)]),
        )
        where = ItemFilter(others=Window(ingested_since=NOW - DAY))
        assert _ids(store.query(basis(0), k=5, where=where)) == ["edge"]

    def test_live_at_excludes_expired_and_keeps_items_without_expiry(
        self, store: MemoryStore
    ) -> None:
        store.add(
            [
                item("expires-now", expires_at=NOW),
                item("expires-later", expires_at=NOW + 1),
                item("never"),
            ],
            np.stack([basis(0), toward(0, 0.9), toward(0, 0.8)]),
        )
        where = ItemFilter(others=Window(live_at=NOW))
        assert _ids(store.query(basis(0), k=5, where=where)) == ["expires-later", "never"]

    def test_filter_admitting_nothing(self, store: MemoryStore) -> None:
        store.add([item("a")], np.stack([basis(0)]))
        assert store.query(basis(0), k=5, where=ItemFilter(types={}, others=None)) == []

    def test_filtered_query_finds_admitted_items_behind_many_excluded_ones(
        self, store: MemoryStore
    ) -> None:
        stale = [item(f"stale{n}", ingested_at=NOW - 100 * DAY) for n in range(40)]
        fresh = [item(f"fresh{n}") for n in range(3)]
        vectors = [toward(0, 0.99 - n * 0.001) for n in range(40)]
        vectors += [toward(0, 0.5 - n * 0.1) for n in range(3)]
        store.add(stale + fresh, np.stack(vectors))
        where = ItemFilter(others=Window(ingested_since=NOW - DAY))
        assert _ids(store.query(basis(0), k=5, where=where)) == ["fresh0", "fresh1", "fresh2"]

    def test_delete_source(self, store: MemoryStore) -> None:
        store.add(
            [item("a1", source="a"), item("a2", source="a"), item("b1", source="b")],
            np.stack([basis(0), basis(1), basis(2)]),
        )
        assert store.delete_source("a") == 2
        assert store.count() == 1
        assert _ids(store.query(basis(0), k=5)) == ["b1"]
        assert store.delete_source("a") == 0

    def test_delete_source_keeping_a_version(self, store: MemoryStore) -> None:
        store.add(
            [item("old", source="a", version="v1"), item("new", source="a", version="v2")],
            np.stack([basis(0), basis(1)]),
        )
        assert store.delete_source("a", keep_version="v2") == 1
        assert _ids(store.query(basis(0), k=5)) == ["new"]

    def test_restamp_source(self, store: MemoryStore) -> None:
        old = NOW - 10 * DAY
        store.add(
            [item("a1", source="a", ingested_at=old), item("b1", source="b", ingested_at=old)],
            np.stack([basis(0), basis(1)]),
        )
        assert store.restamp_source("a", NOW) == 1
        where = ItemFilter(others=Window(ingested_since=NOW - DAY))
        assert _ids(store.query(basis(0), k=5, where=where)) == ["a1"]
        assert store.sources()["a"].ingested_at == NOW
        assert store.sources()["b"].ingested_at == old

    def test_sources_summary(self, store: MemoryStore) -> None:
        store.add(
            [
                item("a1", source="a", data_type="t", version="v9", expires_at=NOW + 5),
                item("a2", source="a", data_type="t", version="v9", expires_at=NOW + 2),
                item("b1", source="b", data_type="u"),
            ],
            np.stack([basis(0), basis(1), basis(2)]),
        )
        infos = store.sources()
        assert set(infos) == {"a", "b"}
        assert (infos["a"].chunks, infos["a"].version, infos["a"].data_type) == (2, "v9", "t")
        assert infos["a"].expires_at == NOW + 2
        assert infos["b"].expires_at is None

    def test_dimension_mismatch_is_a_config_error(self, store: MemoryStore) -> None:
        store.add([item("a")], np.stack([basis(0, dim=8)]))
        with pytest.raises(ConfigError):
            store.add([item("b")], np.stack([basis(0, dim=4)]))

    def test_filters_agree_with_the_reference_store(self, store: MemoryStore) -> None:
        rng = random.Random(11)
        gen = np.random.default_rng(11)
        types = ["t0", "t1", "t2", "t3"]
        items = [
            item(
                f"i{n}",
                source=f"s{n % 7}",
                data_type=rng.choice(types),
                ingested_at=NOW - rng.uniform(0, 20 * DAY),
                expires_at=rng.choice([None, NOW - DAY, NOW + DAY]),
            )
            for n in range(80)
        ]
        vectors = gen.standard_normal((80, 16)).astype(np.float32)
        reference = InMemoryStore()
        reference.add(items, vectors)
        store.add(items, vectors)

        def window() -> Window:
            return Window(
                ingested_since=rng.choice([None, NOW - 5 * DAY, NOW - 15 * DAY]),
                live_at=rng.choice([None, NOW]),
            )

        for _ in range(25):
            named = rng.sample(types, rng.randint(0, 3))
            where = ItemFilter(
                types={t: window() for t in named}, others=rng.choice([None, window()])
            )
            query = gen.standard_normal(16).astype(np.float32)
            k = rng.randint(1, 8)
            expected = reference.query(query, k=k, where=where)
            found = store.query(query, k=k, where=where)
            assert _ids(found) == _ids(expected), where
            assert all(where.matches(s.item) for s in found)

    def test_concurrent_writers_and_readers(self, store: MemoryStore) -> None:
        errors: list[BaseException] = []

        def work(n: int) -> None:
            try:
                for m in range(5):
                    store.add([item(f"w{n}-{m}", source=f"w{n}")], np.stack([basis(m % 8)]))
                    store.query(basis(n % 8), k=3)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert store.count() == 20
        assert {s: i.chunks for s, i in store.sources().items()} == {f"w{n}": 5 for n in range(4)}
